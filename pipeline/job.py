"""One batch run: load what earlier runs stored, run the pipeline, check the output, write the manifest."""

from __future__ import annotations

import os
from dataclasses import asdict
import time
from contextlib import nullcontext
from datetime import datetime, timezone

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from newsbeam.pipeline.build import build_pipeline
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.manifest import beam_metrics, feed_health, link_accounting, summary_line, write_manifest, written_tables
from newsbeam.pipeline.progress import ProgressReporter
from newsbeam.pipeline.runner import is_local, make_runner
from newsbeam.transforms.dedup import NEAR_LOOKBACK, stored_keys
from newsbeam.transforms.feed_state import latest_states
from newsbeam.transforms.sources import spec_problem
from newsbeam.transforms.stories import MAX_STORY_GAP
from newsbeam.transforms.metrics import PROGRESS_DIR_ENV
from newsbeam.transforms.chrome import chrome_from_rows
from newsbeam.transforms.write import read_key_columns, read_run_state, read_state


def load_stored_state(out: str, run_id: str, feed_urls: set | None = None) -> StoredState:
    """Keys of earlier runs' rows (never their text) and the chrome they learned; this run id's own excluded."""
    links, hashes = stored_keys(
        read_key_columns(out, "articles", ["article_id", "url", "canonical_url", "content_hash"], run_id),
        read_key_columns(out, "duplicates", ["url", "canonical_url", "duplicate_of"], run_id),
    )
    now = datetime.now(timezone.utc)
    return StoredState(links=links, hashes=hashes, chrome=chrome_from_rows(read_state(out, "chrome", run_id)),
                       signatures=read_state(out, "near", run_id, since=now - NEAR_LOOKBACK),
                       stories=read_state(out, "story", run_id, since=now - MAX_STORY_GAP),
                       # every run keeps a state row for each feed it lists: the last runs' files have them all
                       feeds=latest_states(read_state(out, "feeds", run_id, newest_first_until=(
                           ("feed_url", feed_urls) if feed_urls is not None else None))))


def stored_for(config: RunConfig) -> StoredState:
    """What earlier runs stored for this run's dataset and its listed feeds."""
    return load_stored_state(config.out, config.run_id, {spec["url"] for spec in config.feeds if not spec_problem(spec)})


def launched_manifest(config: RunConfig, options: PipelineOptions, stored: StoredState, result, started_at, kind: str = "run",
                      about: dict | None = None, then: str = "counts and tables are in the runner's console") -> dict:
    """The manifest of a job handed to a remote runner and not waited for (or only built, with --dry_run);
    `about` adds what is particular to the kind of job, `then` where its results will be."""
    dry_run = bool(options.view_as(TestOptions).dry_run)
    job = getattr(result, "job", None)
    job_id = getattr(result, "job_id", lambda: None)() if not dry_run else None
    graph = getattr(job, "proto_pipeline", None)
    steps = sum(1 for t in graph.components.transforms.values() if not t.subtransforms) if graph is not None else None
    manifest = _written(config, {
        "status": "dry_run" if dry_run else "submitted",
        "kind": kind,
        **_about(config, options, stored, started_at),
        **(about or {}),
        "runner": options.view_as(StandardOptions).runner,
        "job_id": job_id,
        "job_transforms": steps,
    })
    what = "built (dry run; nothing submitted)" if dry_run else f"submitted as job {job_id}"
    manifest["summary"] = (f"{kind} {config.run_id}: {len(config.feeds)} feeds, job graph of {steps} transforms {what} "
                           f"on {manifest['runner']}; {then}")
    return manifest


def _about(config: RunConfig, options: PipelineOptions, stored: StoredState, started_at) -> dict:
    """What every manifest of a run says: when, from which list, into where, with which options, knowing what."""
    return {
        "started_at": started_at.isoformat(),
        "feeds_list": config.feeds_location,
        "sample": config.sample,
        "out": config.out,
        "options": {"fetch": asdict(config.fetch),
                    "beam": options.get_all_options(drop_default=True, retain_unknown_options=True)},
        "feeds": len(config.feeds),
        "stored_before": {"links": len(stored.links), "texts": len(stored.hashes), "chrome_sources": len(stored.chrome),
                          "near_signatures": len(stored.signatures), "stories": len(stored.stories),
                          "feed_states": len(stored.feeds)},
    }


def _written(config: RunConfig, manifest: dict) -> dict:
    """The manifest written to DIR/runs/RUN_ID.json, with its path and run id."""
    manifest["path"] = write_manifest(config.out, config.run_id, manifest)
    manifest["run_id"] = config.run_id
    return manifest


def run_job(config: RunConfig, beam_args: list[str] | None = None, progress: bool = False) -> dict:
    """Run the batch pipeline and return the manifest it wrote.

    Local runs are waited for; a remote runner's job is submitted and its manifest says so, unless
    `config.wait` (then it is waited for and described like a local run).
    """
    options = PipelineOptions(beam_args or [])
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    stored = stored_for(config)
    t_index = time.perf_counter()

    show_progress = progress and is_local(options)  # remote runners show their own counters
    with ProgressReporter(len(config.feeds)) if show_progress else nullcontext() as reporter:
        if reporter:
            os.environ[PROGRESS_DIR_ENV] = reporter.folder  # inherited by multi_processing workers
        try:
            p = beam.Pipeline(runner=make_runner(options), options=options)
            build_pipeline(p, config, stored)
            result = p.run()
            if is_local(options) or config.wait:
                result.wait_until_finish()
        finally:
            os.environ.pop(PROGRESS_DIR_ENV, None)
    t_pipeline = time.perf_counter()
    if not is_local(options) and (not config.wait or options.view_as(TestOptions).dry_run):
        return launched_manifest(config, options, stored, result, started_at)

    counts, stage_timings = beam_metrics(result)
    tables = written_tables(config.out, config.run_id)
    health = feed_health(read_run_state(config.out, "feeds", config.run_id))
    manifest = _written(config, {
        "status": "complete",
        **_about(config, options, stored, started_at),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "feed_health": health,
        "counts": counts,
        "links": link_accounting(counts, tables),
        "tables": tables,
        "timings": {
            "load_stored_seconds": round(t_index - t0, 3),
            "pipeline_seconds": round(t_pipeline - t_index, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
            "stages": stage_timings,
        },
    })
    manifest["summary"] = summary_line(manifest)
    return manifest
