"""Extraction quality and speed of newsbeam's text against plain trafilatura on the fundus corpus (issue 3).

For every page of ../shared/corpora/fundus (relative to the repository root) two texts are scored
against the corpus's ground truth (summary lines, then each section's headline lines and paragraphs,
joined by newlines):

- trafilatura: plain `trafilatura.extract(html, include_comments=False)` on the page bytes, called
  without a URL, exactly as the issue states the baseline;
- newsbeam: the pipeline's Extract, StripChrome and Normalise cores from newsbeam.pipeline.extract_cmd,
  with each page's real URL from the manifest: `clean_pages` over each publisher's pages as one source
  (the pipeline learns repeated chrome per feed source), or `clean_page(html, url)` per page where the
  checkout has that older API. A page it rejects (`ExtractionError`) scores as empty text.

The metric is the project's: word 4-gram multisets, per-page precision and recall averaged over
pages, F1 from the two averages (an empty prediction of an empty truth is perfect). It is
implemented here and cross-checked once against ../shared/tools/shingle_f1.py when that exists.

Speed: all pages are read and decompressed first. In each of --repeat rounds the two 1-process sides
run over the corpus publisher by publisher, taking turns at going first, each publisher's pages timed
under time.perf_counter (whole-corpus runs one after the other were at the mercy of load that came and
went on a shared machine: the same code measured 0.96x and 0.59x), then newsbeam runs over the whole
corpus on a Pool of 2. Medians are reported as docs/s and as ratios to trafilatura's docs/s (plus the
1-process sides' CPU seconds). The pool is started (by
fork, after one untimed pass of both sides that also gives the texts scored) and warmed before timing;
pages are inherited by the workers, only indices and texts cross processes, CHUNK publishers a task.

    python benchmarks/extraction_quality.py [--corpus PATH] [--repeat N] [--json] [--dump DIR]

--dump DIR writes DIR/{trafilatura,newsbeam,expected}/<page>.txt for inspection.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import logging
import multiprocessing
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

logging.basicConfig(level=logging.ERROR)  # before trafilatura and Beam are imported: both log at import
for _name in ("trafilatura", "htmldate", "courlan", "apache_beam"):
    logging.getLogger(_name).setLevel(logging.ERROR)

import trafilatura  # noqa: E402

from newsbeam.pipeline import extract_cmd  # noqa: E402

from corpus import REPO, corpus_or_skip, corpus_parser, ground_truth  # noqa: E402
TARGETS = {"f1": 0.960, "precision": 0.950}
WORSE = 0.05  # a page counts as worse when newsbeam's F1 is more than this below trafilatura's
SPEED = 0.9
CHUNK = 3  # publishers per pool task (about 4 pages)
SIDES = ("trafilatura", "newsbeam")
_TOKEN = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter:
    toks = _TOKEN.findall(text or "")
    if len(toks) < n:
        return Counter([tuple(toks)]) if toks else Counter()
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def page_score(expected: str, predicted: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of one page."""
    e, p = shingles(expected), shingles(predicted)
    tp = sum((e & p).values())
    fp, fn = sum(p.values()) - tp, sum(e.values()) - tp
    prec = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    rec = tp / (tp + fn) if tp + fn else 1.0
    return prec, rec, 2 * prec * rec / (prec + rec) if prec + rec else 0.0


def overall(scores: list[tuple[float, float, float]]) -> dict:
    P, R = (sum(s[k] for s in scores) / len(scores) for k in (0, 1))
    return {"f1": 2 * P * R / (P + R) if P + R else 0.0, "precision": P, "recall": R}


def expected_text(body: dict) -> str:
    lines = list(body.get("summary") or [])
    for section in body.get("sections") or []:
        lines += list(section.get("headline") or []) + list(section.get("paragraphs") or [])
    return "\n".join(lines)


def load_pages(corpus: Path) -> list[dict]:
    return [{**row, "name": row["html"].removesuffix(".gz"), "expected": expected_text(truth["body"]),
             "bytes": gzip.decompress((corpus / row["html"]).read_bytes())} for row, truth in ground_truth(corpus)]


def trafilatura_text(page: dict) -> str:
    return trafilatura.extract(page["bytes"], include_comments=False) or ""


def newsbeam_texts(source: list[dict]) -> list[str]:
    """Texts of one publisher's pages; a page with an ExtractionError (no text) or a crash, which the
    pipeline would make an error row, has an empty text."""
    try:
        if hasattr(extract_cmd, "clean_pages"):
            docs = extract_cmd.clean_pages([(p["bytes"], p["url"]) for p in source])
        else:  # the older per-page API
            docs = [extract_cmd.clean_page(p["bytes"], p["url"]) for p in source]
    except Exception:  # one page failed: the others still count, one at a time
        return [""] if len(source) == 1 else [t for p in source for t in newsbeam_texts([p])]
    return [(d.get("text") or "") if isinstance(d, dict) else "" for d in docs]


