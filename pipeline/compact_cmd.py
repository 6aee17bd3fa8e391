"""`newsbeam compact DIR`: merge the files of a dataset's earlier runs (transforms/compact.py), crash-safe.

Under the dataset's lock, in this order:

1. a journal, DIR/_compact/ID/plan.json, names the compaction and every file it merges;
2. the new state files are written in place (uncommitted, so no reader counts them); each table
   partition's new content is built beside the dataset, in DIR/_compact/ID/TABLE/PARTITION: the merged
   files, and hard links to the partition's files that stay; every file is read back (footer, rows);
3. one manifest, runs/ID.json, commits the new files and names the runs they replace: from here on,
   readers that go through the manifests (every newsbeam run) see the new files and not the old;
4. each partition is swapped with its new content in one rename (Linux renameat2 RENAME_EXCHANGE), so a
   reader listing the folder (pandas, duckdb, polars) sees either all old files or all new ones, which
   hold the same rows; the replaced runs' manifests move to runs/_compacted/; the old files go.

A crash before 3 leaves the dataset as it was (the next command under the lock removes what was
started); after 3, the next command (run, dedup, stream or compact) finishes steps 4 on. Rerunning
compact changes nothing more once it is done. On an object store (gs://) there is no atomic swap:
each merged file is copied into its partition and the old files are then deleted, so a reader that
lists a partition between the two sees its rows twice; compact when nothing reads the tables, or
read the files the manifests name.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from datetime import datetime, timedelta, timezone

from apache_beam.io.filesystems import FileSystems

from newsbeam.pipeline.config import UsageError
from newsbeam.pipeline.lock import writer_lock
from newsbeam.schemas import TABLES
from newsbeam.transforms.commits import (RunFiles, commit_of, committed_runs, launched_attempts, manifest_path,
                                         new_attempt, owner_of, read_json, relative, retired_path,
                                         runs_dir, sweep, tables_of, write_json, write_manifest)
from newsbeam.transforms.compact import legacy_key_tables, merge, plan, rows_in
from newsbeam.transforms.write import parquet_bytes, write_file

KEEP_RECENT = timedelta(hours=24)  # runs committed this recently are left alone, so they can still be rerun
AUTO_COMPACT = 48  # a local run compacts as it ends once this many runs are older than KEEP_RECENT
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def compact_dir(out: str) -> str:
    return FileSystems.join(out, "_compact")


def compact(out: str, keep_recent: timedelta = KEEP_RECENT, now: datetime | None = None, stop_after: str | None = None) -> dict:
    """Compact the dataset at `out`; a summary. `stop_after` ("journal", "files", "commit", "swap") stops there, as a
    crash would (for the tests of each boundary)."""
    if not FileSystems.match([FileSystems.join(runs_dir(out), "*.json")])[0].metadata_list:  # an object store has no folders
        raise UsageError(f"{out} is not a newsbeam dataset (it has no runs/ folder of manifests)")
    with writer_lock(out, "compact", "compact"):
        return compact_locked(out, keep_recent, now, stop_after)


def compact_locked(out: str, keep_recent: timedelta = KEEP_RECENT, now: datetime | None = None,
                   stop_after: str | None = None, at_least: int = 2, swept: bool = False) -> dict:
    """compact(), the caller holding the dataset's lock; only when `at_least` runs are old enough to merge. `swept`:
    the caller has just finished interrupted compactions and swept (a run, as it ends)."""
    launched = launched_attempts(out)
    if not swept:
        finish_compactions(out)
        sweep(out, committed_runs(out), launched)  # what a crashed run or compaction left uncommitted
    if launched:
        raise UsageError(f"{out} has a job handed to a remote runner that may still be writing into it; "
                         "compact once it has finished (or its launch record in runs/launched is gone)")
    now = now or datetime.now(timezone.utc)
    the_plan = plan(out, committed_runs(out), now, keep_recent)
    if not the_plan.worth_it or len(the_plan.chosen) < at_least:
        return {"compacted_runs": 0, "files_before": 0, "files_after": 0}
    try:
        return _compact(out, the_plan, now, stop_after)
    except Exception:  # before the commit: what was written goes; after it: the compaction is finished
        finish_compactions(out)
        sweep(out, committed_runs(out), launched_attempts(out))
        raise


def due(commits: dict, now: datetime, keep_recent: timedelta = KEEP_RECENT) -> bool:
    """Whether a local run should compact the dataset as it ends: AUTO_COMPACT runs are old enough to merge."""
    return sum(c.committed_at < now - keep_recent for c in commits.values()) >= AUTO_COMPACT


def _compact(out: str, the_plan, now: datetime, stop_after: str | None) -> dict:
    run_id, attempt = f"compact-{now:%Y%m%dT%H%M%S%fZ}", new_attempt()
    run, staging = RunFiles(out, run_id, attempt), FileSystems.join(compact_dir(out), run_id)
    journal = {"run_id": run_id, "attempt": attempt, "partitions": [],
               "inputs": sorted({path for group in the_plan.groups for path in group.inputs})}
    write_json(FileSystems.join(staging, "plan.json"), journal)
    if stop_after == "journal":
        return {}
    legacy = legacy_key_tables(out, the_plan.legacy, run_id) if the_plan.legacy else {}
    files, staged, carried = [], [], []
    for group in the_plan.groups:
        carried.extend({"table": group.folder, "path": path, "rows": rows_in(path)} for path in group.carried)
        if not group.inputs and not (group.folder == "_state/keys" and group.place in legacy):
            continue
        pieces = merge(group, now, run_id, legacy.get(group.place) if group.folder == "_state/keys" else None)
        if group.folder in TABLES:
            partition = FileSystems.join(out, group.place)
            stage = FileSystems.join(staging, group.place)
            for i, (table, row_group_size) in enumerate(pieces):
                name = run.path(partition, i).rsplit("/", 1)[-1]
                write_file(FileSystems.join(stage, name), parquet_bytes(table, row_group_size), len(table))
                files.append({"table": group.folder, "path": FileSystems.join(partition, name), "rows": len(table)})
                staged.append({"table": group.folder, "path": FileSystems.join(stage, name), "rows": len(table)})
            _link_the_rest(partition, stage, set(group.inputs))
            journal["partitions"].append({"partition": partition, "staging": stage})
            if sum(rows_in(path) for path in group.inputs) != sum(len(t) for t, _ in pieces):
                raise IOError(f"compacting {group.place} would change its row count; nothing was committed")
        else:
            for table, row_group_size in pieces:
                path = run.path(FileSystems.join(out, group.folder), int(group.place))
                write_file(path, parquet_bytes(table, row_group_size), len(table))
                files.append({"table": group.folder, "path": path, "rows": len(table)})
    write_json(FileSystems.join(staging, "plan.json"), journal)
    checked = tables_of(staged + carried + [f for f in files if f["table"] not in TABLES])  # every footer read back
    files += carried
    if stop_after == "files":
        return {}
    manifest = {
        "kind": "compact", "status": "complete", "attempt": attempt,
        # as new as the newest run it merges, no newer: runs after those still come first
        "committed_at": max(c.committed_at for c in the_plan.chosen.values()).isoformat(),
        "compacted_at": now.isoformat(),
        "replaces": [{"run_id": c.run_id, "attempt": c.attempt} for c in sorted(the_plan.chosen.values(), key=lambda c: c.run_id)],
        "tables": {name: {"rows": info["rows"], "files": len(info["files"])} for name, info in checked.items() if name in TABLES},
        "files": sorted(relative(out, f["path"]) for f in files),
    }
    write_manifest(out, run_id, manifest)
    if stop_after == "commit":
        return {}
    finish_compactions(out, stop_after=stop_after)
    return {"run_id": run_id, "compacted_runs": len(the_plan.chosen), "files_before": len(journal["inputs"]) + len(carried),
            "files_after": len(files), "carried": len(carried), "manifest": manifest_path(out, run_id)}


def _link_the_rest(partition: str, stage: str, inputs: set[str]) -> None:
    """Into a partition's new content, the files of the partition that stay (newer runs', others')."""
    if "://" in partition or not os.path.isdir(partition):
        return  # an object store has no swap: only the merged files are moved in (see the module's docstring)
    os.makedirs(stage, exist_ok=True)
    for name in sorted(os.listdir(partition)):
        path = os.path.join(partition, name)
        if path not in inputs and os.path.isfile(path):
            os.link(path, os.path.join(stage, name))


