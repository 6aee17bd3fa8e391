"""Story tier: articles about one event, written in other words, share a `story_id`.

Copies are the near tier's business (transforms/similarity.py); here the texts share few
phrases, so the evidence is what a reader would use: the same named people, places and
organisations, the same content words, and closeness in time.

- `story_features`: the named things a text mentions (capitalised phrases that do not just
  open a sentence, acronyms, and the longer words of each phrase, so "Putin" meets
  "Vladimir Putin"), and its content words (four letters or more, not among the commonest
  function words), and the numbers it gives.
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
import re
import sys
import unicodedata
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from operator import itemgetter

STORY_SIGMA = timedelta(days=3)
MAX_STORY_GAP = timedelta(days=30)
STORY_THRESHOLD = 0.232  # chosen on benchmarks/story_quality.py: see BENCHMARKS.md for how thin the margin is
# A score is at most its time decay, so articles further apart than this can never reach the threshold:
# the tier looks no further back (and, in Beam, works in time blocks at least this long).
STORY_REACH = min(MAX_STORY_GAP, STORY_SIGMA * math.sqrt(2 * math.log(1 / STORY_THRESHOLD)))
MIN_SHARED_NAMES = 2
NAME_WEIGHT = 0.5  # the rest is the content words' cosine
TOP_TERMS = 60  # content words kept per article (by count): enough for the cosine, small to store
STEM_LETTERS = 6
IDF_PRIOR_DOCS = 1000
POSTING_LIMIT = 200  # a name shared by more recent articles than this is compared only with the nearest in time
MAX_CANDIDATES = 30  # an article is scored against at most this many earlier ones: those sharing most names, then the latest

_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_CONNECTORS = {"of", "de", "del", "der", "van", "von", "la", "le", "du", "bin", "al", "da", "di"}
# Capitalised but not names of anything: days and months say when, not what.
_CALENDAR = set(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december montag dienstag mittwoch donnerstag freitag samstag sonntag
    januar februar märz mai juni juli oktober dezember lundi mardi mercredi jeudi vendredi samedi dimanche""".split()
)
# The commonest function words of four letters or more in the languages newsbeam meets most; the
# IDF weighting takes care of the rest once a batch has more than a handful of articles.
_STOP = set(
    """that with have this from they will were been their which would there about after also into more
    said says than them then these when what where while over some such only other could should very
    just most many much even like made make being before under since during between through against
    those here your ours year years week told according""".split()
    + """dass sich nicht eine einer eines einem einen oder aber auch noch nach wird wurde werden sind
    sein seine ihre ihrer haben hatte hatten beim über unter gegen durch diese dieser dieses mehr wenn
    dans pour avec sont mais plus leur leurs elle elles nous vous cette être avoir fait comme aussi
    para como pero sobre entre desde hasta donde porque esta este estos estas más""".split()
)

_UNITS = "one two three four five six seven eight nine".split()
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_UNITS + """ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen""".split(), 1)}
for _i, _tens in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2):
    _NUMBER_WORDS[_tens] = str(10 * _i)
    _NUMBER_WORDS.update({f"{_tens}-{unit}": str(10 * _i + j) for j, unit in enumerate(_UNITS, 1)})


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
        return frozenset({_stem(word) for word, _ in self.terms} | self.lead)


def _stem(word: str) -> str:
    """A crude stem that works in any language with inflected endings: flood, floods, flooded, flooding."""
    return word[:STEM_LETTERS]


def _is_acronym(token: str) -> bool:
    return len(token) >= 2 and token.isupper() and token.isalpha()


def _bare(token: str) -> str:
    return token[:-2] if token.endswith(("’s", "'s")) else token


