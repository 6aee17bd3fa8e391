"""Dedup stage: keep one article per URL, per text and per near-copy, within the run and against earlier runs.

Tiers, in the order they run:

- `url`: the same canonical URL, or another feed entry naming the same page;
- `exact`: the same normalised text (a syndicated copy in other chrome);
- `near`: a copy with edits, another headline or dateline, or cut short ("read the full
  story"), found by MinHash-LSH over word shingles and verified by Jaccard or containment
  (transforms/similarity.py), among articles published within NEAR_WINDOW of each other.
  Copies of copies are not chained: a document is a copy only of a kept document it itself
  resembles.

Which copy is kept, in order: one not cut short by a paywall (the original over an
aggregator's teaser), the earliest published, a body extracted from the page over one taken
from the feed, the longer text, then the smaller canonical URL (so reruns agree).
Earlier runs are known from the stored tables' key columns and the near tier's signatures
kept under DIR/_state/near, never their text.
"""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam

from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import canonical_url
from newsbeam.transforms.similarity import Signature, copy_similarity, pick_copies, shared_bands, signature
from newsbeam.transforms.stories import StoryFeatures, assign_stories, story_features

_FAR_FUTURE = "9999"
NEAR_WINDOW = timedelta(days=7)  # copies of a story are compared only within this time of each other
NEAR_LOOKBACK = timedelta(days=30)  # earlier runs' articles published this recently are compared with a run's
BUCKET_LIMIT = 200  # a band shared by more documents than this compares each only with the best-ranked ones
BUCKET_HEAD = 50


def keep_order(doc: dict) -> tuple:
    """Sort key: the first document in this order is the one kept."""
    published = doc["published_at"].isoformat() if doc.get("published_at") else _FAR_FUTURE
    return (bool(doc.get("paywalled")), published, doc["extraction_method"] != "trafilatura", -doc["word_count"],
            doc["canonical_url"])


def split_kept(docs: list[dict]) -> tuple[dict, list[dict]]:
    ordered = sorted(docs, key=keep_order)
    return ordered[0], ordered[1:]


def duplicate_rows(doc: dict, duplicate_of: str, tier: str, similarity: float = 1.0, entries=None) -> list[dict]:
    """One duplicates row per feed entry that led to `doc`."""
    return [
        {
            "url": entry["link"],
            "canonical_url": doc["canonical_url"],
            "feed_url": entry["feed_url"],
            "duplicate_of": duplicate_of,
            "tier": tier,
            "similarity": similarity,
            "fetched_at": doc["fetched_at"],
        }
        for entry in (doc["entries"] if entries is None else entries)
    ]


def article_row(doc: dict) -> dict:
    return {
        "article_id": doc["article_id"],
        "url": doc["url"],
        "canonical_url": doc["canonical_url"],
        "feed_url": doc["feed_url"],
        "source": doc["source"],
        "title": doc["title"],
        "text": doc["text"],
        "summary": doc["summary"],
        "authors": doc["authors"],
        "published_at": doc["published_at"],
        "published_at_source": doc.get("published_at_source"),
        "updated_at": doc.get("updated_at"),
        "updated_at_source": doc.get("updated_at_source"),
        "fetched_at": doc["fetched_at"],
        "language": doc["language"],
        "word_count": doc["word_count"],
        "content_hash": doc["content_hash"],
        "story_id": doc.get("story_id") or doc["article_id"],
        "extraction_method": doc["extraction_method"],
        "wire": doc.get("wire"),
        "paywalled": bool(doc.get("paywalled")),
    }


def stored_keys(articles, duplicates) -> tuple[dict, dict]:
    """(link key -> article_id, content hash -> article_id) from earlier runs' key columns.

    `articles` and `duplicates` are iterables of row dicts (or Arrow tables' to_pylist()).
    """
    links, hashes = {}, {}
    for row in articles:
        for url in (row["url"], row["canonical_url"]):
            links.setdefault(canonical_url(url), row["article_id"])
        hashes.setdefault(row["content_hash"], row["article_id"])
    for row in duplicates:
        for url in (row["url"], row["canonical_url"]):
            if url:
                links.setdefault(canonical_url(url), row["duplicate_of"])
    return links, hashes


