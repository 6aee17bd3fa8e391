"""A run's cost against the history already in --out: the bundled sample run into datasets of 0 to 10M stored articles.

newsbeam runs every hour for years into one dataset; a run must cost what its own links cost. For
each size N of --sizes this script generates (and caches under --work) a dataset as a year of
daily runs leaves it, then runs `newsbeam run -q` (the bundled offline sample: 3 feeds, 13 links)
into a hard-linked copy of it, in a subprocess of its own, and measures:

- wall time, and the peak RSS of the run's process tree (sampled every 0.2 s, as
  benchmarks/dedup_scale.py does; a spike between samples can be missed);
- from the run's manifest: the launcher's time loading stored state (`load_stored_seconds`) and
  the pipeline's, and what the workers read of the history (keys found, near and story records);
- the launcher apart: in another subprocess, `load_stored_state` alone, its time and how much its
  peak RSS grew over the process's RSS after the imports.

The generated history (from --seed alone): --runs runs (365 by default: daily) evenly over the
year ending on END (just after the sample's articles, so the sample meets the state of its own
weeks), N/runs articles each. Per run:
- the key index under _state/keys (a link key and a content hash per article, filed by shard and
  sorted by key, as runs write it);
- for N <= --tables-upto: the articles table (short texts: the runs read none of it), a file per run;
  above it, keys and state only (the issue's 10M case);
- for the runs of the last STATE_DAYS days: near and story state, STATE_ROWS rows of each in all,
  one file per run and time block (random signatures of the real width; story features of a few
  words).
Runs are committed by manifests as newsbeam writes them (runs/RUN_ID.json naming every file).

With --compacted, each history is also compacted (`newsbeam compact`, cached beside it; timed, its
file counts before and after, a hash of every table row compared) and measured again, and the
sample run's decisions there are compared with those over the uncompacted history. The runs are
made with --no-compact: compaction is measured apart.

The ratios (wall and RSS growth against N = 0) come from one invocation, sizes measured in turn
--repeat times, medians reported. Targets (issue 16): at 1M within 1.5x the wall time and +300
MiB peak RSS of the empty run; at 10M within 2x the wall time (with --compacted, for the
compacted histories: a dataset is compacted as it grows, by its runs or by `newsbeam compact`).

    python benchmarks/history_scale.py --sizes 0,100000,1000000,10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_scale import Watch, newsbeam_command  # noqa: E402

from newsbeam.schemas import ARTICLES, SCHEMA_VERSION, STATE  # noqa: E402
from newsbeam.transforms.commits import file_name  # noqa: E402
from newsbeam.transforms.dedup import block_of  # noqa: E402
from newsbeam.transforms.features import SKETCH_VERSION  # noqa: E402
from newsbeam.transforms.similarity import PERMUTATIONS  # noqa: E402
from newsbeam.transforms.stored import KEY_ROW_GROUP, KEY_SHARDS, shard_of  # noqa: E402

GENERATOR = 4  # bump when the generated data changes: cached datasets of other versions are not reused
RUNS = 365  # default: a year of daily runs
YEAR = timedelta(days=365)
END = datetime(2026, 11, 24, tzinfo=timezone.utc)
STATE_DAYS = 30
STATE_ROWS = 80_000
ATTEMPT = "h0"
TARGETS = {1_000_000: (1.5, 300), 10_000_000: (2.0, None)}  # size: (wall ratio, RSS growth MiB)


def common_names() -> list[str]:
    """Capitalised words of the bundled sample's pages, most frequent first, lower-cased as the story tier keeps
    names: stored story state names them in most rows (Zipf), so a run's names are crowded, not unseen."""
    found = Counter()
    for page in (Path(__file__).resolve().parents[1] / "pipeline" / "sample").rglob("*.html"):
        found.update(word.lower() for word in re.findall(r"\b[A-Z][a-z]{3,}\b", page.read_text(encoding="utf-8")))
    return [word for word, _ in found.most_common()]