def story_features(text: str, title: str | None = None) -> StoryFeatures:
    """The named things, top content words and lead stems of an article (title optional).

    Regular expressions do the scanning, so the cost per word stays small: names are runs of
    capitalised words (joined by connectors such as "of") within a clause; a capitalised word
    that opens a clause or a sentence counts only if the text also capitalises it inside a
    clause, or it is an acronym; days and months are not names.
    """
    text, title = unicodedata.normalize("NFKC", text or ""), unicodedata.normalize("NFKC", title or "")
    whole = f"{title}\n{text}"
    runs = []
    for match in _run_pattern().finditer(whole):
        run = match.group()
        if " " in run or "\t" in run or "'" in run or "’" in run:  # most runs are one plain word
            tokens = [t for t in map(_bare, run.split()) if not (t[0].isupper() and t.casefold() in _CALENDAR)]
        else:
            tokens = [] if run.casefold() in _CALENDAR else [run]
        if tokens:
            runs.append((tokens, _opens_clause(whole, match.start())))
    inner = {t for tokens, opens in runs for t in (tokens[1:] if opens else tokens) if t[0].isupper()}
    names: set[str] = set()
    for tokens, opens in runs:
        if opens and not (tokens[0] in inner or _is_acronym(tokens[0])):
            tokens = tokens[1:]
        while tokens and tokens[0] in _CONNECTORS:
            tokens = tokens[1:]
        while tokens and tokens[-1] in _CONNECTORS:
            tokens = tokens[:-1]
        if tokens and len(tokens[0]) + len(tokens) > 2:  # not a lone initial
            names.add(" ".join(tokens).casefold())
            names.update(word.casefold() for word in tokens if len(word) >= 4 and word not in _CONNECTORS)
    sentences = _first_sentences(whole, 2)
    opening = f"{title} {sentences[1] if title and len(sentences) > 1 else sentences[0] if sentences else ''}"
    words = _content_counts(text)
    # most frequent first, ties in order of first use (a stable sort), as Counter.most_common
    return StoryFeatures(frozenset(names), tuple(sorted(words.items(), key=itemgetter(1), reverse=True)[:TOP_TERMS]),
                         frozenset(map(_stem, _content_counts(opening))), _numbers(whole, words))


_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str, words) -> frozenset:
    """The numbers of a text: those in digits (thousands separators dropped) and, among its content words
    (`words`), English number words of four letters or more ("fourteen" as "14", "seventy-seven" as "77";
    one, two, six and ten are too common to tell events apart)."""
    found = {match.replace(",", "") for match in _DIGITS.findall(text)}
    found.update(_NUMBER_WORDS[word] for word in _NUMBER_WORDS.keys() & words.keys())
    return frozenset(found)


def _opens_clause(text: str, start: int) -> bool:
    """Whether no word comes before `start` in its clause: looking back, a line break or punctuation
    between words (what ends a clause) comes before any letter."""
    for i in range(start - 1, -1, -1):
        c = text[i]
        if c == "\n":
            return True
        if c.isalpha():
            return False
        if not (c.isspace() or c.isalnum() or c in "_’'-"):
            return True
    return True


def _first_sentences(text: str, count: int) -> list[str]:
    """The first `count` sentences of a text (blank pieces skipped), without splitting all of it."""
    found, pos = [], 0
    while len(found) < count and pos <= len(text):
        match = _SENTENCE.search(text, pos)
        end = match.start() if match else len(text)
        if text[pos:end].strip():
            found.append(text[pos:end])
        if not match:
            break
        pos = match.end()
    return found


_POSSESSIVE = re.compile(r"[’']s(?![\w’'-])")
_CONTENT = re.compile(r"[^\W\d_][\w’'-]{3,}")  # four letters or more


@lru_cache(maxsize=1)
def _run_pattern() -> re.Pattern:
    """A run of capitalised words, maybe joined by connectors, within a line: compiled on first use, as the
    class of upper-case letters is built from the whole of Unicode (0.1 s)."""
    upper = [ord(c) for c in map(chr, range(sys.maxunicode + 1)) if c.isupper()]
    starts = [u for i, u in enumerate(upper) if i == 0 or upper[i - 1] != u - 1]
    ends = [u for i, u in enumerate(upper) if i == len(upper) - 1 or upper[i + 1] != u + 1]
    letters = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in zip(starts, ends))
    capital = f"(?:[A-Z]|(?=[^\\x00-\\x7f])[{letters}])[\\w’'-]*"  # ASCII tried first: the long class is slow
    connector = "|".join(sorted(_CONNECTORS))
    gap = r"[^\S\n]+"
    return re.compile(rf"(?<![\w’'-]){capital}(?:{gap}(?:(?:{connector})(?![\w’'-]){gap})*{capital})*")


def _content_counts(text: str) -> Counter:
    """Content words of NFKC text with their counts, in order of first use: case-folded, four letters or
    more, not the commonest function words."""
    text = text.casefold()
    counts = Counter(_CONTENT.findall(_POSSESSIVE.sub("", text) if "'" in text or "’" in text else text))
    for word in _STOP.intersection(counts):
        del counts[word]
    return counts


def feature_keys(features: StoryFeatures) -> tuple[frozenset, frozenset]:
    """The keys an article adds to the IDF counts: its names and numbers (as "#14"), its content words and stems."""
    return (features.names | {"#" + x for x in features.numbers},
            frozenset(word for word, _ in features.terms), features.stems)