def finish_compactions(out: str, stop_after: str | None = None) -> None:
    """Finish a committed compaction that a crash interrupted, or remove one that did not commit. Called under the
    dataset's lock by every command that writes into it."""
    folder = compact_dir(out)
    for match in FileSystems.match([FileSystems.join(folder, "*", "plan.json")])[0].metadata_list:
        journal = read_json(match.path)
        run_id, attempt = journal["run_id"], journal["attempt"]
        path = manifest_path(out, run_id)
        commit = commit_of(read_json(path), run_id) if FileSystems.exists(path) else None
        if commit is not None and commit.attempt == attempt:
            for part in journal["partitions"]:
                _swap_in(part["staging"], part["partition"], run_id, set(journal["inputs"]))
                if stop_after == "swap":
                    return  # as a crash after the first partition's swap would
            _retire(out, commit.replaces)
            gone = [p for p in journal["inputs"] if FileSystems.exists(p)]
            if gone:
                FileSystems.delete(gone)
        _remove(FileSystems.join(folder, run_id))
    if "://" not in folder and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)  # no empty _compact/ left in a dataset once nothing is under way


def _swap_in(stage: str, partition: str, run_id: str, inputs: set[str]) -> None:
    """Put a partition's new content in place (once: a stage holding no file of `run_id` was swapped already)."""
    if "://" in stage:
        staged = [m.path for m in FileSystems.match([FileSystems.join(stage, "*")])[0].metadata_list]
        mine = [p for p in staged if _owned(p, run_id)]
        if mine:
            FileSystems.rename(mine, [FileSystems.join(partition, p.rsplit("/", 1)[-1]) for p in mine])
        old = [p for p in inputs if p.startswith(partition.rstrip("/") + "/") and FileSystems.exists(p)]
        if old:
            FileSystems.delete(old)
        return
    if not os.path.isdir(stage):
        return
    if any(_owned(name, run_id) for name in os.listdir(stage)):
        if os.path.isdir(partition):
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.renameat2(_AT_FDCWD, os.fsencode(stage), _AT_FDCWD, os.fsencode(partition), _RENAME_EXCHANGE) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"cannot swap {stage} with {partition}: {os.strerror(errno)}")
        else:
            os.rename(stage, partition)
            return
    shutil.rmtree(stage)  # the partition's old content, after the swap


