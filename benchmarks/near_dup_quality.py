"""Precision and recall of the Dedup stage's `near` tier on labelled copies of real articles (issue 4).

The source texts are the ground-truth bodies of the 258 pages of ../shared/corpora/fundus (relative to
the repository root): summary lines, then each section's headline lines and paragraphs, joined by
newlines (corpus.fundus_expected). Bodies under SHORT_WORDS words (the tier's `words`,
which in Japanese are whole runs of kana and kanji between punctuation) are set apart and scored as
a small second set; everything below is about the rest. The labelled set is built from --seed alone:

- originals: every body is an article of its own, published at a random time over DAYS days; a
  publisher's second and later articles are moved to 0-72 h after its first, so that its real pairs
  of different articles meet within the time window;
- copies, each a document of its own in its original's true cluster, published 1-48 h after it:
  chrome (promo, credit and copyright lines added at the top, the bottom or both), headline (the
  article's title as a line on top), truncated (the first 50-70% of the words, then "... Read the
  full story"), edited (4-6% of the words replaced by another word of the text, deleted, or followed
  by an inserted one), dateline ("PARIS — " and the like added, or the body's own removed),
  truncated+edited, and headline+chrome+edited;
- hard negatives, each its own true cluster, published 1-48 h after the original A whose cluster they
  must stay out of: `names`, another body B (of A's country where one fits) whose capitalised phrases
  (people, places, organisations; not words opening a sentence or line) are replaced by A's, most
  frequent for most frequent; `passage`, B followed by one background paragraph of A (at most a
  quarter of the result); `recap`, B under A's opening paragraphs (a follow-up recapping the first
  story: at most a quarter of A and a third of the result); and the corpus's own pairs of different
  articles by one publisher. B is published more than the window (plus 50 h) away from A, so a
  negative never meets B's own cluster; pairs of documents made from one text but in different
  clusters (two negatives built on the same B) are left out of the scores. The corpus holds one
  article twice (SAME_ARTICLE: two crawls of one Taz page, one paragraph apart), scored as one cluster.

The tier runs as the pipeline will: signature and band_keys of every text; candidate pairs only
from shared band keys (a bucket of more than BUCKET_CAP documents is skipped and reported); only
pairs published within WINDOW_DAYS of each other; copy_similarity verifies; pick_copies decides
with the keep order earliest published first (ties: longer text first). A predicted pair is two
documents in one predicted group (a kept document and its copies); a true pair is two documents of
one true cluster. Pairwise precision and recall are over all document pairs; per variant, recall
is over the true pairs that have a copy of that variant in them, and "grouped" is the share of the
variant's copies in their original's group. True pairs missed are put down to the first stage that
lost them: no signature, no shared band key, outside the window, not verified, or verified but
parted by pick_copies (no chains: a copy of a copy that does not resemble the kept original stays
an article; a copy goes to the kept document it scores highest with). The short set has no negatives.

"Closest hard negatives" gives the margin whatever the window: the highest Jaccard, containment and
lead Jaccard of each negative kind against every document of its donor's cluster.

Speed: signatures + band_hashes over all labelled texts in one process, SPEED_BATCH texts at a time, median docs/s of --repeat
runs. The sweep re-verifies the same candidates with NEAR_JACCARD, NEAR_CONTAINMENT and NEAR_LEAD of
transforms/similarity.py set in-process (one at a time, then the COMBINED rows; restored afterwards);
the band sweep recomputes the band keys at other BAND_ROWS (read by band_keys at call time) with the
thresholds as they are, and gives the share of true pairs that become candidates.

    python benchmarks/near_dup_quality.py [--corpus PATH] [--repeat N] [--json] [--seed N] [--show N]
"""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

from newsbeam.transforms import similarity
from newsbeam.transforms.similarity import (band_hashes, band_keys, containment, copy_similarity, jaccard, pick_copies, signatures,
                                            words)

from corpus import REPO, corpus_or_skip, corpus_parser, ground_truth
from corpus import fundus_expected as expected_text  # noqa: E402

TARGETS = {"precision": 0.99, "recall": 0.97}
SHORT_WORDS = 60  # bodies with fewer words are scored apart
DAYS = 60  # originals are published over this many days
WINDOW_DAYS = 7  # only pairs published this close are compared
BUCKET_CAP = 200  # dedup.BUCKET_LIMIT; past it the pipeline pairs members with the 50 best-ranked only, here none: counted
VARIANTS = ("chrome", "headline", "truncated", "edited", "dateline", "truncated+edited", "headline+chrome+edited")
NEGATIVES = ("names", "passage", "recap")
# Bodies of the corpus that are one article (read and compared: the same title and text, one paragraph
# fewer in the later crawl); each tuple is one true cluster.
SAME_ARTICLE = (("de/Taz_2023_04_28.html", "de/Taz_2024_10_23.html"),)
SWEEP = {"NEAR_JACCARD": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8), "NEAR_CONTAINMENT": (0.5, 0.6, 0.7, 0.8, 0.9),
         "NEAR_LEAD": (0.3, 0.4, 0.5, 0.6, 0.7)}
