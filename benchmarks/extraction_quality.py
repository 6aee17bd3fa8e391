"""Extraction quality and speed of newsbeam's text against plain trafilatura, on fundus and WCXB (issues 3, 15).

Two corpora, side by side, each page scored against its ground truth:

- fundus (../shared/corpora/fundus): 258 news pages; the text expected is the summary lines, then
  each section's headline lines and paragraphs. Each publisher's pages count as one source.
- wcxb-dev (../shared/corpora/wcxb-dev-articles): 793 recent article pages from 768 sites
  (WCXB (Foley, 2026), CC-BY-4.0); the text expected is `main_content`, and each page's `with`
  snippets (content a correct extraction contains) and `without` snippets (boilerplate it must
  not) are looked up in both texts. Each host's pages count as one source.

Two texts per page, in the same run:

- trafilatura: plain `trafilatura.extract(html, include_comments=False)` on the page bytes, called
  without a URL: the baseline;
- newsbeam: the pipeline's Extract, StripChrome and Normalise cores (newsbeam.pipeline.extract_cmd
  .clean_pages) with the page's URL, over each source's pages as one source (the pipeline learns
  repeated chrome per feed source). A page it rejects (`ExtractionError`) scores as empty text.

The metric is the project's: word 4-gram multisets, per-page precision and recall averaged over
pages, F1 from the two averages (an empty prediction of an empty truth is perfect); cross-checked
against ../shared/tools/shingle_f1.py when that exists. A snippet is found when its words (\\w+ runs,
case-folded) occur in a row in the text's words. Pages "worse" are more than WORSE F1 below
trafilatura's; pages "emptied" have under 10 words where trafilatura has 50 or more.

Speed: pages are read and decompressed first; the scored texts come from one untimed pass (on a
Pool of 2). In each of --repeat rounds the two 1-process sides run over both corpora source by
source, taking turns at going first, each source's pages timed under time.perf_counter (load that
comes and goes on a shared machine then falls on both alike); medians are reported as docs/s and
as the ratio of newsbeam's docs/s to trafilatura's.

    python benchmarks/extraction_quality.py [--corpus PATH] [--wcxb PATH] [--repeat N] [--no-speed]
                                            [--json] [--dump DIR]

A corpus that is absent is skipped with a message; --dump DIR writes
DIR/<corpus>/{trafilatura,newsbeam,expected}/<page>.txt for inspection.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

logging.basicConfig(level=logging.ERROR)  # before trafilatura and Beam are imported: both log at import
for _name in ("trafilatura", "htmldate", "courlan", "apache_beam"):
    logging.getLogger(_name).setLevel(logging.ERROR)

import trafilatura  # noqa: E402

from newsbeam.pipeline import extract_cmd  # noqa: E402

from corpus import DEFAULT_WCXB, REPO, corpus_parser, fundus_pages, wcxb_pages  # noqa: E402

WORSE = 0.05  # a page counts as worse when newsbeam's F1 is more than this below trafilatura's
F1_MARGIN = 0.005  # newsbeam's F1 must beat trafilatura's by this much on each corpus
WORSE_SHARE = 0.01  # at most this share of pages worse
EMPTY_WORDS, FULL_WORDS = 10, 50  # emptied: under EMPTY_WORDS words where trafilatura has FULL_WORDS or more
SPEED = 1.0
WORST = 20
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


def word_string(text: str) -> str:
    return " " + " ".join(_TOKEN.findall((text or "").casefold())) + " "


def found(snippet: str, words: str) -> bool:
    key = word_string(snippet)
    return key != "  " and key in words


def trafilatura_text(page: dict) -> str:
    return trafilatura.extract(page["bytes"], include_comments=False) or ""


def newsbeam_texts(source: list[dict]) -> list[str]:
    """Texts of one source's pages; a page with an ExtractionError (no text), which the pipeline makes
    an error row, has an empty text. A crash is not caught: the pipeline would make it an error row
    too, but here it is a bug to see."""
    docs = extract_cmd.clean_pages([(p["bytes"], p["url"]) for p in source])
    return [(d.get("text") or "") if isinstance(d, dict) else "" for d in docs]


_SOURCES: list[list[dict]] = []  # every source of every corpus; set before the pool forks


def _both_texts(i: int) -> tuple[list[str], list[str]]:
    return [trafilatura_text(p) for p in _SOURCES[i]], newsbeam_texts(_SOURCES[i])


def by_source(pages: list[dict]) -> list[list[dict]]:
    sources: dict[str, list[dict]] = {}
    for page in pages:
        sources.setdefault(page["source"], []).append(page)
    return list(sources.values())


def timed_one_process(round_no: int) -> dict[str, float]:
    """Wall seconds of both 1-process sides over every source, timed source by source and taking turns at going first."""
    run = {"trafilatura": lambda source: [trafilatura_text(p) for p in source], "newsbeam": newsbeam_texts}
    totals = dict.fromkeys(SIDES, 0.0)
    for i, source in enumerate(_SOURCES):
        for side in SIDES if (i + round_no) % 2 == 0 else SIDES[::-1]:
            started = time.perf_counter()
            run[side](source)
            totals[side] += time.perf_counter() - started
    return totals


def shingle_tool() -> object | None:
    tool = REPO.parent / "shared" / "tools" / "shingle_f1.py"
    if not tool.is_file():
        return None
    spec = importlib.util.spec_from_file_location("shingle_f1", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cross_check(pages: list[dict], texts: dict, ours: dict) -> str:
    module = shingle_tool()
    if module is None:
        return "not run (shingle_f1.py not found)"
    diffs = []
    for side in SIDES:
        theirs = module.score([(p["expected"], t) for p, t in zip(pages, texts[side])])
        diffs += [f"{side} {k} {ours[side][k]:.4f} vs {theirs[k]}" for k in ("f1", "precision", "recall")
                  if abs(ours[side][k] - theirs[k]) > 6e-5]  # the tool rounds to 4 places
    return "ok" if not diffs else "DIFFERENT: " + "; ".join(diffs)


def corpus_report(name: str, pages: list[dict], texts: dict[str, list[str]]) -> dict:
    """Scores, the pages worse and emptied, snippets found, the worst pages and the targets of one corpus."""
    scores = {side: [page_score(p["expected"], t) for p, t in zip(pages, texts[side])] for side in SIDES}
    words = {side: [len(_TOKEN.findall(t)) for t in texts[side]] for side in SIDES}
    quality = {side: overall(scores[side]) | {"no_text": sum(n == 0 for n in words[side])} for side in SIDES}
    per_page = sorted(({"page": p["name"], "source": p["source"], "delta": round(nb[2] - tf[2], 4),
                        "f1_trafilatura": round(tf[2], 4), "f1_newsbeam": round(nb[2], 4)}
                       for p, tf, nb in zip(pages, scores["trafilatura"], scores["newsbeam"])),
                      key=lambda w: (w["delta"], w["f1_newsbeam"]))
    worse = [w for w in per_page if w["delta"] < -WORSE]
    emptied = [p["name"] for p, nb, tf in zip(pages, words["newsbeam"], words["trafilatura"]) if nb < EMPTY_WORDS <= FULL_WORDS <= tf]
    report = {"pages": len(pages), "quality": quality, "metric_check": cross_check(pages, texts, quality),
              "better": sum(w["delta"] > 0 for w in per_page), "same": sum(w["delta"] == 0 for w in per_page),
              "worse_pages": len(worse), "emptied": emptied, f"worst_{WORST}": per_page[:WORST]}
    tf, nb = quality["trafilatura"], quality["newsbeam"]
    targets = [(f"F1 >= trafilatura's + {F1_MARGIN}", nb["f1"] >= tf["f1"] + F1_MARGIN, f"{nb['f1']:.4f} vs {tf['f1']:.4f}"),
               (f"pages > {WORSE} F1 worse <= {WORSE_SHARE:.0%}", len(worse) <= WORSE_SHARE * len(pages),
                f"{len(worse)} of {len(pages)}"),
               (f"pages emptied (< {EMPTY_WORDS} words where trafilatura has {FULL_WORDS}+) = 0", not emptied, f"{len(emptied)}")]
    if any("with" in p for p in pages):
        snippets = {}
        for side in SIDES:
            strings = [word_string(t) for t in texts[side]]
            kept = [found(s, w) for p, w in zip(pages, strings) for s in p["with"]]
            leaked = [found(s, w) for p, w in zip(pages, strings) for s in p["without"]]
            snippets[side] = {"with_found": sum(kept), "with_total": len(kept), "with_share": sum(kept) / max(len(kept), 1),
                              "without_found": sum(leaked), "without_total": len(leaked)}
        report["snippets"] = snippets
        s_tf, s_nb = snippets["trafilatura"], snippets["newsbeam"]
        targets += [("`without` snippets found <= half of trafilatura's", s_nb["without_found"] <= s_tf["without_found"] / 2,
                     f"{s_nb['without_found']} vs {s_tf['without_found']}"),
                    ("`with` snippets found >= trafilatura's share", s_nb["with_share"] >= s_tf["with_share"],
                     f"{s_nb['with_share']:.4f} vs {s_tf['with_share']:.4f}")]
    report["targets"] = [{"target": t, "pass": ok, "value": v} for t, ok, v in targets]
    return report


def print_report(name: str, report: dict) -> None:
    print(f"\n== {name}: {report['pages']} pages (metric cross-check: {report['metric_check']})")
    print(f"{'side':<20} {'F1':>6} {'P':>6} {'R':>6} {'no text':>7}" + ("  with found  without found" if "snippets" in report else ""))
    for side, label in zip(SIDES, ("trafilatura.extract", "newsbeam")):
        q = report["quality"][side]
        line = f"{label:<20} {q['f1']:>6.4f} {q['precision']:>6.4f} {q['recall']:>6.4f} {q['no_text']:>7}"
        if "snippets" in report:
            s = report["snippets"][side]
            line += f"  {s['with_share']:>10.4f}  {s['without_found']:>5} of {s['without_total']}"
        print(line)
    print(f"pages better / same / worse by more than {WORSE}: {report['better']} / {report['same']} / {report['worse_pages']};"
          f" emptied: {len(report['emptied'])} {report['emptied'][:10]}")
    print(f"worst {WORST} pages by F1 delta (newsbeam - trafilatura), ties by newsbeam's F1:")
    for w in report[f"worst_{WORST}"]:
        print(f"  {w['delta']:+.3f}  F1 {w['f1_trafilatura']:.3f} -> {w['f1_newsbeam']:.3f}  {w['source'][:30]:<30} {w['page']}")
    for t in report["targets"]:
        print(f"{'PASS' if t['pass'] else 'FAIL'} {t['target']} ({t['value']})")


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=3)
    parser.add_argument("--wcxb", default=str(REPO / DEFAULT_WCXB), help=f"WCXB articles folder (default: {DEFAULT_WCXB})")
    parser.add_argument("--no-speed", action="store_true", help="score only, no timed rounds")
    parser.add_argument("--dump", metavar="DIR", help="write each page's texts under DIR")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    corpora: dict[str, list[dict]] = {}
    for name, folder, marker, load in (("fundus", args.corpus, "manifest.jsonl", fundus_pages),
                                       ("wcxb-dev", args.wcxb, "ground-truth", wcxb_pages)):
        if (Path(folder) / marker).exists():
            corpora[name] = load(Path(folder))
        else:
            print(f"skipped {name}: {folder} not found; pass {'--corpus' if name == 'fundus' else '--wcxb'}", file=sys.stderr)
    if not corpora:
        print("skipped: no corpus found")
        return 0
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    spans, _SOURCES[:] = {}, []
    for name, pages in corpora.items():
        sources = by_source(pages)
        spans[name] = (len(_SOURCES), len(_SOURCES) + len(sources))
        _SOURCES.extend(sources)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        both = pool.map(_both_texts, range(len(_SOURCES)), chunksize=4)
    reports = {}
    for name, (start, end) in spans.items():
        pages = [p for source in _SOURCES[start:end] for p in source]
        texts = {side: [t for pair in both[start:end] for t in pair[k]] for k, side in enumerate(SIDES)}
        reports[name] = corpus_report(name, pages, texts)
        if args.dump:
            for side, side_texts in (*texts.items(), ("expected", [p["expected"] for p in pages])):
                for p, text in zip(pages, side_texts):
                    path = Path(args.dump) / name / side / f"{p['name']}.txt"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text + "\n", encoding="utf-8")

    speed = None
    if not args.no_speed:
        rounds = []
        for i in range(args.repeat):
            rounds.append(timed_one_process(i))
            print(f"round {i + 1}/{args.repeat}: " + ", ".join(f"{k} {v:.1f} s" for k, v in rounds[-1].items()), file=sys.stderr)
        n = sum(len(s) for s in _SOURCES)
        speed = {side: {"seconds": statistics.median(r[side] for r in rounds), "runs": [round(r[side], 2) for r in rounds]}
                 for side in SIDES}
        for side in SIDES:
            speed[side]["docs_per_s"] = n / speed[side]["seconds"]
        speed["ratio"] = speed["newsbeam"]["docs_per_s"] / speed["trafilatura"]["docs_per_s"]
        speed["target"] = {"target": f"newsbeam >= {SPEED}x trafilatura's docs/s, 1 process", "pass": speed["ratio"] >= SPEED,
                           "value": f"{speed['ratio']:.3f}x"}

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    if args.json:
        print(json.dumps({"commit": commit, "date": date, "corpora": reports, "speed": speed}, indent=2))
        return 0
    print(f"newsbeam commit {commit or 'unknown'} (working tree as imported), {date}")
    for name, report in reports.items():
        print_report(name, report)
    if speed:
        print(f"\n== speed, 1 process, both corpora ({sum(len(s) for s in _SOURCES)} pages; medians of {args.repeat} rounds)")
        for side in SIDES:
            print(f"{side:<12} {speed[side]['docs_per_s']:6.2f} docs/s  runs {speed[side]['runs']} s")
        t = speed["target"]
        print(f"{'PASS' if t['pass'] else 'FAIL'} {t['target']} ({t['value']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
