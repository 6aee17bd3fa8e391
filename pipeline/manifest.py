"""The run manifest (`DIR/runs/RUN_ID.json`) and the closing summary."""

from __future__ import annotations

import platform
from importlib import metadata

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from newsbeam.schemas import SCHEMA_VERSION, TABLES
from newsbeam.transforms.metrics import NAMESPACE
from newsbeam.transforms.write import parquet_rows, run_files_pattern, write_json

_PACKAGES = ("newsbeam", "apache-beam", "feedparser", "trafilatura", "pyarrow", "py3langid")


def beam_metrics(result) -> tuple[dict, dict]:
    """(counters, distributions) of the newsbeam namespace from a finished pipeline result."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counters: dict = {}
    for c in query["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + (value or 0)
    timings = {}
    for d in query["distributions"]:
        value = d.committed if d.committed is not None else d.attempted
        if value and value.count:
            timings[d.key.metric.name] = {
                "count": value.count, "total_ms": value.sum, "mean_ms": round(value.sum / value.count, 1), "max_ms": value.max,
            }
    return dict(sorted(counters.items())), dict(sorted(timings.items()))


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


def written_tables(out: str, run_id: str) -> dict:
    """Files this run wrote, with row counts read back from their footers."""
    tables = {}
    for table in TABLES:
        files, rows = [], 0
        matches = FileSystems.match([run_files_pattern(out, table, run_id)])[0].metadata_list
        for match in sorted(matches, key=lambda m: m.path):
            n = parquet_rows(match.path)
            files.append({"path": match.path, "rows": n})
            rows += n
        tables[table] = {"rows": rows, "files": files}
    return tables


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_manifest(out: str, run_id: str, payload: dict) -> str:
    path = FileSystems.join(out, "runs", f"{run_id}.json")
    write_json(path, {"run_id": run_id, "schema_version": SCHEMA_VERSION, **payload, "versions": versions()})
    return path


def feed_health(rows: list[dict]) -> dict:
    """The feeds' health after a run, from the feed-state rows it wrote: counts by outcome, the feeds
    backing off and the feeds whose validators are not trusted."""
    by_status: dict = {}
    for row in rows:
        by_status[row["last_status"]] = by_status.get(row["last_status"], 0) + 1
    failing = sorted((r for r in rows if r["consecutive_failures"]), key=lambda r: (-r["consecutive_failures"], r["feed_url"]))
    return {
        "by_status": dict(sorted(by_status.items())),
        "failing": [
            {"feed_url": r["feed_url"], "consecutive_failures": r["consecutive_failures"], "last_error": r["last_error"],
             "last_success_at": _iso(r["last_success_at"]), "next_poll_at": _iso(r["next_poll_at"])}
            for r in failing
        ],
        "unconditional": [{"feed_url": r["feed_url"], "why": r["conditional_note"]} for r in rows if not r["conditional"]],
    }


def _iso(value):
    return value.isoformat() if value is not None else None


def summary_line(manifest: dict) -> str:
    counts, links = manifest["counts"], manifest["links"]
    feeds_ok = counts.get("feeds_fetched", 0)
    feeds_failed = counts.get("feeds_failed", 0) + counts.get("feeds_invalid", 0)
    unchanged = counts.get("feeds_not_modified", 0) + counts.get("feeds_unchanged", 0)
    waiting = counts.get("feeds_skipped", 0)
    return (
        f"run {manifest['run_id']} {manifest['status']} in {manifest['timings']['total_seconds']:.1f} s: "
        f"{feeds_ok} feeds read ({unchanged} unchanged, {feeds_failed} failed"
        + (f", {waiting} backing off" if waiting else "")
        + f"), {links['discovered']} links -> "
        f"{links['articles']} articles, {links['duplicates']} duplicates, {links['errors']} errors, "
        f"{links['already_stored']} already stored"
    )
