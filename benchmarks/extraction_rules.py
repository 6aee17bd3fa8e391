"""What each cleaning rule does on fundus and WCXB: the scores with it switched off, and what it removes (issue 15).

For every rule of the Extract stage's layout pass (page_layout.layout_chrome's reasons, the
repeated-line rule, the lead put back) and StripChrome's last-line rule, one pass over both
corpora with that rule off, scored as benchmarks/extraction_quality.py scores newsbeam's side
(the same pages, sources, metric and snippet look-up): F1, P, R and, on wcxb-dev, the `with`
and `without` snippets found. A baseline pass with every rule on comes first.

The baseline pass also counts what each rule removes: a removed line is content when at least
half of its word 4-grams (a line of under four words: its words in a row) are in the page's
ground truth, chrome otherwise. Lines of a page whose body the guard kept whole are not counted.

Rules are switched off by replacing the module functions they live in for the length of one
pass, in this process only; nothing is written. Passes run on a Pool of 2.

    python benchmarks/extraction_rules.py [--corpus PATH] [--wcxb PATH] [--rules a,b,...] [--json]
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
import sys
from collections import defaultdict
from pathlib import Path

logging.basicConfig(level=logging.ERROR)
for _name in ("trafilatura", "htmldate", "courlan", "apache_beam"):
    logging.getLogger(_name).setLevel(logging.ERROR)

from newsbeam.transforms import chrome, page_layout  # noqa: E402

import extraction_quality as quality  # noqa: E402
from corpus import DEFAULT_WCXB, REPO, corpus_parser, fundus_pages, wcxb_pages  # noqa: E402

LAYOUT_RULES = ("headline", "links", "teaser link", "embedded post", "edge label", "after the article",
                "before the article", "caption")
RULES = (*LAYOUT_RULES, "repeated", "lead", "announces missing")
_TOKEN = re.compile(r"\w+")
_ORIGINAL = {"layout_chrome": page_layout.layout_chrome, "_repeated": page_layout._repeated,
             "with_lead": page_layout.with_lead, "announces_missing": chrome.announces_missing}
_SOURCES: list[list[dict]] = []
_REMOVED: list[tuple[str, str]] = []  # (rule, line) of the page being cleaned, in the baseline pass


def switch(off: frozenset, record: bool = False) -> None:
    """Install the rule functions with the rules in `off` disabled (and removals recorded if asked)."""
    def layout_chrome(line, i, n, titles, after, before):
        why = _ORIGINAL["layout_chrome"](line, i, n, titles, after, before)
        if why in off:
            return None
        if why and record:
            _REMOVED.append((why, line.text))
        return why

    def repeated(line, key, counts):
        hit = "repeated" not in off and _ORIGINAL["_repeated"](line, key, counts)
        if hit and record:
            _REMOVED.append(("repeated", line.text))
        return hit

    def announces_missing(last_line):
        hit = "announces missing" not in off and _ORIGINAL["announces_missing"](last_line)
        if hit and record:
            _REMOVED.append(("announces missing", last_line))
        return hit

    page_layout.layout_chrome, page_layout._repeated = layout_chrome, repeated
    page_layout.with_lead = (lambda text, description, visible: text) if "lead" in off else _ORIGINAL["with_lead"]
    chrome.announces_missing = announces_missing


def _texts(job: tuple[int, frozenset, bool]):
    i, off, record = job
    switch(off, record)
    removed = []
    for page in _SOURCES[i]:
        _REMOVED.clear()
        doc = quality.extract_cmd.clean_pages([(page["bytes"], page["url"])])[0] if record else None
        guarded = isinstance(doc, dict) and doc.get("body_guarded")
        removed.append([] if guarded else list(_REMOVED))
    texts = quality.newsbeam_texts(_SOURCES[i])
    return texts, removed


def is_content(line: str, truth_words: str) -> bool:
    words = _TOKEN.findall(line.casefold())
    if len(words) < 4:
        return bool(words) and f" {' '.join(words)} " in truth_words
    grams = [" ".join(words[k:k + 4]) for k in range(len(words) - 3)]
    return sum(f" {g} " in truth_words for g in grams) >= 0.5 * len(grams)


def score(pages: list[dict], texts: list[str]) -> dict:
    result = quality.overall([quality.page_score(p["expected"], t) for p, t in zip(pages, texts)])
    out = {k: round(v, 4) for k, v in result.items()}
    if any("with" in p for p in pages):
        strings = [quality.word_string(t) for t in texts]
        out["with"] = sum(quality.found(s, w) for p, w in zip(pages, strings) for s in p["with"])
        out["without"] = sum(quality.found(s, w) for p, w in zip(pages, strings) for s in p["without"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=1)
    parser.add_argument("--wcxb", default=str(REPO / DEFAULT_WCXB), help=f"WCXB articles folder (default: {DEFAULT_WCXB})")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated rules to switch off one at a time; "
                        "a+b switches several off together (default: each rule)")
    args = parser.parse_args(argv)
    passes = [frozenset(r.strip() for r in item.split("+")) for item in args.rules.split(",") if item.strip()]
    unknown = sorted({r for p in passes for r in p} - set(RULES))
    if unknown:
        parser.error(f"unknown rule {unknown[0]!r}; rules: {', '.join(RULES)}")
    corpora = {}
    for name, folder, marker, load in (("fundus", args.corpus, "manifest.jsonl", fundus_pages),
                                       ("wcxb-dev", args.wcxb, "ground-truth", wcxb_pages)):
        if (Path(folder) / marker).exists():
            corpora[name] = quality.by_source(load(Path(folder)))
        else:
            print(f"skipped {name}: {folder} not found; pass {'--corpus' if name == 'fundus' else '--wcxb'}", file=sys.stderr)
    if not corpora:
        print("skipped: no corpus found")
        return 0
    spans = {}
    for name, sources in corpora.items():
        spans[name] = (len(_SOURCES), len(_SOURCES) + len(sources))
        _SOURCES.extend(sources)
    report: dict = {"passes": {}, "removed": {}}
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for off in [frozenset(), *passes]:
            results = pool.map(_texts, [(i, off, not off) for i in range(len(_SOURCES))], chunksize=4)
            label = "+".join(sorted(off)) or "none"
            report["passes"][label] = {}
            for name, (start, end) in spans.items():
                pages = [p for source in _SOURCES[start:end] for p in source]
                texts = [t for texts, _ in results[start:end] for t in texts]
                report["passes"][label][name] = score(pages, texts)
                if not off:
                    tally = defaultdict(lambda: {"content_lines": 0, "chrome_lines": 0, "content_words": 0, "chrome_words": 0})
                    removed = [r for _, rs in results[start:end] for r in rs]
                    for page, lines in zip(pages, removed):
                        truth = quality.word_string(page["expected"])
                        for rule, line in lines:
                            kind = "content" if is_content(line, truth) else "chrome"
                            tally[rule][f"{kind}_lines"] += 1
                            tally[rule][f"{kind}_words"] += len(_TOKEN.findall(line))
                    report["removed"][name] = dict(tally)
            print(f"off: {label:<28} " + "  ".join(f"{n} {json.dumps(s)}" for n, s in report["passes"][label].items()),
                  file=sys.stderr if args.json else sys.stdout, flush=True)
    switch(frozenset())
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print("\nremoved with every rule on (lines: content / chrome; words: content / chrome)")
    for name, tally in report["removed"].items():
        for rule, t in sorted(tally.items()):
            print(f"  {name:<9} {rule:<20} lines {t['content_lines']:>4} / {t['chrome_lines']:<4} "
                  f"words {t['content_words']:>6} / {t['chrome_words']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