class Dedup(beam.PTransform):
    """Normalised documents -> {'articles': article rows, 'duplicates': duplicate rows}."""

    def __init__(self, stored_links, stored_hashes, stored_signatures, stored_stories):
        super().__init__()
        self._stored_links = stored_links
        self._stored_hashes = stored_hashes
        self._stored_signatures = stored_signatures  # PCollections of earlier runs' near- and story-state rows
        self._stored_stories = stored_stories

    def expand(self, docs):
        new = docs | "AgainstEarlierRuns" >> beam.ParDo(
            _AgainstStoredFn(), links=self._stored_links, hashes=self._stored_hashes
        ).with_outputs("duplicates", main="documents")
        by_url = new.documents | "SameUrl" >> _KeepOne("url", lambda d: d["canonical_url"])
        by_text = by_url.documents | "SameText" >> _KeepOne("exact", lambda d: d["content_hash"])
        by_near = by_text.documents | "NearCopies" >> NearCopies(self._stored_signatures)
        storied = by_near["documents"] | "Stories" >> AssignStories(self._stored_stories)
        rows = storied["documents"] | "ToRows" >> beam.ParDo(_RowsFn()).with_outputs("duplicates", main="articles")
        duplicates = (
            new.duplicates,
            by_url.duplicates,
            by_text.duplicates,
            by_near["duplicates"],
            rows.duplicates,
        ) | "AllDuplicates" >> beam.Flatten()
        return {"articles": rows.articles, "duplicates": duplicates, "signatures": by_near["signatures"],
                "stories": storied["stories"]}


class _AgainstStoredFn(beam.DoFn):
    def process(self, doc, links, hashes):
        earlier = links.get(doc["canonical_url"])
        tier = "url"
        if earlier is None:
            earlier, tier = hashes.get(doc["content_hash"]), "exact"
        if earlier is None:
            yield doc
            return
        count(f"duplicates_{tier}_earlier_run", len(doc["entries"]))
        for row in duplicate_rows(doc, earlier, tier):
            yield beam.pvalue.TaggedOutput("duplicates", row)


class _KeepOne(beam.PTransform):
    def __init__(self, tier: str, key):
        super().__init__()
        self._tier = tier
        self._key = key

    def expand(self, docs):
        return (
            docs
            | "Key" >> beam.Map(lambda d, key=self._key: (key(d), d))
            | "Group" >> beam.GroupByKey()
            | "Keep" >> beam.ParDo(_KeepOneFn(self._tier)).with_outputs("duplicates", main="documents")
        )


class _KeepOneFn(beam.DoFn):
    def __init__(self, tier: str):
        self._tier = tier

    def process(self, keyed):
        _, docs = keyed
        kept, others = split_kept(list(docs))
        yield kept
        for doc in others:
            count(f"duplicates_{self._tier}", len(doc["entries"]))
            for row in duplicate_rows(doc, kept["article_id"], self._tier):
                yield beam.pvalue.TaggedOutput("duplicates", row)


class _RowsFn(beam.DoFn):
    def process(self, doc):
        count("articles_kept")
        yield article_row(doc)
        extra = doc["entries"][1:]
        if extra:
            count("duplicates_url", len(extra))
            for row in duplicate_rows(doc, doc["article_id"], "url", entries=extra):
                yield beam.pvalue.TaggedOutput("duplicates", row)


def signature_row(doc: dict) -> dict | None:
    """What the near tier keeps of a kept article for later runs: its id, time and signature."""
    sig = doc.get("signature")
    if sig is None:
        return None
    return {"article_id": doc["article_id"], "published_at": _when(doc), "shingles": sig.shingles,
            "full": sig.full, "lead": sig.lead}


def _when(doc: dict):
    return doc.get("published_at") or doc["fetched_at"]


def block_copies(members: list[tuple]) -> list[tuple[tuple, tuple, float]]:
    """Verified copy pairs among one time block's documents: ((rank, id, stored), (rank, id, stored), similarity).

    `members` are ((rank, article_id, when, signature, stored), home) tuples: documents of the
    block (home) and of the block before (visitors, whose pairs among themselves were found in
    their own block). Pairs share a band key (similarity.shared_bands, best-ranked first so a
    crowded band keeps its best members), are within NEAR_WINDOW, are not both from earlier
    runs, and pass copy_similarity.
    """
    ordered = sorted(members, key=lambda m: (not m[0][4], m[0][0]))  # earlier runs' articles first, then by rank
    found = []
    for i, j in sorted(shared_bands([m[0][3] for m in ordered], BUCKET_LIMIT, BUCKET_HEAD)):
        (a, a_home), (b, b_home) = ordered[i], ordered[j]
        if not (a_home or b_home) or (a[4] and b[4]) or abs(a[2] - b[2]) > NEAR_WINDOW:
            continue
        similarity = copy_similarity(a[3], b[3])
        if similarity is not None:
            found.append(((a[0], a[1], a[4]), (b[0], b[1], b[4]), similarity))
    return found