COMBINED = ((0.6, 0.6, 0.4), (0.6, 0.6, 0.3), (0.6, 0.65, 0.4), (0.55, 0.6, 0.4))  # (J, C, L) rows of the sweep
BAND_ROWS = (3, 4, 5)
STAGES = ("no signature", "no shared band", "outside window", "not verified", "parted by pick_copies")

_WORD_SPLIT = re.compile(r"(\w+)")
_WORD = re.compile(r"\w+")
_UPPER = r"A-ZÀ-ÖØ-ÞĀ-Ž"
_DATELINE = re.compile(rf"^\s*(?:[{_UPPER}][{_UPPER} .,'’-]{{1,40}}(?:\s*\([^()\n]{{1,30}}\))?\s*[—–-]{{1,2}}\s+"
                       rf"|[{_UPPER}][a-zß-ÿ]+(?:[ -][{_UPPER}][a-zß-ÿ]+)?(?:\s*\([^()\n]{{1,30}}\))?[.:]\s+(?=[{_UPPER}]))")
_NAME = re.compile(r"[^\W\d_][\w'’-]*")
DATELINES = ("PARIS — ", "PARIS (AFP) — ", "NEW YORK (AP) — ", "LONDON (Reuters) - ", "Paris. ", "BRUSSELS — ")
SITES = ("Daily Courier", "Metro Herald", "The Evening Post", "News24 Wire", "Global Times Online", "Yahoo News")
TOP_CHROME = ("Advertisement", "Listen to this article", "Share this article on Facebook, X and WhatsApp",
              "Breaking news", "Sign up for our newsletter and get the day's top stories in your inbox", "Photo: Reuters")
BOTTOM_CHROME = ("Sign up for our newsletter to get the latest news every morning.", "© 2025 {site}. All rights reserved.",
                 "Follow us on Facebook, X and Instagram for more news.", "This article was first published by {site}.",
                 "Got a story? Email news@example.com", "Copyright 2025 The Associated Press. All rights reserved. "
                 "This material may not be published, broadcast, rewritten or redistributed.")


# ---------------------------------------------------------------- the labelled set

def load_bodies(corpus: Path) -> list[dict]:
    bodies = []
    for row, truth in ground_truth(corpus):
        text = expected_text(truth["body"])
        bodies.append({"page": row["html"].removesuffix(".gz"), "publisher": row["publisher"], "country": row["country"],
                       "title": (truth.get("title") or "").strip(), "text": text, "words": len(words(text))})
    return bodies


def chrome(text: str, rng: random.Random, site: str) -> str:
    where = rng.choice(("top", "bottom", "both"))
    top = rng.sample(TOP_CHROME, rng.randint(1, 2)) if where != "bottom" else []
    bottom = [line.format(site=site) for line in rng.sample(BOTTOM_CHROME, rng.randint(1, 3))] if where != "top" else []
    return "\n".join(top + [text] + bottom)


def headline(text: str, title: str) -> str:
    return f"{title or text.split(chr(10))[0][:120]}\n{text}"


def truncated(text: str, rng: random.Random, site: str) -> str:
    ends = [m.end() for m in _WORD.finditer(text)]
    keep = max(1, round(rng.uniform(0.5, 0.7) * len(ends)))
    return f"{text[:ends[keep - 1]]} …\nRead the full story at {site}."


def edited(text: str, rng: random.Random) -> str:
    """About 5% (4-6%) of the words replaced by another word of the text, deleted, or followed by an inserted one."""
    parts = _WORD_SPLIT.split(text)  # separator, word, separator, ..., separator
    spots = list(range(1, len(parts), 2))
    vocab = sorted({parts[i] for i in spots})
    for i in rng.sample(spots, max(1, round(rng.uniform(0.04, 0.06) * len(spots)))):
        op = rng.choice(("replace", "delete", "insert"))
        if op == "delete":
            parts[i] = ""
        else:
            other = rng.choice(vocab)
            while len(vocab) > 1 and other == parts[i]:
                other = rng.choice(vocab)
            parts[i] = other if op == "replace" else f"{parts[i]} {other}"
    return "".join(parts)


