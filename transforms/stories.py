"""Story tier: articles about one event, written in other words, share a `story_id`.

Copies are the near tier's business (transforms/similarity.py); here the texts share few
phrases, so the evidence is what a reader would use: the same named people, places and
organisations, the same content words, and closeness in time.

- `story_features`: the named things a text mentions (capitalised phrases that do not just
  open a sentence, acronyms, and the longer words of each phrase, so "Putin" meets
  "Vladimir Putin"), and its content words (four letters or more, not among the commonest
  function words), and the numbers it gives; worked out for a whole batch at once by
  transforms/features.py (`batch_features`), which shares its tokenisation with the near tier.
- `story_score`: an IDF-weighted overlap of the named things and numbers and a TF-IDF cosine of
  the content words, averaged, then averaged with the lead coverage (see `_lead_coverage`), times
  a time decay exp(-Δt²/2σ²) with σ = STORY_SIGMA. Articles further apart than STORY_REACH
  (where the decay alone falls below the threshold) are never compared.
- `assign_stories`: in publication order, an article is scored against the earlier articles that
  share at least MIN_SHARED_NAMES named things with it; each story gets the mean of its members'
  scores weighted by their time decay, and the article joins the best story if that reaches
  STORY_THRESHOLD; otherwise it starts a story of its own (its id is the story id). So a story that
  continues over days keeps its id, and another event that recaps only one member of a story (often
  its latest development) does not join it.

Pure functions, no model and no download: the same code serves a run, earlier runs' stored
features and `newsbeam dedup`.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from operator import mul

from newsbeam.transforms.features import STEM_LETTERS, describe_texts

STORY_SIGMA = timedelta(days=3)
MAX_STORY_GAP = timedelta(days=30)
STORY_THRESHOLD = 0.232  # chosen on benchmarks/story_quality.py: see BENCHMARKS.md for how thin the margin is
# A score is at most its time decay, so articles further apart than this can never reach the threshold:
# the tier looks no further back (and, in Beam, works in time blocks at least this long).
STORY_REACH = min(MAX_STORY_GAP, STORY_SIGMA * math.sqrt(2 * math.log(1 / STORY_THRESHOLD)))
MIN_SHARED_NAMES = 2
NAME_WEIGHT = 0.5  # the rest is the content words' cosine
IDF_PRIOR_DOCS = 1000
POSTING_LIMIT = 200  # a name shared by more recent articles than this is compared only with the nearest in time
MAX_CANDIDATES = 30  # an article is scored against at most this many earlier ones: those sharing most names, then the latest

@dataclass(frozen=True)
class StoryFeatures:
    """What the story tier keeps of an article: its named things, its top content words, what its lead says."""

    names: frozenset
    terms: tuple  # ((word, count), ...), most frequent first
    lead: frozenset = frozenset()  # stems of the title's and first sentence's content words
    numbers: frozenset = frozenset()  # the numbers the text gives ("14", "42", "6.1"), number words as digits

    @classmethod
    def from_state(cls, row: dict) -> "StoryFeatures":
        """The features of a story-state row (schemas STORY_STATE)."""
        return cls(frozenset(row["names"]), tuple(zip(row["terms"], row["counts"])), frozenset(row["lead"]),
                   frozenset(row.get("numbers") or ()))

    def state_fields(self) -> dict:
        """The features as a story-state row's columns; from_state reads them back."""
        return {"names": sorted(self.names), "terms": [w for w, _ in self.terms], "counts": [c for _, c in self.terms],
                "lead": sorted(self.lead), "numbers": sorted(self.numbers)}

    @cached_property
    def stems(self) -> frozenset:
        return frozenset({stem(word) for word, _ in self.terms} | self.lead)


def stem(word: str) -> str:
    """A crude stem that works in any language with inflected endings: flood, floods, flooded, flooding."""
    return word[:STEM_LETTERS]


def story_features(text: str, title: str | None = None) -> StoryFeatures:
    """The named things, top content words, lead stems and numbers of an article (title optional); for many
    articles at once, batch_features."""
    return batch_features([text], [title])[0]


def batch_features(texts: list[str], titles: list[str | None] | None = None) -> list[StoryFeatures]:
    """story_features of a batch (transforms/features.py reads the whole batch at once)."""
    return described_features(describe_texts(texts, titles))


