"""Whole-pipeline throughput against a plain trafilatura loop, as a ratio measured in one run.

The 258 real news pages of the fundus corpus and the 793 of wcxb-dev (gzipped HTML in
../shared/corpora/fundus and ../shared/corpora/wcxb-dev-articles, relative to the repository root;
--wcxb '' for fundus alone) become a local news web in a temporary folder: one .html file per
page, a few RSS 2.0 feeds whose items link to the pages with relative links, and a plain-text feed
list naming the feeds (the pages' original URLs are not used: the pipeline gives trafilatura
the file:// URL). Then, in one process and interleaved (baseline, default, one_process,
multi_processing, baseline, ...):

- baseline: `trafilatura.extract(html, include_comments=False)` over the page bytes, which are
  read into memory first (the baseline does no file reading; the pipeline reads every file);
- default: `run_job` as `newsbeam run` runs it: Beam's in-process runner, extraction in a pool of
  one process per usable core (transforms/extract_pool.py);
- one_process: the same with `extract_processes=1` (`--extract-processes 1`): extraction in place;
- multi_processing: `run_job` with `--direct_running_mode=multi_processing --direct_num_workers=2`
  (and `--default_sdk_harness_log_level=ERROR`, which only quiets the worker processes' logs;
  each worker still prints two lines at start-up, before it has read the options).

Each pipeline run writes into a fresh output folder. The table shows the median seconds of
--repeat runs, docs/s (input pages / seconds), the ratio to the baseline's docs/s, the median
CPU seconds (user + system of this process and its finished children: multi_processing's workers
are counted, the extraction pool's are not, as they are the forkserver's children), and this
process's peak RSS after each mode's first run (a high-water mark, so it includes the modes run
before; worker processes are not included). The pipeline's manifest counts (articles, duplicates,
errors by stage) show every page was handled.

    python benchmarks/pipeline_throughput.py [--corpus PATH] [--wcxb PATH] [--repeat N] [--json] [--profile]

--profile also runs the in-process pipeline once under cProfile and prints (to stderr) the
top 15 entries by cumulative time outside Beam's own code.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
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

from corpus import DEFAULT_WCXB, REPO, corpus_or_skip, corpus_parser, wcxb_pages  # noqa: E402
from dedup_scale import Watch, tree_cpu  # noqa: E402
FEEDS = 4
QUIET_WORKERS = ["--default_sdk_harness_log_level=ERROR"]  # worker processes log INFO to stderr otherwise
MODES = {  # mode: (Beam options, extract_processes)
    "default": ([], None),  # in-process runner, extraction pool of one process per usable core
    "one_process": ([], 1),  # in-process runner, extraction in the runner's process (--extract-processes 1)
    "multi_processing": (["--direct_running_mode=multi_processing", "--direct_num_workers=2", *QUIET_WORKERS], None),
}


def load_pages(corpus: Path, wcxb: Path | None = None) -> list[tuple[str, bytes]]:
    """(relative .html path, page bytes) for every page fundus's manifest lists, then wcxb-dev's pages if given."""
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    pages = [(row["html"].removesuffix(".gz"), gzip.decompress((corpus / row["html"]).read_bytes())) for row in rows]
    if wcxb is not None:
        pages += [(f"wcxb/{page['name']}.html", page["bytes"]) for page in wcxb_pages(wcxb)]
    return pages


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


class Clock:
    """Wall seconds (perf_counter), CPU seconds of this process's tree (the extraction pool's workers and the
    forkserver that starts them, multi_processing's workers), and the tree's peak RSS (sampled every 0.2 s)."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), tree_cpu(os.getpid())
        self._watch = Watch(os.getpid(), 0, 0)
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.t0, tree_cpu(os.getpid()) - self.c0
        self._watch.stop()
        self.peak_mib = self._watch.peak / 2**20


def run_baseline(pages: list[tuple[str, bytes]]) -> tuple[Clock, int]:
    with Clock() as clock:
        texts = [trafilatura.extract(html, include_comments=False) for _, html in pages]
    return clock, sum(1 for t in texts if t)


def run_pipeline(feeds_list: Path, out: Path, beam_args: list[str], processes: int | None = None) -> tuple[Clock, dict]:
    config = RunConfig(feeds=read_sources(str(feeds_list)), feeds_location=str(feeds_list), out=str(out), run_id="bench",
                       extract_processes=processes)
    with Clock() as clock:
        manifest = run_job(config, beam_args)
    return clock, manifest