def _write(path: Path, table: pa.Table, row_group_size: int | None = None) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)
    return {"path": str(path), "rows": table.num_rows}


def _stamped(columns: dict, run_id: str, rows: int, schema: pa.Schema) -> pa.Table:
    columns = {**columns, "run_id": pa.array([run_id] * rows, pa.string()),
               "schema_version": pa.array(np.full(rows, SCHEMA_VERSION, np.int16))}
    return pa.table({f.name: columns[f.name] for f in schema}, schema=schema)


def make_run(out: Path, run: int, runs: int, n: int, first: int, tables: bool, state_rows: int,
             rng: np.random.Generator) -> None:
    """One daily run's files and its manifest: n articles numbered from `first`, state_rows near and story rows."""
    run_id, day = f"hist-{run:05d}", END - YEAR * (runs - 1 - run) / runs
    serial = np.arange(first, first + n)
    links = pa.array([f"https://s{s % 997}.example/{day:%Y/%m/%d}/a{s}" for s in serial.tolist()], pa.string())
    ids = pa.array([f"{s:016x}" for s in serial.tolist()], pa.string())
    hashes = pa.array([f"{(s * 2654435761) % 2**64:016x}{s:016x}" for s in serial.tolist()], pa.string())
    files = []
    if n:
        keys = pa.concat_arrays([links, hashes])
        kinds = pa.array(["link"] * n + ["text"] * n, pa.string())
        index = _stamped({"key": keys, "kind": kinds, "article_id": pa.concat_arrays([ids, ids])}, run_id, 2 * n, STATE["keys"])
        shards = np.array([shard_of(k) for k in keys.to_pylist()])
        for shard in range(KEY_SHARDS):
            part = index.filter(pa.array(shards == shard)).sort_by([("key", "ascending"), ("kind", "ascending")])
            if part.num_rows:
                files.append(("_state/keys", _write(out / "_state/keys" / file_name(run_id, ATTEMPT, shard), part, KEY_ROW_GROUP)))
    if n and tables:
        published = pa.array([day + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, n)], pa.timestamp("us", "UTC"))
        texts = pa.array([f"Stored article {s}." for s in serial.tolist()], pa.string())
        columns = {f.name: pa.nulls(n, f.type) for f in ARTICLES}
        columns.update({"article_id": ids, "url": links, "canonical_url": links, "content_hash": hashes, "text": texts,
                        "title": texts, "published_at": published, "fetched_at": published, "story_id": ids,
                        "feed_url": pa.array([f"https://s{s % 997}.example/feed" for s in serial.tolist()]),
                        "word_count": pa.array(np.full(n, 3, np.int32)), "paywalled": pa.array(np.zeros(n, bool)),
                        "extraction_method": pa.array(["trafilatura"] * n), "language": pa.array(["en"] * n),
                        "source": pa.array([f"s{s % 997}.example" for s in serial.tolist()])})
        table = _stamped(columns, run_id, n, ARTICLES)
        path = out / "articles" / f"date={day:%Y-%m-%d}" / file_name(run_id, ATTEMPT, 0)
        files.append(("articles", _write(path, table)))
    if state_rows:
        when = [day + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, state_rows)]
        sid = pa.array([f"st{run:04d}{i:08x}" for i in range(state_rows)], pa.string())
        stamp = pa.array(when, pa.timestamp("us", "UTC"))
        width = PERMUTATIONS * 4
        near = _stamped({"article_id": sid, "published_at": stamp,
                         "shingles": pa.array(rng.integers(100, 600, state_rows).astype(np.int32)),
                         "full": pa.array([rng.bytes(width) for _ in range(state_rows)], pa.binary()),
                         "lead": pa.array([rng.bytes(width) for _ in range(state_rows)], pa.binary()),
                         "sketch": pa.array(np.full(state_rows, SKETCH_VERSION, np.int16))},
                        run_id, state_rows, STATE["near"])
        words = [[f"w{int(x)}" for x in rng.integers(0, 50_000, 8)] for _ in range(state_rows)]
        vocabulary = common_names() + [f"n{i}" for i in range(50_000)]
        ranks = np.minimum(rng.zipf(1.2, (state_rows, 4)) - 1, len(vocabulary) - 1)  # a few names in most rows
        names = [sorted({vocabulary[r] for r in row}) for row in ranks.tolist()]
        story = _stamped({"article_id": sid, "story_id": sid, "published_at": stamp,
                          "names": pa.array(names), "terms": pa.array(words),
                          "counts": pa.array([[1] * 8 for _ in words], pa.list_(pa.int32())),
                          "lead": pa.array([w[:4] for w in words]), "numbers": pa.array([["3"] for _ in words])},
                         run_id, state_rows, STATE["story"])
        blocks = np.array([block_of(w.timestamp()) for w in when])
        for name, table in (("near", near), ("story", story)):
            for block in sorted(set(blocks.tolist())):
                part = table.filter(pa.array(blocks == block))
                files.append((f"_state/{name}", _write(out / "_state" / name / file_name(run_id, ATTEMPT, block), part)))
    tables_of = {name: {"rows": 0, "files": []} for name in ("articles", "duplicates", "errors")}
    for table, info in files:
        if table in tables_of:
            tables_of[table]["rows"] += info["rows"]
            tables_of[table]["files"].append(info)
    manifest = {"run_id": run_id, "kind": "run", "status": "complete", "attempt": ATTEMPT,
                "started_at": day.isoformat(), "committed_at": (day + timedelta(minutes=5)).isoformat(),
                "tables": tables_of, "state_files": [info for table, info in files if table not in tables_of],
                "files": sorted(str(Path(info["path"]).relative_to(out)) for _, info in files)}
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "runs" / f"{run_id}.json").write_text(json.dumps(manifest))


