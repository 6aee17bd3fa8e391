"""Dead letters: every entry that a stage cannot carry on becomes one error row."""

from __future__ import annotations

import apache_beam as beam

from newsbeam.schemas import error_row
from newsbeam.transforms.metrics import count

ERRORS = "errors"


def fail_entries(entries, stage: str, error: str, message: str, http_status: int | None = None):
    """Tagged error rows, one per feed entry that led to the failed page."""
    for entry in entries:
        count("entry_errors")
        yield beam.pvalue.TaggedOutput(
            ERRORS,
            error_row(stage=stage, error=error, message=message, url=entry["link"], feed_url=entry["feed_url"], http_status=http_status),
        )


# Errors of the run (state it could not read) and of a feed; every other stage's errors are of an entry (a link).
FEED_STAGES = ("read_state", "read_sources", "fetch_feed", "parse_feed")


def unreadable_rows(unreadable: list) -> list[dict]:
    """Error rows for committed files a run could not read (it goes on without them)."""
    return [error_row(stage="read_state", error="unreadable_file", message=f"{path}: {reason}", url=path)
            for path, reason in unreadable]
