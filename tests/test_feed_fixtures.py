"""parse_feed over real, tricky feeds copied from feedparser's and feed-rs's test suites (tests/fixtures/feeds).

Origins and licences: tests/fixtures/feeds/LICENSE.md. Each test first checks that the fixture still
holds what makes it tricky, then what parse_feed must make of it; the expected values were read
from the files themselves (links, dates converted to UTC by hand).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsbeam.transforms.feeds import parse_feed

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
UTC = timezone.utc


def parse(name: str, feed_url: str | None = None, content_type: str = "", base_url: str | None = None):
    """(raw bytes, entries, warnings) of a fixture, read as if fetched from feed_url."""
    body = (FIXTURES / name).read_bytes()
    url = feed_url or f"https://feeds.example/{name}"
    spec = {"url": url, "name": None, "category": None, "language": None, "max_entries": None}
    entries, warnings = parse_feed(body, url, spec, content_type, base_url=base_url)
    return body, entries, warnings


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".xml", ".json")))
def test_every_fixture_gives_entries_with_absolute_links_and_aware_dates(name):
    _, entries, _ = parse(name)
    assert entries
    for entry in entries:
        assert entry["link"] is None or (isinstance(entry["link"], str) and entry["link"].startswith(("http://", "https://")))
        assert entry["published_at"] is None or entry["published_at"].utcoffset() is not None


def test_undefined_html_entity_keeps_the_entry_with_a_warning():
    # A real DB-Engines feed: `&nbsp;` in an item, no DTD declaring it, so the XML is not well-formed.
    body, entries, warnings = parse("feed-rs-rss_2.0_dbengines.xml")
    assert b"our&nbsp;DB-Engines Ranking&nbsp;within" in body and b"<!DOCTYPE" not in body
    assert len(entries) == 1
    assert len(warnings) == 1 and "undefined entity" in warnings[0]
    entry = entries[0]
    assert entry["link"] == "https://db-engines.com/en/blog_post/103"
    assert entry["title"] == "Snowflake is the DBMS of the Year 2022, defending the title from last year"
    assert "our\u00a0DB-Engines Ranking\u00a0within" in entry["summary"]  # &nbsp; is U+00A0
    assert entry["published_at"] == datetime(2023, 1, 3, 15, 0, tzinfo=UTC)  # dc:date 2023-01-03T15:00:00Z
    assert entry["source"] == "DB-Engines.com Blog"


def test_bare_ampersands_and_an_unclosed_end_tag_keep_the_link_whole():
    body, entries, warnings = parse("feedparser-entities-query_variable_entry.xml")
    assert b"<link>http://example/?a=1&b=2&c</link>" in body  # `&b` and `&c` are not escaped
    assert body.rstrip().endswith(b"</rss")  # and the root end tag is cut short
    assert len(entries) == 1
    assert len(warnings) == 1 and warnings[0].startswith("malformed feed, entries kept")
    assert entries[0]["link"] == "http://example/?a=1&b=2&c"
    assert entries[0]["title"] is None and entries[0]["published_at"] is None
    assert entries[0]["source"] == "feeds.example"  # no feed title: the feed URL's host


@pytest.mark.parametrize("content_type", ["text/xml; charset=windows-1252", ""])
def test_http_charset_overrides_a_wrong_xml_encoding_declaration(content_type):
    # Declared iso-8859-1, but bytes 0x93/0x94 are C1 controls there and curly quotes in windows-1252,
    # which is what the server's charset says. Without the header the label iso-8859-1 is read as
    # windows-1252 anyway, as the WHATWG Encoding Standard (and every browser) does.
    body, entries, warnings = parse("feedparser-encoding-http_text_xml_charset_overrides_encoding_2.xml",
                                    content_type=content_type)
    assert b"encoding='iso-8859-1'" in body and b"This is a \xa3\x93test.\x94" in body
    assert warnings == []
    assert len(entries) == 1
    assert entries[0]["summary"] == "This is a \u00a3\u201ctest.\u201d"
    assert entries[0]["title"] == "Foo"
    assert entries[0]["link"] == "http://purl.org/rss/2.0/?item"


def test_italian_feed_entry():
    body, entries, warnings = parse("feed-rs-rss_2.0_ilmessaggero.xml")
    assert warnings == []
    assert len(entries) == 1
    entry = entries[0]
    assert entry["link"] == "https://www.ilmessaggero.it/mondo/missili_polonia_cosa_e_successo_davvero-7054869.html"
    assert entry["title"] == "Missili Polonia, cosa è successo? Tensione Nato-Russia, Mosca: non siamo stati noi"
    assert entry["source"] == "ilmessaggero.it - mondo"


def test_italian_weekday_in_pubdate():
    # mer = mercoledi; feedparser's own RFC 822 parser rejects the unknown weekday, newsbeam's fallback drops it
    body, entries, _ = parse("feed-rs-rss_2.0_ilmessaggero.xml")
    assert b"<pubDate>mer, 16 nov 2022 00:38:15 +0100</pubDate>" in body
    assert entries[0]["published_at"] == datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)


def test_named_us_timezone_in_pubdate():
    body, entries, warnings = parse("feed-rs-rss_2.0_example_6.xml")
    assert b"<pubDate>Thu, 06 Feb 2020 00:00:00 PST</pubDate>" in body
    assert warnings == []
    assert len(entries) == 1
    entry = entries[0]
    assert entry["published_at"] == datetime(2020, 2, 6, 8, 0, tzinfo=UTC)  # PST is UTC-8
    assert entry["link"] == "https://trailers.apple.com/trailers/independent/vitalina-varela"
    assert entry["content"].startswith("<span")  # content:encoded
    assert entry["language"] == "en-US"


def test_rdf_rss_1_0_with_a_date_only_dc_date():
    body, entries, warnings = parse("feed-rs-rss_1.0_debian.xml")
    assert b"<rdf:RDF" in body and b'xmlns="http://purl.org/rss/1.0/"' in body
    assert b"<dc:date>2022-12-17</dc:date>" in body
    assert warnings == []
    assert len(entries) == 1
    entry = entries[0]
    assert entry["link"] == "https://www.debian.org/News/2022/20221217"
    assert entry["title"] == "Updated Debian 11: 11.6 released"
    assert entry["published_at"] == datetime(2022, 12, 17, tzinfo=UTC)  # a date alone: midnight UTC
    assert "codename <q>bullseye</q>" in entry["summary"]  # escaped markup in the description
    assert entry["source"] == "Debian News"


@pytest.mark.parametrize("feed_url, base_url, link", [
    ("https://example.com/blog/feed.xml", None, "https://example.com/blog/2003/12/13/atom03"),
    # redirected: links resolve against where the feed was found, not where it was asked for
    ("http://old.example/feed", "https://example.com/blog/feed.xml", "https://example.com/blog/2003/12/13/atom03"),
    # no xml:base: the document's own URL is the base, not its rel="self" link (RFC 4287 / RFC 3986)
    ("http://mirror.example/atom.xml", None, "http://mirror.example/blog/2003/12/13/atom03"),
])
def test_atom_relative_links_resolve_against_the_document_url(feed_url, base_url, link):
    body, entries, warnings = parse("feed-rs-atom_relative.xml", feed_url=feed_url, base_url=base_url)
    assert b'<link href="/blog/2003/12/13/atom03" />' in body and b"xml:base" not in body
    assert warnings == []
    assert len(entries) == 1
    assert entries[0]["link"] == link
    assert entries[0]["feed_url"] == feed_url
    assert entries[0]["published_at"] == datetime(2003, 12, 13, 18, 30, 2, tzinfo=UTC)  # <updated>, no <published>


def test_json_feed():
    body, entries, warnings = parse("feed-rs-jsonfeed_example_1.json", content_type="application/feed+json")
    assert b'"version": "https://jsonfeed.org/version/1"' in body
    assert warnings == []
    assert [e["link"] for e in entries] == [  # each item's `url`, its permalink (not `external_url`)
        "https://daringfireball.net/linked/2020/01/24/bezos-iphone-x",
        "https://daringfireball.net/linked/2020/01/20/instagram-for-win95",
    ]
    assert [e["published_at"] for e in entries] == [  # date_published, not date_modified
        datetime(2020, 1, 24, 23, 46, 57, tzinfo=UTC),
        datetime(2020, 1, 21, 1, 7, 0, tzinfo=UTC),
    ]
    assert entries[0]["title"] == "How Jeff Bezos’s iPhone X Was Hacked"
    assert entries[1]["content"] == "<p>Delightful work by Petrick Studio.</p>"
    assert all(e["authors"] == ["John Gruber"] and e["source"] == "Daring Fireball" for e in entries)
