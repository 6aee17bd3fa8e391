"""Write stage: Hive-partitioned Parquet files, written whole or not at all.

Each (table, date) partition is written by one worker as `part-RUN_ID-NNNNN.parquet`:
first to a hidden temporary name in the same folder (readers skip names starting with
'.'), then renamed, then its footer read back and its row count checked. After all
partitions are written, files of the same run id that this run did not write are deleted,
so re-running a run id replaces its own output (and the temporary files a crash of it
left behind) and nothing else.
"""

from __future__ import annotations

import io
import json
import pickle
import posixpath
import re
import uuid
from functools import partial
from datetime import datetime, timezone

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from newsbeam.schemas import PARTITION_COLUMN, SCHEMA_VERSION, STATE, TABLES
from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import partition_date

ROWS_PER_FILE = 20_000


def partition_of(table: str, row: dict) -> str:
    """Articles are filed by UTC publication date (fetch date if unknown); the others by when they were seen."""
    if table == "articles":
        return partition_date(row["published_at"], row["fetched_at"])
    return partition_date(None, row["fetched_at" if table == "duplicates" else "failed_at"])


def to_arrow(table: str, rows: list[dict]) -> pa.Table:
    schema = TABLES[table] if table in TABLES else STATE[table]
    return pa.Table.from_pylist([{f: row.get(f) for f in schema.names} for row in rows], schema=schema)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_file(path: str, data: bytes, expected_rows: int) -> None:
    """Write `data` to `path` via a hidden temporary file and a rename; check the footer after."""
    folder, name = posixpath.split(path)
    tmp = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    with FileSystems.create(tmp) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])
    rows = parquet_rows(path)
    if rows != expected_rows:
        raise IOError(f"{path} has {rows} rows after writing, expected {expected_rows}")


def parquet_rows(path: str) -> int:
    """Row count from a written file's footer: reading it back proves the file is whole."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return pq.read_metadata(f).num_rows


def table_dir(out: str, table: str) -> str:
    return FileSystems.join(out, table)


def file_name(run_id: str, chunk: int) -> str:
    return f"part-{run_id}-{chunk:05d}.parquet"


def run_files_pattern(out: str, table: str, run_id: str, temporary: bool = False) -> str:
    """Glob of every file (or leftover temporary file) a run wrote into a table."""
    return _run_files_glob(FileSystems.join(table_dir(out, table), f"{PARTITION_COLUMN}=*"), run_id, temporary)


def _run_files_glob(folder: str, run_id: str, temporary: bool) -> str:
    return FileSystems.join(folder, f".part-{run_id}-*.tmp" if temporary else f"part-{run_id}-*.parquet")


def _delete_unwritten(folders: list[str], run_id: str, files: list[dict]) -> list[dict]:
    """Delete the run id's files (and temporary files) in `folders` (globs allowed) that are not among `files`,
    the ones it wrote; return `files` sorted by path."""
    keep = {f["path"] for f in files}
    globs = [_run_files_glob(folder, run_id, temporary) for folder in folders for temporary in (False, True)]
    stale = [m.path for result in FileSystems.match(globs) for m in result.metadata_list if m.path not in keep]
    if stale:
        FileSystems.delete(stale)
    return sorted(files, key=lambda f: f["path"])


def read_key_columns(out: str, table: str, columns: list[str], exclude_run_id: str) -> list[dict]:
    """Key columns of earlier runs' rows (never the text), for deduplication against them."""
    return _earlier_rows(table_dir(out, table), columns, exclude_run_id)


def _earlier_rows(folder: str, columns: list[str], exclude_run_id: str, since=None, schema=None,
                  newest_first_until: tuple[str, set] | None = None) -> list[dict]:
    """`columns` of every row under `folder` written by other runs (with `since`, published since then).

    Read through Beam's filesystems, so any of them works (local, gs://, s3://, ...); only the
    columns asked for are read, and with `since` row groups entirely older are skipped. With the
    schema given, columns added since a file was written read as nulls. With
    `newest_first_until=(column, values)`, files are read newest first and no further once every
    value has been seen in `column`: a run's state then costs the files of the last runs, not of all.
    """
    import pyarrow.dataset as ds

    keep = ds.field("run_id") != exclude_run_id
    if since is not None:
        keep &= ds.field("published_at") >= since
    matches = _parquet_matches(folder)
    if newest_first_until:
        matches.sort(key=lambda m: m.last_updated_in_seconds, reverse=True)
        column, missing = newest_first_until[0], set(newest_first_until[1])
    rows: list[dict] = []
    for match in matches:
        with FileSystems.open(match.path, compression_type="uncompressed") as f:
            data = pq.ParquetFile(f)
            present = set(data.schema_arrow.names)
            wanted = [c for c in columns if c in present]
            needed = wanted + [c for c in ("run_id", "published_at") if c in present and c not in wanted]
            table = ds.dataset(pq.read_table(f, columns=needed)).to_table(columns=wanted, filter=keep)
        for column_name in columns:
            if column_name not in present:  # written before the column existed
                kind = schema.field(column_name).type if schema is not None else pa.null()
                table = table.append_column(pa.field(column_name, kind), pa.nulls(len(table), type=kind))
        rows.extend(table.select(columns).to_pylist())
        if newest_first_until:
            missing.difference_update(table.column(column).to_pylist())
            if not missing:
                break
    return rows