def ensure_history(work: Path, n: int, tables_upto: int, seed: int, runs: int = RUNS) -> Path:
    """The generated dataset of n stored articles (cached: reused when its _complete.json is there)."""
    out = work / f"history-{n}-s{seed}-g{GENERATOR}{'' if runs == RUNS else f'-r{runs}'}{'' if n <= tables_upto else '-keys'}"
    if (out / "_complete.json").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    per_run = np.diff(np.linspace(0, n, runs + 1).astype(np.int64))
    in_state = [END - YEAR * (runs - 1 - run) / runs > END - timedelta(days=STATE_DAYS) for run in range(runs)]
    state_per_run = STATE_ROWS // max(1, sum(in_state)) if n else 0
    first = 0
    for run in range(runs):
        make_run(out, run, runs, int(per_run[run]), first, n <= tables_upto, state_per_run if in_state[run] else 0, rng)
        first += int(per_run[run])
    (out / "_complete.json").write_text(json.dumps({"articles": n, "seconds": round(time.perf_counter() - t0, 1)}))
    print(f"generated {n:,} stored articles in {time.perf_counter() - t0:.0f} s: {out}", file=sys.stderr)
    return out


def ensure_compacted(history: Path, timeout: float) -> tuple[Path, dict]:
    """A compacted copy of `history` (`newsbeam compact`, all but the last day's run), cached; what it took and did."""
    out = history.with_name(history.name + "-compacted")
    done = out / "_compacted.json"
    if done.is_file():
        return out, json.loads(done.read_text())
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["cp", "-al", str(history), str(out)], check=True)  # compaction writes new files, never edits one
    (out / "_complete.json").unlink()
    before = _files(out)
    rows_before = row_hashes(out)
    t0 = time.perf_counter()
    proc = subprocess.run([*newsbeam_command(), "compact", str(out)], capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"newsbeam compact failed: {proc.stderr.strip()}")
    info = {"seconds": round(seconds, 1), "files_before": before, "files_after": _files(out),
            "rows_identical": row_hashes(out) == rows_before}
    done.write_text(json.dumps(info))
    print(f"compacted {history.name} in {seconds:.0f} s: {before} -> {info['files_after']}", file=sys.stderr)
    return out, info