def time_blocks(record: tuple):
    """A document's record keyed by its NEAR_WINDOW-long time block (home), and by the next one (visitor)."""
    block = int(record[2].timestamp() // NEAR_WINDOW.total_seconds())
    yield block, (record, True)
    yield block + 1, (record, False)


def assign_copies(verified: list[tuple]) -> list[tuple[str, str, float]]:
    """(copy id, kept id, similarity) from all verified pairs of the run: pick_copies over them."""
    ranks, similar, stored = {}, {}, set()
    for a, b, sim in verified:
        for rank, doc_id, is_stored in (a, b):
            ranks[doc_id] = rank
            if is_stored:
                stored.add(doc_id)
        similar[(a[1], b[1])] = max(sim, similar.get((a[1], b[1]), 0.0))
    order = sorted(ranks, key=lambda doc_id: (doc_id not in stored, ranks[doc_id]))
    copies = pick_copies(order, similar, frozenset(stored))
    return [(copy, kept, sim) for copy, (kept, sim) in sorted(copies.items())]


class NearCopies(beam.PTransform):
    """Documents -> {'documents': kept ones, 'duplicates': rows of tier near, 'signatures': near-state rows}.

    Band keys of this run's documents and of earlier runs' signatures are grouped; each
    bucket's pairs are verified where they meet; the verified pairs (few: only real copies)
    are gathered in one place to pick copies without chains; documents are then split.
    """

    def __init__(self, stored_signatures):
        super().__init__()
        self._stored = stored_signatures

    def expand(self, docs):
        signed = docs | "Sign" >> beam.Map(lambda d: {**d, "signature": signature(d["text"])})
        new = signed | "Records" >> beam.FlatMap(
            lambda d: [(keep_order(d), d["article_id"], _when(d), d["signature"], False)] if d["signature"] else []
        )
        old = self._stored | "StoredRecords" >> beam.Map(
            lambda r: ((), r["article_id"], r["published_at"], Signature.from_state(r), True)
        )
        copies = (
            (new, old)
            | "AllRecords" >> beam.Flatten()
            | "TimeBlocks" >> beam.FlatMap(time_blocks)
            | "GroupBlocks" >> beam.GroupByKey()
            | "VerifyPairs" >> beam.FlatMap(lambda block: block_copies(list(block[1])))
            | "AllPairs" >> beam.combiners.ToList()
            | "PickCopies" >> beam.FlatMap(assign_copies)
            | "ByCopy" >> beam.Map(lambda t: (t[0], (t[1], t[2])))
        )
        split = signed | "Split" >> beam.ParDo(_SplitNearFn(), beam.pvalue.AsDict(copies)).with_outputs(
            "duplicates", "signatures", main="documents"
        )
        return {"documents": split.documents, "duplicates": split.duplicates, "signatures": split.signatures}


class _SplitNearFn(beam.DoFn):
    def process(self, doc, copies):
        copy_of = copies.get(doc["article_id"])
        if copy_of:
            kept_id, similarity = copy_of
            count("duplicates_near", len(doc["entries"]))
            for row in duplicate_rows(doc, kept_id, "near", similarity):
                yield beam.pvalue.TaggedOutput("duplicates", row)
            return
        row = signature_row(doc)
        if row is not None:
            yield beam.pvalue.TaggedOutput("signatures", row)
        yield doc


class AssignStories(beam.PTransform):
    """Kept documents -> {'documents': the same with `story_id`, 'stories': story-state rows}.

    The story tier (transforms/stories.py) runs over this run's kept articles and earlier runs'
    stored features (which keep their story ids) in one place: a run's articles are few, and
    the features are small.
    """

    def __init__(self, stored_stories):
        super().__init__()
        self._stored = stored_stories

    def expand(self, docs):
        featured = docs | "StoryFeatures" >> beam.Map(lambda d: {**d, "story": story_features(d["text"], d.get("title"))})
        new = featured | "NewInputs" >> beam.Map(lambda d: (d["article_id"], _when(d), d["story"], None))
        old = self._stored | "StoredInputs" >> beam.Map(
            lambda r: (r["article_id"], r["published_at"], StoryFeatures.from_state(r), r["story_id"])
        )
        assigned = (
            (new, old)
            | "AllInputs" >> beam.Flatten()
            | "Together" >> beam.combiners.ToList()
            | "Assign" >> beam.FlatMap(_assigned_new)
        )
        set_story = featured | "SetStory" >> beam.ParDo(_SetStoryFn(), beam.pvalue.AsDict(assigned)).with_outputs(
            "stories", main="documents"
        )
        return {"documents": set_story.documents, "stories": set_story.stories}


def _assigned_new(inputs: list[tuple]):
    known = {doc_id: story for doc_id, _, _, story in inputs if story}
    stories = assign_stories([(doc_id, when, features) for doc_id, when, features, _ in inputs], known)
    for doc_id, story in stories.items():
        if doc_id not in known:
            yield doc_id, story


class _SetStoryFn(beam.DoFn):
    def process(self, doc, stories):
        story_id = stories.get(doc["article_id"], doc["article_id"])
        yield beam.pvalue.TaggedOutput("stories", {"article_id": doc["article_id"], "story_id": story_id,
                                                   "published_at": _when(doc), **doc["story"].state_fields()})
        yield {**doc, "story_id": story_id}
