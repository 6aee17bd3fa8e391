"""Live progress for local runs: worker tallies summed and shown as the run goes.

On a terminal, one line rewritten in place (TERMINAL_SECONDS); in a log (stderr not a terminal), a plain
line every LOG_SECONDS; `--progress-every S` sets either. Each line: feeds done, links found, pages
fetched of those to fetch, with a rate and an ETA once pages come in, articles kept and errors.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time

from newsbeam.transforms.metrics import read_progress

TERMINAL_SECONDS = 0.5
LOG_SECONDS = 15.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def progress_line(tally, feeds_total: int, elapsed: float, pages_since: float | None = None) -> str:
    """The progress line for a tally of the workers' counters; `pages_since`: seconds of the run when the first
    page came in (the rate is counted from then)."""
    if not tally:
        return f"[{elapsed:6.1f}s] starting the pipeline"
    feeds_done = tally["feeds_fetched"] + tally["feeds_failed"] + tally["feeds_skipped"]
    errors = tally["feeds_failed"] + tally["entry_errors"]
    done = tally["pages_fetched"] + tally["pages_failed"]
    # links that will be fetched, as far as known: entries found, less those already stored or seen and those
    # without a link (entries that name one link twice make it an upper bound)
    to_fetch = max(done, tally["entries_discovered"] - tally["links_already_stored"] - tally["links_already_seen"]
                   - tally["entries_without_link"])
    pages = f"pages {done}/{to_fetch} fetched" if to_fetch else "pages 0 fetched"
    if done and pages_since is not None and elapsed > pages_since:
        rate = done / (elapsed - pages_since)
        pages += f" ({rate:.1f}/s" + (f", ETA {_duration((to_fetch - done) / rate)})" if to_fetch > done and feeds_done >= feeds_total else ")")
    extracted = tally["extracted_trafilatura"] + tally["extracted_feed_content"] + tally["extracted_feed_summary"]
    return (f"[{elapsed:6.1f}s] feeds {feeds_done}/{feeds_total} · links {tally['entries_discovered']} · {pages}, "
            f"{extracted} extracted · articles {tally['articles_kept']} · errors {errors}")


class ProgressReporter:
    """A background thread showing the progress line on stderr: rewritten in place on a terminal, a line every
    LOG_SECONDS otherwise (or every `interval` seconds either way)."""

    def __init__(self, feeds_total: int, interval: float | None = None, stream=None):
        self.folder = ""  # made on entering: where the workers write their tallies
        self._feeds_total = feeds_total
        self._stream = stream or sys.stderr
        self._terminal = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval or (TERMINAL_SECONDS if self._terminal else LOG_SECONDS)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._pages_since: float | None = None
        self._shown = False
        self._thread = threading.Thread(target=self._loop, name="newsbeam-progress", daemon=True)

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix="newsbeam-progress-")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self._terminal and self._shown:
            self._show()  # the last state, and the line ended, so the summary starts on its own
            print(file=self._stream, flush=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _show(self):
        tally = read_progress(self.folder)
        elapsed = time.monotonic() - self._started
        if self._pages_since is None and (tally["pages_fetched"] or tally["pages_failed"]):
            self._pages_since = max(elapsed - self._interval, 0.0)  # the first pages came in since the last look
        line = progress_line(tally, self._feeds_total, elapsed, self._pages_since)
        if self._terminal:
            print(f"\r{line}\x1b[K", end="", file=self._stream, flush=True)
        else:
            print(line, file=self._stream, flush=True)
        self._shown = True

    def _loop(self):
        while not self._stop.wait(self._interval):
            self._show()