def described_features(described) -> list[StoryFeatures]:
    """The StoryFeatures of a described batch (features.Described)."""
    return [StoryFeatures(frozenset(names), tuple(zip(terms, counts)), frozenset(lead), frozenset(numbers))
            for names, terms, counts, lead, numbers in zip(described.names, described.terms, described.counts,
                                                           described.lead_stems, described.numbers)]


def feature_keys(features: StoryFeatures) -> tuple[frozenset, frozenset]:
    """The keys an article adds to the IDF counts: its names and numbers (as "#14"), its content words and stems."""
    return (features.names | {"#" + x for x in features.numbers},
            frozenset(word for word, _ in features.terms), features.stems)


def idf_weights(features, background=None, keys=feature_keys) -> tuple[dict[str, float], dict[str, float], float]:
    """Smoothed IDF of names and of content words over a batch, and the weight of an unseen key.

    `background`: (n, name_df, term_df) of more articles of the batch that are not among `features`
    (earlier runs' articles that share no name with this run's, counted by `state_feature_counts`).
    `keys`: what gives an item's (names, words, stems) keys, for items that are not StoryFeatures.
    """
    n, name_df, term_df = 0, Counter(), Counter()
    if background is not None:
        n, name_df, term_df = background[0], Counter(background[1]), Counter(background[2])
    for f in features:  # one pass: the features may be made on the fly
        n += 1
        names, words, stems = keys(f)
        name_df.update(names)
        term_df.update(words)
        term_df.update(stems)
    # As if the batch sat in a background of IDF_PRIOR_DOCS unrelated articles: a handful of articles
    # that all name one town must not make the town look common.
    idf = lambda df: math.log((n + IDF_PRIOR_DOCS + 1) / (df + 1)) + 1.0  # noqa: E731
    return {k: idf(v) for k, v in name_df.items()}, {k: idf(v) for k, v in term_df.items()}, idf(0)


