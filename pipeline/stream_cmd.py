"""`newsbeam stream`: poll the feeds again and again into one dataset.

With a remote runner (Dataflow) it submits the streaming job (pipeline/streaming.py): Beam's
PeriodicImpulse starts the polls, keyed state that expires remembers what earlier polls saw,
each poll's window is written as a run of its own with its manifest. `submit_stream` below.

Locally, each poll is a batch run (`run_stream`), because Beam 2.77's local streaming runner
holds PeriodicImpulse's watermark until the last tick: a local streaming job closed no window,
and so wrote nothing, before its last poll.

Each poll is `run_job` with the run id STREAM_ID-pNNNNN, so it is exactly a scheduled run:
feeds polled conditionally with their state in DIR/_state/feeds, links already stored skipped,
files written whole and checked, a manifest per poll. Nothing is carried from one poll to the
next in memory: what a poll needs of the past is read from the dataset's state, so a stream
that runs for weeks holds no more than one poll does. Polls start every `poll_interval`
seconds (a poll that overruns is followed at once by the next); SIGTERM or Ctrl-C ends the
stream after the poll under way. A poll that fails is reported and the stream goes on; five
failures in a row end it. The stream's own manifest (runs/STREAM_ID.json) lists every poll.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import about, launched_manifest, run_job, stored_for
from newsbeam.pipeline.lock import writer_lock
from newsbeam.pipeline.runner import make_runner
from newsbeam.pipeline.streaming import build_streaming, poll_ticks
from newsbeam.transforms.commits import committed_runs, new_attempt, retired_path, write_manifest

MAX_FAILED_POLLS = 5


def poll_id(stream_id: str, number: int) -> str:
    return f"{stream_id}-p{number:05d}"


def polls_committed(commits, stream_id: str) -> int:
    """How many polls of the stream `stream_id` earlier streams of that id committed (the highest poll number)."""
    pattern = re.compile(rf"{re.escape(stream_id)}-p(\d{{5,}})")
    return max((int(m.group(1)) for m in map(pattern.fullmatch, commits) if m), default=0)


def next_uncompacted(out: str, stream_id: str, first: int) -> int:
    """The first poll number from `first` on whose run was not compacted away (compaction retires a stream's older
    polls, which are numbered in a row): found in a number of lookups that grows with the log of the polls."""
    def retired(n: int) -> bool:
        return FileSystems.exists(retired_path(out, poll_id(stream_id, n)))

    if not retired(first):
        return first
    low, step = first, 1  # retired(low)
    while retired(low + step):
        low, step = low + step, step * 2
    high = low + step  # not retired
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if retired(middle) else (low, middle)
    return high


def run_stream(config: RunConfig, beam_args: list[str], poll_interval: float, max_polls: int | None, say) -> dict:
    """Poll into config.out until stopped, holding its lock throughout; a stream restarted with the same id goes on
    from its last committed poll."""
    with writer_lock(config.out, config.run_id, "stream"):
        return _stream_locked(config, beam_args, poll_interval, max_polls, say)


def _stream_locked(config: RunConfig, beam_args: list[str], poll_interval: float, max_polls: int | None, say) -> dict:
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    started_at = datetime.now(timezone.utc)
    polls: list[dict] = []
    first = next_uncompacted(config.out, config.run_id, polls_committed(committed_runs(config.out), config.run_id) + 1)
    failed_in_a_row = 0
    try:
        while not stop.is_set() and (max_polls is None or len(polls) < max_polls):
            began = time.monotonic()
            poll = replace(config, run_id=poll_id(config.run_id, first + len(polls)))
            try:
                manifest = run_job(poll, beam_args, lock=False)
                polls.append({"run_id": poll.run_id, "status": manifest["status"], "started_at": manifest["started_at"],
                              "seconds": manifest["timings"]["total_seconds"], "links": manifest["links"],
                              "feeds": manifest["feed_health"]["by_status"], "counts": manifest["counts"]})
                say(manifest["summary"])
                failed_in_a_row = 0
            except Exception as exc:  # one bad poll must not end a stream of weeks
                first = (str(exc).strip().splitlines() or [""])[0]
                polls.append({"run_id": poll.run_id, "status": "failed", "error": f"{type(exc).__name__}: {first}"})
                say(f"newsbeam: poll {poll.run_id} failed: {type(exc).__name__}: {first}")
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_FAILED_POLLS:
                    break
            if max_polls is not None and len(polls) >= max_polls:
                break
            stop.wait(max(0.0, poll_interval - (time.monotonic() - began)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    status = "failed" if failed_in_a_row >= MAX_FAILED_POLLS else ("stopped" if stop.is_set() else "complete")
    added = sum(p["links"]["articles"] for p in polls if "links" in p)
    summary = {
        "status": status,
        "kind": "stream",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "poll_interval_seconds": poll_interval,
        "max_polls": max_polls,
        "feeds_list": config.feeds_location,
        "out": config.out,
        "first_poll": poll_id(config.run_id, first),
        "polls": polls,
    }
    summary["path"] = write_manifest(config.out, config.run_id, summary)
    failed = sum(p["status"] == "failed" for p in polls)
    summary["summary"] = (f"stream {config.run_id} {status}: {len(polls)} polls ({failed} failed), "
                          f"{added} articles added")
    return summary


def submit_stream(config: RunConfig, beam_args: list[str], poll_interval: float, max_polls: int | None,
                  remember: timedelta) -> dict:
    """Submit the streaming job to a remote runner (or only build it, with --dry_run); its launch record."""
    options = PipelineOptions(beam_args)
    options.view_as(StandardOptions).streaming = True
    started_at = datetime.now(timezone.utc)
    with writer_lock(config.out, config.run_id, "stream"):  # held while submitting: the job's windows commit themselves
        stored = stored_for(config)
        attempt = new_attempt()
        p = beam.Pipeline(runner=make_runner(options), options=options)
        start = time.time()
        build_streaming(p, config, stored, poll_ticks(p, start, poll_interval, max_polls), start, poll_interval, remember,
                        attempt, about(config, options, stored, started_at, kind="stream_window"))
        result = p.run()
    windows = FileSystems.join(config.out, "runs", f"{config.run_id}-w*.json")
    return launched_manifest(config, options, attempt, result, {
        **about(config, options, stored, started_at, kind="stream"),
        "poll_interval_seconds": poll_interval,
        "max_polls": max_polls,
        "remember_seconds": remember.total_seconds(),
        "window_manifests": windows,
    }, then=f"counts are in the runner's console, each poll window's tables and manifest ({windows}) in --out")
