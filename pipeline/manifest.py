"""What the launcher adds to a run's manifest (`DIR/runs/RUN_ID.json`, written by the run's commit): Beam's
counters and timings, and the closing summary line."""

from __future__ import annotations

from apache_beam.metrics.metric import MetricsFilter

from newsbeam.transforms.metrics import NAMESPACE


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
