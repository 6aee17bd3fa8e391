"""Whole-pipeline throughput against a plain trafilatura loop, as a ratio measured in one run.

The 258 real news pages of the fundus corpus (gzipped HTML in ../shared/corpora/fundus, relative
to the repository root) become a
local news web in a temporary folder: one .html file per page, a few RSS 2.0 feeds whose items
link to the pages with relative links, and a plain-text feed list naming the feeds. Then, in
one process and interleaved (baseline, in_process, multi_processing, baseline, ...):

- baseline: `trafilatura.extract(html, include_comments=False)` over the page bytes, which are
  read into memory first (the baseline does no file reading; the pipeline reads every file);
- in_process: `run_job` with Beam's default in-process runner;
- multi_processing: `run_job` with `--direct_running_mode=multi_processing --direct_num_workers=2`
  (and `--default_sdk_harness_log_level=ERROR`, which only quiets the worker processes' logs;
  each worker still prints two lines at start-up, before it has read the options).

Each pipeline run writes into a fresh output folder. The table shows the median seconds of
--repeat runs, docs/s (input pages / seconds), the ratio to the baseline's docs/s, and the
peak RSS of this process so far (a high-water mark; multi_processing's worker processes are
not included, as getrusage's figure for children starts from the launcher's RSS at fork). The
pipeline's manifest counts (articles, duplicates, errors by stage) show every page was handled.

    python benchmarks/pipeline_throughput.py [--corpus PATH] [--repeat N] [--json] [--profile]

--profile also runs the in-process pipeline once under cProfile and prints (to stderr) the
top 15 entries by cumulative time outside Beam's own code.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

# Before Beam is imported: it logs a warning about optional cloud clients at import time.
logging.basicConfig(level=logging.ERROR)
for _name in ("trafilatura", "htmldate", "courlan", "apache_beam"):
    logging.getLogger(_name).setLevel(logging.ERROR)

import pyarrow.parquet as pq  # noqa: E402
import trafilatura  # noqa: E402

from newsbeam.pipeline.config import RunConfig  # noqa: E402
from newsbeam.pipeline.job import run_job  # noqa: E402
from newsbeam.transforms.sources import read_sources  # noqa: E402

DEFAULT_CORPUS = "../shared/corpora/fundus"  # relative to the repository root
REPO = Path(__file__).resolve().parents[1]
FEEDS = 4
QUIET_WORKERS = ["--default_sdk_harness_log_level=ERROR"]  # worker processes log INFO to stderr otherwise
MODES = {
    "in_process": [],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2", *QUIET_WORKERS],
}


def load_pages(corpus: Path) -> list[tuple[str, bytes]]:
    """(relative .html path, page bytes) for every page the manifest lists."""
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return [(row["html"].removesuffix(".gz"), gzip.decompress((corpus / row["html"]).read_bytes())) for row in rows]


def build_web(pages: list[tuple[str, bytes]], folder: Path) -> Path:
    """Pages as files, FEEDS RSS files linking them relatively, and the feed list; returns the list's path."""
    for name, html in pages:
        path = folder / "pages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(html)
    feed_names = []
    for i in range(FEEDS):
        items = "".join(
            f"<item><title>{escape(name)}</title><link>pages/{escape(name)}</link>"
            f'<guid isPermaLink="false">{escape(name)}</guid></item>'
            for name, _ in pages[i::FEEDS]
        )
        feed_names.append(f"feed-{i + 1}.xml")
        (folder / feed_names[-1]).write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>fundus {i + 1}</title><link>http://example.invalid/</link>"
            f"<description>benchmark feed</description>{items}</channel></rss>",
            encoding="utf-8",
        )
    feeds_list = folder / "feeds.txt"
    feeds_list.write_text("\n".join(feed_names) + "\n")
    return feeds_list


def run_baseline(pages: list[tuple[str, bytes]]) -> tuple[float, int]:
    t0 = time.perf_counter()
    texts = [trafilatura.extract(html, include_comments=False) for _, html in pages]
    return time.perf_counter() - t0, sum(1 for t in texts if t)


