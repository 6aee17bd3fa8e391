"""Extract stage: article body and metadata from a page with trafilatura (the work: transforms/extract_core.py).

A local run in one process extracts in a pool of worker processes (transforms/extract_pool.py);
the outcomes are counted and emitted here, on the runner's thread.
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.extract_core import extract_batch, extract_outcome
from newsbeam.transforms.extract_pool import POOL_BATCH, POOL_FROM, ExtractionPool
from newsbeam.transforms.metrics import count, observe_ms

class Extract(beam.PTransform):
    """Pages -> extracted documents; pages with no text go to the `errors` output.

    With `processes` > 1 (a local run in one process: pipeline/build.py), a bundle of at least
    POOL_FROM pages is extracted by a pool of that many processes (transforms/extract_pool.py),
    in batches, the outcomes emitted in order on the runner's thread; smaller bundles, and runs
    with one process, are extracted in place.
    """

    def __init__(self, processes: int = 1):
        super().__init__()
        self._processes = processes

    def expand(self, pages):
        return pages | "ExtractBody" >> beam.ParDo(_ExtractFn(self._processes)).with_outputs(ERRORS, main="documents")


class _ExtractFn(beam.DoFn):
    def __init__(self, processes: int = 1):
        self._processes = processes

    def setup(self):
        self._pool = None

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown()

    def start_bundle(self):
        self._waiting = []  # (page, timestamp, window) not yet sent: a bundle's first POOL_FROM decide how

    def process(self, page, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        if self._processes <= 1:
            yield from self._emit(page, extract_outcome(page["html"], page["final_url"], page["entries"][0]))
            return
        self._waiting.append((page, timestamp, window))
        if self._pool is None and len(self._waiting) >= POOL_FROM:
            self._pool = self._start_pool()
        if self._pool is not None:
            while len(self._waiting) >= POOL_BATCH:
                batch, self._waiting = self._waiting[:POOL_BATCH], self._waiting[POOL_BATCH:]
                self._pool.submit(batch, [(p["html"], p["final_url"], p["entries"][0]) for p, _, _ in batch])
            for (page_, ts, win), outcome in self._pool.done(block=False):
                yield from self._emit(page_, outcome, ts, win)

    def _start_pool(self):
        """The pool, or None (from now on extracting in place) where processes cannot be started: no /dev/shm for
        multiprocessing's semaphores in some containers, a process limit. The run goes on either way."""
        try:
            return ExtractionPool(self._processes, extract_batch)
        except (OSError, ImportError, NotImplementedError, RuntimeError) as exc:
            logging.getLogger(__name__).warning("extracting in one process: no extraction pool (%s: %s)",
                                                type(exc).__name__, exc)
            count("extract_pool_unavailable")
            self._processes = 1
            return None

    def finish_bundle(self):
        if self._pool is None:  # a small bundle, or no pool: extracted here, as it came
            for page, ts, win in self._waiting:
                yield from self._emit(page, extract_outcome(page["html"], page["final_url"], page["entries"][0]), ts, win,
                                      pooled=False)
            return
        if self._waiting:
            self._pool.submit(self._waiting, [(p["html"], p["final_url"], p["entries"][0]) for p, _, _ in self._waiting])
        for (page, ts, win), outcome in self._pool.done(block=True):
            yield from self._emit(page, outcome, ts, win)

    def _emit(self, page, outcome, timestamp=None, window=None, pooled=True):
        """The outputs of one page's outcome, as WindowedValues when they leave a bundle's end (finish_bundle)."""
        if window is not None and pooled:
            count("extract_pooled")
        for out in self._outputs(page, outcome):
            if window is None:
                yield out
            elif isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, timestamp, [window]))
            else:
                yield WindowedValue(out, timestamp, [window])

    def _outputs(self, page, outcome):
        entry = page["entries"][0]
        if outcome[0] == "failed":
            count("extract_failed")
            yield from fail_entries(page["entries"], "extract", outcome[1], outcome[2], page["http_status"])
            return
        if outcome[0] == "internal":
            count("extract_failed")
            yield from fail_entries(page["entries"], "extract", "internal_error", outcome[1], page["http_status"])
            return
        _, doc, seconds = outcome
        observe_ms("extract_ms", seconds=seconds)
        count(f"extracted_{doc['extraction_method']}")
        if doc["body_guarded"]:
            count("body_guarded")  # the layout rules would have taken most of the body: trafilatura's text kept
        yield {
            **doc,
            "url": page["url"],
            "feed_url": entry["feed_url"],
            "source": entry["source"],
            "fetched_at": page["fetched_at"],
            "entries": page["entries"],
        }
