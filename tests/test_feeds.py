"""Unit tests of parse_feed in transforms/feeds.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsbeam.transforms.feeds import FeedError, parse_feed

UTC = timezone.utc

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Example Wire</title>
  <link>http://news.example.com/</link>
  <language>en-gb</language>
  <item>
    <title>Junta chief meets Anwar in Bangkok</title>
    <link>world/junta-anwar.html</link>
    <pubDate>Tue, 05 Mar 2024 10:00:00 -0500</pubDate>
    <dc:creator>Jane Doe</dc:creator>
    <description>Talks &lt;b&gt;condemned&lt;/b&gt; by critics</description>
    <content:encoded><![CDATA[<p>Myanmar's junta chief held talks.</p><p>Critics condemned it.</p>]]></content:encoded>
  </item>
  <item>
    <title>Hun Sen due in Myanmar</title>
    <link>http://other.example.org/asia/hun-sen</link>
    <pubDate>Wed, 06 Mar 2024 08:30:00 GMT</pubDate>
    <author>desk@news.com (Ed Smith)</author>
  </item>
  <item>
    <title>Permalink only</title>
    <guid isPermaLink="true">http://news.example.com/permalink</guid>
  </item>
  <item>
    <title>No link at all</title>
    <description>Nothing to fetch</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
  <title>Atom Site</title>
  <id>urn:example:feed</id>
  <updated>2024-03-06T00:00:00Z</updated>
  <entry>
    <title>Erste Meldung</title>
    <link rel="alternate" href="posts/first.html"/>
    <id>urn:example:1</id>
    <published>2024-03-05T09:00:00+02:00</published>
    <updated>2024-03-05T12:00:00+02:00</updated>
    <author><name>Anna Berg</name></author>
    <author><name>Ben Roth</name></author>
    <summary>Kurzfassung</summary>
    <content type="html">&lt;p&gt;Volltext&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Zweite Meldung</title>
    <link href="../archive/second.html"/>
    <id>urn:example:2</id>
    <updated>2024-03-06T00:00:00Z</updated>
  </entry>
</feed>
"""

HTML_PAGE = b"<!DOCTYPE html><html><head><title>News home</title></head><body><h1>News</h1><p>Hello</p></body></html>"


def parse(body, url="http://news.example.com/feeds/world.xml", spec=None, content_type=""):
    body = body.encode("utf-8") if isinstance(body, str) else body
    return parse_feed(body, url, spec or {}, content_type)


def test_rss_entries_in_feed_order():
    entries, warnings = parse(RSS)
    assert [e["title"] for e in entries] == [
        "Junta chief meets Anwar in Bangkok",
        "Hun Sen due in Myanmar",
        "Permalink only",
        "No link at all",
    ]
    assert warnings == []


@pytest.mark.parametrize(
    "feed_url, expected",
    [
        ("http://news.example.com/feeds/world.xml", "http://news.example.com/feeds/world/junta-anwar.html"),
        ("file:///srv/mirror/feeds/world.xml", "file:///srv/mirror/feeds/world/junta-anwar.html"),
    ],
    ids=["http", "file"],
)
def test_rss_relative_link_resolves_against_the_feed_url(feed_url, expected):
    entries, _ = parse(RSS, url=feed_url)
    assert entries[0]["link"] == expected
    assert entries[0]["feed_url"] == feed_url


def test_rss_absolute_link_is_kept():
    entries, _ = parse(RSS)
    assert entries[1]["link"] == "http://other.example.org/asia/hun-sen"


def test_rss_permalink_guid_stands_in_for_a_missing_link():
    entries, _ = parse(RSS)
    assert entries[2]["link"] == "http://news.example.com/permalink"


def test_rss_entry_without_any_link_has_none():
    entries, _ = parse(RSS)
    assert entries[3]["link"] is None


def test_rss_pubdate_offset_is_converted_to_utc():
    entries, _ = parse(RSS)
    published = entries[0]["published_at"]
    assert published == datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    assert published.tzinfo is not None and published.utcoffset().total_seconds() == 0


def test_rss_entry_without_date_has_none():
    entries, _ = parse(RSS)
    assert entries[2]["published_at"] is None


def test_rss_authors_from_dc_creator_and_author_element():
    entries, _ = parse(RSS)
    assert entries[0]["authors"] == ["Jane Doe"]
    assert entries[1]["authors"] == ["Ed Smith"]
    assert entries[2]["authors"] == []


def test_rss_content_encoded_is_captured():
    entries, _ = parse(RSS)
    assert entries[0]["content"] == "<p>Myanmar's junta chief held talks.</p><p>Critics condemned it.</p>"
    assert entries[1]["content"] is None


def test_rss_summary_and_channel_language():
    entries, _ = parse(RSS)
    assert entries[0]["summary"] == "Talks <b>condemned</b> by critics"
    assert {e["language"] for e in entries} == {"en-gb"}