def dateline(text: str, rng: random.Random) -> tuple[str, str]:
    found = _DATELINE.match(text)
    if found:
        return text[found.end():], "removed"
    return rng.choice(DATELINES) + text.lstrip(), "added"


def names(text: str) -> list[tuple[int, int, str]]:
    """Capitalised phrases that do not open a sentence or line: (start, end, phrase)."""
    found, run = [], None
    for m in _NAME.finditer(text):
        before = text[:m.start()].rstrip(" \t")
        capital = m.group()[0].isupper() and before and before[-1] not in ".!?:\n\"“„«»—–-"
        if capital and run and text[run[1]:m.start()] == " ":
            run = (run[0], m.end())
        else:
            if run:
                found.append(run)
            run = (m.start(), m.end()) if capital else None
    if run:
        found.append(run)
    return [(a, b, text[a:b]) for a, b in found]


def with_names_of(text: str, donor: str) -> str | None:
    """`text` with its capitalised phrases replaced by the donor's, most frequent for most frequent."""
    theirs = [p for p, _ in Counter(p for *_, p in names(donor)).most_common()]
    ours = names(text)
    if len(theirs) < 3 or len(ours) < 3:
        return None
    mapping = {p: theirs[i % len(theirs)] for i, (p, _) in enumerate(Counter(p for *_, p in ours).most_common())}
    out, last = [], 0
    for a, b, phrase in ours:
        out += [text[last:a], mapping[phrase]]
        last = b
    return "".join(out + [text[last:]])


def with_passage_of(text: str, donor: str, rng: random.Random) -> str | None:
    """`text` followed by one background paragraph of the donor, at most a quarter of the result."""
    limit = len(words(text)) / 3
    paragraphs = [p for p in donor.split("\n") if 15 <= len(words(p)) <= limit]
    return f"{text}\n{rng.choice(paragraphs)}" if paragraphs else None


def with_recap_of(text: str, donor: str) -> str | None:
    """`text` under the donor's opening paragraphs (a follow-up recapping the first story): at most a quarter
    of the donor's words and a third of the result."""
    limit, recap = min(len(words(text)) / 2, len(words(donor)) / 4), []
    for paragraph in donor.split("\n"):
        if len(words("\n".join(recap + [paragraph]))) > limit:
            break
        recap.append(paragraph)
    return "\n".join(recap + [text]) if len(words("\n".join(recap))) >= 15 else None


def build(bodies: list[dict], seed: int, negatives: bool = True) -> tuple[list[dict], set[tuple[int, int]]]:
    """The labelled documents (cluster, kind, variant, published hours, text) and the pairs left out of the scores."""
    rng = random.Random(seed)
    hours = [rng.uniform(0, DAYS * 24) for _ in bodies]
    first: dict[str, int] = {}
    for i, body in enumerate(bodies):  # a publisher's articles meet in the window
        if body["publisher"] in first:
            hours[i] = hours[first[body["publisher"]]] + rng.uniform(0, 72)
        else:
            first[body["publisher"]] = i
    pages = {b["page"]: i for i, b in enumerate(bodies)}
    canon = list(range(len(bodies)))  # a body's true cluster: its own, or the first of the known same article
    for same in SAME_ARTICLE:
        for page in same[1:]:
            if page in pages and same[0] in pages:
                canon[pages[page]] = pages[same[0]]
    docs = []

    def add(body, kind, variant, published, text, family=None, donor=None, note=""):
        """family: the cluster whose text this is; a negative's own cluster is its id."""
        docs.append({"id": f"{body}/{variant}", "body": body, "cluster": canon[body] if family is None else f"{variant}{donor}",
                     "family": canon[body] if family is None else canon[family], "donor": None if donor is None else canon[donor],
                     "kind": kind, "variant": variant, "published": published, "text": text, "note": note,
                     "publisher": bodies[body if family is None else family]["publisher"]})

    for i, body in enumerate(bodies):
        text, site = body["text"], rng.choice(SITES)
        add(i, "original", "original", hours[i], text)
        for variant in VARIANTS:
            note = ""
            if variant == "chrome":
                copy = chrome(text, rng, site)
            elif variant == "headline":
                copy = headline(text, body["title"])
            elif variant == "truncated":
                copy = truncated(text, rng, site)
            elif variant == "edited":
                copy = edited(text, rng)
            elif variant == "dateline":
                copy, note = dateline(text, rng)
            elif variant == "truncated+edited":
                copy = edited(truncated(text, rng, site), rng)
            else:
                copy = edited(chrome(headline(text, body["title"]), rng, site), rng)
            add(i, "copy", variant, hours[i] + rng.uniform(1, 48), copy, note=note)
    if negatives:
        for i, body in enumerate(bodies):
            # B is published far enough from A that B's text never meets its own cluster: the
            # negative's only neighbours in the window are A's cluster and other negatives.
            far = [j for j in range(len(bodies)) if abs(hours[j] - hours[i]) > WINDOW_DAYS * 24 + 50]
            same_country = [j for j in far if bodies[j]["country"] == body["country"]]
            for kind in NEGATIVES:
                j = rng.choice(same_country or far)
                if kind == "names":
                    text = with_names_of(bodies[j]["text"], body["text"])
                elif kind == "passage":
                    text = with_passage_of(bodies[j]["text"], body["text"], rng)
                else:
                    text = with_recap_of(bodies[j]["text"], body["text"])
                if text is not None:
                    add(i, "negative", kind, hours[i] + rng.uniform(1, 48), text, family=j, donor=i, note=f"text of {j}")
    by_family = defaultdict(list)
    for i, d in enumerate(docs):
        by_family[d["family"]].append(i)
    ignored = {(a, b) for ids in by_family.values() for a, b in combinations(ids, 2) if docs[a]["cluster"] != docs[b]["cluster"]}
    return docs, ignored, [tuple(bodies[i]["page"] for i in (canon[k], k)) for k in range(len(bodies)) if canon[k] != k]


