"""One batch run: the dataset's lock, what earlier committed runs stored, the pipeline (which commits the run),
then Beam's counters added to the manifest and what no commit names swept away."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from newsbeam.pipeline.build import build_pipeline
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.compact_cmd import AUTO_COMPACT, compact_locked, due, finish_compactions, refuse_compacted_rerun
from newsbeam.pipeline.lock import writer_lock
from newsbeam.pipeline.manifest import beam_metrics, summary_line
from newsbeam.pipeline.progress import ProgressReporter
from newsbeam.pipeline.runner import is_local, make_runner, single_process, steady_heap
from newsbeam.transforms.chrome import chrome_from_rows
from newsbeam.transforms.commits import (Commit, RunFiles, committed_runs, launch_path, launched_attempts,
                                         manifest_path, new_attempt, read_json, sweep, versions, write_json,
                                         write_manifest)
from newsbeam.transforms.feed_state import latest_states
from newsbeam.transforms.metrics import PROGRESS_DIR_ENV
from newsbeam.transforms.sources import spec_problem
from newsbeam.transforms.stored import StoredView
from newsbeam.transforms.write import parquet_reader, read_state


def load_stored_state(out: str, run_id: str, feed_urls: set | None = None,
                      commits: dict[str, Commit] | None = None) -> StoredState:
    """What the launcher reads of committed runs: their learned chrome and the listed feeds' state; and the view
    through which the workers read the rest (key index, near and story state; transforms/stored.py).

    This run id's own committed run is left out: a rerun replaces it. Its feed state is read as it
    was before that run committed, so a rerun polls its feeds as the run did (later runs' feed state
    would say the feeds are unchanged); links later runs stored still count as stored.
    """
    now = datetime.now(timezone.utc)
    commits = committed_runs(out) if commits is None else commits
    previous = commits.get(run_id)
    before = {r: c for r, c in commits.items() if previous is None or c.committed_at < previous.committed_at}
    mine, unreadable = {run_id}, []
    return StoredState(
        view=StoredView(out, run_id, now),
        chrome=chrome_from_rows(read_state(out, "chrome", commits, mine, unreadable=unreadable)),
        # every run keeps a state row for each feed it lists: the last runs' files have them all
        feeds=latest_states(read_state(out, "feeds", before, mine, unreadable=unreadable, newest_first_until=(
            ("feed_url", feed_urls) if feed_urls is not None else None))),
        unreadable=unreadable,
    )


def stored_for(config: RunConfig, commits: dict[str, Commit] | None = None) -> StoredState:
    """What earlier committed runs stored for this run's dataset and its listed feeds; unreadable files said on stderr."""
    stored = load_stored_state(config.out, config.run_id, {spec["url"] for spec in config.feeds if not spec_problem(spec)},
                               commits)
    say_unreadable(stored.unreadable)
    return stored


def say_unreadable(unreadable) -> None:
    for path, reason in unreadable:
        print(f"newsbeam: warning: skipping {path}, which cannot be read ({reason}); it is an error row of this run",
              file=sys.stderr)


def unreadable_in(manifest: dict) -> list[tuple[str, str]]:
    """(path, reason) of the stored files a finished run's workers could not read: its own read_state error rows."""
    found = []
    for info in manifest.get("tables", {}).get("errors", {}).get("files", []):
        with FileSystems.open(info["path"], compression_type="uncompressed") as f:
            rows = parquet_reader(f).read(columns=["stage", "url", "message"], use_threads=False).to_pylist()
        found += [(row["url"], row["message"][len(row["url"]) + 2:]) for row in rows if row["stage"] == "read_state"]
    return sorted(found)


def about(config: RunConfig, options: PipelineOptions, stored: StoredState, started_at, kind: str = "run") -> dict:
    """What every manifest of a run says: what kind, when, from which list, into where, with which options, knowing what."""
    return {
        "kind": kind,
        "started_at": started_at.isoformat(),
        "feeds_list": config.feeds_location,
        "sample": config.sample,
        "out": config.out,
        "options": {"fetch": asdict(config.fetch),
                    "beam": options.get_all_options(drop_default=True, retain_unknown_options=True)},
        "feeds": len(config.feeds),
        # what the launcher read; the workers count what they read of the key index and the near and story state
        "stored_before": {"chrome_sources": len(stored.chrome), "feed_states": len(stored.feeds),
                          "unreadable_files": len(stored.unreadable)},
    }


def launched_manifest(config: RunConfig, options: PipelineOptions, attempt: str, result, payload: dict,
                      then: str = "counts and tables are in the runner's console") -> dict:
    """The record of a job handed to a remote runner and not waited for (or only built, with --dry_run), in
    runs/launched/RUN_ID.json; the job itself commits runs/RUN_ID.json when it is done. `then` says where its
    results will be."""
    dry_run = bool(options.view_as(TestOptions).dry_run)
    job = getattr(result, "job", None)
    job_id = getattr(result, "job_id", lambda: None)() if not dry_run else None
    graph = getattr(job, "proto_pipeline", None)
    steps = sum(1 for t in graph.components.transforms.values() if not t.subtransforms) if graph is not None else None
    manifest = {
        "run_id": config.run_id,
        "status": "dry_run" if dry_run else "submitted",
        "attempt": attempt,
        **payload,
        "runner": options.view_as(StandardOptions).runner,
        "job_id": job_id,
        "job_transforms": steps,
        "commits_to": manifest_path(config.out, config.run_id),
        "versions": versions(),
    }
    manifest["path"] = launch_path(config.out, config.run_id)
    write_json(manifest["path"], {k: v for k, v in manifest.items() if k != "path"})
    what = "built (dry run; nothing submitted)" if dry_run else f"submitted as job {job_id}"
    manifest["summary"] = (f"{payload['kind']} {config.run_id}: {len(config.feeds)} feeds, job graph of {steps} transforms "
                           f"{what} on {manifest['runner']}; {then}")
    return manifest


