"""Peak memory of `newsbeam run` against the number of pages in the run: the whole process tree, sampled.

The issue's targets (17): the peak RSS of the whole process tree (the extraction pool's workers
included) grows by at most 30 MiB per 1,000 pages between a 2,000-page and a 10,000-page run, and
a 50,000-link run stays under 3 GB (taken as 3,072 MiB).

The pages. The real pages are fundus's 258 and wcxb-dev's 793 (gzipped HTML in
../shared/corpora/fundus and ../shared/corpora/wcxb-dev-articles, relative to the repository root;
--wcxb '' for fundus alone), P = 1,051 in that order (pipeline_throughput.load_pages). Page j of a
run of N is copy k = j // P of real page j % P. Copy 0 is the real page, byte for byte. A copy
k >= 1 is the real page with its text made distinct and its markup kept:

- words replaced: in the text outside tags, comments, <script> and <style> (the <title> and every
  heading and paragraph included), the words (\\w+ runs, as the near tier counts them; character
  references such as &amp; are left alone) are counted through the document, and every 4th one
  (which of the 4 depends on k) is replaced by a word drawn at random from the page's own words of
  3 or more characters (seeded by the page's index and k, so a size always gives the same pages;
  the extracted text comes out about 5% longer than the real page's). Every run of 4 words then
  holds a replaced word, so a copy shares next to no 4-word shingle with the real page or another
  copy: neither the exact tier nor the near tier (MinHash over 4-word shingles) has a copy to find
  (but see cn/People_2024_04_24 below), and the text stays in the page's language and script;
- a distinct title: "Copy k: " before the <title>'s text, the og:title and twitter:title metas'
  content and every JSON-LD "headline";
- its own canonical URL: the rel=canonical link and the og:url meta are removed, so the page's
  canonical URL is its own file:// URL (the url tier would take it for the real page otherwise);
- its own file: pages/cKKK/NAME (copy 0 at pages/c000/NAME).

Pages not valid UTF-8 round-trip through surrogateescape (the corpora have none today). What the
real pages do stays in the runs and shows in the duplicates and errors columns: pages that give no
text (about 1 in 360: an error row for each copy too), two real pages whose canonical URL another
real page has (2 url-tier duplicates, once a run), and fundus's cn/People_2024_04_24, stored as
UTF-8 but declaring GB2312: newsbeam decodes it by its <meta>, and the garbled texts of its copies
are near copies of one another (about 1 near-tier duplicate per 1,500 pages).

The news web, as in benchmarks/pipeline_throughput.py: the pages of the largest size are written
once to a folder (a temporary one, or --keep DIR), and for each size N, FEEDS RSS 2.0 files whose
items link the first N pages with relative links (page j in feed j mod FEEDS, no dates and no
descriptions), and a plain-text feed list naming them. For each size of --sizes, smallest first,
--repeat times, interleaved, `newsbeam run --feeds LIST --out OUT --run-id mem-N -q --no-compact`
(the CLI of the Python this script runs under, default options: the extraction pool of one process
per usable core) runs as a subprocess in its own session, into a fresh OUT. Measured:

- wall seconds from start to exit, Python and Beam start-up included;
- the peak RSS of the whole process tree: every process's RSS from /proc, summed, sampled every
  0.2 s (dedup_scale.Watch): a spike between samples can be missed, and a page shared by two
  processes (the pool's workers are forked) counts once in each; the most processes seen at once;
  the largest single process's peak RSS (wait4's ru_maxrss);
- from the run's manifest (OUT/runs/mem-N.json): links discovered, articles and duplicates
  written, the entry errors; from its errors table, the error rows by stage and kind. Balanced:
  articles + duplicates + the error rows of the page stages (every stage but the feed stages) =
  N, the links put in the feeds (the manifest's own `balanced` is shown beside it).

A run is killed (its process group) past --rss-limit-mib or --timeout seconds and reported as
killed; larger sizes are then not run. The slope is (peak b - peak a) / (b - a) * 1,000 MiB per
1,000 pages between the 2,000 and 10,000 runs when both were run, otherwise the smallest and the
largest size run, medians over --repeat; each run of 50,000 pages or more is checked against
3,072 MiB. PASS/FAIL lines are printed for both targets where the sizes were run.

    python benchmarks/memory_scale.py [--corpus PATH] [--wcxb PATH] [--sizes 2000,10000] [--repeat N]
        [--rss-limit-mib 12000] [--timeout S] [--json] [--keep DIR]
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow.parquet as pq
from corpus import DEFAULT_WCXB, REPO, corpus_or_skip, corpus_parser, parse_sizes
from dedup_scale import measured, newsbeam_command
from newsbeam.transforms.errors import FEED_STAGES
from pipeline_throughput import load_pages

FEEDS = 20
DEFAULT_SIZES = "2000,10000"
SLOPE_SIZES = (2000, 10000)
SLOPE_TARGET_MIB = 30  # per 1,000 pages
BIG_SIZE = 50_000
BIG_TARGET_MIB = 3072  # 3 GB
EVERY = 4  # every 4th word of a copy is replaced: each 4-word shingle holds one
MIN_VOCAB = 50
SEED = 17

_OPAQUE = re.compile(r"<!--.*?-->|<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!\[CDATA\[.*?\]\]>|<[^>]*>",
                     re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"&#?\w+;|\w+")
_TITLE = re.compile(r"(<title\b[^>]*>\s*)", re.IGNORECASE)
_META = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_TITLE_META = re.compile(r"""(?:property|name)\s*=\s*["']?(?:og:title|twitter:title)\b""", re.IGNORECASE)
_URL_META = re.compile(r"""(?:property|name)\s*=\s*["']?og:url\b""", re.IGNORECASE)
_CANONICAL = re.compile(r"""\brel\s*=\s*["']?canonical\b""", re.IGNORECASE)
_CONTENT = re.compile(r"""(\bcontent\s*=\s*["'])""", re.IGNORECASE)
_HEADLINE = re.compile(r'("headline"\s*:\s*")')