def run_pipeline(feeds_list: Path, out: Path, beam_args: list[str]) -> tuple[float, dict]:
    config = RunConfig(feeds=read_sources(str(feeds_list)), feeds_location=str(feeds_list), out=str(out), run_id="bench")
    t0 = time.perf_counter()
    manifest = run_job(config, beam_args)
    return time.perf_counter() - t0, manifest


def outcome(manifest: dict) -> dict:
    """Where the run's links ended, with errors counted by stage and kind."""
    errors: dict[str, int] = {}
    for f in manifest["tables"]["errors"]["files"]:
        for row in pq.read_table(f["path"], columns=["stage", "error"]).to_pylist():
            key = f"{row['stage']}/{row['error']}"
            errors[key] = errors.get(key, 0) + 1
    links = manifest["links"]
    return {k: links[k] for k in ("discovered", "articles", "duplicates", "errors", "balanced")} | {"errors_by_stage": errors}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def profile_in_process(feeds_list: Path, out: Path) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run_pipeline, feeds_list, out, [])
    # Beam's own frames wrap everything; leave them out to see newsbeam's stages and the libraries.
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(r"^(?!.*apache_beam)", 15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO / DEFAULT_CORPUS), help=f"fundus corpus folder (default: {DEFAULT_CORPUS})")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode; medians are reported (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--profile", action="store_true", help="also profile one in-process pipeline run")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not (corpus / "manifest.jsonl").is_file():
        shown = DEFAULT_CORPUS if args.corpus == str(REPO / DEFAULT_CORPUS) else args.corpus
        print(f"skipped: {shown} not found; pass --corpus")
        return 0

    pages = load_pages(corpus)
    with tempfile.TemporaryDirectory(prefix="newsbeam-bench-") as tmp:
        feeds_list = build_web(pages, Path(tmp) / "web")
        seconds: dict[str, list[float]] = {"baseline": [], **{m: [] for m in MODES}}
        rss: dict[str, float] = {}
        results: dict[str, dict] = {}
        for i in range(args.repeat):
            s, extracted = run_baseline(pages)
            seconds["baseline"].append(s)
            rss["baseline"] = max(rss.get("baseline", 0), peak_rss_mib())
            results["baseline"] = {"texts": extracted}
            for mode, beam_args in MODES.items():
                s, manifest = run_pipeline(feeds_list, Path(tmp) / f"out-{mode}-{i}", beam_args)
                seconds[mode].append(s)
                rss[mode] = max(rss.get(mode, 0), peak_rss_mib())
                results[mode] = outcome(manifest)
            print(f"round {i + 1}/{args.repeat}: " + ", ".join(f"{m} {v[-1]:.1f} s" for m, v in seconds.items()), file=sys.stderr)
        if args.profile:
            profile_in_process(feeds_list, Path(tmp) / "out-profile")

    docs = len(pages)
    base_rate = docs / statistics.median(seconds["baseline"])
    rows = []
    for mode, runs in seconds.items():
        median = statistics.median(runs)
        rows.append({"mode": mode, "docs": docs, "seconds": round(median, 2), "runs": [round(s, 2) for s in runs],
                     "docs_per_s": round(docs / median, 2), "ratio": round(docs / median / base_rate, 3),
                     "peak_rss_mib": round(rss[mode]), **results[mode]})
    if args.json:
        print(json.dumps({"rows": rows, "repeat": args.repeat}, indent=2))
        return 0
    print(f"{'mode':<17} {'docs':>5} {'seconds':>8} {'docs/s':>7} {'ratio':>6} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['mode']:<17} {r['docs']:>5} {r['seconds']:>8.2f} {r['docs_per_s']:>7.2f} {r['ratio']:>6.3f} {r['peak_rss_mib']:>13}")
    print("(peak RSS: this process's high-water mark so far; multi_processing's workers not included)")
    print(f"baseline: {results['baseline']['texts']}/{docs} pages gave text")
    for mode in MODES:
        r = results[mode]
        print(f"{mode}: {r['discovered']} links -> {r['articles']} articles, {r['duplicates']} duplicates, "
              f"{r['errors']} errors {r['errors_by_stage'] or ''}; balanced={r['balanced']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