def _parquet_matches(folder: str) -> list:
    """Metadata of the Parquet files under `folder`, hidden and temporary ones (names starting with . or _) left out."""
    if not FileSystems.exists(folder):
        return []
    found = []
    for match in FileSystems.match([FileSystems.join(folder, "**")])[0].metadata_list:
        relative = match.path[len(folder):].lstrip("/")
        if match.path.endswith(".parquet") and not any(part.startswith((".", "_")) for part in relative.split("/")):
            found.append(match)
    return sorted(found, key=lambda m: m.path)


def parquet_files(folder: str) -> list[str]:
    """The Parquet files under `folder`, hidden and temporary ones left out, by path."""
    return [m.path for m in _parquet_matches(folder)]


class WriteTables(beam.PTransform):
    """{'articles': rows, 'duplicates': rows, 'errors': rows} -> written files; then stale files removed.

    With `per_window` (the streaming job), each window of the input is written as a run of its own,
    run id `window_run_id(run_id, window)`, and the file infos come out in their windows; the caller
    closes each window (removes its stale files, writes its manifest) when all its files are in.
    """

    def __init__(self, out: str, run_id: str, per_window: bool = False):
        super().__init__()
        self._out = out
        self._run_id = run_id
        self._per_window = per_window

    def expand(self, tables: dict):
        run_id_in = partial(_run_id_in, self._run_id, self._per_window)
        written = []
        for table, rows in tables.items():
            written.append(
                rows
                | f"Stamp{table.title()}" >> beam.ParDo(_StampFn(run_id_in, table))
                | f"Partition{table.title()}" >> beam.Map(lambda row, t=table: (partition_of(t, row), row))
                | f"Group{table.title()}" >> beam.GroupByKey()
                | f"Write{table.title()}" >> beam.ParDo(_WritePartitionFn(self._out, run_id_in, table))
            )
        files = written | "AllFiles" >> beam.Flatten()
        if self._per_window:
            return files
        return (
            files
            | "ListFiles" >> beam.combiners.ToList()
            | "RemoveStaleFiles" >> beam.Map(remove_stale, self._out, self._run_id, list(tables))
        )


def _run_id_in(run_id: str, per_window: bool, window) -> str:
    return window_run_id(run_id, window) if per_window else run_id


def window_run_id(stream_id: str, window) -> str:
    """The run id of a streaming job's window: the job's, and when the window starts (UTC)."""
    return f"{stream_id}-w{window.start.to_utc_datetime():%Y%m%dT%H%M%SZ}"


def _stamp(row: dict, run_id: str, table: str) -> dict:
    row = {**row, "run_id": run_id, "schema_version": SCHEMA_VERSION}
    if table == "errors" and row.get("failed_at") is None:
        row["failed_at"] = datetime.now(timezone.utc)
    return row


class _StampFn(beam.DoFn):
    def __init__(self, run_id_in, table: str):
        self._run_id_in, self._table = run_id_in, table

    def process(self, row, window=beam.DoFn.WindowParam):
        yield _stamp(row, self._run_id_in(window), self._table)


class _WritePartitionFn(beam.DoFn):
    def __init__(self, out: str, run_id_in, table: str):
        self._out, self._run_id_in, self._table = out, run_id_in, table

    def process(self, keyed, window=beam.DoFn.WindowParam):
        day, rows = keyed
        run_id = self._run_id_in(window)
        folder = FileSystems.join(table_dir(self._out, self._table), f"{PARTITION_COLUMN}={day}")
        chunk, batch = 0, []
        for row in rows:
            batch.append(row)
            if len(batch) == ROWS_PER_FILE:
                yield write_rows(self._table, FileSystems.join(folder, file_name(run_id, chunk)), batch)
                chunk, batch = chunk + 1, []
        if batch:
            yield write_rows(self._table, FileSystems.join(folder, file_name(run_id, chunk)), batch)


def write_rows(table: str, path: str, rows: list[dict]) -> dict:
    """Rows of a table (stamped) to one checked Parquet file; counted; its file info for the manifest."""
    write_file(path, parquet_bytes(to_arrow(table, rows)), len(rows))
    count(f"rows_written_{table}", len(rows))
    return {"table": table, "path": path, "rows": len(rows)}


