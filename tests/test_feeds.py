"""Unit tests of parse_feed in transforms/feeds.py, and of PollFeeds against a loopback web (conftest.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsbeam.transforms.feeds import FeedError, PollFeeds, discover_feeds, iso_to_utc, parse_feed, sitemap_children
from newsbeam.transforms.http import FetchSettings
from newsweb import rss

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


# Hostile feeds (issue 14): every string valid Unicode, one bad item costs only itself, local files only from local documents.


def strings(entry):
    """Every string an entry carries, its authors' names included."""
    return [v for v in entry.values() if isinstance(v, str)] + list(entry["authors"]) + list(entry.get("error") or ())


def assert_valid_unicode(entries):
    for entry in entries:
        for text in strings(entry):
            text.encode("utf-8")  # raises for a lone surrogate


def good_items(n, host="news.example.com"):
    return [{"title": f"Good item {i}", "link": f"http://{host}/story-{i}.html"} for i in range(n)]


def test_json_feed_lone_surrogates_become_replacement_characters():
    body = (b'{"version": "https://jsonfeed.org/version/1.1", "title": "Wire \\ud800", "language": "en\\udfff", "items": ['
            b'{"url": "/a.html", "title": "Bad \\ud800 title", "summary": "s\\udc00", "content_text": "p\\ud83d",'
            b' "authors": [{"name": "Ann \\udbff"}], "language": "de\\ud800"},'
            b' {"url": "/b.html", "title": "Fine"}]}')
    entries, _ = parse(body, url="http://news.example.com/feed.json")
    assert_valid_unicode(entries)
    first = entries[0]
    assert (first["title"], first["summary"], first["authors"], first["language"]) == (
        "Bad \ufffd title", "s\ufffd", ["Ann \ufffd"], "de\ufffd")
    assert first["content"] == "<p>p\ufffd</p>" and first["source"] == "Wire \ufffd"
    assert entries[1]["title"] == "Fine" and entries[1]["language"] == "en\ufffd"


def test_json_feed_keeps_its_language_only_when_it_is_text():
    body = b'{"version": "https://jsonfeed.org/version/1", "language": 7, "items": [{"url": "/a.html", "language": ["x"]}]}'
    (entry,), _ = parse(body)
    assert entry["language"] is None


@pytest.mark.parametrize("reference", ["&#xD800;", "&#xdfff;", "&#55296;", "&#x110000;", "&#99999999999999999999;", "&#x" + "f" * 5000 + ";"])
def test_a_character_reference_to_no_character_costs_one_character_not_the_feed(reference):
    items = good_items(28)
    items.insert(7, {"title": f"Bad {reference} title", "link": "http://news.example.com/bad.html"})
    entries, _ = parse(rss("Wire", items))
    assert len(entries) == 29
    assert entries[7]["title"] == "Bad \ufffd title"
    assert [e["title"] for e in entries if e is not entries[7]] == [f"Good item {i}" for i in range(28)]
    assert_valid_unicode(entries)


def test_control_characters_are_replaced_and_tabs_and_letters_kept():
    (entry,), _ = parse("<rss version='2.0'><channel><title>t</title><item><title>a&#0;&#1;&#x1F;&#9;&#xE9;b</title>"
                        "<link>http://news.example.com/a</link></item></channel></rss>")
    assert entry["title"] == "a\ufffd\ufffd\ufffd\t\u00e9b"


@pytest.mark.parametrize(
    "link, error",
    [
        ("http://[::1/x", "invalid_url"),
        ("//[::1", "invalid_url"),
        ("http://news.example.com:99999/x", "invalid_url"),
        ("http://news.example.com:port/x", "invalid_url"),
        ("file:///etc/passwd", "refused"),
        ("javascript:alert(1)", "refused"),
    ],
)
def test_an_item_whose_link_cannot_be_fetched_fails_alone(link, error):
    items = good_items(3)
    items.insert(1, {"title": "Hostile", "link": link})
    entries, _ = parse(rss("Wire", items))
    assert [e["title"] for e in entries if "error" not in e] == ["Good item 0", "Good item 1", "Good item 2"]
    (bad,) = [e for e in entries if "error" in e]
    assert bad["error"][0] == error and bad["feed_url"] == "http://news.example.com/feeds/world.xml"


