"""Pairwise precision and recall of the story tier (transforms/stories.py) on labelled articles written for it.

The data, benchmarks/data/stories.jsonl (relative to the repository root), is original fiction written for
newsbeam: invented countries, towns, people, companies and outlets (Norvalia, Kestrava, Kettlebridge, Hollin
Motors, ...), no real article copied or adapted. It is licensed Apache-2.0, like the rest of the project. One
JSON object a line: id, event (the true story), published_at (ISO 8601 with an offset), title, text
(paragraphs separated by newlines) and kind, one of:

- report: 25 events (politics, courts, business, disasters, sport, science, local news), each reported three
  times by different outlets in their own words (other structure, other quotes, other order), published within
  30 hours of each other. Reports of one event are not copies: their word 5-gram Jaccard stays below
  MAX_REPORT_JACCARD (checked on every run, "data check" below), so the near tier cannot see them;
- follow-up: for 10 of those events, a later article 1-3 days after the first report with new developments
  (the verdict after the trial opened, the death toll revised, the chief executive's resignation after the
  fine); the same event, a continuing story;
- hard-negative: 26 different events that share the main people, places and organisations of one event above
  (the same minister with another bill, the same fire chief at another fire in the same town, the same
  carmaker with another recall, the same court with another ruling), published 1-10 days from it; each
  mentions that event in a sentence of background, as a reporter would; each its own event, "<event>-hnN";
- far-apart: 8 different events with the same actors as one event above, 40-400 days from it (the same
  general on a visit to another country the year before, the same minister's next budget, the same town
  flooded again); each its own event, labelled "<event>-farN".

More sets, under the same terms (original fiction, Apache-2.0), each written by a helper that saw neither the
tier's code nor its figures: stories-world.jsonl (14 events in French, Spanish, Italian, Portuguese and English),
stories-de.jsonl (8 German and 3 Dutch events, each as a news item, a reportage and an explainer) and
stories-blind.jsonl (14 events in Polish, Swedish, Danish, Italian, Brazilian Portuguese, Turkish, Czech, Dutch,
French, Spanish and English, 200-260 words an article, the second report of each a human-interest piece and the
third of six an explainer; written while the tier was being changed and first scored only after, as data the
tier had never met). Ids and events are distinct across sets by their prefixes (E, W, G/N, X).

The tier runs as the pipeline will: batch_features(texts, titles) over all the articles at once, then one call of
assign_stories with (id, published datetime, features) for all of them. A predicted pair is two articles
with the same story id; a true pair is two articles of one event. Pairwise precision and recall are over all
document pairs. Per kind: recall over report-report pairs and over report-follow-up pairs; for hard negatives
and far-apart articles, the false pairs they are in, and how many of them share a story with the event they
were written against ("joined to their event") or with any other article. Joins over 30 days are predicted
pairs published more than 30 days apart (chains included: two articles in one story count whatever linked
them). Every false join and every miss is listed with both ids, the hours between them and both titles (the
first LIST_LIMIT of each on the console; all of them with --json).

Speed: batch_features over all texts, then assign_stories over all articles, each the median of REPEAT runs
in one process; docs/s is the article count over the sum of the two medians. The scores are those of the
first run.

    python benchmarks/story_quality.py [--data PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import zlib
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path

from newsbeam.transforms.similarity import copy_similarity, signature, words

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "benchmarks/data/stories*.jsonl"  # relative to the repository root: every labelled set
TARGETS = {"precision": 0.98, "recall": 0.92}
THRESHOLDS = [round(0.15 + 0.005 * i, 3) for i in range(31)]  # the sweep of --split: 0.150 to 0.300
MAX_GAP = timedelta(days=30)  # articles further apart must never share a story
MAX_REPORT_JACCARD = 0.1  # reports of one event: word 5-gram Jaccard below this, or the data is not what it claims
KINDS = ("report", "follow-up", "hard-negative", "far-apart")
REPEAT = 3
LIST_LIMIT = 40


# ---------------------------------------------------------------- the labelled set

def load_all(paths: list[Path]) -> list[dict]:
    """The articles of several labelled sets, as one: ids and events are distinct across sets by their prefixes."""
    docs, seen = [], set()
    for path in paths:
        for doc in load(path):
            if doc["id"] in seen:
                raise ValueError(f"{path}: id {doc['id']} is also in another set")
            seen.add(doc["id"])
            docs.append(doc)
    return docs


def half_of(group: str) -> int:
    """Which half of the labelled data an event's group (the event with its follow-ups, hard negatives and far-apart
    articles: the id before the first '-') is in: 0 to choose the threshold on, 1 to report on. Fixed by the name."""
    return zlib.crc32(group.encode("utf-8")) % 2


def load(path: Path) -> list[dict]:
    docs, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        published = datetime.fromisoformat(row["published_at"])
        if published.tzinfo is None:
            raise ValueError(f"{path}:{n}: published_at has no offset")
        if row["kind"] not in KINDS or row["id"] in seen:
            raise ValueError(f"{path}:{n}: unknown kind or repeated id ({row['kind']}, {row['id']})")
        seen.add(row["id"])
        docs.append({**row, "published": published, "related": row["event"].split("-")[0]})
    return docs


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def data_check(docs: list[dict]) -> dict:
    """How far apart the texts of one event are: word 5-gram Jaccard between its reports (the highest, and the
    highest of a report and a follow-up), and the near tier's own verdict (copy_similarity) on every true pair."""
    grams = [shingles(d["text"]) for d in docs]
    by_event = defaultdict(list)
    for i, d in enumerate(docs):
        by_event[d["event"]].append(i)
    worst = {"report/report": (0.0, None), "report/follow-up": (0.0, None)}
    near_copies, true_pairs = [], 0
    sigs = [signature(d["text"]) for d in docs]
    for ids in by_event.values():
        for a, b in combinations(ids, 2):
            true_pairs += 1
            j = len(grams[a] & grams[b]) / len(grams[a] | grams[b])
            key = "/".join(sorted((docs[a]["kind"], docs[b]["kind"]), key=KINDS.index))
            if key in worst and j > worst[key][0]:
                worst[key] = (j, (docs[a]["id"], docs[b]["id"]))
            if sigs[a] is not None and sigs[b] is not None and copy_similarity(sigs[a], sigs[b]) is not None:
                near_copies.append((docs[a]["id"], docs[b]["id"]))
    counts = Counter(d["kind"] for d in docs)
    return {"docs": len(docs), "events": len(by_event), "kinds": {k: counts[k] for k in KINDS},
            "words": [min(len(words(d["text"])) for d in docs), round(statistics.median(len(words(d["text"])) for d in docs)),
                      max(len(words(d["text"])) for d in docs)],
            "max_jaccard5": {k: {"value": v, "pair": p} for k, (v, p) in worst.items()},
            "true_pairs_near_copies": near_copies, "true_pairs": true_pairs,
            "ok": worst["report/report"][0] < MAX_REPORT_JACCARD and not near_copies}


