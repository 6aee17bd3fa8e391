"""Compaction: what many runs wrote into a dataset, merged into a few files, rows unchanged.

A dataset that takes a run an hour gathers about 8,760 small files a year in each table and
state folder, and a manifest per run. `plan` picks the committed runs to merge (all but the most
recent) and groups their files: a table's by partition, a state folder's by chunk (a key shard, a
time block). `merge` turns one group into the rows of its new files:

- tables (articles, duplicates, errors): every row, as it was (its run_id too);
- _state/keys: one row per (kind, key), the newest run's, sorted by key, in row groups of
  KEY_ROW_GROUP (what a lookup reads); runs from before the index get theirs from their tables;
- _state/near, _state/story: the rows still within their lookback (older ones no run reads again);
- _state/feeds: each feed's newest row (what the next run and `newsbeam feeds` read);
- _state/chrome: one row per (source, line key) with the docs summed (what chrome_from_rows adds up).

pipeline/compact_cmd.py writes the new files, reads them back, commits them in one manifest that
replaces the merged runs, and only then moves the tables' partitions into place and lets the old
files go.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from newsbeam.schemas import SCHEMA_VERSION, STATE, TABLES
from newsbeam.transforms.commits import Commit, chunk_of, committed_files, parquet_rows, relative
from newsbeam.transforms.dedup import NEAR_LOOKBACK
from newsbeam.transforms.stored import KEY_ROW_GROUP, KEY_SHARDS, is_indexed, legacy_keys, shard_of
from newsbeam.transforms.stories import MAX_STORY_GAP
from newsbeam.transforms.write import read_columns

ROWS_PER_FILE = 1_000_000  # a compacted table file holds at most this many rows
KEY_TIER = 8  # a key shard's biggest file is rewritten once the others hold an eighth of its rows
LOOKBACK = {"near": NEAR_LOOKBACK, "story": MAX_STORY_GAP}


@dataclass
class Group:
    """The files of the merged runs that become one group of new files: a table partition, or a state chunk."""

    folder: str  # "articles", "_state/keys", ...
    place: str  # a table's partition folder (relative to the dataset), or a state file's chunk number as text
    inputs: list[str] = field(default_factory=list)  # paths to merge, newest commit first
    carried: list[str] = field(default_factory=list)  # paths kept as they are, named again by the new manifest


@dataclass
class Plan:
    chosen: dict[str, Commit]  # the runs merged, by run id
    groups: list[Group]
    legacy: dict[str, Commit]  # chosen runs with no key files: their keys come from their tables

    @property
    def worth_it(self) -> bool:
        """Whether compaction changes anything: more than one run to merge, or a group of several files."""
        return len(self.chosen) > 1 or any(len(g.inputs) > 1 for g in self.groups) or bool(self.legacy)


def plan(out: str, commits: dict[str, Commit], now: datetime, keep_recent: timedelta) -> Plan:
    """The runs committed before `now - keep_recent` (with their files known), and their files grouped."""
    chosen = {r: c for r, c in commits.items() if c.committed_at < now - keep_recent}
    groups: dict[tuple[str, str], Group] = {}
    for folder in [*TABLES, *(f"_state/{name}" for name in STATE)]:
        for path in committed_files(out, folder, chosen):
            if folder in TABLES:
                place = posixpath.dirname(relative(out, path))
            elif folder in ("_state/feeds", "_state/chrome"):
                place = "0"
            else:
                place = str(chunk_of(path))
            groups.setdefault((folder, place), Group(folder, place)).inputs.append(path)
    legacy = {r: c for r, c in chosen.items() if not is_indexed(c)}
    if legacy:  # their keys, from their tables, fall in every shard
        for shard in range(KEY_SHARDS):
            groups.setdefault(("_state/keys", str(shard)), Group("_state/keys", str(shard)))
    for group in groups.values():
        _carry(group, bool(legacy))
    return Plan(chosen, sorted(groups.values(), key=lambda g: (g.folder, g.place)), legacy)


def _carry(group: Group, legacy: bool) -> None:
    """Leave as they are the files merging would only copy: a group's one file (near and story state excepted: their
    old rows go), and a key shard's big file when the rest is small beside it (size tiers: compacting daily then
    rewrites about a KEY_TIER-th of the index, not all of it, and a lookup opens two files a shard)."""
    name = group.folder.split("/")[-1]
    if name in LOOKBACK or (name == "keys" and legacy):
        return
    if len(group.inputs) == 1:
        group.carried, group.inputs = group.inputs, []
    elif name == "keys" and len(group.inputs) > 2:
        rows = {path: rows_in(path) for path in group.inputs}
        biggest = max(group.inputs, key=rows.get)
        if rows[biggest] >= KEY_TIER * (sum(rows.values()) - rows[biggest]):
            group.carried, group.inputs = [biggest], [p for p in group.inputs if p != biggest]


class CompactionError(Exception):
    """A file compaction must merge cannot be read: nothing was committed, the dataset is as it was."""


def _unreadable(path: str, exc: Exception) -> CompactionError:
    return CompactionError(f"{path} cannot be read ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}); "
                           "nothing was compacted: restore the file, or move its run's manifest and files out of the dataset")


def _read(path: str, name: str) -> pa.Table:
    schema = TABLES[name] if name in TABLES else STATE[name]
    try:
        return read_columns(path, schema.names, None, schema)
    except Exception as exc:  # any reader error: compaction must not drop what it cannot see
        raise _unreadable(path, exc) from None


def rows_in(path: str) -> int:
    """A file's row count from its footer; CompactionError naming it when it cannot be read."""
    try:
        return parquet_rows(path)
    except Exception as exc:
        raise _unreadable(path, exc) from None


