"""Robustness of the feed parsing stage (transforms/feeds.py parse_feed) over real, often ill-formed feeds.

Every feed file of ../shared/corpora/feedparser-tests (feedparser's own test suite: well-formed and
ill-formed RSS, Atom, RDF and CDF, odd encodings, entities, one JSON feed) and of
../shared/corpora/feed-rs-fixtures (feed-rs's fixtures, many trimmed real-world feeds), relative to the
repository root, goes through parse_feed(body, feed_url, spec, content_type) as FetchFeeds calls it:
feed_url is a fake http://feeds.example/<path under the corpora folder>, spec has that url and no
name, category, language or max_entries, and content_type is "" unless the file is one of
feedparser's HTTP cases, whose leading XML comment carries a `Header: Content-type: ...` line: then
that value is passed, as a server would send it. Licence files and feed-rs's expected-output files
(*.serde.json) are not feeds and are left out; --include-non-feeds parses them too, in a row of their own.

Each file is parsed in one worker process with a time limit (--timeout, 10 s): a file that takes
longer is a hang, the worker is killed and a new one started; a worker that dies is a crash. An
outcome is one of:

- entries: parse_feed returned at least one entry (with or without a warning: "warned" counts those
  with at least one warning);
- no entries: it returned an empty list (a feed with no items);
- FeedError by kind (not_a_feed, malformed_feed, ...): the document was rejected, the way FetchFeeds
  expects (an error row, not a crash);
- crash: any other exception, or the worker died;
- hang: no answer within the time limit.

Every entry is checked: `published_at` is None or a timezone-aware datetime (naive datetimes are
counted; any other type is a bad date) and `link` is None or a str (anything else is a bad link).
Reported per corpus folder (feedparser-tests/wellformed, illformed, encoding, entities, json, and
feed-rs-fixtures): files, each outcome, entries, entries with a date, naive dates; then the total
wall time (worker start-up included) and the slowest files by parse time (inside the worker).
Exit code 1 on any crash, hang, naive date, bad date or bad link; else 0. When neither corpus folder
is there, one `skipped:` line is printed and the exit code is 0.

    python benchmarks/feed_robustness.py [--corpora DIR] [--timeout S] [--json] [--include-non-feeds]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from corpus import REPO

DEFAULT_CORPORA = "../shared/corpora"  # relative to the repository root
CORPORA = ("feedparser-tests", "feed-rs-fixtures")
GROUPS = ("feedparser-tests/wellformed", "feedparser-tests/illformed", "feedparser-tests/encoding",
          "feedparser-tests/entities", "feedparser-tests/json", "feed-rs-fixtures")
NON_FEEDS = "non-feed files"  # the row of --include-non-feeds
FAKE_HOST = "http://feeds.example/"
SLOWEST = 5
WORKER_START_TIMEOUT = 180.0  # seconds for a fresh worker to import newsbeam (Beam is slow to import on a busy box)
HEADER = re.compile(rb"^Header:\s*([^:\r\n]+?)\s*:(.*)$", re.MULTILINE)


def is_feed_file(path: Path) -> bool:
    """Licence files and feed-rs's expected parse results (*.serde.json) are not feeds."""
    return not path.name.upper().startswith("LICENSE") and not path.name.endswith(".serde.json")


def group_of(rel: Path) -> str:
    if rel.parts[0] == "feedparser-tests" and len(rel.parts) > 2:
        return "/".join(rel.parts[:2])
    return rel.parts[0]


def declared_content_type(body: bytes) -> str:
    """The `Header: Content-type:` value of a feedparser test's leading XML comment, else ""."""
    start = body.find(b"<!--")
    end = body.find(b"-->", start)
    if start < 0 or end < 0 or start > 1024:
        return ""
    comment = body[start:end].replace(b"\x00", b"")  # UTF-16/32 files: their comment is ASCII once NULs go
    for name, value in HEADER.findall(comment):
        if name.strip().lower() == b"content-type":
            return value.strip().decode("latin-1")
    return ""


# ---------- worker side ----------

def _serve(conn) -> None:
    """Worker loop: import parse_feed once, then answer one (path, rel) task at a time."""
    import logging

    logging.disable(logging.CRITICAL)  # Beam and feedparser log at import; nothing here is for the report
    from newsbeam.transforms.feeds import FeedError, parse_feed

    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(check_file(*task, parse_feed=parse_feed, feed_error=FeedError))


