"""page_metadata: what each source of a page's metadata gives, and where it is looked for."""

from __future__ import annotations

from datetime import datetime, timezone

from newsbeam.transforms.extract_core import load_page
from newsbeam.transforms.metadata import page_metadata

_HEAD = """<head><title>Harbour bridge reopens | The Coastal Ledger</title>
<meta property="og:site_name" content="The Coastal Ledger">
<meta name="author" content="Mara Lind">
<meta property="article:modified_time" content="2026-03-02T09:30:00+01:00">
<link rel="stylesheet" href="/a.css"><link rel="canonical" href="https://ledger.example/2026/03/01/bridge">
<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "2026-03-01T07:00:00Z",
 "publisher": {"@type": "Organization", "name": "Coastal Ledger Media"}}</script></head>"""
_BODY = """<body><h1> Harbour bridge
 reopens </h1><p>The bridge reopened on Sunday after eight months of repairs.</p>
<time itemprop="dateModified" datetime="2026-03-05T10:00:00Z">5 March</time></body>"""


def test_reads_jsonld_meta_link_title_and_h1():
    meta = page_metadata(load_page(f"<html lang='en'>{_HEAD}{_BODY}</html>"), "https://ledger.example/2026/03/01/bridge")
    assert meta["published_at"] == datetime(2026, 3, 1, 7, tzinfo=timezone.utc)
    assert meta["published_at_source"] == "jsonld"
    assert meta["updated_at"] == datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)  # the meta tag comes before <time>
    assert meta["updated_at_source"] == "meta"
    assert meta["canonical_url"] == "https://ledger.example/2026/03/01/bridge"
    assert meta["title"] == "Harbour bridge reopens"  # the site's suffix dropped from <title>
    assert meta["headline"] == "Harbour bridge reopens"
    assert meta["authors"] == ["Mara Lind"]
    assert meta["site_name"] == "The Coastal Ledger"
    assert meta["language"] == "en"
    assert meta["url_date"] == datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_itemprop_dates_from_time_datetime_and_content_attributes():
    page = """<html><body><h1>Ferry timetable changes</h1>
    <span itemprop="datePublished" datetime="2020-01-01">not a time element: its datetime is not read</span>
    <meta itemprop="datePublished" content="2026-04-10T06:00:00Z">
    <time itemprop="dateModified" datetime="2026-04-11T12:00:00Z">11 April</time></body></html>"""
    meta = page_metadata(load_page(page))
    assert (meta["published_at"], meta["published_at_source"]) == (datetime(2026, 4, 10, 6, tzinfo=timezone.utc), "meta")
    assert (meta["updated_at"], meta["updated_at_source"]) == (datetime(2026, 4, 11, 12, tzinfo=timezone.utc), "time")


def test_only_the_canonical_link_and_the_article_jsonld_are_read():
    page = """<html><head><link rel="alternate" href="https://ledger.example/amp/x">
    <script type="text/javascript">var datePublished = "2001-01-01";</script>
    <meta property="og:url" content="https://ledger.example/x"></head><body><p>Short.</p></body></html>"""
    meta = page_metadata(load_page(page))
    assert meta["canonical_url"] == "https://ledger.example/x"  # og:url, since no rel=canonical link
    assert meta["published_at"] is None


def test_a_page_with_two_top_level_html_elements_is_read_whole():
    """Broken pages (two documents pasted together) parse into sibling top elements: both are read, as `//` does."""
    tree = load_page(f"<html><head><title>First part</title></head><body><p>Intro.</p></body></html><html>{_HEAD}{_BODY}</html>")
    assert [el.tag for el in tree.itersiblings()] == ["html"]  # the case under test: the second document is a sibling
    meta = page_metadata(tree)
    assert meta["headline"] == "Harbour bridge reopens"
    assert meta["canonical_url"] == "https://ledger.example/2026/03/01/bridge"
    assert meta["published_at_source"] == "jsonld"
    assert meta["authors"] == ["Mara Lind"]
    assert meta["title"] == "First part"  # the first <title> in document order


def test_no_tree_gives_no_metadata():
    assert page_metadata(None) == {}