# ---------------------------------------------------------------- the pages

def _text_spans(html: str) -> list[tuple[int, int]]:
    """(start, end) of the text between tags, comments, scripts and styles, in document order."""
    spans, at = [], 0
    for m in _OPAQUE.finditer(html):
        if m.start() > at:
            spans.append((at, m.start()))
        at = m.end()
    if at < len(html):
        spans.append((at, len(html)))
    return spans


def distinct_copy(html_bytes: bytes, page: int, copy: int) -> bytes:
    """Copy `copy` (>= 1) of real page number `page`: every EVERY-th word replaced, a distinct title, no canonical."""
    html = html_bytes.decode("utf-8", "surrogateescape")
    spans = _text_spans(html)
    vocab = sorted({w for a, b in spans for w in _WORD.findall(html, a, b) if not w.startswith("&") and len(w) >= 3})
    rng = random.Random(f"{SEED}:{page}:{copy}")
    if len(vocab) < MIN_VOCAB:  # a page with almost no text: made-up words as well
        vocab += ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))
                  for _ in range(MIN_VOCAB)]
    counter = [copy % EVERY]

    def word(m: re.Match) -> str:
        if m.group().startswith("&"):
            return m.group()
        counter[0] += 1
        return rng.choice(vocab) if counter[0] % EVERY == 0 else m.group()

    pieces, at = [], 0
    for a, b in spans:
        pieces += [html[at:a], _WORD.sub(word, html[a:b])]
        at = b
    html = "".join(pieces) + html[at:]
    mark = f"Copy {copy}: "
    html = _TITLE.sub(lambda m: m.group(1) + mark, html, count=1)
    html = _HEADLINE.sub(lambda m: m.group(1) + mark, html)

    def meta(m: re.Match) -> str:
        tag = m.group()
        if _URL_META.search(tag):
            return ""
        return _CONTENT.sub(lambda c: c.group(1) + mark, tag, count=1) if _TITLE_META.search(tag) else tag

    html = _META.sub(meta, html)
    html = _LINK.sub(lambda m: "" if _CANONICAL.search(m.group()) else m.group(), html)
    return html.encode("utf-8", "surrogateescape")