def outcome(manifest: dict) -> dict:
    """Where the run's links ended, with errors counted by stage and kind."""
    errors: dict[str, int] = {}
    for f in manifest["tables"]["errors"]["files"]:
        for row in pq.read_table(f["path"], columns=["stage", "error"]).to_pylist():
            key = f"{row['stage']}/{row['error']}"
            errors[key] = errors.get(key, 0) + 1
    links = manifest["links"]
    return {k: links[k] for k in ("discovered", "articles", "duplicates", "errors", "balanced")} | {"errors_by_stage": errors}


def profile_in_process(feeds_list: Path, out: Path) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run_pipeline, feeds_list, out, [])
    # Beam's own frames wrap everything; leave them out to see newsbeam's stages and the libraries.
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(r"^(?!.*apache_beam)", 15)


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=2)
    parser.add_argument("--profile", action="store_true", help="also profile one in-process pipeline run")
    parser.add_argument("--wcxb", default=str(REPO / DEFAULT_WCXB),
                        help=f"wcxb-dev corpus folder, its pages served beside fundus's (default: {DEFAULT_WCXB}; '' for none)")
    args = parser.parse_args(argv)
    corpus = corpus_or_skip(parser, args)
    if corpus is None:
        return 0

    wcxb = Path(args.wcxb) if args.wcxb else None
    if wcxb is not None and not (wcxb / "ground-truth").is_dir():
        print(f"wcxb-dev not found at {wcxb}: fundus only (pass --wcxb PATH, or --wcxb '' for fundus alone)", file=sys.stderr)
        wcxb = None
    pages = load_pages(corpus, wcxb)
    with tempfile.TemporaryDirectory(prefix="newsbeam-bench-") as tmp:
        feeds_list = build_web(pages, Path(tmp) / "web")
        clocks: dict[str, list[Clock]] = {"baseline": [], **{m: [] for m in MODES}}
        results: dict[str, dict] = {}
        for i in range(args.repeat):
            clock, extracted = run_baseline(pages)
            clocks["baseline"].append(clock)
            results["baseline"] = {"texts": extracted}
            for mode, (beam_args, processes) in MODES.items():
                clock, manifest = run_pipeline(feeds_list, Path(tmp) / f"out-{mode}-{i}", beam_args, processes)
                clocks[mode].append(clock)
                results[mode] = outcome(manifest)
            print(f"round {i + 1}/{args.repeat}: " + ", ".join(f"{m} {c[-1].wall:.1f} s" for m, c in clocks.items()), file=sys.stderr)
        if args.profile:
            profile_in_process(feeds_list, Path(tmp) / "out-profile")

    docs = len(pages)
    base_rate = docs / statistics.median(c.wall for c in clocks["baseline"])
    rows = []
    for mode, runs in clocks.items():
        median = statistics.median(c.wall for c in runs)
        rows.append({"mode": mode, "docs": docs, "seconds": round(median, 2), "runs": [round(c.wall, 2) for c in runs],
                     "docs_per_s": round(docs / median, 2), "ratio": round(docs / median / base_rate, 3),
                     "cpu_seconds": round(statistics.median(c.cpu for c in runs), 2),
                     "cpu_ms_per_page": round(statistics.median(c.cpu for c in runs) / docs * 1000, 1),
                     "peak_rss_mib": round(statistics.median(c.peak_mib for c in runs)), **results[mode]})
    if args.json:
        print(json.dumps({"rows": rows, "repeat": args.repeat}, indent=2))
        return 0
    print(f"{'mode':<17} {'docs':>5} {'seconds':>8} {'docs/s':>7} {'ratio':>6} {'CPU s':>6} {'CPU ms/page':>11} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['mode']:<17} {r['docs']:>5} {r['seconds']:>8.2f} {r['docs_per_s']:>7.2f} {r['ratio']:>6.3f} "
              f"{r['cpu_seconds']:>6.1f} {r['cpu_ms_per_page']:>11.1f} {r['peak_rss_mib']:>13}")
    print(f"(medians of {args.repeat} runs; CPU and peak RSS of the whole process tree: this process, the extraction pool's")
    print(" workers and their forkserver, multi_processing's workers; RSS sampled every 0.2 s)")
    print(f"baseline: {results['baseline']['texts']}/{docs} pages gave text")
    for mode in MODES:
        r = results[mode]
        print(f"{mode}: {r['discovered']} links -> {r['articles']} articles, {r['duplicates']} duplicates, "
              f"{r['errors']} errors {r['errors_by_stage'] or ''}; balanced={r['balanced']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
