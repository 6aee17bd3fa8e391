"""Write stage: Hive-partitioned Parquet files, written whole or not at all, and the readers of committed ones.

Each (table, date) partition is written by one worker as `part-RUN_ID-NNNNN.ATTEMPT.parquet`
(transforms/commits.py): first to a hidden temporary name in the same folder (readers skip
names starting with '.'), then renamed, then its footer read back and its row count checked.
The writers give out what they wrote (table, path, rows); the run's commit (CommitRun) names
those files in its manifest, and only then do they count. State for later runs is written
the same way under DIR/_state/NAME, and read back only from committed runs.
"""

from __future__ import annotations

import io
import pickle
import posixpath
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from itertools import chain, islice

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from newsbeam.schemas import PARTITION_COLUMN, SCHEMA_VERSION, STATE, TABLES
from newsbeam.transforms.commits import Commit, RunFiles, committed_files, parquet_rows
from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import partition_date, valid_values

ROWS_PER_FILE = 20_000
ROW_GROUP_ROWS = 4_096  # a table file is written a row group at a time: what a writer holds
SPILL_BATCH = 256  # rows or documents a batch spilled to a file holds (`Batches`)


def partition_of(table: str, row: dict) -> str:
    """Articles are filed by UTC publication date (fetch date if unknown); the others by when they were seen."""
    if table == "articles":
        return partition_date(row["published_at"], row["fetched_at"])
    return partition_date(None, row["fetched_at" if table == "duplicates" else "failed_at"])