def write_pages(real: list[tuple[str, bytes]], n: int, folder: Path) -> list[str]:
    """The first n pages written under folder/pages; returns their paths relative to folder, in page order."""
    names = []
    t0 = time.perf_counter()
    for j in range(n):
        copy, page = divmod(j, len(real))
        name, html = real[page]
        rel = f"pages/c{copy:03d}/{name}"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(html if copy == 0 else distinct_copy(html, page, copy))
        names.append(rel)
        if (j + 1) % 5000 == 0:
            print(f"  pages: {j + 1}/{n}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return names


def write_feeds(names: list[str], folder: Path, n: int) -> Path:
    """FEEDS RSS files linking the first n pages (page j in feed j mod FEEDS) and their feed list; returns the list."""
    listed = []
    for i in range(FEEDS):
        items = "".join(f"<item><title>{escape(rel)}</title><link>{escape(rel)}</link>"
                        f'<guid isPermaLink="false">{escape(rel)}</guid></item>' for rel in names[i:n:FEEDS])
        listed.append(f"feed-{n}-{i + 1:02d}.xml")
        (folder / listed[-1]).write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>memory scale {n}, feed {i + 1}</title><link>http://example.invalid/</link>"
            f"<description>benchmark feed</description>{items}</channel></rss>", encoding="utf-8")
    feeds_list = folder / f"feeds-{n}.txt"
    feeds_list.write_text("\n".join(listed) + "\n")
    return feeds_list


# ---------------------------------------------------------------- a run