def test_a_bad_link_fails_alone_in_atom_json_feed_and_news_sitemap():
    atom = ATOM.replace('href="../archive/second.html"', 'href="http://[::1/second"')
    json_feed = ('{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": "http://[::1/a"}, {"url": "/b.html"}]}')
    sitemap = ('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
               + "".join(f"<url><loc>{loc}</loc><news:news><news:title>t</news:title></news:news></url>"
                         for loc in ("http://[::1/a", "http://news.example.com/b")) + "</urlset>")
    for body in (atom, json_feed, sitemap):
        entries, _ = parse(body)
        assert [e.get("error", (None,))[0] for e in entries] in (["invalid_url", None], [None, "invalid_url"])


def test_only_a_local_feed_may_link_local_pages_whatever_its_listed_url():
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": "file:///srv/site/a.html"}]}'
    (local,), _ = parse_feed(body, "file:///srv/site/feed.json", {})
    assert local["link"] == "file:///srv/site/a.html" and "error" not in local
    # Listed as a local homepage, the feed it announces was fetched from the network.
    (remote,), _ = parse_feed(body, "file:///srv/site/home.html", {}, base_url="http://news.example.com/feed.json")
    assert remote["error"] == ("refused", "a document from the network may not name local files")


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_iso_to_utc_is_none_for_a_date_past_the_calendar_in_utc(value):
    assert iso_to_utc(value) is None


def test_discovery_and_sitemap_index_skip_what_is_no_url():
    page = (b'<html><head><link rel="alternate" type="application/rss+xml" href="http://[::1/feed">'
            b'<link rel="alternate" type="application/rss+xml" href="/rss.xml"></head></html>')
    assert discover_feeds(page, "http://news.example.com/") == ["http://news.example.com/rss.xml"]
    index = (b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>http://[::1/a.xml</loc></sitemap>'
             b"<sitemap><loc>/b.xml</loc></sitemap></sitemapindex>")
    assert sitemap_children(index, "http://news.example.com/") == ["http://news.example.com/b.xml"]


# PollFeeds over a loopback web: what a network response names is read only when it is http(s).


LOCAL_FEED = ("<rss version='2.0'><channel><title>Local</title><item><title>LOCAL SECRET TITLE</title>"
              "<link>http://news.example.com/local</link></item></channel></rss>")


@pytest.fixture
def poller():
    poll = PollFeeds(FetchSettings(allow_private_network=True, retries=0, host_delay=0, connect_timeout=1, read_timeout=1))
    poll.open_client()
    yield poll
    poll.teardown()


def poll_once(poller, url, state=None):
    """(outcome, entries, detail) of one poll of `url`."""
    outcome, _, entries, warnings, detail = poller.fetch({"url": url, "state": state})
    return outcome, entries, warnings, detail


@pytest.mark.parametrize("exists", [True, False], ids=["existing-file", "missing-file"])
def test_a_homepage_announcing_a_local_feed_is_not_a_feed_and_the_file_is_not_read(web, poller, tmp_path, exists):
    local = tmp_path / "local.xml"
    if exists:
        local.write_text(LOCAL_FEED)
    home = web.add(f"/home-{exists}.html", f'<!doctype html><html><head><link rel="alternate" type="application/rss+xml" '
                                           f'href="{local.as_uri()}"></head><body>Home</body></html>')
    outcome, entries, _, detail = poll_once(poller, home)
    assert (outcome, entries) == ("failed", [])
    assert detail[:3] == ("parse_feed", "not_a_feed",
                          "an HTML page announcing no feed that may be read: a document from the network may not name local files")


