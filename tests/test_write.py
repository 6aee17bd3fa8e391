"""The writer's last line of defence: any text a row carries becomes valid Unicode in Arrow, never an exception."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pyarrow.parquet as pq
from hypothesis import given, settings, strategies as st

from newsbeam.transforms.write import parquet_bytes, to_arrow

TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)  # lone surrogates too
NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)


def _article(title: str, author: str, text: str) -> dict:
    return {"article_id": "a1", "url": "https://a.example/1", "canonical_url": "https://a.example/1", "title": title,
            "text": text or "x", "authors": [author], "fetched_at": NOW, "word_count": 1, "content_hash": "h",
            "story_id": "a1", "extraction_method": "trafilatura", "paywalled": False, "run_id": "r", "schema_version": 2}


def test_a_lone_surrogate_in_a_title_and_an_author_is_replaced_not_raised():
    table = to_arrow("articles", [_article("Breaking \ud800 news", "Jane \udfff Doe", "Body")])
    row = table.to_pylist()[0]
    assert row["title"] == "Breaking \ufffd news" and row["authors"] == ["Jane \ufffd Doe"] and row["text"] == "Body"


@settings(max_examples=200, deadline=None)
@given(TEXT, TEXT, TEXT)
def test_any_text_is_written_as_valid_unicode(title, author, text):
    table = to_arrow("articles", [_article(title, author, text)])
    back = pq.read_table(io.BytesIO(parquet_bytes(table))).to_pylist()[0]
    for value in (back["title"], back["text"], *back["authors"]):
        value.encode("utf-8")  # raises if anything invalid got through
    assert len(back["title"]) == len(title)  # one character for one, nothing dropped
