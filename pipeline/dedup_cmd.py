"""`newsbeam dedup DATASET --out DIR`: the Dedup stage's tiers over an existing articles dataset.

For backfills and merged datasets: every article of DATASET (a newsbeam output folder, or its
`articles/` folder, possibly holding several runs' or several datasets' files) goes through the
same tiers a run's articles go through (url, exact, near, then story ids), and DIR gets what a
run writes: the articles kept, with their story ids; the duplicates with tier and similarity;
the near and story state, so later `newsbeam run`s into DIR compare against them; a manifest.

The dataset is read in chunks (a row group of a file each). A chunk is read twice: once to
describe its articles for the tiers (keys, signature, story features: no text leaves the
chunk), once to write it out with the tiers' decisions. So memory holds small records, never
the dataset's text.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from newsbeam.pipeline.config import UsageError
from newsbeam.pipeline.job import committed_manifest, dataset_spill
from newsbeam.pipeline.lock import writer_lock
from newsbeam.pipeline.manifest import beam_metrics
from newsbeam.pipeline.compact_cmd import finish_compactions, refuse_compacted_rerun
from newsbeam.pipeline.runner import is_local, make_runner, steady_heap
from newsbeam.transforms.commits import (CommitRun, RunFiles, committed_runs, launched_attempts, new_attempt, sweep,
                                         write_manifest)
from newsbeam.transforms.dedup import Decisions, decided_rows, describe, near_blocks, story_blocks
from newsbeam.transforms.metrics import count
from newsbeam.transforms.stored import KEYS, KeepKeys, key_rows, keyed_by_shard
from newsbeam.transforms.write import WriteState, parquet_reader, spill, write_chunk

DESCRIBE_COLUMNS = ["article_id", "url", "canonical_url", "feed_url", "content_hash", "text", "title", "published_at",
                    "fetched_at", "paywalled", "extraction_method", "word_count"]


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


def chunks(files: list[str]) -> list[tuple[int, str, int]]:
    """(chunk number, file, row group) for every row group of the files."""
    found = []
    for path in files:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            groups = pq.ParquetFile(f).metadata.num_row_groups
        found.extend((path, group) for group in range(groups))
    return [(i, path, group) for i, (path, group) in enumerate(found)]


def read_chunk(path: str, group: int, columns: list[str] | None = None) -> list[dict]:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return parquet_reader(f).read_row_group(group, columns=columns, use_threads=False).to_pylist()


def as_document(row: dict) -> dict:
    """A stored article row as the Dedup stage's document: its one feed entry is the row's own link."""
    return {**row, "entries": [{"link": row["url"], "feed_url": row.get("feed_url")}]}


def ref(chunk: int, row: int) -> str:
    """A document's ref for the tiers: its chunk and row (article ids repeat across merged datasets)."""
    return f"{chunk}#{row}"


def by_chunk(decisions: list[tuple]) -> list[tuple[int, list[tuple[int, tuple]]]]:
    """A batch of (ref, decision) -> (chunk, [(row, decision)]) batches: decisions go to the chunk that writes the
    document."""
    found: dict[int, list] = {}
    for ref_, decision in decisions:
        chunk, row = ref_.split("#")
        found.setdefault(int(chunk), []).append((int(row), decision))
    return sorted(found.items())


class _DescribeChunkFn(beam.DoFn):
    """A chunk -> its articles' light records (one list), and its near and story records batched by time block
    and spilled to files under `spill_dir` ((block, path) elements)."""

    def __init__(self, spill_dir: str):
        self._spill_dir = spill_dir

    def process(self, chunk):
        number, path, group = chunk
        near, story = [], []
        rows = read_chunk(path, group, DESCRIBE_COLUMNS)
        count("articles_read", len(rows))
        described = describe([(ref(number, i), as_document(row)) for i, row in enumerate(rows)])
        yield beam.pvalue.TaggedOutput("light", [records["light"] for records in described])
        for records in described:
            if records["near"] is not None:
                near.append(records["near"])
            story.append(records["story"])
        for tier, batches in (("near", near_blocks(near)), ("story", story_blocks(story))):
            for block, part in batches:
                path = FileSystems.join(self._spill_dir, f"{tier}-{block}-{number}.pickle")
                yield beam.pvalue.TaggedOutput(tier, (block, spill(path, part)))