def to_arrow(table: str, rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table of the table's schema; text that is not valid Unicode (lone surrogates) gets U+FFFD,
    a last line of defence: the stages make their text valid (normalise.valid_text) long before."""
    schema = TABLES[table] if table in TABLES else STATE[table]
    columns = [{f: row.get(f) for f in schema.names} for row in rows]
    try:
        return pa.Table.from_pylist(columns, schema=schema)
    except UnicodeEncodeError:  # rare: only then is every value looked at
        return pa.Table.from_pylist([{f: valid_values(v) for f, v in row.items()} for row in columns], schema=schema)


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=row_group_size)
    return sink.getvalue()


def write_file(path: str, data, expected_rows: int | None = None) -> int:
    """Write `data` to `path` via a hidden temporary file and a rename; check the footer after; the rows written.
    `data`: the file's bytes (holding `expected_rows`), or a function that writes to the open file and returns the
    rows it wrote."""
    folder, name = posixpath.split(path)
    tmp = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    written = expected_rows
    with FileSystems.create(tmp) as f:
        if callable(data):
            written = data(f)
        else:
            f.write(data)
    FileSystems.rename([tmp], [path])
    rows = parquet_rows(path)
    if rows != written:
        raise IOError(f"{path} has {rows} rows after writing, expected {written}")
    return rows


def table_dir(out: str, table: str) -> str:
    return FileSystems.join(out, table)


def read_committed(out: str, folder: str, columns: list[str], commits: dict[str, Commit], exclude=(), since=None,
                   schema: pa.Schema | None = None, newest_first_until: tuple[str, set] | None = None,
                   unreadable: list | None = None) -> list[dict]:
    """`columns` of the rows in the committed files under `out`/`folder`, runs in `exclude` left out.

    Read through Beam's filesystems, so any of them works (local, gs://, s3://, ...); only the
    columns asked for are read, and with `since` rows published before are dropped (row groups
    entirely older are skipped). With the schema given, columns added since a file was written read
    as nulls. With `newest_first_until=(column, values)`, files are read newest commit first and no
    further once every value has been seen in `column`. A file that cannot be read is skipped and
    (path, reason) appended to `unreadable`; without that list it raises IOError naming the file.
    """
    if newest_first_until:
        column, missing = newest_first_until[0], set(newest_first_until[1])
    rows: list[dict] = []
    for path in committed_files(out, folder, commits, exclude):
        try:
            table = read_columns(path, columns, since, schema)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            if unreadable is None:
                raise IOError(f"{path} cannot be read: {reason}") from None
            unreadable.append((path, reason))
            continue
        rows.extend(table.to_pylist())
        if newest_first_until:
            missing.difference_update(table.column(column).to_pylist())
            if not missing:
                break
    return rows


def parquet_reader(f) -> pq.ParquetFile:
    """A reader of the Python file `f` for reads on the caller's thread (pass use_threads=False to them too).

    pyarrow pre-buffering or decoding on its own threads hands them the Python buffers read, and they
    release some after the read returned; one released at interpreter exit aborts the process
    ("terminate called without an active exception", exit 134; apache/arrow#33975).
    """
    return pq.ParquetFile(f, pre_buffer=False)


def read_columns(path: str, columns: list[str], since, schema) -> pa.Table:
    import pyarrow.dataset as ds

    with FileSystems.open(path, compression_type="uncompressed") as f:
        data = parquet_reader(f)
        present = set(data.schema_arrow.names)
        wanted = [c for c in columns if c in present]
        needed = wanted + (["published_at"] if since is not None and "published_at" in present and "published_at" not in wanted else [])
        table = data.read(columns=needed, use_threads=False)
    if since is not None and "published_at" in present:
        table = ds.dataset(table).to_table(columns=wanted, filter=ds.field("published_at") >= since)
    for name in columns:
        if name not in present:  # written before the column existed
            kind = schema.field(name).type if schema is not None else pa.null()
            table = table.append_column(pa.field(name, kind), pa.nulls(len(table), type=kind))
    return table.select(columns)


class WriteTables(beam.PTransform):
    """{'articles': rows, 'duplicates': rows, 'errors': rows} -> the files written, as (table, path, rows) infos.

    Rows are grouped by partition in batches (`Batches`), spilled to files under `spill` when given
    (a local run: its runner would hold every row of the run in memory until the grouping is done),
    and each partition's file is written a row group at a time.

    With the run's `per_window` (the streaming job), each window of the input is written as a run of
    its own, and the file infos come out in their windows. Nothing counts until the run commits them.
    """

    def __init__(self, run: RunFiles, spill: str | None = None):
        super().__init__()
        self._run, self._spill = run, spill

    def expand(self, tables: dict):
        written = []
        for table, rows in tables.items():
            written.append(
                rows
                | f"Stamp{table.title()}" >> beam.ParDo(_StampFn(self._run, table))
                | f"Partition{table.title()}" >> beam.Map(lambda row, t=table: (partition_of(t, row), row))
                | f"Batch{table.title()}" >> Batches(self._spill)
                | f"Group{table.title()}" >> beam.GroupByKey()
                | f"Write{table.title()}" >> beam.ParDo(_WritePartitionFn(self._run, table))
            )
        return written | "AllFiles" >> beam.Flatten()


def _stamp(row: dict, run_id: str, table: str) -> dict:
    row = {**row, "run_id": run_id, "schema_version": SCHEMA_VERSION}
    if table == "errors" and row.get("failed_at") is None:
        row["failed_at"] = datetime.now(timezone.utc)
    return row


class _StampFn(beam.DoFn):
    def __init__(self, run: RunFiles, table: str):
        self._run, self._table = run, table

    def process(self, row, window=beam.DoFn.WindowParam):
        yield _stamp(row, self._run.run_id_in(window), self._table)


class _WritePartitionFn(beam.DoFn):
    """(partition, batches of its rows) -> its files, of up to ROWS_PER_FILE rows, each written a row group at a
    time: no more than a row group's rows are held."""

    def __init__(self, run: RunFiles, table: str):
        self._run, self._table = run, table

    def process(self, keyed, window=beam.DoFn.WindowParam):
        day, batches = keyed
        folder = partition_dir(self._run.out, self._table, day)
        rows = (row for batch in batches for row in unspill(batch, consume=True))
        chunk = 0
        while True:
            first = next(rows, None)
            if first is None:
                return
            yield write_rows(self._table, self._run.path(folder, chunk, window),
                             chain([first], islice(rows, ROWS_PER_FILE - 1)))
            chunk += 1


def partition_dir(out: str, table: str, day: str) -> str:
    return FileSystems.join(table_dir(out, table), f"{PARTITION_COLUMN}={day}")


def write_rows(table: str, path: str, rows) -> dict:
    """Rows of a table (stamped; any iterable) to one checked Parquet file, ROW_GROUP_ROWS at a time; counted; its
    file info for the manifest."""
    schema, rows = TABLES[table] if table in TABLES else STATE[table], iter(rows)

    def write(f) -> int:
        written = 0
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            while group := list(islice(rows, ROW_GROUP_ROWS)):
                writer.write_table(to_arrow(table, group))
                written += len(group)
        return written

    written = write_file(path, write)
    count(f"rows_written_{table}", written)
    return {"table": table, "path": path, "rows": written}


def write_chunk(run: RunFiles, table: str, chunk: int, rows: list[dict]) -> list[dict]:
    """One chunk's rows of a table, stamped and filed by partition: a file per partition the chunk reaches."""
    by_day: dict[str, list[dict]] = {}
    for row in rows:
        row = _stamp(row, run.run_id, table)
        by_day.setdefault(partition_of(table, row), []).append(row)
    return [write_rows(table, run.path(partition_dir(run.out, table, day), chunk), day_rows)
            for day, day_rows in sorted(by_day.items())]


def state_dir(out: str, name: str) -> str:
    return FileSystems.join(out, "_state", name)


def read_state(out: str, name: str, commits: dict[str, Commit], exclude=(), since=None, newest_first_until=None,
               unreadable: list | None = None) -> list[dict]:
    """State rows committed runs kept beside the dataset (see read_committed)."""
    return read_committed(out, f"_state/{name}", state_columns(name), commits, exclude, since=since, schema=STATE[name],
                          newest_first_until=newest_first_until, unreadable=unreadable)


def state_columns(name: str) -> list[str]:
    """A state table's columns, without the stamps every row carries."""
    return [c for c in STATE[name].names if c not in ("run_id", "schema_version")]


def spill(path: str, part):
    """Write a batch (records of a block, state rows) to a file (any Beam FileSystem) and return its path, to
    group instead.

    `newsbeam dedup` spills its batches, so that a runner that holds grouped data in memory (the
    local ones do) holds only paths, and a block's worker reads its block's records itself. A
    spilled block's state rows are spilled beside it in turn (see `_keep_as`).
    """
    with FileSystems.create(path) as f:
        f.write(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def unspill(part, consume: bool = False):
    """A batch as grouped: itself, or the path `spill` wrote it to; with `consume`, by its last reader, the file is
    deleted once read (a local run's spills then take the disk of what is under way, not the run's)."""
    if isinstance(part, str):
        with FileSystems.open(part, compression_type="uncompressed") as f:
            batch = pickle.loads(f.read())
        if consume:
            FileSystems.delete([part])
        return batch
    return part


class Batches(beam.PTransform):
    """(key, value) elements -> (key, batch) elements: a key's values as they come, up to SPILL_BATCH at a time (in
    each window), for a GroupByKey to gather. A batch is a list, or with `folder` the path of the file `spill`
    wrote it to (a local run: then its runner holds paths, not the run's rows)."""

    def __init__(self, folder: str | None, size: int | None = None):
        super().__init__()
        self._folder, self._size = folder, size or SPILL_BATCH

    def expand(self, keyed):
        return (keyed
                | "Batch" >> beam.BatchElements(min_batch_size=self._size, max_batch_size=self._size)
                | "ByKey" >> beam.FlatMap(by_key, self._folder))


def by_key(batch: list[tuple], folder: str | None = None) -> list[tuple]:
    """A batch of (key, value) -> (key, its values) for each key in it; spilled under `folder` when given."""
    found: dict = defaultdict(list)
    for key, value in batch:
        found[key].append(value)
    return [(key, spill_to(folder, values) if folder else values) for key, values in found.items()]


def spill_to(folder: str, part) -> str:
    """`spill` under `folder`, to a file of a name of its own; counted."""
    count("batches_spilled")
    return spill(FileSystems.join(folder, f"{uuid.uuid4().hex}.pickle"), part)


class WriteState(beam.PTransform):
    """(key, rows) batches -> one file per key under DIR/_state/NAME, as file infos (committed with the run's tables).

    A batch may be the path its rows were spilled to (`spill`); it is read here. The near and story
    tiers key their state by time block, so no worker holds more than a block's rows.
    """

    def __init__(self, run: RunFiles, name: str, sort_by: tuple[str, ...] = (), row_group_size: int | None = None):
        super().__init__()
        self._run, self._name = run, name
        self._sort_by, self._row_group_size = sort_by, row_group_size

    def expand(self, batches):
        return (
            batches
            | "Group" >> beam.GroupByKey()
            | "WriteFile" >> beam.ParDo(_WriteStateFn(self._run, self._name, self._sort_by, self._row_group_size))
        )


class _WriteStateFn(beam.DoFn):
    def __init__(self, run: RunFiles, name: str, sort_by: tuple[str, ...] = (), row_group_size: int | None = None):
        self._run, self._name = run, name
        self._sort_by, self._row_group_size = sort_by, row_group_size

    def process(self, keyed, window=beam.DoFn.WindowParam):
        key, batches = keyed
        rows = [_stamp(row, self._run.run_id_in(window), self._name) for batch in batches for row in unspill(batch)]
        if self._sort_by:
            rows.sort(key=lambda row: tuple(row[c] for c in self._sort_by))
        path = self._run.path(state_dir(self._run.out, self._name), key, window)
        write_file(path, parquet_bytes(to_arrow(self._name, rows), self._row_group_size), len(rows))
        yield {"table": f"_state/{self._name}", "path": path, "rows": len(rows)}