def check_file(path: str, rel: str, *, parse_feed, feed_error) -> dict:
    body = Path(path).read_bytes()
    content_type = declared_content_type(body)
    feed_url = FAKE_HOST + rel
    spec = {"url": feed_url, "name": None, "category": None, "language": None, "max_entries": None}
    result = {"content_type": content_type}
    started = time.perf_counter()
    try:
        entries, warnings = parse_feed(body, feed_url, spec, content_type)
    except feed_error as exc:
        result.update(outcome="feed_error", kind=exc.error, message=_first_line(exc.message))
    except Exception as exc:  # noqa: BLE001 - that is what is counted
        result.update(outcome="crash", exc_type=type(exc).__name__, message=_first_line(str(exc)))
    else:
        result.update(outcome="entries" if entries else "no_entries", entries=len(entries), warned=bool(warnings))
        dated = naive = bad_dates = bad_links = 0
        for entry in entries:
            published = entry.get("published_at")
            if published is not None:
                if not isinstance(published, datetime):
                    bad_dates += 1
                elif published.utcoffset() is None:
                    naive += 1
                else:
                    dated += 1
            link = entry.get("link")
            if link is not None and not isinstance(link, str):
                bad_links += 1
        result.update(dated=dated, naive=naive, bad_dates=bad_dates, bad_links=bad_links)
    result["seconds"] = time.perf_counter() - started
    return result


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


# ---------- parent side ----------

class Worker:
    """One worker process fed through a pipe; killed and replaced when it overruns or dies."""

    def __init__(self):
        self._ctx = multiprocessing.get_context("spawn")  # a clean process: nothing inherited from this one
        self.proc = self.conn = None
        self.starts = 0

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        self.proc = self._ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.starts += 1
        if not self.conn.poll(WORKER_START_TIMEOUT) or self.conn.recv() != "ready":
            raise RuntimeError("the worker process did not start (could not import newsbeam.transforms.feeds?)")

    def run(self, path: Path, rel: str, timeout: float) -> dict:
        if self.proc is None:
            self._start()
        self.conn.send((str(path), rel))
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()
            outcome = {"outcome": "hang", "seconds": timeout}
        except (EOFError, ConnectionError):
            self.proc.join(5)
            outcome = {"outcome": "crash", "exc_type": "worker died", "message": f"exit code {self.proc.exitcode}",
                       "seconds": None}
        self.stop()
        return outcome

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()
        self.proc = self.conn = None

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, ValueError):
                pass
        self.stop()