# ---------------------------------------------------------------- the tier, as the pipeline runs it

def candidates(keys: list[list[str] | None]) -> tuple[set[tuple[int, int]], int, int]:
    """Pairs sharing a band key, the number of buckets over BUCKET_CAP skipped, the largest bucket."""
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, doc_keys in enumerate(keys):
        for key in doc_keys or ():
            buckets[key].append(i)
    pairs, capped = set(), 0
    for ids in buckets.values():
        if len(ids) > BUCKET_CAP:
            capped += 1
        elif len(ids) > 1:
            pairs.update(combinations(ids, 2))  # ids are in increasing order
    return pairs, capped, max((len(ids) for ids in buckets.values()), default=0)


def within_window(docs: list[dict], pairs) -> list[tuple[int, int]]:
    return sorted((a, b) for a, b in pairs if abs(docs[a]["published"] - docs[b]["published"]) <= WINDOW_DAYS * 24)


def groups_of(docs: list[dict], sigs: list, window_pairs: list[tuple[int, int]]) -> tuple[list[int], set[tuple[int, int]]]:
    """Each document's predicted group (its kept document's index) and the verified pairs."""
    verified = {}
    for a, b in window_pairs:
        sim = copy_similarity(sigs[a], sigs[b])
        if sim is not None:
            verified[(docs[a]["id"], docs[b]["id"])] = sim
    order = sorted(range(len(docs)), key=lambda i: (docs[i]["published"], -len(docs[i]["text"]), docs[i]["id"]))
    copies = pick_copies([docs[i]["id"] for i in order], verified)
    index = {d["id"]: i for i, d in enumerate(docs)}
    group = [index[copies[d["id"]][0]] if d["id"] in copies else i for i, d in enumerate(docs)]
    return group, {(index[a], index[b]) if index[a] < index[b] else (index[b], index[a]) for a, b in verified}


def pair_sets(docs: list[dict], group: list[int], ignored: set) -> tuple[set, set]:
    by_group, by_cluster = defaultdict(list), defaultdict(list)
    for i, d in enumerate(docs):
        by_group[group[i]].append(i)
        by_cluster[d["cluster"]].append(i)
    predicted = {p for ids in by_group.values() for p in combinations(ids, 2)} - ignored
    true = {p for ids in by_cluster.values() for p in combinations(ids, 2)}
    return predicted, true


