"""Live progress for local runs: worker tallies summed and printed every few seconds."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time

from newsbeam.transforms.metrics import read_progress


def progress_line(tally, feeds_total: int, elapsed: float) -> str:
    if not tally:
        return f"[{elapsed:6.1f}s] starting the pipeline"
    feeds_done = tally["feeds_fetched"] + tally["feeds_failed"] + tally["feeds_skipped"]
    errors = tally["feeds_failed"] + tally["entry_errors"]
    return (
        f"[{elapsed:6.1f}s] feeds {feeds_done}/{feeds_total} · links {tally['entries_discovered']} · "
        f"pages {tally['pages_fetched']} fetched, "
        f"{tally['extracted_trafilatura'] + tally['extracted_feed_content'] + tally['extracted_feed_summary']} extracted · "
        f"articles {tally['articles_kept']} · errors {errors}"
    )


class ProgressReporter:
    """A background thread printing a progress line every `interval` seconds to stderr."""

    def __init__(self, feeds_total: int, interval: float = 2.0, stream=None):
        self.folder = tempfile.mkdtemp(prefix="newsbeam-progress-")
        self._feeds_total = feeds_total
        self._interval = interval
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="newsbeam-progress", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _loop(self):
        while not self._stop.wait(self._interval):
            line = progress_line(read_progress(self.folder), self._feeds_total, time.monotonic() - self._started)
            print(line, file=self._stream, flush=True)