def run_job(config: RunConfig, beam_args: list[str] | None = None, progress: bool = False, lock: bool = True,
            progress_every: float | None = None) -> dict:
    """Run the batch pipeline and return its manifest.

    Local runs are waited for; a remote runner's job is submitted and its launch record says so, unless
    `config.wait` (then it is waited for and described like a local run). The dataset's lock is held while
    the run is under way (with `lock` False, the caller holds it).
    """
    options = PipelineOptions(beam_args or [])
    waits = is_local(options) or (config.wait and not options.view_as(TestOptions).dry_run)
    if is_local(options):
        steady_heap()
    with writer_lock(config.out, config.run_id, "run") if lock else nullcontext():
        return _run_locked(config, options, progress, waits, progress_every)


def _run_locked(config: RunConfig, options: PipelineOptions, progress: bool, waits: bool,
                progress_every: float | None = None) -> dict:
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    finish_compactions(config.out)
    replaced: set = set()
    commits = committed_runs(config.out, replaced)  # read once: for the rerun check and what was stored
    refuse_compacted_rerun(config.out, config.run_id, replaced)
    stored = stored_for(config, commits)
    t_index = time.perf_counter()
    run = RunFiles(config.out, config.run_id, new_attempt())
    payload = about(config, options, stored, started_at)

    show_progress = progress and is_local(options)  # remote runners show their own counters
    with ProgressReporter(len(config.feeds), progress_every) if show_progress else nullcontext() as reporter:
        if reporter:
            os.environ[PROGRESS_DIR_ENV] = reporter.folder  # inherited by multi_processing workers
        try:
            with spill_folder(options, config.out, config.run_id) as spill:
                p = beam.Pipeline(runner=make_runner(options), options=options)
                build_pipeline(p, config, stored, run, payload, spill)
                result = p.run()
                if waits:
                    result.wait_until_finish()
        finally:
            os.environ.pop(PROGRESS_DIR_ENV, None)
    t_pipeline = time.perf_counter()
    if not waits:
        return launched_manifest(config, options, run.attempt, result, payload)

    manifest = committed_manifest(config.out, config.run_id, run.attempt)
    counts, stage_timings = beam_metrics(result)
    manifest.update({
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "counts": counts,
        "timings": {
            "load_stored_seconds": round(t_index - t0, 3),
            "pipeline_seconds": round(t_pipeline - t_index, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
            "stages": stage_timings,
        },
    })
    manifest["path"] = write_manifest(config.out, config.run_id, manifest)
    said = {path for path, _ in stored.unreadable}
    say_unreadable([(path, reason) for path, reason in unreadable_in(manifest) if path not in said])
    commits = committed_runs(config.out)
    manifest["swept"] = len(sweep(config.out, commits, launched_attempts(config.out)))
    if config.compact and is_local(options) and due(commits, datetime.now(timezone.utc)):
        manifest["compacted"] = compact_locked(config.out, at_least=AUTO_COMPACT, swept=True)  # under this run's lock
    manifest["summary"] = summary_line(manifest)
    return manifest


SPILL_PREFIX = "_tmp-"  # DIR/_tmp-RUN_ID: a run's (or `newsbeam dedup`'s) spilled batches, while it is under way


@contextmanager
def spill_folder(options: PipelineOptions, out: str, run_id: str):
    """Where a local run in this one process spills what its stages group, removed after; None for other runs, whose
    runners spill themselves: `dataset_spill` for a dataset on a local disk, else a folder of the machine's
    temporary space."""
    if not single_process(options):
        yield None
    elif "://" in out:
        folder = tempfile.mkdtemp(prefix="newsbeam-spill-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        with dataset_spill(out, run_id) as folder:
            yield folder


@contextmanager
def dataset_spill(out: str, run_id: str):
    """DIR/_tmp-RUN_ID (any Beam filesystem), empty, removed after. Readers never look there; what killed runs left
    under a local DIR is removed first (the caller holds the dataset's lock, so no live run owns it)."""
    if "://" not in out:
        for left in Path(out).glob(f"{SPILL_PREFIX}*"):
            shutil.rmtree(left, ignore_errors=True)
    folder = FileSystems.join(out, f"{SPILL_PREFIX}{run_id}")
    if FileSystems.exists(folder):
        FileSystems.delete([folder])
    FileSystems.mkdirs(folder)
    try:
        yield folder
    finally:
        if FileSystems.exists(folder):
            FileSystems.delete([folder])


def committed_manifest(out: str, run_id: str, attempt: str) -> dict:
    """The manifest a finished job committed; RuntimeError when the job ended without committing this attempt."""
    path = manifest_path(out, run_id)
    manifest = read_json(path) if FileSystems.exists(path) else {}
    if manifest.get("attempt") != attempt or manifest.get("status") != "complete":
        raise RuntimeError(f"the run finished without committing: {manifest_path(out, run_id)} is not this attempt's")
    return {k: v for k, v in manifest.items() if k not in ("path", "versions")}