def test_a_homepage_announcing_a_local_feed_and_an_http_one_is_read_through_the_http_one(web, poller, tmp_path):
    (tmp_path / "local.xml").write_text(LOCAL_FEED)
    feed = web.add("/both/feed.xml", "<rss version='2.0'><channel><title>Remote</title><item><title>Remote item</title>"
                                     "<link>/story</link></item></channel></rss>", content_type="application/rss+xml")
    home = web.add("/both/home.html", "<!doctype html><html><head>"
                                      f'<link rel="alternate" type="application/rss+xml" href="{(tmp_path / "local.xml").as_uri()}">'
                                      f'<link rel="alternate" type="application/rss+xml" href="{feed}"></head></html>')
    outcome, entries, _, _ = poll_once(poller, home)
    assert outcome == "ok" and [e["title"] for e in entries] == ["Remote item"]


def test_a_feed_found_by_an_earlier_run_is_not_read_when_it_is_local_and_the_homepage_remote(web, poller, tmp_path):
    (tmp_path / "local.xml").write_text(LOCAL_FEED)
    home = web.add("/stale/home.html", "<!doctype html><html><head></head><body>No feed today</body></html>")
    outcome, entries, _, detail = poll_once(poller, home, state={"discovered_url": (tmp_path / "local.xml").as_uri()})
    assert (outcome, entries, detail[1]) == ("failed", [], "not_a_feed")


def news_sitemap(titles_and_links):
    return ('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
            + "".join(f"<url><loc>{link}</loc><news:news><news:title>{title}</news:title></news:news></url>"
                      for title, link in titles_and_links) + "</urlset>")


def sitemap_index(locations):
    return ('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locations) + "</sitemapindex>")


def test_a_sitemap_index_from_the_network_never_reads_local_sitemaps(web, poller, tmp_path):
    local = tmp_path / "local-sitemap.xml"
    local.write_text(news_sitemap([("LOCAL SECRET TITLE", "http://news.example.com/local")]))
    remote = web.add("/index/remote.xml", news_sitemap([("Remote item", "http://news.example.com/remote")]), content_type="application/xml")
    index = web.add("/index/index.xml", sitemap_index([local.as_uri(), (tmp_path / "missing.xml").as_uri(), remote]),
                    content_type="application/xml")
    outcome, entries, warnings, _ = poll_once(poller, index)
    assert outcome == "ok" and [e["title"] for e in entries] == ["Remote item"]
    assert warnings == [f"sitemap {path.as_uri()} skipped: a document from the network may not name local files"
                        for path in (local, tmp_path / "missing.xml")]
    # The same index as a local file, from the user's list, may.
    (tmp_path / "index.xml").write_text(sitemap_index([local.name]))
    outcome, entries, _, _ = poll_once(poller, (tmp_path / "index.xml").as_uri())
    assert outcome == "ok" and [e["title"] for e in entries] == ["LOCAL SECRET TITLE"]


def test_a_sitemap_index_of_local_sitemaps_only_fails_saying_the_same_of_each(web, poller, tmp_path):
    local = tmp_path / "local-sitemap.xml"
    local.write_text(news_sitemap([("LOCAL SECRET TITLE", "http://news.example.com/local")]))
    index = web.add("/index/local-only.xml", sitemap_index([local.as_uri(), "file:///etc/shadow"]), content_type="application/xml")
    outcome, entries, _, detail = poll_once(poller, index)
    assert (outcome, entries, detail[1]) == ("failed", [], "sitemap_index")
    assert "LOCAL SECRET" not in detail[2] and "no such file" not in detail[2] and "ermission" not in detail[2]
    assert detail[2].count("a document from the network may not name local files") == 2


def test_failed_items_become_feed_entry_error_rows_and_the_rest_go_on(web, poller):
    items = good_items(2)
    items.insert(1, {"title": "Hostile", "link": "http://[::1/x"})
    feed = web.add("/rows/feed.xml", rss("Wire", items), content_type="application/rss+xml")
    spec = {"url": feed, "state": None}
    outputs = list(poller.emit(spec, poller.fetch(spec)))
    rows = [o.value for o in outputs if getattr(o, "tag", None) == "errors"]
    assert [o["link"] for o in outputs if isinstance(o, dict)] == ["http://news.example.com/story-0.html",
                                                                  "http://news.example.com/story-1.html"]
    assert [(r["stage"], r["error"], r["url"], r["feed_url"]) for r in rows] == [("feed_entry", "invalid_url", "http://[::1/x", feed)]
