"""Which files of a dataset count: a run's files carry its id and attempt, and its manifest, written last, commits them.

Every file a run writes is named `part-RUN_ID-NNNNN.ATTEMPT.parquet`, ATTEMPT a token new for
each attempt at running that id. When every file is written and its footer checked, the run
writes its manifest, `runs/RUN_ID.json`, in one atomic act (a whole object or a rename): it
names the attempt and every file. That is the commit. Readers of earlier state take only the
files committed manifests name, so a run that never committed (a crash, a full disk, a kill)
counts for nothing, and rerunning an id replaces that run's files only once the new attempt
commits. Files no committed manifest names are garbage; `sweep` removes them, but never files
of a remote job still under way (`runs/launched/RUN_ID.json` names its attempt).

Run ids are parsed from file names, never matched by prefix: `nightly` is not `nightly-2`.
Files written before attempts existed (`part-RUN_ID-NNNNN.parquet`) count when their run's
manifest is complete, or says it was submitted to a remote runner, as they did then.
"""

from __future__ import annotations

import json
import platform
import posixpath
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from newsbeam.schemas import SCHEMA_VERSION, STATE, TABLES
from newsbeam.transforms.errors import FEED_STAGES
from newsbeam.transforms.feed_state import feed_health
from newsbeam.transforms.metrics import count

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ATTEMPT = r"[0-9a-z]{1,16}"
# The chunk is the last run of digits after a '-', the attempt what follows the next '.': run ids may hold both.
_FILE = re.compile(rf"part-(?P<run>{RUN_ID.pattern})-(?P<chunk>\d{{5,}})(?:\.(?P<attempt>{_ATTEMPT}))?\.parquet")
_TEMPORARY = re.compile(r"\.(?P<final>.+)\.[0-9a-f]+\.tmp")
LAUNCHED = "launched"  # runs/launched/RUN_ID.json: what a launcher handed to a remote runner
LAUNCH_PROTECTS = timedelta(days=7)  # how long a submitted job's files are safe from the sweep without its commit
DATA_KINDS = (None, "run", "stream_window", "dedup", "compact")  # manifests that commit files; a stream's own lists its polls
COMPACTED = "_compacted"  # runs/_compacted/RUN_ID.json: the manifests of runs whose files a compaction merged
_PACKAGES = ("newsbeam", "apache-beam", "feedparser", "trafilatura", "pyarrow", "py3langid")


class DatasetError(Exception):
    """A dataset that cannot be used as it is (a manifest that cannot be read); the CLI prints one line."""


def new_attempt() -> str:
    return secrets.token_hex(4)


def file_name(run_id: str, attempt: str, chunk: int) -> str:
    return f"part-{run_id}-{chunk:05d}.{attempt}.parquet"


@dataclass(frozen=True)
class RunFiles:
    """How one attempt at a run names its files: the dataset, the run id and the attempt token.

    With `per_window` (the streaming job) each window is a run of its own, `window_run_id(run_id, window)`.
    """

    out: str
    run_id: str
    attempt: str
    per_window: bool = False

    def run_id_in(self, window=None) -> str:
        return window_run_id(self.run_id, window) if self.per_window else self.run_id

    def path(self, folder: str, chunk: int, window=None) -> str:
        return FileSystems.join(folder, file_name(self.run_id_in(window), self.attempt, chunk))


def window_run_id(stream_id: str, window) -> str:
    """The run id of a streaming job's window: the job's, and when the window starts (UTC)."""
    return f"{stream_id}-w{window.start.to_utc_datetime():%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True)
class Owner:
    """Whose a file is: run id, attempt (None: written before attempts existed), and whether it is a temporary file."""

    run_id: str
    attempt: str | None
    temporary: bool = False


