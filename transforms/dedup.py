"""Dedup stage: keep one article per URL and per exact text, within the run and against earlier runs.

Tiers in this module: `url` (the same canonical URL, or another feed entry naming the same
page) and `exact` (the same normalised text: a syndicated copy in other chrome).
Which copy is kept, in order: the earliest published, a body extracted from the page over
one taken from the feed, the longer text, then the smaller canonical URL (so reruns agree).
Earlier runs are known from the stored tables' key columns only, never their text.
"""

from __future__ import annotations

import apache_beam as beam

from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import canonical_url

_FAR_FUTURE = "9999"


def keep_order(doc: dict) -> tuple:
    """Sort key: the first document in this order is the one kept."""
    published = doc["published_at"].isoformat() if doc.get("published_at") else _FAR_FUTURE
    return (published, doc["extraction_method"] != "trafilatura", -doc["word_count"], doc["canonical_url"])


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
        "story_id": doc["article_id"],
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

    def __init__(self, stored_links, stored_hashes):
        super().__init__()
        self._stored_links = stored_links
        self._stored_hashes = stored_hashes

    def expand(self, docs):
        new = docs | "AgainstEarlierRuns" >> beam.ParDo(
            _AgainstStoredFn(), links=self._stored_links, hashes=self._stored_hashes
        ).with_outputs("duplicates", main="documents")
        by_url = new.documents | "SameUrl" >> _KeepOne("url", lambda d: d["canonical_url"])
        by_text = by_url.documents | "SameText" >> _KeepOne("exact", lambda d: d["content_hash"])
        rows = by_text.documents | "ToRows" >> beam.ParDo(_RowsFn()).with_outputs("duplicates", main="articles")
        duplicates = (
            new.duplicates,
            by_url.duplicates,
            by_text.duplicates,
            rows.duplicates,
        ) | "AllDuplicates" >> beam.Flatten()
        return {"articles": rows.articles, "duplicates": duplicates}


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