def _files(out: Path) -> dict:
    found = {"manifests": len(list((out / "runs").glob("*.json")))}
    for folder in ("articles", "_state/keys", "_state/near", "_state/story"):
        found[folder] = len(list((out / folder).rglob("*.parquet")))
    return found


def row_hashes(out: Path) -> dict:
    """Per table, the sorted 64-bit hashes of every row as pandas reads the folder: equal lists, equal rows."""
    import pandas as pd

    found = {}
    for table in ("articles", "duplicates", "errors"):
        if not (out / table).exists():
            continue
        frame = pd.read_parquet(out / table)
        frame = frame.astype({c: str for c in frame.columns if frame[c].dtype == object or str(frame[c].dtype) == "category"})
        found[table] = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tolist()
    return found


LAUNCHER = """
import json, sys, time
from newsbeam.pipeline.job import load_stored_state
def status(field):  # VmRSS / VmHWM in bytes (getrusage's ru_maxrss survives exec: it would count the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))
before = status("VmRSS")
t0 = time.perf_counter()
stored = load_stored_state(sys.argv[1], "history-probe")
seconds = time.perf_counter() - t0
peak = status("VmHWM")
print(json.dumps({"seconds": round(seconds, 3), "rss_growth_mib": round(max(0, peak - before) / 2**20, 1)}))
"""


def decisions(out: Path) -> dict:
    """What the sample run decided: its articles' urls and story ids, its duplicates' urls, tiers and originals."""
    import pandas as pd

    found = {}
    for table, columns in (("articles", ["url", "story_id"]), ("duplicates", ["url", "tier", "duplicate_of"])):
        frame = pd.read_parquet(out / table, filters=[("run_id", "==", "sample")], columns=columns)
        found[table] = sorted(map(tuple, frame.astype(str).to_numpy().tolist()))
    return found