# ---------------------------------------------------------------- the tier and its scores

def run_tier(docs: list[dict], batch_features, assign_stories) -> tuple[dict[str, str], dict]:
    feature_runs, assign_runs, first = [], [], None
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        features = batch_features([d["text"] for d in docs], [d["title"] for d in docs])
        t1 = time.perf_counter()
        stories = assign_stories([(d["id"], d["published"], f) for d, f in zip(docs, features)])
        t2 = time.perf_counter()
        feature_runs.append(t1 - t0)
        assign_runs.append(t2 - t1)
        first = first or stories
    features_s, assign_s = statistics.median(feature_runs), statistics.median(assign_runs)
    missing = [d["id"] for d in docs if d["id"] not in first]
    if missing:
        raise ValueError(f"assign_stories gave no story to {len(missing)} documents, e.g. {missing[:3]}")
    return first, {"docs": len(docs), "repeat": REPEAT, "features_s": features_s, "assign_s": assign_s,
                   "docs_per_s": len(docs) / (features_s + assign_s) if features_s + assign_s else None,
                   "runs_features": [round(r, 4) for r in feature_runs], "runs_assign": [round(r, 4) for r in assign_runs]}


def pair_row(a: dict, b: dict) -> dict:
    if b["published"] < a["published"]:
        a, b = b, a
    return {"ids": [a["id"], b["id"]], "kinds": [a["kind"], b["kind"]], "events": [a["event"], b["event"]],
            "hours_apart": round((b["published"] - a["published"]).total_seconds() / 3600, 1), "titles": [a["title"], b["title"]]}


