"""`newsbeam dedup DATASET --out DIR`: the Dedup stage over an existing articles dataset.

For backfills and merged datasets: every article of DATASET (a newsbeam output folder, or its
`articles/` folder, possibly holding several runs' or several datasets' files) goes through the
same tiers a run's articles go through (url, exact, near, then story ids), and DIR gets what a
run writes: the articles kept, with their story ids; the duplicates with tier and similarity;
the near and story state, so later `newsbeam run`s into DIR compare against them; a manifest.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from newsbeam.pipeline.config import UsageError
from newsbeam.pipeline.manifest import beam_metrics, write_manifest, written_tables
from newsbeam.pipeline.runner import make_runner
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.metrics import count
from newsbeam.transforms.write import WriteState, WriteTables


def article_files(dataset: str) -> list[str]:
    """The articles' Parquet files of a dataset folder (or of its articles/ folder); hidden temp files left out."""
    root = Path(dataset)
    if (root / "articles").is_dir():
        root = root / "articles"
    if not root.is_dir():
        raise UsageError(f"{dataset}: not a folder")
    files = sorted(str(f) for f in root.rglob("*.parquet") if not any(part.startswith(".") for part in f.relative_to(root).parts))
    if not files:
        raise UsageError(f"{dataset}: no articles Parquet files in it")
    return files


def as_document(row: dict) -> dict:
    """A stored article row as the Dedup stage's document: its one feed entry is the row's own link."""
    return {**row, "entries": [{"link": row["url"], "feed_url": row.get("feed_url")}]}


def _read_document(row: dict) -> dict:
    count("articles_read")
    return as_document(row)


def run_dedup(dataset: str, out: str, run_id: str, beam_args: list[str] | None = None) -> dict:
    """Run the tiers over the dataset's articles and write DIR like a run; returns the manifest."""
    files = article_files(dataset)
    if Path(out).resolve() == Path(dataset).resolve() or Path(out).resolve() == Path(dataset).resolve().parent:
        raise UsageError("--out must be another folder than DATASET (the input is read while the output is written)")
    options = PipelineOptions(beam_args or [])
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    p = beam.Pipeline(runner=make_runner(options), options=options)
    docs = (
        p
        | "Files" >> beam.Create(files)
        | "ReadArticles" >> beam.io.ReadAllFromParquet()
        | "AsDocuments" >> beam.Map(_read_document)
    )
    empty_links = beam.pvalue.AsDict(p | "NoLinks" >> beam.Create([]))
    empty_hashes = beam.pvalue.AsDict(p | "NoHashes" >> beam.Create([]))
    deduped = docs | "Dedup" >> Dedup(empty_links, empty_hashes, p | "NoSignatures" >> beam.Create([]),
                                      p | "NoStories" >> beam.Create([]))
    tables = {"articles": deduped["articles"], "duplicates": deduped["duplicates"], "errors": p | "NoErrors" >> beam.Create([])}
    tables | "Write" >> WriteTables(out, run_id)
    deduped["signatures"] | "KeepNearState" >> WriteState(out, run_id, "near")
    deduped["stories"] | "KeepStoryState" >> WriteState(out, run_id, "story")
    result = p.run()
    result.wait_until_finish()

    counts, timings = beam_metrics(result)
    written = written_tables(out, run_id)
    rows = {name: info.get("rows", 0) for name, info in written.items()}
    read = counts.get("articles_read", 0)
    manifest = {
        "status": "complete",
        "command": "dedup",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "dataset": str(Path(dataset).resolve()),
        "input_files": len(files),
        "out": out,
        "counts": counts,
        "articles": {"read": read, "kept": rows.get("articles", 0), "duplicates": rows.get("duplicates", 0),
                     "balanced": read == rows.get("articles", 0) + rows.get("duplicates", 0)},
        "tables": written,
        "timings": {"total_seconds": round(time.perf_counter() - t0, 3), "stages": timings},
    }
    manifest["path"] = write_manifest(out, run_id, manifest)
    by_tier = ", ".join(f"{tier} {counts.get(f'duplicates_{tier}', 0)}" for tier in ("url", "exact", "near"))
    manifest["summary"] = (f"dedup {run_id} complete in {manifest['timings']['total_seconds']:.1f} s: {read} articles read -> "
                           f"{rows.get('articles', 0)} kept, {rows.get('duplicates', 0)} duplicates ({by_tier})")
    return manifest