class _WriteChunkFn(beam.DoFn):
    """(chunk number, {'chunk': [(file, row group)], 'decisions': [[(row, decision)], ...]}) -> the chunk's files written."""

    def __init__(self, run: RunFiles):
        self._run = run

    def process(self, keyed):
        number, parts = keyed
        (path, group), = parts["chunk"]
        decisions = dict(chain.from_iterable(parts["decisions"]))
        articles, duplicates = [], []
        for i, row in enumerate(read_chunk(path, group)):
            article, copies = decided_rows(as_document(row), decisions.get(i))
            if article is not None:
                articles.append(article)
            duplicates.extend(copies)
        yield from write_chunk(self._run, "articles", number, articles)
        yield from write_chunk(self._run, "duplicates", number, duplicates)
        index = [key for table, rows in (("articles", articles), ("duplicates", duplicates)) for row in rows
                 for key in key_rows(table, row)]
        for batch in keyed_by_shard(index):  # DIR's key index, for the runs into DIR after this
            yield beam.pvalue.TaggedOutput(KEYS, batch)


def run_dedup(dataset: str, out: str, run_id: str, beam_args: list[str] | None = None) -> dict:
    """Run the tiers over the dataset's articles and write DIR like a run (committed the same way); returns the manifest."""
    files = article_files(dataset)
    if Path(out).resolve() == Path(dataset).resolve() or Path(out).resolve() == Path(dataset).resolve().parent:
        raise UsageError("--out must be another folder than DATASET (the input is read while the output is written)")
    with writer_lock(out, run_id, "dedup"):
        return _dedup_locked(dataset, files, out, run_id, beam_args)


def _dedup_locked(dataset: str, files: list[str], out: str, run_id: str, beam_args: list[str] | None) -> dict:
    options = PipelineOptions(beam_args or [])
    if is_local(options):
        steady_heap()
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    finish_compactions(out)
    refuse_compacted_rerun(out, run_id)
    found = chunks(files)
    run = RunFiles(out, run_id, new_attempt())
    with dataset_spill(out, run_id) as spill_dir:
        result = _run_tiers(options, found, run, spill_dir, {
            "kind": "dedup", "command": "dedup", "started_at": started_at.isoformat(),
            "dataset": str(Path(dataset).resolve()), "input_files": len(files), "input_chunks": len(found), "out": out})
    return _finished(out, run_id, run, result, t0)


def _run_tiers(options, found, run: RunFiles, spill_dir: str, payload: dict):
    """The dedup pipeline over the dataset's chunks, run to its commit; Beam's result."""
    p = beam.Pipeline(runner=make_runner(options), options=options)
    specs = p | "Chunks" >> beam.Create(found)
    described = specs | "Describe" >> beam.ParDo(_DescribeChunkFn(spill_dir)).with_outputs("light", "near", "story")
    decided = {"light": described.light, "near": described.near, "story": described.story} | "Tiers" >> Decisions()
    chunk_decisions = decided["decisions"] | "ByChunk" >> beam.FlatMap(by_chunk)
    keyed_specs = specs | "KeyChunks" >> beam.Map(lambda c: (c[0], (c[1], c[2])))
    chunks_written = ({"chunk": keyed_specs, "decisions": chunk_decisions} | "WithDecisions" >> beam.CoGroupByKey()
                      | "WriteChunks" >> beam.ParDo(_WriteChunkFn(run)).with_outputs(KEYS, main="files"))
    written = [
        chunks_written.files,
        {"keys": chunks_written[KEYS]} | "KeepKeys" >> KeepKeys(run),
        decided["near_state"] | "KeepNearState" >> WriteState(run, "near"),
        decided["story_state"] | "KeepStoryState" >> WriteState(run, "story"),
    ]
    {"files": written | "AllFiles" >> beam.Flatten()} | "Commit" >> CommitRun(run, payload)
    result = p.run()
    result.wait_until_finish()
    return result


def _finished(out: str, run_id: str, run: RunFiles, result, t0: float) -> dict:
    """The committed manifest with Beam's counters and the run's totals added; what no commit names swept."""
    manifest = committed_manifest(out, run_id, run.attempt)
    counts, timings = beam_metrics(result)
    rows = {name: info["rows"] for name, info in manifest["tables"].items()}
    read = counts.get("articles_read", 0)
    manifest.update({
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "counts": counts,
        "articles": {"read": read, "kept": rows.get("articles", 0), "duplicates": rows.get("duplicates", 0),
                     "balanced": read == rows.get("articles", 0) + rows.get("duplicates", 0)},
        "timings": {"total_seconds": round(time.perf_counter() - t0, 3), "stages": timings},
    })
    manifest["path"] = write_manifest(out, run_id, manifest)
    sweep(out, committed_runs(out), launched_attempts(out))
    by_tier = ", ".join(f"{tier} {counts.get(f'duplicates_{tier}', 0)}" for tier in ("url", "exact", "near"))
    manifest["summary"] = (f"dedup {run_id} complete in {manifest['timings']['total_seconds']:.1f} s: {read} articles read -> "
                           f"{rows.get('articles', 0)} kept, {rows.get('duplicates', 0)} duplicates ({by_tier})")
    return manifest