def state_feature_counts(table, name_keys, term_keys) -> tuple[int, dict, dict]:
    """(n, name_df, term_df) of story-state rows (an Arrow table with the STORY_STATE feature columns), as
    idf_weights counts them, for the given keys only: the table's articles as a background batch.
    Columnar: a time block's tens of thousands of stored rows are counted without making their features."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def distinct_counts(parts, wanted) -> dict:
        rows = pa.concat_arrays([pc.list_parent_indices(column) for column, _ in parts]) if parts else pa.array([], pa.int64())
        values = pa.concat_arrays([pc.cast(v, pa.string()) for _, v in parts]) if parts else pa.array([], pa.string())
        pairs = pa.table({"row": rows, "key": values}).filter(pc.is_in(values, value_set=pa.array(sorted(wanted), pa.string())))
        distinct = pairs.group_by(["row", "key"]).aggregate([])  # each article counts a key once
        counted = distinct.group_by("key").aggregate([("row", "count")])
        return dict(zip(counted.column("key").to_pylist(), counted.column("row_count").to_pylist()))

    def flat(name: str):
        column = table.column(name).combine_chunks()
        return column.fill_null([]) if column.null_count else column

    names, numbers, terms, lead = flat("names"), flat("numbers"), flat("terms"), flat("lead")
    name_parts = [(names, names.flatten()), (numbers, pc.binary_join_element_wise("#", numbers.flatten(), ""))]
    stems = pc.utf8_slice_codeunits(terms.flatten(), 0, STEM_LETTERS)
    name_df = distinct_counts(name_parts, name_keys)
    term_df = distinct_counts([(terms, terms.flatten())], term_keys)
    for key, found in distinct_counts([(terms, stems), (lead, lead.flatten())], term_keys).items():
        term_df[key] = term_df.get(key, 0) + found
    return len(table), name_df, term_df


@dataclass
class _Scored:
    """One article's features weighted by a batch's IDF, ready to be compared many times."""

    features: StoryFeatures
    name_weight: dict
    vector: dict
    norm: float
    lead_weight: dict
    lead_total: float
    name_total: float
    stems: frozenset  # features.stems, looked up once


def _prepare(features: StoryFeatures, idf) -> _Scored:
    name_idf, term_idf, unseen = idf
    vector = {w: c * term_idf.get(w, unseen) for w, c in features.terms}
    lead = {x: term_idf.get(x, unseen) for x in features.lead}
    names = {k: name_idf.get(k, unseen) for k in features.names}
    names.update({"#" + x: name_idf.get("#" + x, unseen) for x in features.numbers})
    return _Scored(features, names, vector, math.sqrt(sum(v * v for v in vector.values())), lead, sum(lead.values()),
                   sum(names.values()), features.stems)


def story_score(a: StoryFeatures, b: StoryFeatures, apart: timedelta, idf=None) -> float:
    """How likely two articles report one event: 0 (unrelated or too far apart) to 1."""
    idf = idf or ({}, {}, 1.0)
    return _score(_prepare(a, idf), _prepare(b, idf), apart)


def _score(a: _Scored, b: _Scored, apart: timedelta, decay: float | None = None) -> float:
    """story_score of two prepared articles; `decay`: _decay(apart), when the caller has it already."""
    if abs(apart) > MAX_STORY_GAP:
        return 0.0
    a_names = a.name_weight
    shared = sum(map(a_names.__getitem__, a_names.keys() & b.name_weight.keys()))  # map: no frame per key
    union = a.name_total + b.name_total - shared
    names = shared / union if union else 0.0
    a_vector, b_vector = a.vector, b.vector
    both = a_vector.keys() & b_vector.keys()
    dot = sum(map(mul, map(a_vector.__getitem__, both), map(b_vector.__getitem__, both)))
    cosine = dot / (a.norm * b.norm) if a.norm and b.norm else 0.0
    decay = _decay(apart) if decay is None else decay
    overlap = NAME_WEIGHT * names + (1 - NAME_WEIGHT) * cosine
    return (overlap + (_lead_coverage(a, b) + _lead_coverage(b, a)) / 2) / 2 * decay


def _decay(apart: timedelta) -> float:
    hours, sigma = abs(apart).total_seconds() / 3600, STORY_SIGMA.total_seconds() / 3600
    return math.exp(-(hours * hours) / (2 * sigma * sigma))


def _lead_coverage(a: _Scored, b: _Scored) -> float:
    """How much of what a's lead says (IDF-weighted) b's text also says: high for two reports of one event,
    low for another event that only mentions it in the background."""
    if not a.lead_total:
        return 0.0
    lead = a.lead_weight
    return sum(map(lead.__getitem__, b.stems.intersection(lead))) / a.lead_total


def story_links(docs: list[tuple[str, datetime, StoryFeatures]], linkable=None, known=None, features_of=None,
                background=None, keys_of=None) -> dict[str, str]:
    """doc id -> the member of the story it joins that it resembles most, for each doc of `linkable` (default:
    all but the `known` ones) that joins an earlier story: story_candidates, then join_stories.

    Documents are taken in publication order (ties by id). Each doc not in `known` is scored
    against the earlier docs within STORY_REACH that share at least MIN_SHARED_NAMES names with
    it (at most MAX_CANDIDATES of them: those sharing the most names, then the latest); each of
    their stories gets the mean of those members' scores weighted by their time decay; the doc
    joins the best story if that reaches STORY_THRESHOLD, else starts its own.
    `known` docs (earlier runs' articles) keep their stored story ids. Docs outside `linkable` and
    `known` (another time block's) are candidates here but are not scored, and count as stories of
    their own: the Dedup stage scores them in their own block and joins all blocks in one pass.
    """
    known = known or {}
    return join_stories(story_candidates(docs, linkable, known, features_of, background, keys_of), known)


def story_candidates(docs: list[tuple[str, datetime, StoryFeatures]], linkable=None, known=None, features_of=None,
                     background=None, keys_of=None, names_of=None) -> list[tuple[str, list[tuple[str, float, float]]]]:
    """(doc id, [(candidate id, score, time decay), ...]) for each doc of `linkable` (default: all but the `known`
    ones), in publication order (ties by id); the candidates as story_links chooses them, in its order.

    Which docs are candidates and what they score does not depend on which story any doc joins, so the
    candidates of a time block can be scored on their own and joined later (join_stories).

    `background`: IDF counts of more articles of the batch that are not among `docs` (idf_weights).
    With `features_of`, the docs' third items are turned into StoryFeatures by it as they are
    needed, and only the docs within STORY_REACH of the current one are held prepared: memory
    follows the reach, not the number of docs. `keys_of`, if given, gives a third item's feature_keys
    without making its features (the IDF pass over all docs needs no more); `names_of` likewise its names.
    A doc is prepared for scoring only when it is scored or is a candidate.
    """
    known = known or {}
    features_of = features_of or (lambda features: features)
    names_of = names_of or (lambda raw: features_of(raw).names)
    ordered = sorted(docs, key=lambda d: (d[1], d[0]))
    if keys_of is None:
        idf = idf_weights((features_of(f) for _, _, f in ordered), background)
    else:
        idf = idf_weights((f for _, _, f in ordered), background, keys=keys_of)
    scored: dict[int, _Scored] = {}  # the docs within reach, prepared
    postings: dict[str, list[int]] = {}
    times = [when for _, when, _ in ordered]
    found = []
    oldest = 0
    for i, (doc_id, when, raw) in enumerate(ordered):
        start = bisect_left(times, when - STORY_REACH)  # the first document within reach
        for gone in range(oldest, start):
            scored.pop(gone, None)
        oldest = max(oldest, start)
        if doc_id not in known and (linkable is None or doc_id in linkable):
            scored[i] = _prepare(features_of(raw), idf)
            names = scored[i].features.names
            shared: Counter = Counter()
            for name in names:
                posted = postings.get(name, ())  # indices in publication order
                first = max(bisect_left(posted, start), len(posted) - POSTING_LIMIT)
                shared.update(posted[first:])
            candidates = [(count, j) for j, count in shared.items() if count >= MIN_SHARED_NAMES]
            candidates = (heapq.nlargest(MAX_CANDIDATES, candidates) if len(candidates) > MAX_CANDIDATES
                          else sorted(candidates, reverse=True))  # the same order either way: most names, then latest
            entries = []
            for _, j in candidates:
                other_id, other_when, other = ordered[j]
                if j not in scored:
                    scored[j] = _prepare(features_of(other), idf)
                apart = when - other_when
                weight = _decay(apart)
                entries.append((other_id, _score(scored[i], scored[j], apart, weight), weight))
            found.append((doc_id, entries))
        else:
            names = names_of(raw)
        for name in names:
            postings.setdefault(name, []).append(i)
    return found


def join_stories(scored, known=None, stories: dict | None = None) -> dict[str, str]:
    """story_candidates' scored docs, in publication order -> doc id -> the member it links to, for each that joins
    an earlier story.

    A story's score is the mean of its members' scores, each weighted by its time decay: an article must
    resemble the story, not just the one member (often the latest development) it recaps. `stories` (doc
    -> ("known", stored story id) or ("new", its first doc's id)) gives the stories of candidates scored
    before (another block's) and gets each doc's; a candidate it does not name is a story of its own.
    """
    stories = {} if stories is None else stories
    for doc_id, story_id in (known or {}).items():
        stories[doc_id] = ("known", story_id)
    links: dict[str, str] = {}
    for doc_id, entries in scored:
        support: dict[tuple, list] = {}
        for other_id, score, weight in entries:
            total = support.setdefault(stories.get(other_id) or ("new", other_id), [0.0, 0.0, None, -1.0])
            total[0] += score * weight
            total[1] += weight
            if score > total[3]:
                total[2], total[3] = other_id, score
        best, best_score = None, STORY_THRESHOLD
        for story, (weighted, weights, member, _) in sorted(support.items()):
            score = weighted / weights if weights else 0.0
            if score >= best_score:
                best, best_score = (story, member), score
        if best is None:
            stories[doc_id] = ("new", doc_id)
        else:
            stories[doc_id] = best[0]
            links[doc_id] = best[1]
    return links


def resolve_links(links) -> dict[str, str]:
    """(id, parent id, parent's own story) links -> id -> story id, following parents to the story's first article.

    A parent's own story is its stored story id, or its own id when it starts a story; a parent
    that has a link itself takes its story from its own parent, and so on.
    """
    parents = {doc_id: (parent, own) for doc_id, parent, own in links}
    stories: dict[str, str] = {}
    for doc_id in parents:
        chain = []
        while doc_id in parents and doc_id not in stories:
            chain.append(doc_id)
            doc_id = parents[doc_id][0]
        story = stories.get(doc_id) or parents[chain[-1]][1]
        for member in chain:
            stories[member] = story
    return stories


def assign_stories(docs: list[tuple[str, datetime, StoryFeatures]], known: dict[str, str] | None = None) -> dict[str, str]:
    """doc id -> story id for every document; `known` gives stored articles' story ids (they keep them).

    Each document not in `known` joins the story of the member it links to (story_links), else
    starts its own (its id is the story id).
    """
    known = known or {}
    links = story_links(docs, known=known)
    stories = {doc_id: known.get(doc_id, doc_id) for doc_id, _, _ in docs}
    stories.update(resolve_links((doc_id, parent, known.get(parent, parent)) for doc_id, parent in links.items()))
    return stories