def idf_weights(features, background=None) -> tuple[dict[str, float], dict[str, float], float]:
    """Smoothed IDF of names and of content words over a batch, and the weight of an unseen key.

    `background`: (n, name_df, term_df) of more articles of the batch that are not among `features`
    (earlier runs' articles that share no name with this run's, counted by `state_feature_counts`).
    """
    n, name_df, term_df = 0, Counter(), Counter()
    if background is not None:
        n, name_df, term_df = background[0], Counter(background[1]), Counter(background[2])
    for f in features:  # one pass: the features may be made on the fly
        n += 1
        names, words, stems = feature_keys(f)
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


def _score(a: _Scored, b: _Scored, apart: timedelta) -> float:
    if abs(apart) > MAX_STORY_GAP:
        return 0.0
    a_names = a.name_weight
    shared = sum(a_names[k] for k in a_names.keys() & b.name_weight.keys())
    union = a.name_total + b.name_total - shared
    names = shared / union if union else 0.0
    a_vector, b_vector = a.vector, b.vector
    dot = sum(a_vector[w] * b_vector[w] for w in a_vector.keys() & b_vector.keys())
    cosine = dot / (a.norm * b.norm) if a.norm and b.norm else 0.0
    decay = _decay(apart)
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
    return sum(lead[x] for x in b.stems.intersection(lead)) / a.lead_total


def story_links(docs: list[tuple[str, datetime, StoryFeatures]], linkable=None, known=None, features_of=None,
                background=None) -> dict[str, str]:
    """doc id -> the member of the story it joins that it resembles most, for each doc of `linkable` (default:
    all but the `known` ones) that joins an earlier story.

    Documents are taken in publication order (ties by id). Each doc not in `known` is scored
    against the earlier docs within STORY_REACH that share at least MIN_SHARED_NAMES names with
    it (at most MAX_CANDIDATES of them: those sharing the most names, then the latest); each of
    their stories gets the mean of those members' scores weighted by their time decay; the doc
    joins the best story if that reaches STORY_THRESHOLD, else starts its own.
    `known` docs (earlier runs' articles) keep their stored story ids. Docs outside `linkable`
    (another time block's) are grouped here too, for scoring, but not reported: their own block
    reports them, and resolve_links follows the links across blocks.

    `background`: IDF counts of more articles of the batch that are not among `docs` (idf_weights).

    With `features_of`, the docs' third items are turned into StoryFeatures by it as they are
    needed, and only the docs within STORY_REACH of the current one are held prepared: memory
    follows the reach, not the number of docs.
    """
    known = known or {}
    features_of = features_of or (lambda features: features)
    ordered = sorted(docs, key=lambda d: (d[1], d[0]))
    idf = idf_weights((features_of(f) for _, _, f in ordered), background)
    scored: dict[int, _Scored] = {}  # the docs within reach, prepared
    stories: dict[str, tuple] = {}  # doc -> its story here: ("known", stored story id) or ("new", first doc's id)
    links: dict[str, str] = {}
    postings: dict[str, list[int]] = {}
    times = [when for _, when, _ in ordered]
    oldest = 0
    for i, (doc_id, when, raw) in enumerate(ordered):
        start = bisect_left(times, when - STORY_REACH)  # the first document within reach
        for gone in range(oldest, start):
            scored.pop(gone, None)
        oldest = max(oldest, start)
        scored[i] = _prepare(features_of(raw), idf)
        features = scored[i].features
        if doc_id in known:
            stories[doc_id] = ("known", known[doc_id])
        else:
            shared: Counter = Counter()
            for name in features.names:
                posted = postings.get(name, ())  # indices in publication order
                first = max(bisect_left(posted, start), len(posted) - POSTING_LIMIT)
                shared.update(posted[first:])
            # A story's score is the mean of its members' scores, each weighted by its time decay: an article
            # must resemble the story, not just the one member (often the latest development) it recaps.
            support: dict[tuple, list] = {}
            candidates = heapq.nlargest(MAX_CANDIDATES, ((count, j) for j, count in shared.items() if count >= MIN_SHARED_NAMES))
            for _, j in candidates:
                other_id, other_when, _ = ordered[j]
                apart = when - other_when
                weight = _decay(apart)
                score = _score(scored[i], scored[j], apart)
                total = support.setdefault(stories[other_id], [0.0, 0.0, None, -1.0])
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
                if linkable is None or doc_id in linkable:
                    links[doc_id] = best[1]
        for name in features.names:
            postings.setdefault(name, []).append(i)
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