def score(docs: list[dict], stories: dict[str, str]) -> dict:
    story = [stories[d["id"]] for d in docs]
    pairs = list(combinations(range(len(docs)), 2))
    predicted = {(a, b) for a, b in pairs if story[a] == story[b]}
    true = {(a, b) for a, b in pairs if docs[a]["event"] == docs[b]["event"]}
    tp = len(predicted & true)
    kinds = lambda a, b: {docs[a]["kind"], docs[b]["kind"]}  # noqa: E731
    result = {"docs": len(docs), "events": len({d["event"] for d in docs}), "stories": len(set(story)),
              "predicted_pairs": len(predicted), "true_pairs": len(true), "true_positives": tp,
              "precision": tp / len(predicted) if predicted else 1.0, "recall": tp / len(true) if true else 1.0}
    over = [(a, b) for a, b in predicted if abs(docs[a]["published"] - docs[b]["published"]) > MAX_GAP]
    result["joins_over_30_days"] = len(over)
    recall = {}
    for name, want in (("report/report", {"report"}), ("report/follow-up", {"report", "follow-up"})):
        theirs = {p for p in true if kinds(*p) == want}
        recall[name] = {"pairs": len(theirs), "found": len(theirs & predicted), "recall": len(theirs & predicted) / len(theirs) if theirs else 1.0}
    result["recall_by_kind"] = recall
    members = defaultdict(set)
    for i, d in enumerate(docs):
        members[d["event"]].add(i)
    main_events = [e for e in members if any(docs[i]["kind"] == "report" for i in members[e])]
    whole = [e for e in main_events if len({story[i] for i in members[e]}) == 1]
    result["events_whole"] = {"events": len(main_events), "whole": len(whole),
                              "whole_and_alone": sum(sum(s == story[next(iter(members[e]))] for s in story) == len(members[e]) for e in whole)}
    negatives = {}
    for kind in ("hard-negative", "far-apart"):
        ids = [i for i, d in enumerate(docs) if d["kind"] == kind]
        false = [p for p in predicted - true if kind in kinds(*p)]
        negatives[kind] = {"docs": len(ids), "false_pairs": len(false),
                           "joined_to_their_event": sum(any(story[i] == story[j] for j in members[docs[i]["related"]]) for i in ids),
                           "joined_to_anything": sum(any(story[i] == story[j] for j in range(len(docs)) if j != i) for i in ids)}
    result["negatives"] = negatives
    result["false_pairs_by_kind"] = dict(Counter("/".join(sorted(kinds(a, b), key=KINDS.index)) if len(kinds(a, b)) > 1
                                                 else f"{docs[a]['kind']}/{docs[a]['kind']}" for a, b in predicted - true))
    order = lambda p: (docs[p[0]]["event"], docs[p[0]]["id"], docs[p[1]]["id"])  # noqa: E731
    result["false_joins"] = [pair_row(docs[a], docs[b]) for a, b in sorted(predicted - true, key=order)]
    result["misses"] = [pair_row(docs[a], docs[b]) for a, b in sorted(true - predicted, key=order)]
    result["over_30_days"] = [pair_row(docs[a], docs[b]) for a, b in sorted(over, key=order)]
    return result


# ---------------------------------------------------------------- report

