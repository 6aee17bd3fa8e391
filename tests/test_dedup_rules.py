"""Unit tests of the pure dedup rules in transforms/dedup.py (no pipeline)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsbeam.transforms.dedup import duplicate_rows, keep_firsts, keep_one, keep_order, light_record, shards
from newsbeam.transforms.stored import stored_keys as index_of

UTC = timezone.utc
FETCHED = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def stored_keys(articles, duplicates) -> tuple[dict, dict]:
    """The index that stored rows make (transforms/stored.py), as (link key -> article_id, content hash -> article_id)."""
    found = index_of(articles, duplicates)
    return ({key: aid for (kind, key), aid in found.items() if kind == "link"},
            {key: aid for (kind, key), aid in found.items() if kind == "text"})


def doc(name, published=None, method="trafilatura", words=300, entries=None):
    return {
        "article_id": f"id-{name}",
        "canonical_url": f"https://news.example.com/{name}",
        "content_hash": f"hash-{name}",
        "published_at": published,
        "extraction_method": method,
        "word_count": words,
        "fetched_at": FETCHED,
        "entries": entries if entries is not None else [{"link": f"https://news.example.com/{name}", "feed_url": "https://news.example.com/rss"}],
    }


def kept_name(*docs):
    kept, _ = keep_one([light_record(f"ref-{i}", d) for i, d in enumerate(docs)])
    return kept[2]


def test_earliest_published_is_kept():
    early = doc("early", datetime(2024, 3, 5, 8, 0, tzinfo=UTC), method="feed_summary", words=40)
    late = doc("late", datetime(2024, 3, 5, 9, 0, tzinfo=UTC), words=900)
    assert kept_name(late, early) == "id-early"


def test_publication_date_beats_a_missing_one():
    undated = doc("undated", None, words=900)
    dated = doc("dated", datetime(2024, 3, 5, 9, 0, tzinfo=UTC), words=100)
    assert kept_name(undated, dated) == "id-dated"


def test_page_extraction_beats_feed_fallback_on_the_same_date():
    when = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    from_feed = doc("feed", when, method="feed_content", words=900)
    from_page = doc("page", when, method="trafilatura", words=200)
    assert kept_name(from_feed, from_page) == "id-page"


def test_longer_text_wins_a_tie():
    when = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert kept_name(doc("short", when, words=200), doc("long", when, words=250)) == "id-long"


def test_smaller_canonical_url_breaks_a_full_tie():
    assert kept_name(doc("b"), doc("a")) == "id-a"


def test_undated_documents_fall_back_to_the_other_rules():
    assert kept_name(doc("feed", method="feed_summary", words=900), doc("page", words=100)) == "id-page"


def test_keep_one_returns_every_other_document():
    docs = [doc("c", words=100), doc("a", words=300), doc("b", words=200)]
    kept, others = keep_one([light_record(d["article_id"], d) for d in docs])
    assert kept[2] == "id-a"
    assert [r[2] for r in others] == ["id-b", "id-c"]


def test_keep_one_is_independent_of_input_order():
    docs = [
        doc("x", datetime(2024, 3, 5, 8, 0, tzinfo=UTC), words=100),
        doc("y", datetime(2024, 3, 5, 8, 0, tzinfo=UTC), method="feed_content", words=500),
        doc("z", None, words=900),
    ]
    assert {kept_name(*docs), kept_name(*reversed(docs))} == {"id-x"}


def test_sharded_batches_keep_one_per_key_whichever_batch_a_record_came_in():
    """The url tier's shards: copies of one URL from two chunks meet in one shard, and each URL keeps its best."""
    a, b = doc("a", words=300), doc("b", words=300)
    same_url_longer = {**doc("a2", words=900), "canonical_url": a["canonical_url"]}
    chunks = [[light_record("0#0", a), light_record("0#1", b)], [light_record("1#0", same_url_longer)]]
    grouped: dict[int, list] = {}
    for chunk in chunks:
        for shard, batch in shards(chunk, 3):
            grouped.setdefault(shard, []).extend(batch)
    assert sum(len(batch) for batch in grouped.values()) == 3 and len(grouped) <= 2
    results = [keep_firsts(batch, 3) for batch in grouped.values()]
    kept = sorted(record[2] for found, _ in results for record in found)
    copies = [(copy[1], first[2]) for _, pairs in results for copy, first in pairs]
    assert kept == ["id-a2", "id-b"] and copies == [("0#0", "id-a2")]


def test_keep_order_sorts_undated_last():
    dated = keep_order(doc("a", datetime(2099, 12, 31, tzinfo=UTC)))
    undated = keep_order(doc("b", None))
    assert dated < undated