_SOURCES: list[list[dict]] = []  # set before the pool forks, so workers get the pages without pickling them


def _source_texts(i: int) -> list[str]:
    return newsbeam_texts(_SOURCES[i])


def newsbeam_run(mapper=map) -> list[str]:
    """Texts of all pages, in the order of `pages` (publisher by publisher)."""
    return [t for texts in mapper(_source_texts, range(len(_SOURCES))) for t in texts]


def timed(fn) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (a Pool's workers are not included) of fn()."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def timed_one_process(round_no: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of both 1-process sides over the corpus, timed publisher by publisher and
    taking turns at going first, so that load coming and going on the machine falls on both alike."""
    run = {"trafilatura": lambda source: [trafilatura_text(p) for p in source], "newsbeam": newsbeam_texts}
    totals = {side: [0.0, 0.0] for side in SIDES}
    for i, source in enumerate(_SOURCES):
        for side in SIDES if (i + round_no) % 2 == 0 else SIDES[::-1]:
            wall, cpu = timed(functools.partial(run[side], source))
            totals[side][0] += wall
            totals[side][1] += cpu
    return {side: (wall, cpu) for side, (wall, cpu) in totals.items()}


def cross_check(pages: list[dict], texts: dict, ours: dict, corpus: Path) -> str:
    for tool in (corpus.resolve().parent.parent / "tools" / "shingle_f1.py", REPO.parent / "shared" / "tools" / "shingle_f1.py"):
        if tool.is_file():
            spec = importlib.util.spec_from_file_location("shingle_f1", tool)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            diffs = []
            for side in SIDES:
                theirs = module.score([(p["expected"], t) for p, t in zip(pages, texts[side])])
                diffs += [f"{side} {k} {ours[side][k]:.4f} vs {theirs[k]}" for k in ("f1", "precision", "recall")
                          if abs(ours[side][k] - theirs[k]) > 6e-5]  # the tool rounds to 4 places
            return "ok" if not diffs else "DIFFERENT: " + "; ".join(diffs)
    return "not run (shingle_f1.py not found)"


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=3)
    parser.add_argument("--dump", metavar="DIR", help="write each page's texts under DIR")
    args = parser.parse_args(argv)
    corpus = corpus_or_skip(parser, args)
    if corpus is None:
        return 0
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    by_publisher: dict[str, list[dict]] = {}
    for page in load_pages(corpus):
        by_publisher.setdefault(page["publisher"], []).append(page)
    _SOURCES[:] = by_publisher.values()
    pages = [p for source in _SOURCES for p in source]
    texts = {"trafilatura": [trafilatura_text(p) for p in pages], "newsbeam": newsbeam_run()}
    scores = {side: [page_score(p["expected"], t) for p, t in zip(pages, texts[side])] for side in SIDES}
    result = {side: overall(scores[side]) | {"no_text": sum(not t for t in texts[side])} for side in SIDES}
    check = cross_check(pages, texts, result, corpus)

    seconds: dict[str, list[tuple[float, float]]] = {"trafilatura": [], "newsbeam": [], "newsbeam_pool2": []}
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool_map = functools.partial(pool.map, chunksize=CHUNK)
        pool_texts = newsbeam_run(pool_map)  # untimed: warms the workers, and their texts must match
        for i in range(args.repeat):
            for side, wall_cpu in timed_one_process(i).items():
                seconds[side].append(wall_cpu)
            seconds["newsbeam_pool2"].append(timed(lambda: newsbeam_run(pool_map)))
            print(f"round {i + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1][0]:.1f} s" for k, v in seconds.items()), file=sys.stderr)
    speed = {}
    for k, runs in seconds.items():
        wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        speed[k] = {"seconds": wall, "runs": [round(r[0], 2) for r in runs], "docs_per_s": len(pages) / wall, "cpu_seconds": cpu}
        speed[k]["ratio"] = speed[k]["docs_per_s"] / speed["trafilatura"]["docs_per_s"]  # trafilatura comes first
    cpu_ratio = speed["trafilatura"]["cpu_seconds"] / speed["newsbeam"]["cpu_seconds"]

    # Worst first; ties (most pages: the same text or the same score) by newsbeam's own F1.
    per_page = sorted(({"page": p["name"], "publisher": p["publisher"], "delta": round(nb[2] - tf[2], 4),
                        "f1_trafilatura": round(tf[2], 4), "f1_newsbeam": round(nb[2], 4)}
                       for p, tf, nb in zip(pages, scores["trafilatura"], scores["newsbeam"])),
                      key=lambda w: (w["delta"], w["f1_newsbeam"]))
    worse = [w for w in per_page if w["delta"] < -WORSE]
    by_country: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pages):
        by_country[p["country"]].append(i)
    countries = {c: {"pages": len(ix), **{s: round(overall([scores[s][i] for i in ix])["f1"], 4) for s in SIDES}}
                 for c, ix in sorted(by_country.items())}
    nb = result["newsbeam"]
    targets = [(f"F1 >= {TARGETS['f1']:.3f}", nb["f1"] >= TARGETS["f1"], f"{nb['f1']:.4f}"),
               (f"precision >= {TARGETS['precision']:.3f}", nb["precision"] >= TARGETS["precision"], f"{nb['precision']:.4f}"),
               (f"no page more than {WORSE} F1 worse", not worse, f"{len(worse)} pages"),
               (f"speed >= {SPEED}x, 1 process", speed["newsbeam"]["ratio"] >= SPEED, f"{speed['newsbeam']['ratio']:.3f}x"),
               (f"speed >= {SPEED}x, Pool(2) vs 1-process trafilatura", speed["newsbeam_pool2"]["ratio"] >= SPEED,
                f"{speed['newsbeam_pool2']['ratio']:.3f}x")]

    if args.dump:
        for side, side_texts in (*texts.items(), ("expected", [p["expected"] for p in pages])):
            for p, text in zip(pages, side_texts):
                path = Path(args.dump) / side / f"{p['name']}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text + "\n", encoding="utf-8")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    if args.json:
        print(json.dumps({"commit": commit, "date": date, "pages": len(pages), "repeat": args.repeat, "metric_check": check,
                          "quality": result, "speed": speed, "pool_texts_identical": pool_texts == texts["newsbeam"],
                          "cpu_ratio_1_process": cpu_ratio,
                          "worse_pages": worse, "worst_10": per_page[:10], "by_country": countries,
                          "targets": [{"target": t, "pass": ok, "value": v} for t, ok, v in targets]}, indent=2))
        return 0
    print(f"fundus: {len(pages)} pages, newsbeam commit {commit or 'unknown'} (working tree as imported), {date}")
    print(f"metric cross-check: {check}")
    print(f"{'side':<20} {'F1':>6} {'P':>6} {'R':>6} {'no text':>7} {'docs/s':>7} {'ratio':>6}  runs (s)")
    rows = [("trafilatura.extract", "trafilatura", "trafilatura"), ("newsbeam, 1 process", "newsbeam", "newsbeam"),
            ("newsbeam, Pool(2)", "newsbeam", "newsbeam_pool2")]
    for label, q, s in rows:
        r = result[q]
        print(f"{label:<20} {r['f1']:>6.4f} {r['precision']:>6.4f} {r['recall']:>6.4f} {r['no_text']:>7} "
              f"{speed[s]['docs_per_s']:>7.2f} {speed[s]['ratio']:>6.3f}  {speed[s]['runs']}")
    print(f"(medians of {args.repeat} rounds, 1-process sides interleaved by publisher; ratio = docs/s / trafilatura's docs/s; Pool(2) texts identical"
          f" to 1 process: {pool_texts == texts['newsbeam']})")
    print(f"CPU s, 1 process: trafilatura {speed['trafilatura']['cpu_seconds']:.1f}, newsbeam {speed['newsbeam']['cpu_seconds']:.1f}"
          f" (ratio {cpu_ratio:.3f}; less sensitive than wall time to other load)")
    print(f"pages where newsbeam is more than {WORSE} F1 worse than trafilatura: {len(worse)}")
    print("worst 10 pages by F1 delta (newsbeam - trafilatura), ties by newsbeam's F1:")
    for w in per_page[:10]:
        print(f"  {w['delta']:+.3f}  F1 {w['f1_trafilatura']:.3f} -> {w['f1_newsbeam']:.3f}  {w['publisher']:<22} {w['page']}")
    print("F1 by country (pages: trafilatura / newsbeam):")
    cells = [f"{c} ({v['pages']:>2}): {v['trafilatura']:.3f} / {v['newsbeam']:.3f}" for c, v in countries.items()]
    for i in range(0, len(cells), 4):
        print("  " + "   ".join(f"{cell:<26}" for cell in cells[i:i + 4]).rstrip())
    for target, ok, value in targets:
        print(f"{'PASS' if ok else 'FAIL'} {target} ({value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