def score(docs: list[dict], group: list[int], verified: set, ignored: set) -> dict:
    predicted, true = pair_sets(docs, group, ignored)
    tp = len(predicted & true)
    result = {"predicted_pairs": len(predicted), "true_pairs": len(true), "true_positives": tp,
              "precision": tp / len(predicted) if predicted else 1.0, "recall": tp / len(true) if true else 1.0}
    original = {d["body"]: i for i, d in enumerate(docs) if d["kind"] == "original"}
    per_variant = {}
    for variant in VARIANTS:
        ids = [i for i, d in enumerate(docs) if d["variant"] == variant]
        theirs = {p for p in true if docs[p[0]]["variant"] == variant or docs[p[1]]["variant"] == variant}
        per_variant[variant] = {"copies": len(ids), "pair_recall": len(theirs & predicted) / len(theirs) if theirs else 1.0,
                                "grouped": sum(group[i] == group[original[docs[i]["body"]]] for i in ids) / len(ids) if ids else 1.0}
    result["per_variant"] = per_variant
    members = defaultdict(list)
    for i, d in enumerate(docs):
        members[d["cluster"]].append(i)
    negatives = {}
    for kind in NEGATIVES:
        ids = [i for i, d in enumerate(docs) if d["variant"] == kind]
        donor = {i: members[docs[i]["donor"]] for i in ids}
        source = {i: members[docs[i]["family"]] for i in ids}
        pair = lambda i, j: (i, j) if i < j else (j, i)  # noqa: E731
        negatives[kind] = {"docs": len(ids),
                           "verified_with_donor": sum(any(pair(i, j) in verified for j in donor[i]) for i in ids),
                           "grouped_with_donor": sum(any(group[i] == group[j] for j in donor[i]) for i in ids),
                           "grouped_with_source (not scored)": sum(any(group[i] == group[j] for j in source[i]) for i in ids)}
    originals = [i for i, d in enumerate(docs) if d["kind"] == "original"]
    publisher_pairs = [(a, b) for a, b in combinations(originals, 2)
                       if docs[a]["publisher"] == docs[b]["publisher"] and docs[a]["cluster"] != docs[b]["cluster"]]
    negatives["same_publisher"] = {"pairs": len(publisher_pairs),
                                   "within_window": sum(abs(docs[a]["published"] - docs[b]["published"]) <= WINDOW_DAYS * 24
                                                        for a, b in publisher_pairs),
                                   "verified": sum(p in verified for p in publisher_pairs),
                                   "grouped": sum(group[a] == group[b] for a, b in publisher_pairs)}
    result["hard_negatives"] = negatives
    result["false_pairs_by_kind"] = dict(Counter(
        "/".join(sorted({docs[a]["kind"] if docs[a]["kind"] != "negative" else docs[a]["variant"],
                         docs[b]["kind"] if docs[b]["kind"] != "negative" else docs[b]["variant"]}))
        for a, b in predicted - true))
    return result


def evaluate(docs: list[dict], ignored: set) -> dict:
    sigs = signatures([d["text"] for d in docs])
    keys = [band_keys(s) if s is not None else None for s in sigs]
    pairs, capped, largest = candidates(keys)
    window = within_window(docs, pairs)
    t0 = time.perf_counter()
    group, verified = groups_of(docs, sigs, window)
    verify_seconds = time.perf_counter() - t0
    result = score(docs, group, verified, ignored)
    predicted, true = pair_sets(docs, group, ignored)
    stages = Counter()
    for a, b in true - predicted:
        if sigs[a] is None or sigs[b] is None:
            stages["no signature"] += 1
        elif (a, b) not in pairs:
            stages["no shared band"] += 1
        elif abs(docs[a]["published"] - docs[b]["published"]) > WINDOW_DAYS * 24:
            stages["outside window"] += 1
        elif (a, b) not in verified:
            stages["not verified"] += 1
        else:
            stages["parted by pick_copies"] += 1
    original = {d["body"]: i for i, d in enumerate(docs) if d["kind"] == "original"}
    missed = []
    for i, d in enumerate(docs):
        o = original.get(d["body"])
        if d["kind"] == "copy" and group[i] != group[o]:
            a, b = sigs[o], sigs[i]
            j = jaccard(a, b) if a and b else None
            missed.append({"copy": d["id"], "variant": d["variant"], "note": d["note"], "words": [len(words(docs[o]["text"])), len(words(d["text"]))],
                           "jaccard": j, "containment": containment(j, a, b) if j is not None else None,
                           "lead": containment(jaccard(a, b, "lead"), a, b, "lead") if j is not None else None,
                           "candidate": (min(o, i), max(o, i)) in pairs, "verified": (min(o, i), max(o, i)) in verified})
    copy_checks = {v: [] for v in VARIANTS}
    for i, d in enumerate(docs):
        o = original.get(d["body"])
        if d["kind"] == "copy" and sigs[i] is not None and sigs[o] is not None:
            a, b = sigs[o], sigs[i]
            j = jaccard(a, b)
            copy_checks[d["variant"]].append((j, containment(j, a, b), containment(jaccard(a, b, "lead"), a, b, "lead"), copy_similarity(a, b) is not None,
                                              (min(i, o), max(i, o)) in pairs))
    for v, rows in copy_checks.items():
        result["per_variant"][v].update({
            "candidate_with_original": sum(r[4] for r in rows) / len(rows) if rows else None,
            "verified_with_original": sum(r[3] for r in rows) / len(rows) if rows else None,
            "median_jaccard": statistics.median(r[0] for r in rows) if rows else None,
            "min_jaccard": min(r[0] for r in rows) if rows else None,
            "median_containment": statistics.median(r[1] for r in rows) if rows else None,
            "min_lead": min(r[2] for r in rows) if rows else None})
    members = defaultdict(list)
    for i, d in enumerate(docs):
        members[d["cluster"]].append(i)
    closest = {}  # the margin: how near the hard negatives come to passing, whatever the window
    for kind in NEGATIVES + ("same_publisher",):
        if kind == "same_publisher":
            originals = [i for i, d in enumerate(docs) if d["kind"] == "original"]
            against = [(a, b) for a, b in combinations(originals, 2)
                       if docs[a]["publisher"] == docs[b]["publisher"] and docs[a]["cluster"] != docs[b]["cluster"]]
        else:
            against = [(i, j) for i, d in enumerate(docs) if d["variant"] == kind for j in members[d["donor"]]]
        values = []
        for a, b in against:
            if sigs[a] is not None and sigs[b] is not None:
                j = jaccard(sigs[a], sigs[b])
                values.append((j, containment(j, sigs[a], sigs[b]), containment(jaccard(sigs[a], sigs[b], "lead"), sigs[a], sigs[b], "lead")))
        closest[kind] = {"pairs": len(values), **{f"max_{name}": max((v[k] for v in values), default=None)
                                                  for k, name in enumerate(("jaccard", "containment", "lead"))},
                         "lead_at_max_containment": max(values, key=lambda v: v[1])[2] if values else None}
    result["hard_negatives_closest"] = closest
    result.update({"docs": len(docs), "no_signature": sum(s is None for s in sigs), "candidate_pairs": len(pairs),
                   "within_window": len(window), "verified_pairs": len(verified), "capped_buckets": capped,
                   "largest_bucket": largest, "verify_pairs_per_s": len(window) / verify_seconds if verify_seconds else None,
                   "missed_by_stage": {s: stages[s] for s in STAGES}, "missed_copies": missed})
    result["_state"] = (sigs, window)
    return result