def show_pairs(title: str, rows: list[dict]) -> None:
    print(f"{title}: {len(rows)}" + (f"; first {LIST_LIMIT} (all with --json)" if len(rows) > LIST_LIMIT else ""))
    for r in rows[:LIST_LIMIT]:
        print(f"  {r['ids'][0]:<9} ~ {r['ids'][1]:<9} {r['hours_apart']:>7.1f} h  {r['titles'][0][:60]!r} / {r['titles'][1][:60]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", help=f"labelled articles, JSON lines (default: {DEFAULT_DATA})")
    parser.add_argument("--split", action="store_true", help="choose the threshold on one half of the events "
                        "(half_of) and report on the other, besides the whole set at the tier's own threshold")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        from newsbeam.transforms import stories as tier
        from newsbeam.transforms.stories import assign_stories, batch_features
    except ImportError as exc:
        print(f"newsbeam.transforms.stories is not importable yet ({exc}); nothing to measure")
        return 1
    paths = [Path(p) for p in args.data] if args.data else sorted(REPO.glob(DEFAULT_DATA))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        print(f"{', '.join(missing) or DEFAULT_DATA} not found; pass --data")
        return 1
    data = Path(", ".join(p.name for p in paths))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    docs = load_all(paths)
    check = data_check(docs)
    stories, timing = run_tier(docs, batch_features, assign_stories)
    r = score(docs, stories)
    split = held_out(docs, tier, batch_features, assign_stories) if args.split else None
    targets = [(f"precision >= {TARGETS['precision']}", r["precision"] >= TARGETS["precision"], f"{r['precision']:.4f}"),
               (f"recall >= {TARGETS['recall']}", r["recall"] >= TARGETS["recall"], f"{r['recall']:.4f}"),
               ("joins over 30 days == 0", r["joins_over_30_days"] == 0, str(r["joins_over_30_days"]))]
    if split is not None:
        held = split["reported"]
        targets += [(f"held-out precision >= {TARGETS['precision']}", held["precision"] >= TARGETS["precision"], f"{held['precision']:.4f}"),
                    (f"held-out recall >= {TARGETS['recall']}", held["recall"] >= TARGETS["recall"], f"{held['recall']:.4f}"),
                    ("held-out joins over 30 days == 0", held["joins_over_30_days"] == 0, str(held["joins_over_30_days"]))]
    if args.json:
        print(json.dumps({"commit": commit, "data": str(data), "data_check": check, "result": r, "timing": timing, "split": split,
                          "targets": {t: {"pass": ok, "value": v} for t, ok, v in targets}}, indent=2, ensure_ascii=False))
        return 0
    rr, rf = check["max_jaccard5"]["report/report"], check["max_jaccard5"]["report/follow-up"]
    print(f"story tier on {data.name} at {commit}: {check['docs']} articles ({', '.join(f'{v} {k}' for k, v in check['kinds'].items())}),"
          f" {check['events']} events, {check['words'][0]}-{check['words'][2]} words (median {check['words'][1]})")
    print(f"data check: max word 5-gram Jaccard report/report {rr['value']:.3f} ({' ~ '.join(rr['pair'] or ())}),"
          f" report/follow-up {rf['value']:.3f} ({' ~ '.join(rf['pair'] or ())}); true pairs the near tier calls copies:"
          f" {len(check['true_pairs_near_copies'])} of {check['true_pairs']}"
          + ("" if check["ok"] else f"  << NOT what the data claims (limit {MAX_REPORT_JACCARD}, no near copies)"))
    print(f"pairwise: precision {r['precision']:.4f}, recall {r['recall']:.4f} ({r['true_positives']} of {r['true_pairs']} true pairs;"
          f" {r['predicted_pairs']} predicted); {r['stories']} stories for {r['events']} events")
    for name, v in r["recall_by_kind"].items():
        print(f"  recall {name:<17} {v['recall']:.4f} ({v['found']}/{v['pairs']})")
    w = r["events_whole"]
    print(f"  events kept whole (reports and follow-up in one story): {w['whole']}/{w['events']}, of which alone in their story: {w['whole_and_alone']}")
    for kind, v in r["negatives"].items():
        print(f"  {kind:<13} {v['docs']:>3} articles: in {v['false_pairs']} false pairs; joined to their event {v['joined_to_their_event']},"
              f" to anything {v['joined_to_anything']}")
    print(f"  false pairs by kind: {r['false_pairs_by_kind'] or 'none'}")
    print(f"joins over 30 days: {r['joins_over_30_days']}")
    show_pairs("false joins", r["false_joins"])
    show_pairs("misses", r["misses"])
    if r["over_30_days"]:
        show_pairs("joins over 30 days", r["over_30_days"])
    print(f"speed: {timing['docs_per_s']:.0f} docs/s in one process (features {timing['features_s'] * 1000:.1f} ms,"
          f" assign_stories {timing['assign_s'] * 1000:.1f} ms for {timing['docs']} articles; medians of {timing['repeat']} runs)")
    if split is not None:
        c, h = split["chosen"], split["reported"]
        print(f"split: threshold chosen on {split['halves'][0]} ({c['docs']} articles): {split['threshold']}"
              f" (P {c['precision']:.4f}, R {c['recall']:.4f} there); on the other half, {split['halves'][1]}"
              f" ({h['docs']} articles): precision {h['precision']:.4f}, recall {h['recall']:.4f},"
              f" joins over 30 days {h['joins_over_30_days']} (the tier's own threshold: {split['own_threshold']})")
        show_pairs("held-out false joins", h["false_joins"])
        show_pairs("held-out misses", h["misses"])
    for target, ok, value in targets:
        print(f"{'PASS' if ok else 'FAIL'} {target} ({value})")
    return 0


def held_out(docs: list[dict], tier, batch_features, assign_stories) -> dict:
    """The threshold chosen on one half of the events (the highest recall with precision >= the target there; of
    equal ones the middle), then the scores on the other half with it. The tier's reach stays its own."""
    halves = [[d for d in docs if half_of(d["id"].split("-")[0]) == h] for h in (0, 1)]
    features = [batch_features([d["text"] for d in half], [d["title"] for d in half]) for half in halves]
    own = tier.STORY_THRESHOLD

    def scored(h: int, threshold: float) -> dict:
        tier.STORY_THRESHOLD = threshold
        try:
            return score(halves[h], assign_stories([(d["id"], d["published"], f) for d, f in zip(halves[h], features[h])]))
        finally:
            tier.STORY_THRESHOLD = own

    sweep = {t: scored(0, t) for t in THRESHOLDS}
    passing = [t for t in THRESHOLDS if sweep[t]["precision"] >= TARGETS["precision"]] or THRESHOLDS
    best = max(sweep[t]["recall"] for t in passing)
    ties = [t for t in passing if sweep[t]["recall"] == best]
    chosen = ties[len(ties) // 2]
    describe = lambda h: f"{len({d['id'].split('-')[0] for d in halves[h]})} event groups"  # noqa: E731
    return {"halves": [describe(0), describe(1)], "threshold": chosen, "own_threshold": own,
            "sweep": {t: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4)} for t, v in sweep.items()},
            "chosen": sweep[chosen], "reported": scored(1, chosen)}


if __name__ == "__main__":
    sys.exit(main())
