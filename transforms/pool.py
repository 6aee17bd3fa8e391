"""Many requests in flight inside a DoFn: a thread pool per worker, at most `per_host` tasks per host.

`PooledFetchFn.process()` hands each request of its element to the pool and returns at once,
emitting whatever has finished; `finish_bundle()` waits for the rest. So one bundle's hosts are
fetched side by side although the runner calls process() one element at a time. Results are
turned into outputs (and counted) only in process() and finish_bundle(), on the runner's
thread: Beam drops metrics updated from threads it did not start.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
import queue
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from newsbeam.transforms.http import FetchSettings, HttpClient
from newsbeam.transforms.politeness import shared_gate


class Dispatcher:
    """Runs `fn(*args)` on a pool of `max_workers` threads, never more than `per_host` at once for one host.

    Tasks over a host's share wait in that host's queue (not in a pool thread), so a host with
    a thousand links cannot occupy the pool while other hosts wait.
    """

    def __init__(self, max_workers: int, per_host: int):
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="newsbeam-fetch")
        self._per_host = per_host
        self._lock = threading.Lock()
        self._active: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, deque] = defaultdict(deque)
        self._queued = 0
        self._start_threads(max_workers)

    def _start_threads(self, count: int) -> None:
        """Start every thread now, while the worker is idle: started on demand, each new thread waits for
        the GIL behind the busy ones (in the fetch benchmark that held the first requests back by ~1 s)."""
        ready = threading.Barrier(count + 1, timeout=30)
        try:
            for _ in range(count):
                self._executor.submit(ready.wait)
            ready.wait()
        except (threading.BrokenBarrierError, RuntimeError):  # threads that could not start come on demand
            ready.abort()

    def submit(self, host: str, fn, *args) -> Future:
        future: Future = Future()
        with self._lock:
            start = self._active[host] < self._per_host
            if start:
                self._active[host] += 1
            else:
                self._waiting[host].append((future, fn, args))
                self._queued += 1
        if start:
            self._start(host, future, fn, args)
        return future

    def _start(self, host, future, fn, args):
        def run():
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
            finally:
                self._next(host)

        self._executor.submit(run)

    def _next(self, host):
        with self._lock:
            if self._waiting[host]:
                task = self._waiting[host].popleft()
                self._queued -= 1
            else:
                self._active[host] -= 1
                if not self._active[host]:
                    del self._active[host], self._waiting[host]
                return
        self._start(host, *task)

    def queued(self) -> int:
        """Tasks waiting for their host's share (not yet running)."""
        return self._queued

    def shutdown(self) -> None:
        with self._lock:
            for waiting in self._waiting.values():
                for future, _, _ in waiting:
                    future.cancel()
            self._waiting.clear()
            self._queued = 0
        self._executor.shutdown(wait=True, cancel_futures=True)


class PooledFetchFn(beam.DoFn):
    """Base of the fetch DoFns: subclasses say what to fetch (`requests`), how (`fetch`, in a pool thread,
    no metrics, returns a value and never raises), and what comes out (`emit`, on the runner's thread)."""

    max_pending = 512  # requests started or finished but not emitted, before process() waits to emit some

    def __init__(self, settings: FetchSettings):
        self._settings = settings
        self._client = None
        self._pool = None
        self._pending: dict = {}
        self._done = None

    def setup(self):
        self.open_client()
        self._pool = Dispatcher(self._settings.max_connections, self._settings.per_host)

    def open_client(self):
        """The HTTP client alone, for a caller that fetches on its own thread (no pool)."""
        s = self._settings
        self._client = HttpClient(s, gate=shared_gate(s.per_host, s.host_delay))

    def teardown(self):
        if self._pool:
            self._pool.shutdown()
        if self._client:
            self._client.close()

    def start_bundle(self):
        self._pending = {}
        self._done = queue.SimpleQueue()  # futures as they finish: O(1) each, unlike wait() over all pending

    def requests(self, element):
        """(host, item) pairs to fetch for one input element."""
        raise NotImplementedError

    def fetch(self, item):
        raise NotImplementedError

    def emit(self, item, outcome):
        raise NotImplementedError

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        for host, item in self.requests(element):
            future = self._pool.submit(host, self.fetch, item)
            self._pending[future] = (item, timestamp, window)
            future.add_done_callback(self._done.put)
            # Only tasks started or finished hold responses; those queued behind a host's share hold nothing new.
            if len(self._pending) - self._pool.queued() >= self.max_pending:
                yield from self._emit_done(block=True)
        yield from self._emit_done(block=False)

    def finish_bundle(self):
        while self._pending:
            yield from self._emit_done(block=True)

    def _emit_done(self, block: bool):
        """Emit every finished request; with `block`, wait for at least one first."""
        done = [self._done.get()] if block and self._pending else []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        for future in done:
            item, timestamp, window = self._pending.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # fetch() is not meant to raise; a bug becomes an error row, not a failed run
                outcome = exc
            for out in self.emit(item, outcome):
                if isinstance(out, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, timestamp, [window]))
                else:
                    yield WindowedValue(out, timestamp, [window])
