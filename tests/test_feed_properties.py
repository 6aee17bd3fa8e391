"""Property tests of parse_feed over generated hostile RSS, Atom and JSON Feed documents.

Titles, summaries, authors and links are drawn from text that holds lone surrogates, control
characters, character references to no character (&#xD800;, &#0;, &#x110000;), unclosed IPv6
hosts, bad ports and other schemes. Whatever the document, parse_feed raises nothing but
FeedError, every string of every entry encodes to UTF-8, and a link is None or absolute: http(s)
(the document comes from the network, so never a local file) with a host and port the page stage
can read (pages.link_problem), or the entry carries the error that keeps it from going on.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsbeam.transforms.feeds import FeedError, parse_feed
from newsbeam.transforms.pages import link_problem

FEED_URL = "http://feeds.example/news/feed.xml"
ENTRY_ERRORS = {"invalid_url", "refused", "internal_error"}
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = ["&#xD800;", "&#xdfff;", "&#55296;", "&#0;", "&#1;", "&#x110000;", "&#99999999999;", "&amp;", "&nbsp;", "&lt;b&gt;",
           "&", "<", "]]>", "<![CDATA[x]]>", "\ud800", "\udfff", "\x00", "\x01", "\x1b", "\u2028", "\ufffe", "\U0001F600", "é"]
LINKS = ["http://[::1/x", "//[::1", "http://[::1]:99999/", "http://news.example:99999/a", "http://news.example:port/a", "http://news.example:0/a",
         "https://", "http:", "mailto:desk@news.example", "javascript:alert(1)", "file:///etc/passwd", "ftp://news.example/a",
         "data:text/html,hi", "story.html", "/2026/11/story", "?page=2", "#top", "https://news.example/a b", "HTTP://NEWS.example/A",
         "http://news.example/\ud800", "  http://news.example/padded  ", ""]

# Characters of every category, lone surrogates included (hypothesis leaves them out by default).
any_char = st.characters(blacklist_categories=())
text = st.lists(st.one_of(st.text(any_char, max_size=8), st.sampled_from(HOSTILE)), max_size=6).map("".join)
link = st.one_of(st.sampled_from(LINKS), text, st.builds(lambda a, b: a + b, st.sampled_from(LINKS), text))


def xml_bytes(document: str) -> bytes:
    return document.encode("utf-8", "surrogatepass")  # a lone surrogate goes in as the invalid bytes it would be


@st.composite
def rss(draw):
    items = draw(st.lists(st.fixed_dictionaries({"title": text, "link": link, "description": text, "author": text}), max_size=5))
    body = "".join(f"<item><title>{i['title']}</title><link>{i['link']}</link><description>{i['description']}</description>"
                   f"<author>{i['author']}</author><guid>{i['link']}</guid></item>" for i in items)
    return xml_bytes(f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{draw(text)}</title>{body}</channel></rss>")


@st.composite
def atom(draw):
    entries = draw(st.lists(st.fixed_dictionaries({"title": text, "link": link, "summary": text, "author": text}), max_size=5))
    body = "".join(f"<entry><title>{e['title']}</title><link rel='alternate' href='{e['link']}'/><summary>{e['summary']}</summary>"
                   f"<author><name>{e['author']}</name></author><content type='html'>{e['summary']}</content></entry>"
                   for e in entries)
    return xml_bytes(f"<feed xmlns='http://www.w3.org/2005/Atom' xml:lang='{draw(text)}'><title>{draw(text)}</title>{body}</feed>")


json_value = st.one_of(text, st.none(), st.integers(), st.lists(text, max_size=2), st.dictionaries(text, text, max_size=2))


@st.composite
def json_feed(draw):
    item = st.fixed_dictionaries({
        "url": st.one_of(link, json_value), "id": st.one_of(link, json_value), "title": st.one_of(text, json_value),
        "summary": text, "content_text": st.one_of(text, json_value), "content_html": st.one_of(text, json_value),
        "date_published": st.one_of(st.sampled_from(["2026-11-21T09:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"]),
                                    json_value),
        "authors": st.one_of(st.lists(st.fixed_dictionaries({"name": st.one_of(text, json_value)}), max_size=2), json_value),
        "language": st.one_of(text, json_value),
    })
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": draw(st.one_of(text, json_value)),
            "language": draw(st.one_of(text, json_value)), "items": draw(st.lists(st.one_of(item, json_value), max_size=5))}
    return json.dumps(feed).encode("ascii")  # ensure_ascii: a lone surrogate becomes the escape \ud800


def check(body: bytes) -> None:
    try:
        entries, warnings = parse_feed(body, FEED_URL, {})
    except FeedError as exc:
        exc.message.encode("utf-8")
        return
    for warning in warnings:
        warning.encode("utf-8")
    for entry in entries:
        texts = [v for v in entry.values() if isinstance(v, str)] + list(entry["authors"]) + list(entry.get("error") or ())
        for value in texts:
            value.encode("utf-8")
        if entry.get("error"):
            assert entry["error"][0] in ENTRY_ERRORS, entry["error"]
            continue
        if entry["link"] is not None:
            assert urlsplit(entry["link"]).scheme in ("http", "https"), entry["link"]
            assert link_problem(entry["link"]) is None, entry["link"]  # what the page stage can fetch as written


@SETTINGS
@given(rss())
def test_rss_never_raises_and_gives_valid_entries(body):
    check(body)


@SETTINGS
@given(atom())
def test_atom_never_raises_and_gives_valid_entries(body):
    check(body)


@SETTINGS
@given(json_feed())
def test_json_feed_never_raises_and_gives_valid_entries(body):
    check(body)