def owner_of(path: str) -> Owner | None:
    """The run and attempt a data or state file (or its temporary file) belongs to; None for any other file."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    temporary = _TEMPORARY.fullmatch(name)
    if temporary:
        name = temporary.group("final")
    match = _FILE.fullmatch(name)
    if not match:
        return None
    return Owner(match.group("run"), match.group("attempt"), temporary is not None)


def chunk_of(path: str) -> int | None:
    """The chunk number in a data or state file's name (a state file's key: its time block, its shard)."""
    match = _FILE.fullmatch(path.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group("chunk")) if match else None


@dataclass(frozen=True)
class Commit:
    """A committed run: its attempt, when it committed, and the files it committed (relative to the dataset).

    `files` is None for a run written before attempts existed: its files are known by name.
    """

    run_id: str
    attempt: str | None
    committed_at: datetime
    files: frozenset | None
    replaces: frozenset = frozenset()  # a compaction's: the (run_id, attempt) commits whose files it merged


def runs_dir(out: str) -> str:
    return FileSystems.join(out, "runs")


def manifest_path(out: str, run_id: str) -> str:
    return FileSystems.join(runs_dir(out), f"{run_id}.json")


def launch_path(out: str, run_id: str) -> str:
    return FileSystems.join(runs_dir(out), LAUNCHED, f"{run_id}.json")


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_json(path: str, payload: dict) -> None:
    """A JSON document, written via a temporary file and a rename: it is whole or absent."""
    folder, name = posixpath.split(path)
    tmp = posixpath.join(folder, f".{name}.{secrets.token_hex(16)}.tmp")
    with FileSystems.create(tmp) as f:
        f.write(json.dumps(payload, indent=2, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    FileSystems.rename([tmp], [path])


def write_manifest(out: str, run_id: str, payload: dict) -> str:
    path = manifest_path(out, run_id)
    write_json(path, {"run_id": run_id, "schema_version": SCHEMA_VERSION, **payload, "versions": versions()})
    return path


def read_json(path: str) -> dict:
    """A manifest; DatasetError naming the file when it cannot be read."""
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            data = json.loads(f.read().decode("utf-8"))
    except Exception as exc:
        raise DatasetError(f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                           "a run's manifest says which of its files count: restore it, or move it and that run's "
                           "files out of the dataset") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a newsbeam manifest (not a JSON object)")
    return data


def _manifest_paths(folder: str) -> list:
    """The manifests (name.json) directly in `folder`, with their metadata."""
    found = []
    for match in FileSystems.match([FileSystems.join(folder, "*.json")])[0].metadata_list:
        relative = match.path[len(folder):].lstrip("/")
        if "/" not in relative and not relative.startswith((".", "_")):
            found.append(match)
    return found


def _when(value) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def commit_of(manifest: dict, run_id: str) -> Commit | None:
    """The commit a manifest records, or None when it commits nothing (a stream's own manifest, a failed run)."""
    if manifest.get("run_id") != run_id or manifest.get("kind", manifest.get("command")) not in DATA_KINDS:
        return None
    attempt = manifest.get("attempt")
    if attempt is None:  # written before attempts: a remote run's files counted once it was submitted
        if manifest.get("status") not in ("complete", "submitted"):
            return None
        when = manifest.get("finished_at") or manifest.get("started_at")
        return Commit(run_id, None, _when(when), None)
    if manifest.get("status") != "complete" or not re.fullmatch(_ATTEMPT, str(attempt)):
        return None
    files = manifest.get("files")
    replaces = frozenset((str(r.get("run_id")), r.get("attempt")) for r in manifest.get("replaces") or () if isinstance(r, dict))
    return Commit(run_id, attempt, _when(manifest.get("committed_at")), frozenset(files if isinstance(files, list) else ()),
                  replaces)


def committed_runs(out: str, replaced: set | None = None) -> dict[str, Commit]:
    """Every committed run of the dataset at `out`, by run id; less those a compaction replaced (their manifests
    are moved to runs/_compacted once it commits; a crash can leave some behind), which go into `replaced`."""
    commits = {}
    for match in _manifest_paths(runs_dir(out)):
        run_id = match.path.rsplit("/", 1)[-1][: -len(".json")]
        if not RUN_ID.fullmatch(run_id):
            continue
        commit = commit_of(read_json(match.path), run_id)
        if commit is not None:
            commits[run_id] = commit
    gone = {pair for commit in commits.values() for pair in commit.replaces}
    if replaced is not None:
        replaced.update(run_id for run_id, _ in gone)
    return {run_id: c for run_id, c in commits.items() if (run_id, c.attempt) not in gone}


def retired_path(out: str, run_id: str) -> str:
    return FileSystems.join(runs_dir(out), COMPACTED, f"{run_id}.json")


def was_compacted(out: str, run_id: str, replaced: set | None = None) -> bool:
    """Whether a compaction merged this run's files (its manifest retired, or still waiting to be). `replaced`: what
    committed_runs found replaced, when the caller has read the manifests already."""
    if FileSystems.exists(retired_path(out, run_id)):
        return True
    if replaced is None:
        replaced = set()
        committed_runs(out, replaced)
    return run_id in replaced


def launched_attempts(out: str, now: datetime | None = None) -> set[str]:
    """The attempts of jobs handed to a remote runner that may still be writing: a batch job for LAUNCH_PROTECTS
    after it was submitted, a streaming job (whose windows are runs of their own) until its record is removed."""
    now = now or datetime.now(timezone.utc)
    found = set()
    for match in _manifest_paths(FileSystems.join(runs_dir(out), LAUNCHED)):
        try:
            launch = read_json(match.path)
        except DatasetError:
            continue  # an unreadable launch record protects nothing
        recent = now - _when(launch.get("started_at")) < LAUNCH_PROTECTS
        if launch.get("status") == "submitted" and launch.get("attempt") and (recent or launch.get("kind") == "stream"):
            found.add(str(launch["attempt"]))
    return found


def relative(out: str, path: str) -> str:
    return path[len(out.rstrip("/")) + 1:] if path.startswith(out.rstrip("/") + "/") else path


def _data_files(folder: str) -> list[str]:
    """Every file under `folder` (temporary ones too), by path. A glob, never exists(): an object store has no
    folders to exist."""
    return sorted(m.path for m in FileSystems.match([FileSystems.join(folder, "**")])[0].metadata_list)


def _dataset_folders(out: str) -> list[str]:
    return [FileSystems.join(out, table) for table in TABLES] + [FileSystems.join(out, "_state", name) for name in STATE]


def committed_files(out: str, folder: str, commits: dict[str, Commit], exclude=()) -> list[str]:
    """The committed files under `out`/`folder` (a table, or `_state/NAME`), newest commit first; runs in `exclude` left out.

    A committed run's files are those its manifest names (a file it names that is missing is listed
    anyway, so that reading it fails loudly); a run from before attempts has its files known by name.
    """
    prefix = folder.rstrip("/") + "/"
    order = sorted((c for c in commits.values() if c.run_id not in exclude), key=lambda c: c.committed_at, reverse=True)
    rank = {c.run_id: i for i, c in enumerate(order)}
    base = out.rstrip("/") + "/"  # FileSystems.join per name costs more than the rest of a listing of years of runs
    found = [(rank[c.run_id], base + name) for c in order if c.files for name in c.files if name.startswith(prefix)]
    if any(c.files is None for c in order):
        for path in _data_files(FileSystems.join(out, folder)):
            owner = owner_of(path)
            if owner and not owner.temporary and owner.attempt is None and owner.run_id in rank and commits[owner.run_id].files is None:
                found.append((rank[owner.run_id], path))
    return [path for _, path in sorted(found)]


def garbage(out: str, paths: list[str], commits: dict[str, Commit], protected=frozenset(), only_run: str | None = None) -> list[str]:
    """Which of `paths` (files of the dataset at `out`) no committed manifest names, and may go.

    Temporary files and files of attempts that never committed go, unless their attempt is among the
    `protected` ones (a remote job still writing); files from before attempts go only when their run was committed again
    since (they cannot be told from a remote run of those days that never said it finished). With
    `only_run`, only that run's files are considered.
    """
    doomed = []
    named = {name for c in commits.values() if c.files for name in c.files}  # a compaction names files it carried over
    for path in paths:
        owner = owner_of(path)
        if owner is None or (only_run is not None and owner.run_id != only_run):
            continue
        if owner.attempt in protected:
            continue
        commit = commits.get(owner.run_id)
        if owner.temporary:
            doomed.append(path)
        elif owner.attempt is None:
            if commit is not None and commit.files is not None:
                doomed.append(path)
        elif relative(out, path) not in named:
            doomed.append(path)
    return doomed


def sweep(out: str, commits: dict[str, Commit], protected=frozenset(), only_run: str | None = None) -> list[str]:
    """Delete the files of the dataset that no committed manifest names (see `garbage`), and with `only_run` None
    also manifests' leftover temporary files; the paths deleted."""
    paths = [path for folder in _dataset_folders(out) for path in _data_files(folder)]
    doomed = garbage(out, paths, commits, protected, only_run)
    if only_run is None:
        doomed += [m.path for m in FileSystems.match([FileSystems.join(runs_dir(out), "**")])[0].metadata_list
                   if _TEMPORARY.fullmatch(m.path.rsplit("/", 1)[-1])]
    if doomed:
        FileSystems.delete(doomed)
    return sorted(doomed)


def parquet_rows(path: str) -> int:
    """Row count from a written file's footer: reading it back proves the file is whole."""
    import pyarrow.parquet as pq

    with FileSystems.open(path, compression_type="uncompressed") as f:
        return pq.read_metadata(f).num_rows


def tables_of(files: list[dict]) -> dict:
    """The tables' files and row counts, footers read back, for a manifest; {'_state/NAME': ...} for state."""
    tables: dict = {name: {"rows": 0, "files": []} for name in TABLES}
    for info in sorted(files, key=lambda f: f["path"]):
        rows = parquet_rows(info["path"])
        if rows != info["rows"]:
            raise IOError(f"{info['path']} has {rows} rows on storage, {info['rows']} were written")
        table = tables.setdefault(info["table"], {"rows": 0, "files": []})
        table["rows"] += rows
        table["files"].append({"path": info["path"], "rows": rows})
    return tables


def link_accounting(counts: dict, tables: dict) -> dict:
    """Every link discovered in the feeds ends in exactly one of these; `balanced` says whether it does."""
    discovered = counts.get("entries_discovered", 0)
    ends = {
        "articles": tables["articles"]["rows"],
        "duplicates": tables["duplicates"]["rows"],
        "errors": counts.get("entry_errors", 0),
        "already_stored": counts.get("links_already_stored", 0),
    }
    return {"discovered": discovered, **ends, "balanced": discovered == sum(ends.values())}


def commit(out: str, run_id: str, attempt: str, files: list[dict], payload: dict, counts: dict | None = None) -> dict:
    """Commit a run: its files' footers checked, its manifest written (the one act that makes it count), then its
    run id's other files (an earlier attempt's, a crashed one's) deleted. With `counts` (entries_discovered,
    entry_errors, links_already_stored) the manifest gets its link accounting. Returns the manifest."""
    tables = tables_of(files)
    manifest = {
        **payload,
        "status": "complete",
        "attempt": attempt,
        "committed_at": datetime.now(timezone.utc).isoformat(),
        "tables": {name: info for name, info in tables.items() if name in TABLES},
        "state_files": [f for name, info in tables.items() if name not in TABLES for f in info["files"]],
        "files": sorted(relative(out, f["path"]) for f in files),
    }
    if counts is not None:
        manifest["links"] = link_accounting(counts, tables)
    manifest["path"] = write_manifest(out, run_id, manifest)
    mine = Commit(run_id, attempt, datetime.now(timezone.utc), frozenset(manifest["files"]))
    sweep(out, {run_id: mine}, only_run=run_id)
    return manifest


class CommitRun(beam.PTransform):
    """What a run wrote and saw -> its commit (the manifest), made once every file is in; per window with the run's
    `per_window` (the streaming job: each window a run of its own).

    Parts: 'files' (the writers' file infos), and for a run that reads feeds 'feeds' (feed-state rows, for
    feed health), 'entries', 'skipped' (links not fetched as stored or seen) and 'errors'. Its link
    accounting is counted from them: discovered = entries with a link + entries that failed in their
    feed; they end as articles + duplicates (rows written) + entry errors + links skipped.
    """

    def __init__(self, run: RunFiles, payload: dict):
        super().__init__()
        self._run, self._payload = run, payload

    def expand(self, parts: dict):
        def gathered(name, pcoll, combine):
            combine = combine.without_defaults() if self._run.per_window else combine
            return pcoll | f"All{name}" >> combine | f"Tag{name}" >> beam.Map(lambda value, n=name: (n, value))

        def tally(name, counts):
            return gathered(name, parts[name.lower()] | f"Count{name}" >> beam.Map(counts), beam.CombineGlobally(_sum_pairs))

        tagged = [gathered("Files", parts["files"], beam.combiners.ToList())]
        if "entries" in parts:
            tagged += [
                gathered("Feeds", parts["feeds"], beam.combiners.ToList()),
                tally("Entries", lambda _: (1, 0)),
                tally("Skipped", lambda _: (1, 0)),
                tally("Errors", lambda row: (row["stage"] not in FEED_STAGES, row["stage"] == "feed_entry")),
            ]
        return (
            tagged
            | "Parts" >> beam.Flatten()
            | "OneRun" >> beam.Map(lambda part: (0, part))
            | "Gather" >> beam.GroupByKey()
            | "Commit" >> beam.ParDo(_CommitFn(self._run, self._payload, links="entries" in parts))
        )


def _sum_pairs(pairs) -> tuple[int, int]:
    first = second = 0
    for a, b in pairs:
        first, second = first + int(a), second + int(b)
    return first, second


class _CommitFn(beam.DoFn):
    def __init__(self, run: RunFiles, payload: dict, links: bool):
        self._run, self._payload, self._links = run, payload, links

    def process(self, keyed, window=beam.DoFn.WindowParam):
        parts = {"Files": [], "Feeds": [], "Errors": (0, 0), "Entries": (0, 0), "Skipped": (0, 0), **dict(keyed[1])}
        payload, counts = dict(self._payload), None
        if self._links:
            entry_errors, failed_in_feed = parts["Errors"]
            counts = {"entries_discovered": parts["Entries"][0] + failed_in_feed, "entry_errors": entry_errors,
                      "links_already_stored": parts["Skipped"][0]}
            payload["feed_health"] = feed_health(parts["Feeds"])
        if self._run.per_window:  # the streaming job: each window's own span
            payload["window"] = {"start": window.start.to_utc_datetime().replace(tzinfo=timezone.utc).isoformat(),
                                 "end": window.end.to_utc_datetime().replace(tzinfo=timezone.utc).isoformat()}
        manifest = commit(self._run.out, self._run.run_id_in(window), self._run.attempt, parts["Files"], payload, counts)
        count("runs_committed")
        yield manifest