def _owned(path: str, run_id: str) -> bool:
    owner = owner_of(path)
    return owner is not None and owner.run_id == run_id and not owner.temporary


def _retire(out: str, replaces) -> None:
    """Move the manifests of the runs a compaction replaced to runs/_compacted/ (rerunning them is refused)."""
    for run_id, attempt in sorted(replaces, key=lambda pair: pair[0]):
        path = manifest_path(out, run_id)
        if not FileSystems.exists(path):
            continue
        manifest = read_json(path)
        if manifest.get("attempt") != attempt:
            continue  # a newer run of this id (it cannot be: reruns of compacted runs are refused)
        write_json(retired_path(out, run_id), manifest)
        FileSystems.delete([path])


def _remove(folder: str) -> None:
    if "://" not in folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    found = [m.path for m in FileSystems.match([FileSystems.join(folder, "**")])[0].metadata_list]
    if found:
        FileSystems.delete(found)


def refuse_compacted_rerun(out: str, run_id: str, replaced: set | None = None) -> None:
    """UsageError when `run_id` names a run a compaction merged: its rows can no longer be told apart to replace.
    `replaced`: as committed_runs found it, when the caller has read the manifests already."""
    from newsbeam.transforms.commits import was_compacted

    if was_compacted(out, run_id, replaced):
        raise UsageError(f"run {run_id} of {out} was compacted (runs/_compacted/{run_id}.json): its rows are merged with "
                         "other runs' and can no longer be replaced; give this run another --run-id")
