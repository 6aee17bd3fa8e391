"""What earlier runs stored, read by the workers and only as far as this run's keys and time blocks need.

A run into a dataset with years of history must cost what its own links cost, so nothing of the
history passes through the launcher or the job graph. The graph carries a `StoredView` (the
dataset, the run id, the time the run started); the workers read:

- the key index, DIR/_state/keys: every committed run files, per article its link keys (url and
  canonical URL) and content hash, per duplicate its link keys, each with the article_id it stands
  for, in KEY_SHARDS files by a hash of the key (the shard is the file's chunk number), sorted by
  key. `LookupKeys` groups a run's keys by shard, and reads of each shard's files only the row
  groups whose min/max statistics can hold one of them: a keyed join whose cost follows the run's
  keys, not the index's size. What it finds (this run's hits, at most one per key) is what the
  stages then take as a dict side input.
- near and story state, DIR/_state/near and _state/story: a file per run and time block (the file's
  chunk number is the block). `ReadStoredBlocks` reads only the blocks the run's documents can meet,
  and passes on only what a "pick" (transforms/dedup.py) keeps of them: the near rows that share an
  LSH band key with one of the run's documents, the story rows that can be a candidate of one (per
  document and name, at most the story tier's posting limit) with the IDF counts of the rest. The
  picks are exact: the tiers decide as they would over every row of the blocks.

Which runs count is read by the workers from the manifests (runs/*.json): those committed before
the run started, less the run's own earlier attempt (a rerun replaces it). A run committed before
the index existed has no key files: its articles' and duplicates' key columns are read instead
(once per worker), as every run did before.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from newsbeam.schemas import STATE
from newsbeam.transforms.commits import Commit, chunk_of, committed_files, committed_runs
from newsbeam.transforms.errors import unreadable_rows
from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import canonical_url
from newsbeam.transforms.write import WriteState, parquet_reader, read_columns, read_committed, state_columns

KEYS = "keys"
KEY_SHARDS = 16  # files per run of the index; a lookup reads the files of the shards its keys fall in
KEY_ROW_GROUP = 8_192  # rows per row group of a key file: what a lookup of one key reads at most per file
UNREADABLE = "unreadable"  # (path, reason) of committed files a reader could not read


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % KEY_SHARDS


# ---------------------------------------------------------------- writing the index

def key_rows(table: str, row: dict) -> list[dict]:
    """The index rows for one written articles or duplicates row: its link keys and (an article's) content hash."""
    stands_for = row["article_id"] if table == "articles" else row["duplicate_of"]
    keys = {canonical_url(url) for url in (row.get("url"), row.get("canonical_url")) if url}
    found = [{"key": key, "kind": "link", "article_id": stands_for} for key in sorted(keys) if key]
    if table == "articles" and row.get("content_hash"):
        found.append({"key": row["content_hash"], "kind": "text", "article_id": stands_for})
    return found


def keyed_by_shard(rows: list[dict]) -> list[tuple[int, list[dict]]]:
    """Index rows -> (shard, rows) batches; within a batch, one row per (kind, key), an article's before a duplicate's."""
    shards: dict[int, dict] = {}
    for row in rows:
        shards.setdefault(shard_of(row["key"]), {}).setdefault((row["kind"], row["key"]), row)
    return [(shard, list(found.values())) for shard, found in sorted(shards.items())]


class KeepKeys(beam.PTransform):
    """{'articles': rows, 'duplicates': rows} (or batches of index rows, 'keys') -> the run's key files, as file infos."""

    def __init__(self, run):
        super().__init__()
        self._run = run

    def expand(self, tables: dict):
        parts = [tables[name] | f"{name.title()}Keys" >> beam.FlatMap(lambda row, t=name: keyed_by_shard(key_rows(t, row)))
                 for name in ("articles", "duplicates") if name in tables]
        if "keys" in tables:
            parts.append(tables["keys"])
        return (parts | "AllKeys" >> beam.Flatten()
                | "KeepKeyState" >> WriteState(self._run, KEYS, sort_by=("key", "kind"), row_group_size=KEY_ROW_GROUP))


# ---------------------------------------------------------------- which runs count

@dataclass(frozen=True)
class StoredView:
    """Where a run's earlier state is and which of it counts: committed runs of `out` before `before`, not `run_id`."""

    out: str
    run_id: str
    before: datetime

    def commits(self) -> dict[str, Commit]:
        return {r: c for r, c in committed_runs(self.out).items() if r != self.run_id and c.committed_at < self.before}


def is_indexed(commit: Commit) -> bool:
    """Whether a run's manifest names key files, or it stored no rows to key (a run before the index did not)."""
    if commit.files is None:
        return False
    return any(name.startswith(f"_state/{KEYS}/") for name in commit.files) or not any(
        name.startswith(("articles/", "duplicates/")) for name in commit.files)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


# ---------------------------------------------------------------- reading the index

def matching_row_groups(metadata, column: int, wanted: list[str]) -> list[int]:
    """The row groups whose min/max statistics of `column` can hold one of the sorted `wanted` values."""
    groups = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            groups.append(group)
            continue
        i = bisect_left(wanted, stats.min)
        if i < len(wanted) and wanted[i] <= stats.max:
            groups.append(group)
    return groups


def lookup_file(path: str, wanted: set[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(kind, key, article_id) of the index rows in one key file that `wanted` asks for; only matching row groups read."""
    keys = sorted({key for _, key in wanted})
    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = parquet_reader(f)
        groups = matching_row_groups(data.metadata, data.schema_arrow.get_field_index("key"), keys)
        if not groups:
            return []
        table = data.read_row_groups(groups, columns=["kind", "key", "article_id"], use_threads=False)
    table = table.filter(pc.is_in(table.column("key"), value_set=pa.array(keys, pa.string())))
    return [(kind, key, article_id) for kind, key, article_id in
            zip(*(table.column(c).to_pylist() for c in ("kind", "key", "article_id"))) if (kind, key) in wanted]


def stored_keys(articles, duplicates) -> dict[tuple[str, str], str]:
    """(kind, key) -> article_id from rows of the articles and duplicates tables (dicts with their key columns):
    the index of rows never indexed. An article's keys win over a duplicate's."""
    found: dict[tuple[str, str], str] = {}
    for table, rows in (("articles", articles), ("duplicates", duplicates)):
        for row in rows:
            for index_row in key_rows(table, row):
                found.setdefault((index_row["kind"], index_row["key"]), index_row["article_id"])
    return found


def legacy_keys(out: str, commits: dict[str, Commit], unreadable: list) -> dict[tuple[str, str], str]:
    """stored_keys of the runs committed before the index, read from their tables' key columns."""
    return stored_keys(
        read_committed(out, "articles", ["article_id", "url", "canonical_url", "content_hash"], commits, unreadable=unreadable),
        read_committed(out, "duplicates", ["url", "canonical_url", "duplicate_of"], commits, unreadable=unreadable))


class LookupKeys(beam.PTransform):
    """(kind, key) pairs -> {'found': ((kind, key), article_id) for the keys earlier runs stored, 'unreadable':
    (path, reason) of files that could not be read}. Kind is 'link' (a canonical URL) or 'text' (a content hash)."""

    def __init__(self, view: StoredView):
        super().__init__()
        self._view = view

    def expand(self, keys):
        looked = (
            keys
            | "ByShard" >> beam.Map(lambda kind_key: (shard_of(kind_key[1]), kind_key))
            | "GroupByShard" >> beam.GroupByKey()
            | "ReadShard" >> beam.ParDo(_LookupFn(self._view)).with_outputs(UNREADABLE, main="found")
        )
        # Gathered into one element a window, then spread again: a side input of what the shards found then comes
        # whole from one bundle. Beam 2.77's local streaming runner let a main input read a window's view as soon as
        # any bundle of it was in (a stream missed stored texts of shards still being read).
        found = (looked.found | "AllFound" >> beam.combiners.ToList().without_defaults()
                 | "EachFound" >> beam.FlatMap(lambda found: found))
        return {"found": found, UNREADABLE: looked[UNREADABLE]}


class _LookupFn(beam.DoFn):
    def __init__(self, view: StoredView):
        self._view = view

    def setup(self):
        self._commits = None
        self._legacy = None

    def _state(self):
        if self._commits is None:
            commits = self._view.commits()
            self._commits = {r: c for r, c in commits.items() if is_indexed(c)}
            self._legacy_commits = {r: c for r, c in commits.items() if not is_indexed(c)}
        return self._commits

    def process(self, keyed):
        shard, kind_keys = keyed
        wanted = set(kind_keys)
        commits, unreadable, found = self._state(), [], {}
        for path in committed_files(self._view.out, f"_state/{KEYS}", commits):  # newest commit first
            if chunk_of(path) != shard:
                continue
            try:
                rows = lookup_file(path, wanted - found.keys())
            except Exception as exc:
                unreadable.append((path, _reason(exc)))
                continue
            for kind, key, article_id in rows:
                found.setdefault((kind, key), article_id)
            if len(found) == len(wanted):
                break
        if self._legacy_commits:
            if self._legacy is None:
                self._legacy_unreadable: list = []
                self._legacy = legacy_keys(self._view.out, self._legacy_commits, self._legacy_unreadable)
                unreadable.extend(self._legacy_unreadable)
            for kind_key in wanted - found.keys():
                if kind_key in self._legacy:
                    found[kind_key] = self._legacy[kind_key]
        count("stored_keys_found", len(found))
        yield from found.items()
        for bad in unreadable:
            yield beam.pvalue.TaggedOutput(UNREADABLE, bad)


# ---------------------------------------------------------------- reading near and story state

class ReadStoredBlocks(beam.PTransform):
    """(block, query) pairs -> {'rows': what `pick` keeps of the stored state of `name` around each block,
    'unreadable': (path, reason)}.

    A block's queries (what the run's documents there ask for: band keys, names) are grouped, the
    committed state files of the chunks `pick.chunks(block)` are read as Arrow tables (rows published
    since `lookback` before the run started), and `pick(block, tables, queries)` returns what goes on:
    the rows that can matter to this run's documents, not the whole window of history.
    """

    def __init__(self, view: StoredView, name: str, lookback: timedelta, pick):
        super().__init__()
        self._view, self._name, self._lookback, self._pick = view, name, lookback, pick

    def expand(self, queries):
        return (
            queries
            | "GroupByBlock" >> beam.GroupByKey()
            | "ReadBlock" >> beam.ParDo(_ReadBlockFn(self._view, self._name, self._lookback, self._pick)).with_outputs(
                UNREADABLE, main="rows")
        )


class _ReadBlockFn(beam.DoFn):
    def __init__(self, view: StoredView, name: str, lookback: timedelta, pick):
        self._view, self._name, self._lookback, self._pick = view, name, lookback, pick

    def setup(self):
        self._files = None

    def process(self, grouped):
        block, queries = grouped
        if self._files is None:  # the committed files of every block, listed once per worker
            self._files = {}
            for path in committed_files(self._view.out, f"_state/{self._name}", self._view.commits()):
                self._files.setdefault(chunk_of(path), []).append(path)
        since = self._view.before - self._lookback
        tables = {}
        for chunk in self._pick.chunks(block):
            read = []
            for path in self._files.get(chunk, ()):
                try:
                    read.append(read_columns(path, state_columns(self._name), since, STATE[self._name]))
                except Exception as exc:
                    yield beam.pvalue.TaggedOutput(UNREADABLE, (path, _reason(exc)))
            if read:
                tables[chunk] = pa.concat_tables(read)
                count(f"stored_{self._name}_read", len(tables[chunk]))
        kept = self._pick(block, tables, list(queries))
        count(f"stored_{self._name}_records", sum(1 for item in kept if item[0] == "row"))
        yield from kept


def unreadable_errors(parts) -> beam.PCollection:
    """The (path, reason) outputs of the readers above -> one error row per file (a file may be met by several)."""
    return (parts | "AllUnreadable" >> beam.Flatten() | "OncePerFile" >> beam.Distinct()
            | "UnreadableRows" >> beam.FlatMap(_unreadable_row))


def _unreadable_row(bad: tuple[str, str]) -> list[dict]:
    count("stored_files_unreadable")
    return unreadable_rows([bad])