def run_size(n: int, feeds_list: Path, out: Path, logs: Path, timeout: float, rss_limit_mib: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    run_id = f"mem-{n}"
    cmd = [*newsbeam_command(), "run", "--feeds", str(feeds_list), "--out", str(out), "--run-id", run_id, "-q",
           "--no-compact"]
    result = {"n": n, **measured(cmd, logs / out.name, timeout, rss_limit_mib)}
    manifests = sorted((out / "runs").glob("*.json")) if result["exit_code"] == 0 else []
    if manifests:
        manifest = json.loads(manifests[-1].read_text())
        links = manifest.get("links", {})
        by_stage: Counter = Counter()
        for f in manifest["tables"]["errors"]["files"]:
            for row in pq.read_table(f["path"], columns=["stage", "error"]).to_pylist():
                by_stage[f"{row['stage']}/{row['error']}"] += 1
        page_errors = sum(c for key, c in by_stage.items() if key.split("/")[0] not in FEED_STAGES)
        result.update({
            "discovered": links.get("discovered"), "articles": manifest["tables"]["articles"]["rows"],
            "duplicates": manifest["tables"]["duplicates"]["rows"], "errors": page_errors,
            "errors_by_stage": dict(by_stage.most_common()), "already_stored": links.get("already_stored"),
            "balanced": manifest["tables"]["articles"]["rows"] + manifest["tables"]["duplicates"]["rows"]
            + page_errors == n,
            "manifest_balanced": links.get("balanced"),
            "pipeline_seconds": manifest.get("timings", {}).get("total_seconds"),
        })
    return result


# ---------------------------------------------------------------- report

def median_peaks(rows: list[dict]) -> dict[int, float]:
    """Median peak tree RSS of each size whose runs all finished."""
    by_n: dict[int, list[dict]] = {}
    for r in rows:
        if "exit_code" in r:
            by_n.setdefault(r["n"], []).append(r)
    return {n: statistics.median(r["peak_rss_mib"] for r in runs) for n, runs in by_n.items()
            if all(r["exit_code"] == 0 for r in runs)}


def slope(peaks: dict[int, float]) -> dict | None:
    if len(peaks) < 2:
        return None
    a, b = SLOPE_SIZES if all(s in peaks for s in SLOPE_SIZES) else (min(peaks), max(peaks))
    per_1k = (peaks[b] - peaks[a]) / (b - a) * 1000
    steps = sorted(peaks)
    return {"between": [a, b], "mib_per_1k_pages": round(per_1k, 1), "target": SLOPE_TARGET_MIB,
            "pass": per_1k <= SLOPE_TARGET_MIB, "issue_sizes": (a, b) == SLOPE_SIZES,
            "steps": [{"between": [x, y], "mib_per_1k_pages": round((peaks[y] - peaks[x]) / (y - x) * 1000, 1)}
                      for x, y in itertools.pairwise(steps)]}


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=1)
    parser.add_argument("--wcxb", default=str(REPO / DEFAULT_WCXB),
                        help=f"wcxb-dev corpus folder, its pages reused beside fundus's (default: {DEFAULT_WCXB}; "
                        "'' for none)")
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated page counts (default {DEFAULT_SIZES}; the 3 GB target needs 50000)")
    parser.add_argument("--rss-limit-mib", type=float, default=12000,
                        help="kill a run whose process tree passes this many MiB (default 12000; 0: no limit)")
    parser.add_argument("--timeout", type=float, default=0,
                        help="kill a run after this many seconds (default: no limit)")
    parser.add_argument("--keep", metavar="DIR",
                        help="build the web, outputs and logs in DIR (new or empty) and keep them, "
                        "with results.json (default: a temporary folder, deleted at the end)")
    args = parser.parse_args(argv)
    sizes = parse_sizes(parser, args.sizes, "page counts")
    corpus = corpus_or_skip(parser, args)
    if corpus is None:
        return 0
    wcxb = Path(args.wcxb) if args.wcxb else None
    if wcxb is not None and not (wcxb / "ground-truth").is_dir():
        print(f"wcxb-dev not found at {wcxb}: fundus only (pass --wcxb PATH, or --wcxb '' for fundus alone)",
              file=sys.stderr)
        wcxb = None
    if args.keep:
        work = Path(args.keep).resolve()
        if work.exists() and any(work.iterdir()):
            parser.error(f"--keep: {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="newsbeam-memory-"))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False,
                            capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                             check=False, capture_output=True, text=True).stdout
    if commit and changed.strip():
        commit += " + uncommitted changes"

    try:
        real = load_pages(corpus, wcxb)
        web = work / "web"
        t0 = time.perf_counter()
        print(f"writing {sizes[-1]} pages ({len(real)} real) to {web}", file=sys.stderr, flush=True)
        names = write_pages(real, sizes[-1], web)
        del real
        lists = {n: write_feeds(names, web, n) for n in sizes}
        generation = {"seconds": round(time.perf_counter() - t0, 1), "pages": sizes[-1],
                      "mib": round(sum(f.stat().st_size for f in (web / "pages").rglob("*") if f.is_file()) / 2**20)}
        rows: list[dict] = []
        failed = None
        for r in range(args.repeat):
            for n in sizes:
                if failed is not None and n >= failed:
                    rows.append({"n": n, "repeat": r, "skipped": f"not run: a {failed}-page run failed"})
                    continue
                print(f"run {n} ({r + 1}/{args.repeat}): running", file=sys.stderr, flush=True)
                out = work / f"out-{n}-{r}"
                result = run_size(n, lists[n], out, work / "logs", args.timeout, args.rss_limit_mib)
                result["repeat"] = r
                rows.append(result)
                print(f"run {n}: exit {result['exit_code']} in {result['wall_seconds']} s, peak tree RSS "
                      f"{result['peak_rss_mib']} MiB" + (f" ({result['killed']})" if result["killed"] else ""),
                      file=sys.stderr, flush=True)
                if result["exit_code"] != 0:
                    failed = n if failed is None else min(failed, n)
                if not args.keep:
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    peaks = median_peaks(rows)
    lin = slope(peaks)
    big = [r for r in rows if r["n"] >= BIG_SIZE and "exit_code" in r]
    targets = []
    if lin:
        a, b = lin["between"]
        targets.append({"target": f"at most {SLOPE_TARGET_MIB} MiB more peak tree RSS per 1,000 pages between "
                        f"{a} and {b} pages" + ("" if lin["issue_sizes"] else " (the issue's sizes: 2000 and 10000)"),
                        "pass": lin["pass"], "value": f"{lin['mib_per_1k_pages']} MiB per 1,000 pages"})
    for r in big:
        ok = r["exit_code"] == 0 and r["peak_rss_mib"] < BIG_TARGET_MIB
        targets.append({"target": f"{r['n']} pages under {BIG_TARGET_MIB} MiB peak tree RSS", "pass": ok,
                        "value": f"{r['peak_rss_mib']} MiB" + ("" if r["exit_code"] == 0 else
                                                               f" (exit {r['exit_code']}: {r['killed'] or 'failed'})")})
    machine = {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "python": sys.version.split()[0]}
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    report = {"commit": commit, "date": date, "machine": machine, "feeds": FEEDS, "generation": generation,
              "runs": rows, "median_peak_rss_mib": {str(n): p for n, p in peaks.items()}, "slope": lin,
              "targets": targets, "kept": str(work) if args.keep else None}
    if args.keep:
        (work / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(f"newsbeam run, peak memory against pages: newsbeam commit {commit or 'unknown'} (as installed), "
          f"{date}; {FEEDS} feeds; pages written in {generation['seconds']} s ({generation['pages']} pages, "
          f"{generation['mib']} MiB)")
    print(f"machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB, load average at the end "
          f"{machine['load_average']}")
    print(f"{'pages':>7} {'wall s':>7} {'peak RSS':>8} {'max proc':>8} {'procs':>5} {'articles':>8} "
          f"{'dups':>6} {'errors':>6} {'balanced':>8}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['n']:>7}  {r['skipped']}")
            continue
        line = (f"{r['n']:>7} {r['wall_seconds']:>7.1f} {r['peak_rss_mib']:>8} "
                f"{r['max_process_rss_mib']:>8} {r['peak_processes']:>5} ")
        if "articles" in r:
            line += (f"{r['articles']:>8} {r['duplicates']:>6} {r['errors']:>6} {r['balanced']!s:>8}"
                     + ("" if r["manifest_balanced"] == r["balanced"] else f" (manifest: {r['manifest_balanced']})"))
        else:
            line += (f"KILLED: {r['killed']}" if r["killed"] else f"FAILED: exit {r['exit_code']}")
        print(line)
    print("(wall s: newsbeam run from start to exit, Python and Beam start-up included;")
    print(" peak RSS: the process tree's RSS summed, sampled every 0.2 s, MiB; max proc: the largest single process's")
    print(" peak RSS, MiB; procs: most processes at once; articles/dups: rows written; errors: error rows of the page")
    print(" stages; balanced: articles + dups + errors = pages linked)")
    for r in rows:
        if r.get("errors_by_stage"):
            print(f"{r['n']}: errors by stage/kind {r['errors_by_stage']}; "
                  f"pipeline's own seconds {r['pipeline_seconds']}")
        if r.get("exit_code") not in (None, 0):
            print(f"{r['n']}: {r['command']}\n  exit {r['exit_code']}"
                  + (f", killed: {r['killed']}" if r["killed"] else "")
                  + "".join(f"\n  {line}" for line in r["stderr_tail"]))
    if lin:
        steps = ", ".join(f"{s['between'][0]}-{s['between'][1]}: {s['mib_per_1k_pages']}" for s in lin["steps"])
        print(f"slope: {lin['mib_per_1k_pages']} MiB per 1,000 pages between {lin['between'][0]} and "
              f"{lin['between'][1]} "
              f"pages (median peaks of {args.repeat} run(s)); between successive sizes: {steps}")
    for t in targets:
        print(f"{'PASS' if t['pass'] else 'FAIL'} {t['target']}: {t['value']}")
    if args.keep:
        print(f"(kept: the web, outputs, logs and results.json in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