def measure(history: Path, scratch: Path, label: str, timeout: float) -> dict:
    """The sample run into a hard-linked copy of `history` (the run adds files, never changes one in place)."""
    out = scratch / label
    shutil.rmtree(out, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(history), str(out)], check=True)
    cmd = [*newsbeam_command(), "run", "--out", str(out), "--run-id", "sample", "-q", "--no-compact"]  # compaction: apart
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    watch = Watch(proc.pid, timeout, 0)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    watch.stop()
    result = {"exit_code": proc.returncode, "wall_seconds": round(wall, 2), "peak_rss_mib": round(watch.peak / 2**20),
              "stderr_tail": err.decode(errors="replace").strip().splitlines()[-5:]}
    manifest_path = out / "runs" / "sample.json"
    if proc.returncode == 0 and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        counts = manifest.get("counts", {})
        result.update({
            "load_stored_seconds": manifest["timings"]["load_stored_seconds"],
            "pipeline_seconds": manifest["timings"]["pipeline_seconds"],
            "links": manifest.get("links"),
            "decisions": decisions(out),
            "read_by_workers": {k: counts.get(k, 0) for k in ("stored_keys_found", "stored_near_read", "stored_near_records",
                                                               "stored_story_read", "stored_story_records")},
        })
    probe = subprocess.run([sys.executable, "-c", LAUNCHER, str(history)], capture_output=True, text=True, timeout=timeout)
    result["launcher"] = json.loads(probe.stdout) if probe.returncode == 0 else {"error": probe.stderr[-500:]}
    shutil.rmtree(out, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="0,100000,1000000", help="stored articles, comma-separated (0 is the baseline)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default="/tmp/newsbeam-history", help="where generated datasets are cached")
    parser.add_argument("--tables-upto", type=int, default=1_000_000,
                        help="sizes above this get keys and state only, no articles table")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--runs", type=int, default=RUNS, help="runs the history is made of (default 365: daily for a year)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--compacted", action="store_true",
                        help="also measure each history after `newsbeam compact` (the targets then apply to those)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {0})
    work = Path(args.work)
    histories = {(n, False): ensure_history(work, n, args.tables_upto, args.seed, args.runs) for n in sizes}
    compactions = {}
    if args.compacted:
        for n in sizes:
            if n:
                histories[(n, True)], compactions[n] = ensure_compacted(histories[(n, False)], args.timeout)
    trials: dict[tuple, list[dict]] = {key: [] for key in histories}
    for trial in range(args.repeat):  # sizes in turn, so drift on a noisy machine spreads over all of them
        for key in sorted(histories):
            n, compacted = key
            result = measure(histories[key], work / "scratch", f"n{n}{'c' if compacted else ''}-t{trial}", args.timeout)
            if result["exit_code"] != 0:
                print(f"N={n:,}: the run failed: {result['stderr_tail']}", file=sys.stderr)
                return 1
            trials[key].append(result)
    base_wall = statistics.median(r["wall_seconds"] for r in trials[(0, False)])
    base_rss = statistics.median(r["peak_rss_mib"] for r in trials[(0, False)])
    rows = []
    for key in sorted(histories):
        n, compacted = key
        runs = trials[key]
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        row = {"stored_articles": n, "compacted": compacted, "compaction": compactions.get(n) if compacted else None,
               "same_decisions": (runs[0]["decisions"] == trials[(n, False)][0]["decisions"]) if compacted else None,
               "wall_seconds": med("wall_seconds"), "wall_ratio": round(med("wall_seconds") / base_wall, 2),
               "peak_rss_mib": med("peak_rss_mib"), "rss_growth_mib": round(med("peak_rss_mib") - base_rss),
               "load_stored_seconds": med("load_stored_seconds"), "pipeline_seconds": med("pipeline_seconds"),
               "launcher_seconds": statistics.median(r["launcher"].get("seconds", float("nan")) for r in runs),
               "launcher_rss_growth_mib": statistics.median(r["launcher"].get("rss_growth_mib", float("nan")) for r in runs),
               "read_by_workers": runs[0]["read_by_workers"], "links": runs[0]["links"], "trials": runs}
        wall_target, rss_target = TARGETS.get(n, (None, None)) if compacted or not args.compacted else (None, None)
        row["meets"] = None if wall_target is None else (
            row["wall_ratio"] <= wall_target and (rss_target is None or row["rss_growth_mib"] <= rss_target))
        rows.append(row)
    print(f"{'stored':>13} {'wall s':>7} {'ratio':>6} {'peak MiB':>9} {'+MiB':>6} {'launcher s':>10} {'launcher +MiB':>13} "
          f"{'near read/kept':>15} {'story read/kept':>16} {'keys found':>10}  target")
    for row in rows:
        read = row["read_by_workers"]
        meets = "" if row["meets"] is None else ("met" if row["meets"] else "MISSED")
        print(f"{row['stored_articles']:>11,}{' c' if row['compacted'] else '  '} {row['wall_seconds']:>7.1f} {row['wall_ratio']:>6.2f} {row['peak_rss_mib']:>9.0f} "
              f"{row['rss_growth_mib']:>6} {row['launcher_seconds']:>10.2f} {row['launcher_rss_growth_mib']:>13.1f} "
              f"{read['stored_near_read']:>8,}/{read['stored_near_records']:<6,} {read['stored_story_read']:>9,}/{read['stored_story_records']:<6,} "
              f"{read['stored_keys_found']:>10,}  {meets}")
    for n, info in compactions.items():
        same = next(row["same_decisions"] for row in rows if row["stored_articles"] == n and row["compacted"])
        print(f"compact at {n:,}: {info['seconds']} s, files {info['files_before']} -> {info['files_after']}, "
              f"rows identical: {info['rows_identical']}, the sample's decisions the same: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=1, default=str))
    return 0 if all(row["meets"] in (None, True) for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
