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
  the content words, averaged, then averaged with the lead coverage (how much of what one's title
  and first sentence say, IDF-weighted, the other's text says too; both ways), times a time decay
  exp(-Δt²/2σ²) with σ = STORY_SIGMA. Articles further apart than STORY_REACH (where the decay
  alone falls below the threshold) are never compared.
- `StoryBatch`: the same scores for a whole batch's candidate pairs at once, as array work over the
  batch's keys (sorted codes and binary search, no Python per pair): how the tier scores a time block
  of a million-article dataset. `story_score` is its two-article case.
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

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from newsbeam.transforms.features import STEM_LETTERS, describe_texts

STORY_SIGMA = timedelta(days=3)
MAX_STORY_GAP = timedelta(days=30)
STORY_THRESHOLD = 0.232  # chosen on benchmarks/story_quality.py: see BENCHMARKS.md for how thin the margin is
# A score is at most its time decay, so articles further apart than this can never reach the threshold:
# the tier looks no further back (and, in Beam, works in time blocks at least this long).
STORY_REACH = min(MAX_STORY_GAP, STORY_SIGMA * math.sqrt(2 * math.log(1 / STORY_THRESHOLD)))
MIN_SHARED_NAMES = 2
NAME_WEIGHT = 0.5  # the rest is the content words' cosine
LEAD_WEIGHT = 0.5  # of the score, the lead coverage's share; the rest is the names' and the words' overlap
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


def idf_weights(features, background=None) -> tuple[dict[str, float], dict[str, float], float]:
    """The IDF the tier weighs a batch's keys by (StoryBatch): {name or "#number": weight}, {word or stem: weight},
    and the weight of an unseen key.

    `background`: (n, name_df, term_df) of more articles of the batch that are not among `features`
    (earlier runs' articles that share no name with this run's, counted by `state_feature_counts`).
    """
    features = list(features)
    batch = StoryBatch(StoryColumns.of(features), np.zeros(len(features)), [str(i) for i in range(len(features))], background)
    total = len(features) + (background[0] if background else 0)
    found = []
    for vocabulary, idf, counted in ((batch.name_vocabulary.to_pylist(), batch.name_idf, 1),
                                     (batch.term_vocabulary.to_pylist(), batch.term_idf, 2)):
        weights = dict(zip(vocabulary, idf.tolist()))
        rest = [k for k in (background[counted] if background else ()) if k not in weights]  # keys of the background only
        weights.update(zip(rest, _idf(total, np.array([background[counted][k] for k in rest], np.float64)).tolist()))
        found.append(weights)
    return found[0], found[1], float(_idf(total, np.zeros(1))[0])


def state_feature_counts(table, name_keys, term_keys) -> tuple[int, dict, dict]:
    """(n, name_df, term_df) of story-state rows (an Arrow table with the STORY_STATE feature columns), as
    idf_weights counts them, for the given keys only: the table's articles as a background batch.
    Columnar: a time block's tens of thousands of stored rows are counted without making their features."""
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


# ---------------------------------------------------------------- a batch scored at once

def _lists(joined: list[str], separator: str) -> tuple[pa.Array, np.ndarray]:
    """Strings that each join a list with `separator` ("" for an empty list) -> (all values, each list's length)."""
    if not joined:
        return pa.array([], pa.large_string()), np.zeros(0, np.int64)
    split = pc.split_pattern(pa.array(joined, pa.large_string()), separator)
    values, owner = pc.list_flatten(split), pc.list_parent_indices(split).to_numpy()
    keep = pc.not_equal(values, "")
    return values.filter(keep), np.bincount(owner[keep.to_numpy(zero_copy_only=False)], minlength=len(joined))


@dataclass(frozen=True)
class StoryColumns:
    """A batch's story features as flat arrays: each list field's values in one Arrow array and its length per
    document; counts aligned with the terms' values."""

    names: tuple[pa.Array, np.ndarray]
    numbers: tuple[pa.Array, np.ndarray]
    terms: tuple[pa.Array, np.ndarray]
    counts: np.ndarray
    lead: tuple[pa.Array, np.ndarray]

    def __len__(self) -> int:
        return len(self.names[1])

    @classmethod
    def of(cls, features: list[StoryFeatures]) -> "StoryColumns":
        def flat(lists) -> tuple[pa.Array, np.ndarray]:
            lists = list(lists)
            return (pa.array([x for values in lists for x in values], pa.large_string()),
                    np.array([len(values) for values in lists], np.int64))

        return cls(flat(f.names for f in features), flat(f.numbers for f in features), flat([w for w, _ in f.terms] for f in features),
                   np.array([c for f in features for _, c in f.terms], np.float64), flat(f.lead for f in features))

    @classmethod
    def packed(cls, names: list[str], numbers: list[str], terms: list[str], counts: list[bytes], lead: list[str],
               separator: str) -> "StoryColumns":
        """From story records' packed fields (transforms/dedup.py pack_story): lists joined by `separator`, counts
        as uint32 bytes."""
        words = _lists(terms, separator)
        given = np.array([len(c) // 4 for c in counts], np.int64)
        if len(given) != len(words[1]) or (given != words[1]).any():  # a damaged row: each word still gets a count
            whole = [c[: 4 * (len(c) // 4)] for c in counts]
            counts = [c[: 4 * want] + b"\x01\x00\x00\x00" * max(want - len(c) // 4, 0) for c, want in zip(whole, words[1].tolist())]
        return cls(_lists(names, separator), _lists(numbers, separator), words,
                   np.frombuffer(b"".join(counts), np.uint32).astype(np.float64), _lists(lead, separator))


@dataclass
class _Relation:
    """(document, key[, value]) rows, one per (document, key), as sorted codes document * size + key: a document's
    rows are a range, and a (document, key) is looked up by binary search."""

    codes: np.ndarray
    values: np.ndarray | None
    starts: np.ndarray  # each document's first row; starts[n] is the row count
    size: int

    @classmethod
    def of(cls, docs: np.ndarray, keys: np.ndarray, values: np.ndarray | None, n: int, size: int) -> "_Relation":
        codes = docs.astype(np.int64) * size + keys
        if values is None:
            codes = np.sort(codes)
        else:
            order = np.argsort(codes, kind="stable")
            codes, values = codes[order], values[order]
        first = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, bool)  # a key once a document
        codes, values = codes[first], (None if values is None else values[first])  # (its first value)
        return cls(codes, values, np.searchsorted(codes, np.arange(n + 1, dtype=np.int64) * size), size)

    def keys(self, rows=slice(None)) -> np.ndarray:
        return self.codes[rows] % max(self.size, 1)

    def docs(self) -> np.ndarray:
        return self.codes // max(self.size, 1)

    def rows_of(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner, row) of every row of each of `docs`, in order."""
        lengths = self.starts[docs + 1] - self.starts[docs]
        owner = np.repeat(np.arange(len(docs)), lengths)
        return owner, np.repeat(self.starts[docs] - np.cumsum(lengths) + lengths, lengths) + np.arange(len(owner))

    def find(self, docs: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(whether each (document, key) is a row, the row where it would be)."""
        if not len(self.codes):
            return np.zeros(len(docs), bool), np.zeros(len(docs), np.int64)
        wanted = docs.astype(np.int64) * self.size + keys
        at = np.minimum(np.searchsorted(self.codes, wanted), len(self.codes) - 1)
        return self.codes[at] == wanted, at


def _overlap(a: np.ndarray, b: np.ndarray, of_a: _Relation, in_b: _Relation, product: bool = False) -> np.ndarray:
    """Per pair (a[p], b[p]): the sum of a's values over a's keys that b has too (each times b's, with `product`)."""
    pair, row = of_a.rows_of(a)
    hit, at = in_b.find(b[pair], of_a.keys(row))
    values = of_a.values[row][hit] * (in_b.values[at][hit] if product else 1.0)
    return np.bincount(pair[hit], weights=values, minlength=len(a))


def _idf(n: int, df: np.ndarray) -> np.ndarray:
    # As if the batch sat in a background of IDF_PRIOR_DOCS unrelated articles: a handful of articles
    # that all name one town must not make the town look common.
    return np.log((n + IDF_PRIOR_DOCS + 1) / (df + 1)) + 1.0


def _encoded(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(each value's index in the vocabulary, the vocabulary of distinct values)."""
    encoded = pc.dictionary_encode(values.cast(pa.large_string()))
    return encoded.indices.to_numpy().astype(np.int64), encoded.dictionary


def _counted(vocabulary: pa.Array, counts: dict) -> np.ndarray:
    """counts.get(key, 0) of each key of the vocabulary, looked up columnar."""
    if not counts:
        return np.zeros(len(vocabulary))
    at = pc.index_in(vocabulary, value_set=pa.array(list(counts), pa.large_string()))
    known = np.array(list(counts.values()), np.float64)
    return np.where(at.is_valid().to_numpy(zero_copy_only=False), known[at.fill_null(0).to_numpy()], 0.0)


class StoryBatch:
    """A batch's story features in publication order, weighted by the batch's IDF, its pairs scored as arrays.

    `when`: each document's time (POSIX seconds); `ids`: its id (ties in time go by id). `background`: the
    IDF counts of more articles of the batch that are not among these (idf_weights); `idf`: given weights
    (names, words and stems, unseen) instead of the batch's. Memory: about 40 bytes per content word of
    the batch's documents (TOP_TERMS at most each).
    """

    def __init__(self, columns: StoryColumns, when: np.ndarray, ids: list[str], background=None, idf=None):
        n = self.n = len(columns)
        order = pc.sort_indices(pa.table({"when": pa.array(when, pa.float64()), "id": pa.array(ids, pa.large_string())}),
                                sort_keys=[("when", "ascending"), ("id", "ascending")]).to_numpy()
        self.order, self.when = order, np.asarray(when, np.float64)[order]
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        owners = lambda lengths: rank[np.repeat(np.arange(n), lengths)]  # noqa: E731

        names, numbers, terms, lead = columns.names, columns.numbers, columns.terms, columns.lead
        hashed = pc.binary_join_element_wise(pa.scalar("#", pa.large_string()), numbers[0].cast(pa.large_string()),
                                             pa.scalar("", pa.large_string()))  # "#14": a number's key
        name_keys, self.name_vocabulary = _encoded(pa.concat_arrays([names[0].cast(pa.large_string()), hashed]))
        # Words, their stems and lead stems share one key space, made from the distinct words (not every use)
        word_ids, words_seen = _encoded(terms[0])
        lead_ids, lead_seen = _encoded(lead[0])
        keys_of, self.term_vocabulary = _encoded(pa.concat_arrays(
            [words_seen, pc.utf8_slice_codeunits(words_seen, 0, STEM_LETTERS), lead_seen]))
        seen = len(words_seen)
        word_keys, stem_keys, lead_keys = keys_of[word_ids], keys_of[seen : 2 * seen][word_ids], keys_of[2 * seen :][lead_ids]
        nk, tk = len(self.name_vocabulary), len(self.term_vocabulary)
        name_docs, word_docs, lead_docs = np.r_[owners(names[1]), owners(numbers[1])], owners(terms[1]), owners(lead[1])
        self.names = _Relation.of(name_docs, name_keys, np.zeros(len(name_keys)), n, nk)
        self.postings = _Relation.of(name_docs[: len(names[0])], name_keys[: len(names[0])], None, n, nk)
        self.words = _Relation.of(word_docs, word_keys, np.asarray(columns.counts, np.float64), n, tk)
        self.lead = _Relation.of(lead_docs, lead_keys, np.zeros(len(lead_keys)), n, tk)
        # the stems an article's text says something about: its words' and its lead's
        self.stems = _Relation.of(np.r_[word_docs, lead_docs], np.r_[stem_keys, lead_keys], None, n, tk)
        del word_ids, lead_ids, word_keys, stem_keys, lead_keys, name_docs, word_docs, lead_docs
        if idf is None:
            name_df = np.bincount(self.names.keys(), minlength=nk).astype(np.float64)
            term_df = (np.bincount(self.words.keys(), minlength=tk) + np.bincount(self.stems.keys(), minlength=tk)).astype(np.float64)
            total = n
            if background is not None:
                total += background[0]
                name_df += _counted(self.name_vocabulary, background[1])
                term_df += _counted(self.term_vocabulary, background[2])
            self.name_idf, self.term_idf = _idf(total, name_df), _idf(total, term_df)
        else:
            self.name_idf = np.array([idf[0].get(k, idf[2]) for k in self.name_vocabulary.to_pylist()], np.float64)
            self.term_idf = np.array([idf[1].get(k, idf[2]) for k in self.term_vocabulary.to_pylist()], np.float64)
        self.names.values = self.name_idf[self.names.keys()]
        self.words.values *= self.term_idf[self.words.keys()]
        self.lead.values = self.term_idf[self.lead.keys()]
        self.name_total = np.bincount(self.names.docs(), weights=self.names.values, minlength=n)
        self.norm = np.sqrt(np.bincount(self.words.docs(), weights=self.words.values ** 2, minlength=n))
        self.lead_total = np.bincount(self.lead.docs(), weights=self.lead.values, minlength=n)

    def scores(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, time decay) of each pair of documents (a[p], b[p]), by their places in publication order."""
        size = len(a)
        shared = _overlap(a, b, self.names, self.names)
        union = self.name_total[a] + self.name_total[b] - shared
        names = np.divide(shared, union, out=np.zeros(size), where=union > 0)
        norms = self.norm[a] * self.norm[b]
        cosine = np.divide(_overlap(a, b, self.words, self.words, product=True), norms, out=np.zeros(size), where=norms > 0)
        lead = sum(np.divide(_overlap(x, y, self.lead, self.stems), self.lead_total[x], out=np.zeros(size),
                             where=self.lead_total[x] > 0) for x, y in ((a, b), (b, a)))
        apart = np.abs(self.when[a] - self.when[b])
        hours, sigma = apart / 3600, STORY_SIGMA.total_seconds() / 3600
        decay = np.exp(-(hours * hours) / (2 * sigma * sigma))
        score = ((1 - LEAD_WEIGHT) * (NAME_WEIGHT * names + (1 - NAME_WEIGHT) * cosine) + LEAD_WEIGHT * lead / 2) * decay
        return np.where(apart > MAX_STORY_GAP.total_seconds(), 0.0, score), decay

    budget, documents = 4_000_000, 2048  # a chunk of candidates(): postings read, documents (memory ~ both)

    def candidates(self, scored: np.ndarray):
        """(doc, candidate) pairs of the scored documents (places in publication order, ascending), in the order
        story_links takes them: per document, the earlier ones within STORY_REACH that share at least
        MIN_SHARED_NAMES names with it among the POSTING_LIMIT latest earlier articles of each name, at most
        MAX_CANDIDATES, most names first, then the latest. In chunks of at most `documents` documents and about
        `budget` postings read, so memory stays bounded whatever the batch and its names."""
        budget, documents = self.budget, self.documents
        n = self.n
        ordered = np.sort(self.postings.keys() * n + self.postings.docs())  # each name's articles in order
        keys, docs = ordered // max(n, 1), ordered % max(n, 1)
        wanted = np.zeros(n, bool)
        wanted[scored] = True
        rows = np.flatnonzero(wanted[docs])
        rows = rows[np.argsort(docs[rows], kind="stable")]  # by document
        reach = np.searchsorted(self.when, self.when - STORY_REACH.total_seconds())  # each doc's first within reach
        low = np.maximum.reduce([np.searchsorted(ordered, keys[rows] * n), rows - POSTING_LIMIT,
                                 np.searchsorted(ordered, keys[rows] * n + reach[docs[rows]])])
        lengths = np.maximum(rows - low, 0)
        read, row_docs = np.cumsum(lengths), docs[rows]
        row_ranks = np.searchsorted(scored, row_docs)
        begin = 0
        while begin < len(rows):
            end = min(int(np.searchsorted(read, (read[begin - 1] if begin else 0) + budget, side="right")),
                      int(np.searchsorted(row_ranks, row_ranks[begin] + documents)))
            end = max(end, begin + 1)
            end = int(np.searchsorted(row_docs, row_docs[end - 1], side="right"))  # a document's rows together
            part, start = lengths[begin:end], low[begin:end]
            owner = np.repeat(row_docs[begin:end], part)
            partner = docs[np.repeat(start - np.cumsum(part) + part, part) + np.arange(int(part.sum()))]
            pairs, shared = np.unique(owner * n + partner, return_counts=True)
            keep = shared >= MIN_SHARED_NAMES
            a, b, shared = pairs[keep] // n, pairs[keep] % n, shared[keep]
            best = np.lexsort((-b, -shared, a))
            a, b = a[best], b[best]
            rank = np.arange(len(a)) - np.searchsorted(a, a)
            yield a[rank < MAX_CANDIDATES], b[rank < MAX_CANDIDATES]
            begin = end

    def scored_candidates(self, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ends, candidates, scores, decays) of the scored documents (places in publication order, ascending):
        document k's candidates are candidates[ends[k-1]:ends[k]], in story_candidates' order."""
        parts = [(a, b, *self.scores(a, b)) for a, b in self.candidates(scored)]
        if not parts:
            return (np.zeros(len(scored), np.int64), *(np.zeros(0, t) for t in (np.int64, np.float64, np.float64)))
        a, b, score, decay = (np.concatenate(x) for x in zip(*parts))
        ends = np.cumsum(np.bincount(np.searchsorted(scored, a), minlength=len(scored)))
        return ends, b, score, decay


def story_score(a: StoryFeatures, b: StoryFeatures, apart: timedelta, idf=None) -> float:
    """How likely two articles report one event: 0 (unrelated or too far apart) to 1. `idf`: (name weights,
    word and stem weights, the weight of an unseen key); default, every key weighs 1."""
    batch = StoryBatch(StoryColumns.of([a, b]), np.array([0.0, abs(apart).total_seconds()]), ["a", "b"],
                       idf=idf or ({}, {}, 1.0))
    return float(batch.scores(np.array([1]), np.array([0]))[0][0])


def story_links(docs: list[tuple[str, datetime, StoryFeatures]], linkable=None, known=None, background=None) -> dict[str, str]:
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
    return join_stories(unpack_scored(story_candidates(docs, linkable, known, background)), known)


def story_candidates(docs: list[tuple[str, datetime, StoryFeatures]], linkable=None, known=None, background=None) -> tuple:
    """The candidates of each doc of `linkable` (default: all but the `known` ones) as story_links chooses them,
    scored, packed (see `scored_batch`; unpack_scored gives (doc id, [(candidate id, score, time decay), ...])
    in publication order, ties by id).

    Which docs are candidates and what they score does not depend on which story any doc joins, so the
    candidates of a time block can be scored on their own and joined later (join_stories).
    `background`: IDF counts of more articles of the batch that are not among `docs` (idf_weights).
    """
    known = known or {}
    batch = StoryBatch(StoryColumns.of([f for _, _, f in docs]), np.array([when.timestamp() for _, when, _ in docs]),
                       [doc_id for doc_id, _, _ in docs], background)
    return scored_batch(batch, [doc_id not in known and (linkable is None or doc_id in linkable) for doc_id, _, _ in docs],
                        [doc_id for doc_id, _, _ in docs])


def scored_batch(batch: "StoryBatch", scored: list[bool], ids: list[str]) -> tuple:
    """The batch's candidates of the documents flagged `scored` (flags and ids in the batch's input order), packed:
    (ids in publication order, the scored ones' places there, where each one's candidates end, the candidates'
    places, their scores, their time decays); flat arrays, since a million articles have some ten million
    candidates, which as tuples would take gigabytes where they are joined."""
    places = np.sort(np.argsort(batch.order)[np.flatnonzero(np.asarray(scored, bool))]) if len(ids) else np.zeros(0, np.int64)
    ends, candidates, scores, decays = batch.scored_candidates(places)
    return [ids[i] for i in batch.order.tolist()], places, ends, candidates, scores, decays


def unpack_scored(packed: tuple):
    """scored_batch's arrays -> (doc id, [(candidate id, score, time decay), ...]) one doc at a time, in order."""
    refs, docs, ends, candidates, scores, decays = (x.tolist() if isinstance(x, np.ndarray) else x for x in packed)
    start = 0
    for doc, end in zip(docs, ends):
        yield refs[doc], [(refs[c], s, d) for c, s, d in zip(candidates[start:end], scores[start:end], decays[start:end])]
        start = end


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