def test_duplicate_rows_one_per_entry():
    entries = [
        {"link": "https://news.example.com/a?utm_source=rss", "feed_url": "https://news.example.com/rss"},
        {"link": "https://mirror.example.org/a", "feed_url": "https://mirror.example.org/feed"},
    ]
    rows = duplicate_rows(doc("a", entries=entries), "id-original", "url")
    assert rows == [
        {
            "url": "https://news.example.com/a?utm_source=rss",
            "canonical_url": "https://news.example.com/a",
            "feed_url": "https://news.example.com/rss",
            "duplicate_of": "id-original",
            "tier": "url",
            "similarity": 1.0,
            "fetched_at": FETCHED,
        },
        {
            "url": "https://mirror.example.org/a",
            "canonical_url": "https://news.example.com/a",
            "feed_url": "https://mirror.example.org/feed",
            "duplicate_of": "id-original",
            "tier": "url",
            "similarity": 1.0,
            "fetched_at": FETCHED,
        },
    ]


def test_duplicate_rows_for_given_entries_only():
    entries = [{"link": "https://a.example/1", "feed_url": "f1"}, {"link": "https://b.example/2", "feed_url": "f2"}]
    rows = duplicate_rows(doc("a", entries=entries), "id-a", "exact", similarity=0.9, entries=entries[1:])
    assert [(r["url"], r["tier"], r["similarity"]) for r in rows] == [("https://b.example/2", "exact", 0.9)]


def test_duplicate_rows_with_no_entries_is_empty():
    assert duplicate_rows(doc("a"), "id-a", "url", entries=[]) == []


ARTICLES = [
    {
        "article_id": "A1",
        "url": "https://News.Example.com/world/story?utm_source=rss#top",
        "canonical_url": "https://news.example.com/world/story",
        "content_hash": "hash-1",
    },
    {
        "article_id": "A2",
        "url": "http://news.example.com:80/asia/other",
        "canonical_url": "https://news.example.com/asia/other-canonical",
        "content_hash": "hash-2",
    },
]
DUPLICATES = [
    {"url": "https://mirror.example.org/copy?fbclid=x", "canonical_url": None, "duplicate_of": "A1"},
    {"url": "https://news.example.com/world/story", "canonical_url": "", "duplicate_of": "ZZ"},
]


def test_stored_keys_maps_url_and_canonical_url_canonicalised():
    links, _ = stored_keys(ARTICLES, [])
    assert links == {
        "https://news.example.com/world/story": "A1",
        "http://news.example.com/asia/other": "A2",
        "https://news.example.com/asia/other-canonical": "A2",
    }


def test_stored_keys_maps_content_hashes():
    _, hashes = stored_keys(ARTICLES, DUPLICATES)
    assert hashes == {"hash-1": "A1", "hash-2": "A2"}


def test_stored_keys_maps_duplicate_urls_to_what_they_duplicate():
    links, _ = stored_keys(ARTICLES, DUPLICATES)
    assert links["https://mirror.example.org/copy"] == "A1"


def test_stored_keys_article_wins_over_a_later_duplicate_row():
    links, _ = stored_keys(ARTICLES, DUPLICATES)
    assert links["https://news.example.com/world/story"] == "A1"


def test_stored_keys_skips_empty_urls():
    links, _ = stored_keys([], DUPLICATES)
    assert "" not in links and None not in links


@pytest.mark.parametrize("articles, duplicates", [([], []), (iter([]), iter([]))])
def test_stored_keys_of_nothing(articles, duplicates):
    assert stored_keys(articles, duplicates) == ({}, {})


def test_near_copies_are_paired_once_across_time_blocks_and_only_within_the_window():
    from datetime import datetime, timedelta, timezone

    from newsbeam.transforms.dedup import NEAR_WINDOW, block_copies, near_blocks
    from newsbeam.transforms.similarity import signature
    from newsweb import body_paragraphs

    sig = signature("\n".join(body_paragraphs(1) + body_paragraphs(2)))
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    records = [((name,), name, name, (start + offset).timestamp(), False, sig.shingles, sig.full, sig.lead) for name, offset in
               (("a", timedelta(0)), ("b", timedelta(days=6)), ("c", timedelta(days=8)), ("far", NEAR_WINDOW * 3))]
    found = []
    for _, (homes, visitors) in near_blocks(records):
        members = [(r, True) for r in homes] + [(r, False) for r in visitors]
        found += [(a[1], b[1]) for a, b, _ in block_copies(members)]
    assert sorted(found) == sorted({tuple(sorted(p)) for p in found})  # no pair twice
    pairs = {tuple(sorted(p)) for p in found}
    assert ("far" not in {x for p in pairs for x in p}) and ("a", "c") not in pairs  # 8 days apart: outside the window
    assert {("a", "b"), ("b", "c")} <= pairs