def sweep(docs: list[dict], ignored: set, sigs: list, window: list) -> list[dict]:
    rows = []
    defaults = {name: getattr(similarity, name) for name in SWEEP}
    settings = [(name, {name: value}) for name, values in SWEEP.items() for value in values]
    settings += [("combined", dict(zip(SWEEP, values))) for values in COMBINED]
    try:
        for name, setting in settings:
            for n, v in (defaults | setting).items():
                setattr(similarity, n, v)
            group, verified = groups_of(docs, sigs, window)
            r = score(docs, group, verified, ignored)
            worst = min(r["per_variant"].items(), key=lambda kv: kv[1]["pair_recall"])
            rows.append({"NEAR_JACCARD": similarity.NEAR_JACCARD, "NEAR_CONTAINMENT": similarity.NEAR_CONTAINMENT,
                         "NEAR_LEAD": similarity.NEAR_LEAD, "varied": name, "precision": r["precision"], "recall": r["recall"],
                         "false_pairs": r["predicted_pairs"] - r["true_positives"], "verified_pairs": len(verified),
                         "negatives_grouped": sum(r["hard_negatives"][k]["grouped_with_donor"] for k in NEGATIVES)
                         + r["hard_negatives"]["same_publisher"]["grouped"],
                         "worst_variant": worst[0], "worst_variant_recall": worst[1]["pair_recall"]})
    finally:
        for n, v in defaults.items():
            setattr(similarity, n, v)
    return rows