def test_spec_language_wins_over_channel_language():
    entries, _ = parse(RSS, spec={"language": "fr"})
    assert entries[0]["language"] == "fr"


def test_source_is_the_feed_title_without_a_spec_name():
    entries, _ = parse(RSS)
    assert {e["source"] for e in entries} == {"Example Wire"}


def test_spec_name_wins_over_feed_title():
    entries, _ = parse(RSS, spec={"name": "My Wire"})
    assert {e["source"] for e in entries} == {"My Wire"}


def test_source_falls_back_to_the_feed_host():
    untitled = RSS.replace("<title>Example Wire</title>", "")
    entries, _ = parse(untitled)
    assert entries[0]["source"] == "news.example.com"


@pytest.mark.parametrize("max_entries, count", [(1, 1), (3, 3), (10, 4), (None, 4)])
def test_max_entries_is_honoured(max_entries, count):
    entries, _ = parse(RSS, spec={"max_entries": max_entries})
    assert len(entries) == count


def test_atom_links_resolve_against_the_feed_url():
    entries, _ = parse(ATOM, url="http://site.example.com/feeds/atom.xml")
    assert [e["link"] for e in entries] == [
        "http://site.example.com/feeds/posts/first.html",
        "http://site.example.com/archive/second.html",
    ]


def test_atom_published_is_utc_and_updated_stands_in():
    entries, _ = parse(ATOM)
    assert entries[0]["published_at"] == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)
    assert entries[1]["published_at"] == datetime(2024, 3, 6, 0, 0, tzinfo=UTC)


def test_atom_several_authors():
    entries, _ = parse(ATOM)
    assert entries[0]["authors"] == ["Anna Berg", "Ben Roth"]


def test_atom_content_summary_and_language():
    entries, _ = parse(ATOM)
    first = entries[0]
    assert (first["content"], first["summary"], first["language"]) == ("<p>Volltext</p>", "Kurzfassung", "de")
    assert entries[1]["content"] is None


def test_atom_source_is_the_feed_title():
    entries, _ = parse(ATOM)
    assert entries[0]["source"] == "Atom Site"


def test_undefined_entity_keeps_entries_with_a_warning():
    bad = RSS.replace("Talks &lt;b&gt;", "Talks&nbsp;&lt;b&gt;")
    entries, warnings = parse(bad)
    assert len(entries) == 4
    assert entries[0]["link"] == "http://news.example.com/feeds/world/junta-anwar.html"
    assert len(warnings) == 1 and "undefined entity" in warnings[0]


def test_mismatched_tag_keeps_readable_entries_with_a_warning():
    bad = RSS.replace("</channel>", "<item><title>Broken</item></channel>")
    entries, warnings = parse(bad)
    assert [e["title"] for e in entries][:2] == ["Junta chief meets Anwar in Bangkok", "Hun Sen due in Myanmar"]
    assert len(warnings) == 1 and warnings[0].startswith("malformed feed, entries kept")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", ""])
def test_html_page_is_not_a_feed(content_type):
    with pytest.raises(FeedError) as info:
        parse(HTML_PAGE, content_type=content_type)
    assert info.value.error == "not_a_feed"


@pytest.mark.parametrize("body", [b"", b"just some text", b"\x00\x01\x02binary"])
def test_non_xml_is_not_a_feed(body):
    with pytest.raises(FeedError) as info:
        parse(body)
    assert info.value.error == "not_a_feed"


def test_truncated_rss_without_entries_is_a_feed_error():
    with pytest.raises(FeedError) as info:
        parse("<?xml version='1.0'?><rss version='2.0'><channel><title>Example Wire</tit")
    assert info.value.error == "malformed_feed"


def test_empty_feed_with_an_html_entity_is_empty_with_a_warning_not_an_error():
    entries, warnings = parse("<rss version='2.0'><channel><title>Caf&eacute; news</title></channel></rss>")
    assert entries == [] and len(warnings) == 1 and "undefined entity" in warnings[0]


def test_valid_feed_without_items_gives_no_entries():
    entries, warnings = parse("<rss version='2.0'><channel><title>Quiet day</title></channel></rss>")
    assert (entries, warnings) == ([], [])


def test_json_feed_is_parsed():
    body = (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "JSON Wire", '
        '"items": [{"id": "1", "url": "/asia/1.html", "title": "Item one", "date_published": "2024-03-05T10:00:00Z"}]}'
    )
    entries, _ = parse(body, url="http://news.example.com/feed.json", content_type="application/feed+json")
    assert entries[0]["link"] == "http://news.example.com/asia/1.html"


def test_links_resolve_against_where_a_redirected_feed_was_found():
    body = b"<rss version='2.0'><channel><title>t</title><item><title>a</title><link>story.html</link></item></channel></rss>"
    entries, _ = parse_feed(body, "http://old.example/rss/feed.xml", {}, base_url="http://new.example/news/feed.xml")
    assert entries[0]["link"] == "http://new.example/news/story.html"
    assert entries[0]["feed_url"] == "http://old.example/rss/feed.xml"
