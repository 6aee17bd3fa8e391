"""The process pool a local run extracts with (transforms/extract.py): the cores Beam's in-process runner leaves idle.

Extraction is CPU-bound and Python holds one core per process. A local run in one process (the
default) hands batches of pages to a pool of worker processes started once per run, from a
forkserver that has imported trafilatura already (and no Beam: transforms/extract_core.py), so a worker
starts in a fraction of a second.
Outcomes come back in the order the pages were sent, and are counted and emitted by the runner's
thread. A worker that dies (a page that crashes lxml, the OOM killer) costs only its batch: those
pages are extracted again one by one in a new pool, and a page that kills that one too becomes an
error row.

Dataflow and Beam's multi-process mode already run a process per core: there the pool is not used.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

POOL_FROM = 64  # pages a bundle must hold before a pool is worth starting (about a second of work)
POOL_BATCH = 8  # pages a task carries to a worker
IN_FLIGHT = 4  # tasks per worker sent ahead: enough to keep the workers busy, few pages held at once


@contextmanager
def _main_unnamed():
    """While workers start: __main__ without a file or module name, so that multiprocessing does not import the
    program (a script calling run_job without an `if __name__ == "__main__"` guard would run again in every worker).
    The workers run functions of importable modules only."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        for name in saved:
            if name == "__file__":
                delattr(main, name)
            else:
                setattr(main, name, None)
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def usable_cpus() -> int:
    """The cores this process may run on (`taskset` and cgroups' CPU sets respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ExtractionPool:
    """`work(args_list) -> outcomes` run on batches in `processes` worker processes, results in submission order."""

    def __init__(self, processes: int, work, preload: str = "newsbeam.transforms.extract_core"):
        self._processes, self._work, self._preload = processes, work, preload
        self._pending: deque = deque()  # (items, args, future), oldest first
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")  # never fork the runner's threads
        context.set_forkserver_preload([self._preload])
        return ProcessPoolExecutor(self._processes, mp_context=context)

    def submit(self, items: list, args: list) -> None:
        """Send one batch: `items` come back with the outcomes of `args`."""
        self._pending.append((items, args, self._send(args)))

    def _send(self, args: list):
        with _main_unnamed():  # a worker it starts must not run the caller's script again
            return self._executor.submit(self._work, args)

    def done(self, block: bool):
        """(item, outcome) of the batches finished at the head of the queue; with `block`, of every batch sent. Without
        it, waits for the oldest batches while more than IN_FLIGHT per worker are out."""
        while self._pending and (block or self._pending[0][2].done() or len(self._pending) > IN_FLIGHT * self._processes):
            items, args, future = self._pending.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                outcomes = self._one_by_one(args)
            yield from zip(items, outcomes)

    def _one_by_one(self, args: list) -> list:
        """A batch whose worker died, again a page at a time in a new pool: the page that kills it is an error."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        outcomes = []
        for one in args:
            self._executor = self._start()
            try:
                outcomes.extend(self._send([one]).result())
            except BrokenProcessPool as exc:
                outcomes.append(("internal", f"the extraction process died on this page ({type(exc).__name__})"))
                self._executor.shutdown(wait=False, cancel_futures=True)
                continue
            self._executor.shutdown(wait=True)
        self._executor = self._start()
        # the batches sent after the broken one were lost with its executor: send them again
        self._pending = deque((items, a, self._send(a)) for items, a, _ in self._pending)
        return outcomes

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
