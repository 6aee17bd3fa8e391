"""What the stages and the extraction pool's workers (which import no Beam) both say of a failure."""

from __future__ import annotations


def internal_error(exc: BaseException) -> str:
    """The message of an error row for an exception nothing expected: its type and text."""
    return f"{type(exc).__name__}: {exc}"
