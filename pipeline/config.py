"""What one run is asked to do, checked before any pipeline is built."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources

from apache_beam.io.filesystems import FileSystems

from newsbeam.transforms.commits import RUN_ID
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.stored import StoredView


class UsageError(Exception):
    """An invocation that cannot run; the CLI prints it as one line."""


@dataclass(frozen=True)
class RunConfig:
    feeds: list[dict]
    feeds_location: str
    out: str
    run_id: str
    fetch: FetchSettings = field(default_factory=FetchSettings)
    sample: bool = False
    wait: bool = False  # wait for a remote runner's job to finish (local runs always do)
    compact: bool = True  # a local run compacts the dataset once enough earlier runs wait for it (compact_cmd.due)
    extract_processes: int | None = None  # processes that extract in a local in-process run; None: every usable core


@dataclass(frozen=True)
class StoredState:
    """What the launcher read of earlier committed runs in the same --out (learned chrome, feed state: small, bounded by
    the sources), and the view through which the workers read the rest."""

    view: StoredView | None = None
    chrome: dict = field(default_factory=dict)
    feeds: dict = field(default_factory=dict)  # feed URL -> its newest feed-state row
    unreadable: list = field(default_factory=list)  # (path, reason) of committed files that could not be read


def sample_feeds_location() -> str:
    """The bundled offline news web's feed list."""
    return str(resources.files("newsbeam.pipeline") / "sample" / "feeds.opml")


def check_sample_out(out: str) -> None:
    """The bundled sample's fictional articles go only where they cannot mix with real ones: a new or empty folder, or
    one whose runs were all sample runs (compactions aside). Else one line: --feeds is missing."""
    manifests = FileSystems.match([FileSystems.join(out, "runs", "*.json")])[0].metadata_list
    real = [m.path for m in manifests if not _sample_manifest(m.path)]
    if real or (not manifests and _holds_files(out)):
        what = "runs of real feeds" if real else "files that are not a newsbeam sample dataset"
        raise UsageError(f"--feeds is missing: {out} holds {what}, and the bundled sample would put its fictional articles "
                         "beside them (give --feeds, or an empty --out to try the sample)")


def _sample_manifest(path: str) -> bool:
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            manifest = json.loads(f.read())
    except Exception:
        return False  # unreadable: not known to be the sample's
    return manifest.get("kind") == "compact" or manifest.get("sample") is True


def _holds_files(out: str) -> bool:
    if "://" not in out:
        return os.path.isdir(out) and any(not name.startswith(".newsbeam-write-check-") for name in os.listdir(out))
    return bool(FileSystems.match([FileSystems.join(out, "**")], limits=[1])[0].metadata_list)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise UsageError(f"--run-id {run_id!r}: use up to 100 letters, digits, '.', '_' and '-', starting with a letter "
                         "or digit (it names files)")
    return run_id


def check_out(out: str) -> str:
    """The output folder, created if needed; refused when it cannot be written."""
    if not out.strip():
        raise UsageError("--out is empty")
    local = "://" not in out
    if local:
        out = os.path.abspath(os.path.expanduser(out))
        if os.path.exists(out) and not os.path.isdir(out):
            raise UsageError(f"--out {out} exists and is not a folder")
    probe = FileSystems.join(out, f".newsbeam-write-check-{uuid.uuid4().hex}")
    try:
        with FileSystems.create(probe) as f:
            f.write(b"ok")
        FileSystems.delete([probe])
    except Exception as exc:
        raise UsageError(f"cannot write to --out {out}: {io_reason(exc)}") from None
    return out


def io_reason(exc: BaseException) -> str:
    """The human part of an I/O error, also when Beam's filesystems wrap it."""
    details = getattr(exc, "exception_details", None)
    if isinstance(details, dict) and details:
        exc = next(iter(details.values()))
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]