def write_chunk(out: str, run_id: str, table: str, chunk: int, rows: list[dict]) -> list[dict]:
    """One chunk's rows of a table, stamped and filed by partition: a file per partition the chunk reaches."""
    by_day: dict[str, list[dict]] = {}
    for row in rows:
        row = _stamp(row, run_id, table)
        by_day.setdefault(partition_of(table, row), []).append(row)
    return [write_rows(table, FileSystems.join(table_dir(out, table), f"{PARTITION_COLUMN}={day}", file_name(run_id, chunk)), day_rows)
            for day, day_rows in sorted(by_day.items())]


def remove_stale(files: list[dict], out: str, run_id: str, tables: list[str], states=()) -> list[dict]:
    """Delete the run id's files (and temporary files) in `tables` and the `states` folders of _state that are
    not among `files`, the ones it wrote; return `files` sorted by path."""
    folders = [FileSystems.join(table_dir(out, table), f"{PARTITION_COLUMN}=*") for table in tables]
    return _delete_unwritten(folders + [state_dir(out, name) for name in states], run_id, files)


def state_dir(out: str, name: str) -> str:
    return FileSystems.join(out, "_state", name)


def read_state(out: str, name: str, exclude_run_id: str, since=None, newest_first_until=None) -> list[dict]:
    """State rows earlier runs kept beside the dataset; with `since`, only those published since then;
    with `newest_first_until` (column, values), the newest files until every value is seen."""
    return _earlier_rows(state_dir(out, name), _state_columns(name), exclude_run_id, since=since, schema=STATE[name],
                         newest_first_until=newest_first_until)


def _state_columns(name: str) -> list[str]:
    """A state table's columns, without the stamps every row carries."""
    return [c for c in STATE[name].names if c not in ("run_id", "schema_version")]


def read_run_state(out: str, name: str, run_id: str) -> list[dict]:
    """The state rows one run wrote (for its manifest)."""
    columns = _state_columns(name)
    own = re.compile(rf"part-{re.escape(run_id)}-\d+\.parquet$")
    rows = []
    for path in parquet_files(state_dir(out, name)):
        if own.fullmatch(path.rsplit("/", 1)[-1]):
            with FileSystems.open(path, compression_type="uncompressed") as f:
                rows.extend(pq.read_table(f, columns=columns).to_pylist())
    return rows


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


def unspill(part):
    """A batch as grouped: itself, or the path `spill` wrote it to."""
    if isinstance(part, str):
        with FileSystems.open(part, compression_type="uncompressed") as f:
            return pickle.loads(f.read())
    return part


class WriteState(beam.PTransform):
    """(key, rows) batches -> one file per key under DIR/_state/NAME; the run's other files there removed.

    A batch may be the path its rows were spilled to (`spill`); it is read here.

    The near and story tiers key their state by time block, so no worker holds more than a
    block's rows; a rerun of the run id replaces its own files and leaves other runs' alone.
    With `per_window`, as WriteTables: a run per window, the file infos returned in their windows.
    """

    def __init__(self, out: str, run_id: str, name: str, per_window: bool = False):
        super().__init__()
        self._out, self._run_id, self._name, self._per_window = out, run_id, name, per_window

    def expand(self, batches):
        files = (
            batches
            | "Group" >> beam.GroupByKey()
            | "WriteFile" >> beam.ParDo(_WriteStateFn(self._out, self._name, partial(_run_id_in, self._run_id, self._per_window)))
        )
        if self._per_window:
            return files
        return (
            files
            | "ListFiles" >> beam.combiners.ToList()
            | "RemoveStale" >> beam.Map(remove_stale, self._out, self._run_id, [], [self._name])
        )


class _WriteStateFn(beam.DoFn):
    def __init__(self, out: str, name: str, run_id_in):
        self._out, self._name, self._run_id_in = out, name, run_id_in

    def process(self, keyed, window=beam.DoFn.WindowParam):
        key, batches = keyed
        run_id = self._run_id_in(window)
        rows = [_stamp(row, run_id, self._name) for batch in batches for row in unspill(batch)]
        path = FileSystems.join(state_dir(self._out, self._name), file_name(run_id, key))
        write_file(path, parquet_bytes(to_arrow(self._name, rows)), len(rows))
        yield {"table": f"_state/{self._name}", "path": path, "rows": len(rows)}


def write_json(path: str, payload: dict) -> None:
    """A JSON document, written via a temporary file and a rename."""
    folder, name = posixpath.split(path)
    tmp = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    with FileSystems.create(tmp) as f:
        f.write(json.dumps(payload, indent=2, default=str).encode("utf-8"))
    FileSystems.rename([tmp], [path])