def band_sweep(docs: list[dict], ignored: set, sigs: list) -> list[dict]:
    """Candidates and scores at other BAND_ROWS (band_keys reads it at call time), thresholds as they are."""
    rows, default = [], similarity.BAND_ROWS
    try:
        for band_rows in BAND_ROWS:
            similarity.BAND_ROWS = band_rows
            pairs, capped, _ = candidates([band_keys(s) if s is not None else None for s in sigs])
            window = within_window(docs, pairs)
            group, verified = groups_of(docs, sigs, window)
            r = score(docs, group, verified, ignored)
            true = pair_sets(docs, group, ignored)[1]
            rows.append({"BAND_ROWS": band_rows, "bands": 2 * (similarity.PERMUTATIONS // band_rows), "candidate_pairs": len(pairs),
                         "capped_buckets": capped, "within_window": len(window), "true_pairs_candidates": len(true & pairs) / len(true),
                         "verified_pairs": len(verified), "precision": r["precision"], "recall": r["recall"]})
    finally:
        similarity.BAND_ROWS = default
    return rows


SPEED_BATCH = 1000


def speed(texts: list[str], repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for start in range(0, len(texts), SPEED_BATCH):  # as the tiers describe a chunk: a batch at a time
            band_hashes([sig for sig in signatures(texts[start:start + SPEED_BATCH]) if sig is not None])
        runs.append(time.perf_counter() - t0)
    seconds = statistics.median(runs)
    return {"docs": len(texts), "mean_words": sum(len(words(t)) for t in texts) / len(texts), "seconds": seconds,
            "runs": [round(r, 3) for r in runs], "docs_per_s": len(texts) / seconds}


# ---------------------------------------------------------------- report

def main(argv: list[str] | None = None) -> int:
    parser = corpus_parser(__doc__.splitlines()[0], default_repeat=3)
    parser.add_argument("--seed", type=int, default=1, help="seed of the labelled set (default 1)")
    parser.add_argument("--show", type=int, default=8, help="missed copies to list (default 8)")
    args = parser.parse_args(argv)
    corpus = corpus_or_skip(parser, args)
    if corpus is None:
        return 0
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    bodies = load_bodies(corpus)
    long = [b for b in bodies if b["words"] >= SHORT_WORDS]
    short = [b for b in bodies if b["words"] < SHORT_WORDS]
    docs, ignored, same = build(long, args.seed)
    result = evaluate(docs, ignored)
    sigs, window = result.pop("_state")
    table = sweep(docs, ignored, sigs, window)
    bands = band_sweep(docs, ignored, sigs)
    short_docs, short_ignored, _ = build(short, args.seed, negatives=False)
    short_result = evaluate(short_docs, short_ignored) if short_docs else None
    if short_result:
        short_result.pop("_state")
    timing = speed([d["text"] for d in docs], args.repeat)
    thresholds = {n: getattr(similarity, n) for n in SWEEP}
    targets = [(f"precision >= {TARGETS['precision']}", result["precision"] >= TARGETS["precision"], f"{result['precision']:.4f}"),
               (f"recall >= {TARGETS['recall']}", result["recall"] >= TARGETS["recall"], f"{result['recall']:.4f}")]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    kinds = Counter(d["kind"] for d in docs)

    if args.json:
        print(json.dumps({"commit": commit, "date": date, "seed": args.seed, "thresholds": thresholds,
                          "window_days": WINDOW_DAYS, "bucket_cap": BUCKET_CAP, "originals": kinds["original"],
                          "copies": kinds["copy"], "negatives": kinds["negative"], "short_bodies": len(short),
                          "same_article_in_corpus": same, "quality": result, "short": short_result, "speed": timing,
                          "sweep": table, "band_sweep": bands,
                          "targets": [{"target": t, "pass": ok, "value": v} for t, ok, v in targets]}, indent=2))
        return 0
    print(f"near tier on fundus: {kinds['original']} originals, {kinds['copy']} copies, {kinds['negative']} hard-negative documents"
          f" ({len(short)} bodies under {SHORT_WORDS} words set apart); seed {args.seed}; newsbeam commit {commit or 'unknown'}"
          f" (working tree as imported), {date}")
    print("thresholds: " + ", ".join(f"{n} {v}" for n, v in thresholds.items())
          + f"; window {WINDOW_DAYS} days; bucket cap {BUCKET_CAP}")
    r = result
    print(f"documents without a signature: {r['no_signature']}")
    print(f"candidates: {r['candidate_pairs']} pairs share a band key ({r['capped_buckets']} buckets over the cap skipped,"
          f" largest bucket {r['largest_bucket']}), {r['within_window']} within {WINDOW_DAYS} days, {r['verified_pairs']} verified")
    print(f"pairwise: precision {r['precision']:.4f} ({r['true_positives']}/{r['predicted_pairs']}),"
          f" recall {r['recall']:.4f} ({r['true_positives']}/{r['true_pairs']}); {len(ignored)} pairs not scored")
    print("true pairs missed, by the stage that lost them: " + ", ".join(f"{s} {n}" for s, n in r["missed_by_stage"].items()))
    print(f"false pairs by kind: {r['false_pairs_by_kind'] or 'none'}")
    print(f"{'variant':<24} {'copies':>6} {'pairR':>6} {'grouped':>7} {'cand':>6} {'verif':>6} {'J med':>6} {'J min':>6} {'C med':>6} {'L min':>6}"
          "   (copy vs its original; L: containment of the shorter opening in the other)")
    for v, s in r["per_variant"].items():
        print(f"{v:<24} {s['copies']:>6} {s['pair_recall']:>6.3f} {s['grouped']:>7.3f} {s['candidate_with_original']:>6.3f}"
              f" {s['verified_with_original']:>6.3f} {s['median_jaccard']:>6.3f} {s['min_jaccard']:>6.3f}"
              f" {s['median_containment']:>6.3f} {s['min_lead']:>6.3f}")
    hn = r["hard_negatives"]
    for kind in NEGATIVES:
        print(f"hard negatives, {kind}: {hn[kind]['docs']} documents, {hn[kind]['verified_with_donor']} verified with a document"
              f" of the donor's cluster, {hn[kind]['grouped_with_donor']} grouped with it"
              f" (grouped with the source article's cluster, not scored: {hn[kind]['grouped_with_source (not scored)']})")
    sp = hn["same_publisher"]
    print(f"hard negatives, same publisher: {sp['pairs']} real pairs of different articles, {sp['within_window']} within the window,"
          f" {sp['verified']} verified, {sp['grouped']} grouped (bodies known to be one article, scored as one cluster: {same or 'none'})")
    print("closest hard negatives (any time; names/passage/recap against every document of the donor's cluster):")
    for kind, c in r["hard_negatives_closest"].items():
        if c["pairs"]:
            print(f"  {kind:<15} {c['pairs']:>5} pairs: max J {c['max_jaccard']:.3f}, max C {c['max_containment']:.3f}"
                  f" (its lead {c['lead_at_max_containment']:.3f}), max lead {c['max_lead']:.3f}")
    print(f"missed copies (not in their original's group): {len(r['missed_copies'])}; first {args.show}:")
    for m in r["missed_copies"][:args.show]:
        values = "no signature" if m["jaccard"] is None else f"J {m['jaccard']:.3f} C {m['containment']:.3f} L {m['lead']:.3f}"
        print(f"  {m['copy']:<34} words {m['words'][0]:>5} -> {m['words'][1]:>5}  {values}  candidate {m['candidate']}, verified {m['verified']}"
              + (f" ({m['note']})" if m["note"] else ""))
    if short_result:
        s = short_result
        print(f"short bodies (< {SHORT_WORDS} words, scored apart): {s['docs']} documents, {s['no_signature']} without a signature,"
              f" precision {s['precision']:.4f}, recall {s['recall']:.4f} ({s['true_positives']}/{s['true_pairs']})")
    print(f"speed: signature + band_keys {timing['docs_per_s']:.0f} docs/s in one process ({timing['docs']} texts, mean"
          f" {timing['mean_words']:.0f} words; median of {args.repeat} runs {timing['runs']} s); verification"
          f" {r['verify_pairs_per_s']:.0f} pairs/s")
    print("sweep (one threshold varied, the others as above, then combined rows; negs = hard negatives grouped with their"
          " donor's cluster + same-publisher pairs grouped):")
    print(f"  {'varied':<17} {'J':>5} {'C':>5} {'L':>5} {'P':>7} {'R':>7} {'false':>6} {'verified':>8} {'negs':>5}  worst variant (pair recall)")
    for row in table:
        print(f"  {row['varied']:<17} {row['NEAR_JACCARD']:>5.2f} {row['NEAR_CONTAINMENT']:>5.2f} {row['NEAR_LEAD']:>5.2f}"
              f" {row['precision']:>7.4f} {row['recall']:>7.4f} {row['false_pairs']:>6} {row['verified_pairs']:>8} {row['negatives_grouped']:>5}"
              f"  {row['worst_variant']} ({row['worst_variant_recall']:.3f})")
    print("band sweep (BAND_ROWS; thresholds as above): candidates and the share of true pairs among them")
    print(f"  {'rows':>4} {'keys':>4} {'candidates':>10} {'in window':>9} {'true cand':>9} {'verified':>8} {'P':>7} {'R':>7}")
    for row in bands:
        print(f"  {row['BAND_ROWS']:>4} {row['bands']:>4} {row['candidate_pairs']:>10} {row['within_window']:>9}"
              f" {row['true_pairs_candidates']:>9.4f} {row['verified_pairs']:>8} {row['precision']:>7.4f} {row['recall']:>7.4f}"
              + (f"  ({row['capped_buckets']} buckets capped)" if row["capped_buckets"] else ""))
    for target, ok, value in targets:
        print(f"{'PASS' if ok else 'FAIL'} {target} ({value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