def merge(group: Group, now: datetime, run_id: str, legacy_rows: pa.Table | None = None) -> list[tuple[pa.Table, int | None]]:
    """A group's merged rows as (table, row group size) per new file. `run_id`: the compaction's, for rows it makes
    anew (chrome sums). `legacy_rows`: key rows of pre-index runs that fall in this shard."""
    name = group.folder.split("/")[-1]
    tables = [_read(path, name) for path in group.inputs]
    if legacy_rows is not None and len(legacy_rows):
        tables.append(legacy_rows)
    if not tables:
        return []
    merged = pa.concat_tables(tables)
    if group.folder in TABLES:
        return [(merged.slice(start, ROWS_PER_FILE), None) for start in range(0, len(merged), ROWS_PER_FILE)]
    if name == "keys":
        merged = _first_per(merged.append_column("_order", pa.array(range(len(merged)), pa.int64())), ["kind", "key"])
        merged = merged.sort_by([("key", "ascending"), ("kind", "ascending")]).drop_columns(["_order"])
        return [(merged, KEY_ROW_GROUP)]
    if name in LOOKBACK:
        merged = merged.filter(pc.greater_equal(merged.column("published_at"),
                                                pa.scalar(now - LOOKBACK[name], merged.schema.field("published_at").type)))
    elif name == "feeds":
        merged = _first_per(merged.append_column("_order", pa.array(range(len(merged)), pa.int64())), ["feed_url"])
        merged = merged.sort_by([("feed_url", "ascending")]).drop_columns(["_order"])
    elif name == "chrome":
        summed = merged.group_by(["source", "line_key"], use_threads=False).aggregate([("docs", "sum")])
        merged = pa.table({"source": summed.column("source"), "line_key": summed.column("line_key"),
                           "docs": pc.cast(summed.column("docs_sum"), pa.int32()),
                           "run_id": pa.array([run_id] * len(summed), pa.string()),
                           "schema_version": pa.array([merged.column("schema_version")[0].as_py()] * len(summed), pa.int16())},
                          schema=STATE["chrome"]).sort_by([("source", "ascending"), ("line_key", "ascending")])
    return [(merged, None)] if len(merged) else []


def _first_per(table: pa.Table, keys: list[str]) -> pa.Table:
    """The first row (lowest _order: the newest commit's) of each distinct `keys`."""
    firsts = table.group_by(keys, use_threads=False).aggregate([("_order", "min")]).column("_order_min")
    return table.take(firsts)


def legacy_key_tables(out: str, legacy: dict[str, Commit], run_id: str) -> dict[str, pa.Table]:
    """The key-index rows of runs from before the index, from their tables (stored.legacy_keys), by shard (as text).
    A file that cannot be read raises: compaction must not drop what it cannot see."""
    by_shard: dict[str, list[dict]] = {}
    for (kind, key), article_id in sorted(legacy_keys(out, legacy, None).items()):
        by_shard.setdefault(str(shard_of(key)), []).append(
            {"key": key, "kind": kind, "article_id": article_id, "run_id": run_id, "schema_version": SCHEMA_VERSION})
    return {shard: pa.Table.from_pylist(rows, schema=STATE["keys"]) for shard, rows in by_shard.items()}
