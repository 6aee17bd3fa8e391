"""Counters for every stage: Beam metrics, plus a live tally for local progress display.

Beam's metrics are only readable once a local run ends, so each worker process also
writes its running tally to a small JSON file (at most every FLUSH_SECONDS) in the folder
named by NEWSBEAM_PROGRESS_DIR, which the launcher reads to show progress. Call
``count`` from ``process()`` only: Beam drops increments made from other threads.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter

from apache_beam.metrics import Metrics

NAMESPACE = "newsbeam"
PROGRESS_DIR_ENV = "NEWSBEAM_PROGRESS_DIR"
FLUSH_SECONDS = 0.25  # a tiny file rewrite; often enough that a short stage still shows

_beam_counters: dict = {}
_tallies: dict[str, Counter] = {}
_last_flush: dict[str, float] = {}


def count(name: str, n: int = 1) -> None:
    """Add n to the stage counter `name`."""
    counter = _beam_counters.get(name)
    if counter is None:
        counter = _beam_counters[name] = Metrics.counter(NAMESPACE, name)
    counter.inc(n)
    folder = os.environ.get(PROGRESS_DIR_ENV)
    if folder:
        _tallies.setdefault(folder, Counter())[name] += n
        _flush(folder)


def _flush(folder: str) -> None:
    now = time.monotonic()
    if now - _last_flush.get(folder, 0.0) < FLUSH_SECONDS:
        return
    _last_flush[folder] = now
    path = os.path.join(folder, f"{os.getpid()}.json")
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(dict(_tallies[folder]), f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # progress is a courtesy; never fail a run for it


def read_progress(folder: str) -> Counter:
    """Sum of the tallies every worker process has written so far."""
    total: Counter = Counter()
    try:
        names = os.listdir(folder)
    except OSError:
        return total
    for name in names:
        if name.endswith(".json"):
            try:
                with open(os.path.join(folder, name)) as f:
                    total.update(json.load(f))
            except (OSError, ValueError):
                continue
    return total


def observe_ms(name: str, started: float | None = None, seconds: float | None = None) -> None:
    """Record in the distribution `name` the milliseconds since `started` (time.perf_counter()), or `seconds`."""
    if seconds is None:
        seconds = time.perf_counter() - started
    Metrics.distribution(NAMESPACE, name).update(int(seconds * 1000))