def feed_files(corpora: Path, include_non_feeds: bool) -> list[tuple[Path, str, str]]:
    """(path, relative path, report group) of every file to parse, in a stable order."""
    files = []
    for name in CORPORA:
        for path in sorted((corpora / name).rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(corpora)
            if is_feed_file(path):
                files.append((path, rel.as_posix(), group_of(rel)))
            elif include_non_feeds:
                files.append((path, rel.as_posix(), NON_FEEDS))
    return files


def empty_row() -> dict:
    return {"files": 0, "entries_files": 0, "warned": 0, "no_entries": 0, "feed_error": Counter(), "crashes": 0,
            "hangs": 0, "entries": 0, "dated": 0, "naive": 0, "bad_dates": 0, "bad_links": 0}


def add(row: dict, r: dict) -> None:
    row["files"] += 1
    outcome = r["outcome"]
    if outcome == "entries":
        row["entries_files"] += 1
    elif outcome == "no_entries":
        row["no_entries"] += 1
    elif outcome == "feed_error":
        row["feed_error"][r["kind"]] += 1
    elif outcome == "crash":
        row["crashes"] += 1
    elif outcome == "hang":
        row["hangs"] += 1
    row["warned"] += bool(r.get("warned"))
    for key in ("entries", "dated", "naive", "bad_dates", "bad_links"):
        row[key] += r.get(key, 0)


def run(corpora: Path, timeout: float, include_non_feeds: bool, progress) -> dict:
    files = feed_files(corpora, include_non_feeds)
    results = []
    worker = Worker()
    started = time.perf_counter()
    try:
        for i, (path, rel, group) in enumerate(files, 1):
            results.append({"file": rel, "group": group} | worker.run(path, rel, timeout))
            if progress and i % 250 == 0:
                print(f"  {i}/{len(files)} files, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        worker.close()
    wall = time.perf_counter() - started

    rows = {g: empty_row() for g in GROUPS if (corpora / g).is_dir()}
    total = empty_row()
    for r in results:
        add(rows.setdefault(r["group"], empty_row()), r)
        add(total, r)
    for row in [*rows.values(), total]:
        row["feed_error"] = dict(sorted(row["feed_error"].items()))
    timed = sorted((r for r in results if r["seconds"] is not None), key=lambda r: -r["seconds"])
    failures = [r for r in results if r["outcome"] in ("crash", "hang") or r.get("naive") or r.get("bad_dates")
                or r.get("bad_links")]
    return {
        "corpora": str(corpora),
        "timeout_s": timeout,
        "worker_starts": worker.starts,
        "wall_s": round(wall, 2),
        "parse_s": round(sum(r["seconds"] for r in timed), 2),
        "groups": rows,
        "total": total,
        "slowest": [{"file": r["file"], "seconds": round(r["seconds"], 3), "outcome": r["outcome"]} for r in timed[:SLOWEST]],
        "failures": [{k: r[k] for k in ("file", "outcome", "exc_type", "message", "naive", "bad_dates", "bad_links")
                      if r.get(k) not in (None, 0)} for r in failures],
        "ok": not failures,
    }


def print_report(report: dict) -> None:
    kinds = sorted({k for row in [*report["groups"].values(), report["total"]] for k in row["feed_error"]})
    heads = ["folder", "files", "entries", "warned", "empty"] + [f"FE:{k}" for k in kinds] + \
            ["crash", "hang", "n_entries", "dated", "naive"]
    width = max(len(g) for g in [*report["groups"], "total"])
    line = lambda cells: f"{cells[0]:<{width}}" + "".join(f" {c:>{max(len(h), 5)}}" for c, h in zip(cells[1:], heads[1:]))
    print(f"parse_feed over {report['corpora']} (1 worker, {report['timeout_s']:g} s per file)")
    print("entries = files parsed with entries (warned: of them, with a warning); empty = parsed, no entries;")
    print("FE:<kind> = FeedError of that kind; n_entries / dated / naive = entries, with a tz-aware date, with a naive date")
    print()
    print(line(heads))
    for name, row in [*report["groups"].items(), ("total", report["total"])]:
        print(line([name, row["files"], row["entries_files"], row["warned"], row["no_entries"],
                    *(row["feed_error"].get(k, 0) for k in kinds),
                    row["crashes"], row["hangs"], row["entries"], row["dated"], row["naive"]]))
    total = report["total"]
    if total["bad_dates"] or total["bad_links"]:
        print(f"published_at neither None nor datetime: {total['bad_dates']}; link neither None nor str: {total['bad_links']}")
    print()
    print(f"wall time {report['wall_s']:.1f} s (parse time in the worker {report['parse_s']:.1f} s,"
          f" worker started {report['worker_starts']} time(s))")
    print(f"slowest {len(report['slowest'])} files:")
    for r in report["slowest"]:
        print(f"  {r['seconds']:8.3f} s  {r['file']}  ({r['outcome']})")
    print()
    if report["ok"]:
        print("OK: no crash, no hang, no naive date, no bad date or link type")
        return
    print(f"FAILED: {len(report['failures'])} file(s)")
    for f in report["failures"]:
        if f["outcome"] == "crash":
            print(f"  crash  {f['file']}: {f['exc_type']}: {f.get('message', '')}")
        elif f["outcome"] == "hang":
            print(f"  hang   {f['file']}: no result within {report['timeout_s']:g} s")
        else:
            print(f"  entry  {f['file']}: naive dates {f.get('naive', 0)}, bad dates {f.get('bad_dates', 0)},"
                  f" bad links {f.get('bad_links', 0)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(REPO / DEFAULT_CORPORA),
                        help=f"folder holding feedparser-tests/ and feed-rs-fixtures/ (default: {DEFAULT_CORPORA})")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per file before it counts as a hang (default 10)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--include-non-feeds", action="store_true",
                        help="also parse the licence files and feed-rs's *.serde.json expected outputs (own row)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    corpora = Path(args.corpora)
    present = [name for name in CORPORA if (corpora / name).is_dir()]
    if not present:
        shown = DEFAULT_CORPORA if args.corpora == str(REPO / DEFAULT_CORPORA) else args.corpora
        print(f"skipped: {shown} has neither {' nor '.join(CORPORA)} (the shared corpora are not on this machine); pass --corpora")
        return 0
    for name in CORPORA:
        if name not in present:
            print(f"note: {corpora / name} not found; its files are left out", file=sys.stderr)

    report = run(corpora.resolve(), args.timeout, args.include_non_feeds, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
