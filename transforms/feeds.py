"""FetchFeeds stage: poll each feed, parse it, emit one entry per item; keep each feed's state.

Formats: RSS, Atom and RDF (feedparser), JSON Feed, and news sitemaps (`news:publication_date`),
sitemap indexes included; a homepage listed as a source is searched for its feed
(`<link rel="alternate">`). An entry is a dict: link (absolute), feed_url, source, title,
summary, content (HTML from the feed, if any), authors, published_at (UTC), language; every
string in it valid Unicode. A feed that cannot be fetched or is not a feed is an error row; a
malformed (`bozo`) feed that still has entries is a warning and its entries go on. An item
that cannot go on (a link that is no URL, or a local file named by a feed from the network)
is an entry carrying its `error`, and becomes an error row while the feed's other entries go on.

Polls are conditional and health is tracked per feed (transforms/feed_state.py); every feed's
new state goes to the `feed_state` output, kept in DIR/_state/feeds for the next run.
"""

from __future__ import annotations

import calendar
import email.utils
import json
import re
import time
from datetime import datetime, timezone
from html import escape
from urllib.parse import urljoin, urlsplit

import apache_beam as beam
import feedparser
import lxml.etree
import lxml.html

from newsbeam.schemas import error_row
from newsbeam.transforms import feed_state
from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.messages import internal_error
from newsbeam.transforms.http import FetchError, FetchSettings, named_url_problem
from newsbeam.transforms.metrics import count, observe_ms
from newsbeam.transforms.normalise import valid_text, valid_values
from newsbeam.transforms.pages import host_of, link_problem
from newsbeam.transforms.pool import PooledFetchFn

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
               "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
FEED_STATE = "feed_state"
MAX_SITEMAPS = 20  # child sitemaps read from one sitemap index
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json", "application/json")
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
_XML = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
ENTRY_FIELDS = ("link", "feed_url", "source", "title", "summary", "content", "authors", "published_at", "language")
# A character reference to no character (&#xD800;, &#x110000;) makes feedparser's loose parser raise,
# which would lose the whole feed: such a reference is read as U+FFFD instead.
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _date_with_foreign_weekday(text: str):
    """RFC 822 dates whose weekday is not in English ("mer, 16 nov 2022 00:38:15 +0100"): the weekday is dropped.

    Registered with feedparser, which otherwise rejects the whole date.
    """
    match = re.match(r"\s*[^\W\d_]{2,12}\.?,\s*(\d.+)$", text or "")
    if not match:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(match.group(1))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).timetuple()


feedparser.registerDateHandler(_date_with_foreign_weekday)


class FeedError(Exception):
    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error
        self.message = valid_text(message)


class EntryError(Exception):
    """One item that cannot go on; its feed's other items do."""

    def __init__(self, error: str, message: str, link: str | None = None):
        super().__init__(message)
        self.error, self.message, self.link = error, message, link


def resolve(ref, base_url: str) -> str | None:
    """`ref` resolved against `base_url`, where its document was found; None when there is none.

    EntryError("invalid_url") when it cannot be fetched as written (pages.link_problem: a port or
    host that cannot be read) or not even resolved (an unclosed IPv6 host).
    """
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    try:
        url = urljoin(base_url, ref)
    except ValueError as exc:
        raise EntryError("invalid_url", f"invalid URL: {exc}", ref) from None
    problem = link_problem(url)
    if problem:
        raise EntryError("invalid_url", problem, ref)
    return url


def absolute_link(ref, base_url: str) -> str | None:
    """An item's link, resolved; EntryError when it is no URL or names what its document may not
    (transforms/http.py named_url_problem: a local file, named by a document from the network)."""
    link = resolve(ref, base_url)
    problem = named_url_problem(link, base_url) if link else None
    if problem:
        raise EntryError("refused", problem, link)
    return link


def _resolved(ref, base_url: str) -> str | None:
    """`ref` resolved, or None when there is none or it is no URL."""
    try:
        return resolve(ref, base_url)
    except EntryError:
        return None


def _entries(items, feed_url: str, build) -> list[dict]:
    """`build(item)` for each item, every string made valid; an item that fails is an entry carrying its `error`."""
    entries = []
    for item in items:
        try:
            entry = build(item)
        except EntryError as exc:
            entry = _failed_entry(feed_url, exc.link, exc.error, exc.message)
        except Exception as exc:  # a library quirk on one item must not cost the feed its other items
            entry = _failed_entry(feed_url, None, "internal_error", internal_error(exc))
        entries.append({key: valid_values(value) for key, value in entry.items()})
    return entries


def _failed_entry(feed_url: str, link: str | None, error: str, message: str) -> dict:
    return {**dict.fromkeys(ENTRY_FIELDS), "authors": [], "link": link, "feed_url": feed_url, "error": (error, message)}


def sniff(body: bytes) -> str:
    """'json', 'urlset', 'sitemapindex' or 'xml' (anything else feedparser may read)."""
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return "json"
    root = re.search(rb"<(?![?!])([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)", head)
    if root and root.group(2).lower() in (b"urlset", b"sitemapindex"):
        return root.group(2).decode().lower()
    return "xml"


def parse_feed(
    body: bytes, feed_url: str, spec: dict, content_type: str = "", base_url: str | None = None
) -> tuple[list[dict], list[str]]:
    """Entries of a feed document and the warnings it raised; FeedError when it is no feed at all.

    Relative links resolve against `base_url`, where the feed was found after redirects (default `feed_url`).
    """
    base_url = base_url or feed_url
    kind = sniff(body)
    if kind == "json":
        entries = parse_json_feed(body, feed_url, spec, base_url)
    elif kind == "urlset":
        entries = parse_news_sitemap(body, feed_url, spec, base_url)
    elif kind == "sitemapindex":
        raise FeedError("sitemap_index", "a sitemap index; its sitemaps are read one by one")
    else:
        return _parse_syndication(body, feed_url, spec, content_type, base_url)
    return newest(entries, spec), []


def _parse_syndication(body, feed_url, spec, content_type, base_url):
    headers = {"content-type": content_type} if content_type else {}
    try:
        parsed = feedparser.parse(_CHARREF.sub(_no_character, body), response_headers=headers, sanitize_html=True,
                                  resolve_relative_uris=False)
    except Exception as exc:  # feedparser's loose parser raising on what it cannot read (in a UTF-16 feed, say)
        raise FeedError("malformed_feed", f"feed that cannot be parsed: {internal_error(exc)}") from None
    problem = parsed.get("bozo_exception")
    if not parsed.entries:
        if not parsed.get("version"):
            detail = f": {problem}" if problem else ""
            raise FeedError("not_a_feed", f"not an RSS, Atom, RDF or JSON feed, nor a news sitemap{detail}")
        # An HTML entity XML does not define (&nbsp; in a title) is read fine by feedparser's loose
        # parser: such a feed is just empty today. Anything else (a cut-off feed) may have lost entries.
        if problem and "undefined entity" not in str(problem):
            raise FeedError("malformed_feed", f"malformed feed with no readable entries: {problem}")
    warnings = [f"malformed feed, entries kept: {problem}"] if problem else []
    feed = parsed.feed
    source = _source(spec, feed.get("title"), feed_url)
    language = spec.get("language") or feed.get("language")
    items = newest(parsed.entries, spec)
    return _entries(items, feed_url, lambda item: _entry(item, feed_url, base_url, source, language)), warnings


def _no_character(match) -> bytes:
    """A character reference as it is, or as U+FFFD when it names a surrogate or a number past Unicode."""
    hex_digits, digits = match.groups()
    number = (hex_digits or digits).lstrip(b"0") or b"0"
    code = int(number, 16 if hex_digits else 10) if len(number) <= 8 else 0x110000
    return b"&#xFFFD;" if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else match.group(0)


def newest(entries: list, spec: dict) -> list:
    """The first `max_entries` entries (feeds list their newest first), or all."""
    return entries[: spec["max_entries"]] if spec.get("max_entries") else entries


def _source(spec: dict, title: str | None, feed_url: str) -> str:
    return spec.get("name") or title or urlsplit(feed_url).hostname or feed_url


def parse_json_feed(body: bytes, feed_url: str, spec: dict, base_url: str) -> list[dict]:
    """Entries of a JSON Feed (https://jsonfeed.org, versions 1 and 1.1)."""
    try:
        data = json.loads(body.decode("utf-8-sig", errors="replace"))
    except ValueError as exc:
        raise FeedError("malformed_feed", f"JSON that cannot be parsed: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise FeedError("not_a_feed", "JSON, but not a JSON Feed (no jsonfeed.org version)")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError("malformed_feed", "JSON Feed without an items list")
    source = _source(spec, _text(data.get("title")), feed_url)
    language = spec.get("language") or _text(data.get("language"))
    feed_authors = _json_authors(data)

    def entry(item: dict) -> dict:
        link = item.get("url") or item.get("external_url")
        if not link and str(item.get("id", "")).startswith(("http://", "https://")):
            link = item["id"]
        content = item.get("content_html")
        if not content and isinstance(item.get("content_text"), str):
            content = "".join(f"<p>{escape(p)}</p>" for p in item["content_text"].split("\n\n") if p.strip())
        return {
            "link": absolute_link(link, base_url),
            "feed_url": feed_url,
            "source": source,
            "title": _text(item.get("title")),
            "summary": _text(item.get("summary")),
            "content": content if isinstance(content, str) else None,
            "authors": _json_authors(item) or feed_authors,
            "published_at": iso_to_utc(item.get("date_published")) or iso_to_utc(item.get("date_modified")),
            "language": _text(item.get("language")) or language,
        }

    return _entries([item for item in items if isinstance(item, dict)], feed_url, entry)


def _json_authors(obj: dict) -> list[str]:
    found = obj.get("authors") if isinstance(obj.get("authors"), list) else [obj.get("author")]
    return [a["name"] for a in found if isinstance(a, dict) and isinstance(a.get("name"), str) and a["name"].strip()]


def _text(value):
    return value if isinstance(value, str) else None


def iso_to_utc(value) -> datetime | None:
    """A tz-aware UTC datetime from an ISO 8601 / W3C datetime string (a date alone is midnight UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar's end by its offset
        return None


def _xml_root(body: bytes):
    try:
        root = lxml.etree.fromstring(body, parser=_XML)
    except lxml.etree.XMLSyntaxError as exc:
        raise FeedError("malformed_feed", f"sitemap is not well-formed XML: {exc}") from None
    if root is None:
        raise FeedError("malformed_feed", "sitemap is empty or not XML")
    return root


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(node, name: str, ns: str | None = None) -> str | None:
    for child in node:
        if _local(child.tag) == name and (ns is None or child.tag.startswith("{" + ns)):
            return (child.text or "").strip() or None
    return None


def parse_news_sitemap(body: bytes, feed_url: str, spec: dict, base_url: str) -> list[dict]:
    """Entries of a Google News sitemap: each <url> with a <news:news> (title, publication date, name, language)."""
    root = _xml_root(body)
    found = []
    for url in root:
        if _local(url.tag) != "url":
            continue
        news = next((c for c in url if _local(c.tag) == "news" and c.tag.startswith("{" + NEWS_NS)), None)
        if news is not None and _child_text(url, "loc"):
            found.append((_child_text(url, "loc"), news))
    if not found and not any(_local(u.tag) == "url" for u in root):
        raise FeedError("not_a_feed", "a sitemap without any <url>")
    if not found:
        raise FeedError("not_a_news_sitemap", "a sitemap without <news:news> entries; newsbeam reads news sitemaps only")

    def entry(pair) -> dict:
        loc, news = pair
        publication = next((c for c in news if _local(c.tag) == "publication"), None)
        name = _child_text(publication, "name") if publication is not None else None
        language = _child_text(publication, "language") if publication is not None else None
        return {
            "link": absolute_link(loc, base_url),
            "feed_url": feed_url,
            "source": _source(spec, name, feed_url),
            "title": _child_text(news, "title"),
            "summary": None,
            "content": None,
            "authors": [],
            "published_at": iso_to_utc(_child_text(news, "publication_date")),
            "language": spec.get("language") or language,
        }

    return _entries(found, feed_url, entry)


def sitemap_children(body: bytes, base_url: str) -> list[str]:
    """The sitemap URLs a sitemap index lists, at most MAX_SITEMAPS, newest first when they say when."""
    root = _xml_root(body)
    found = []
    for node in root:
        url = _resolved(_child_text(node, "loc"), base_url) if _local(node.tag) == "sitemap" else None
        if url:
            found.append((_child_text(node, "lastmod") or "", url))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [url for _, url in found[:MAX_SITEMAPS]]


def looks_like_page(response) -> bool:
    """An HTML page (a homepage to search for its feed) rather than a feed."""
    if response.mime_type not in ("text/html", "application/xhtml+xml"):
        return False
    head = response.body[:4096].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<head" in head


def discover_feeds(html: bytes, base_url: str) -> list[str]:
    """Feed URLs a page announces with <link rel="alternate" type="application/rss+xml" href=...>, in page order."""
    try:
        root = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    found = []
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        url = _resolved(href, base_url) if "alternate" in rel and kind in FEED_TYPES else None
        if url and url not in found:
            found.append(url)
    return found


def _entry(item, feed_url: str, base_url: str, source: str, language: str | None) -> dict:
    link = item.get("link") or next(
        (l.get("href") for l in item.get("links", []) if l.get("rel") in (None, "alternate") and l.get("href")), None
    )
    if not link and item.get("guidislink") is not False and str(item.get("id", "")).startswith(("http://", "https://")):
        link = item["id"]
    content = next((c.get("value") for c in item.get("content", []) if c.get("value")), None)
    authors = [a.get("name") for a in item.get("authors", []) if a.get("name")]
    if not authors and item.get("author"):
        authors = [item["author"]]
    return {
        "link": absolute_link(link, base_url),
        "feed_url": feed_url,
        "source": source,
        "title": item.get("title"),
        "summary": item.get("summary"),
        "content": content,
        "authors": authors,
        # dict.get: FeedParserDict.get("updated_parsed") falls back to published with a DeprecationWarning
        "published_at": _struct_to_utc(dict.get(item, "published_parsed") or dict.get(item, "updated_parsed")),
        "language": item.get("language") or language,
    }


def _struct_to_utc(value) -> datetime | None:
    """feedparser gives UTC struct_time; keep it tz-aware."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None


class FetchFeeds(beam.PTransform):
    """Feed specs (each with its stored `state`, if any) -> entries; failures to `errors`, new states to `feed_state`.

    Feeds are grouped by host before polling, so one host's feeds share one worker's politeness gate.
    """

    def __init__(self, settings: FetchSettings):
        super().__init__()
        self._settings = settings

    def expand(self, specs):
        return (
            specs
            | "KeyByHost" >> beam.Map(lambda spec: (host_of(spec["url"]), spec))
            | "GroupByHost" >> beam.GroupByKey()
            | "PollFeeds" >> beam.ParDo(PollFeeds(self._settings)).with_outputs(ERRORS, FEED_STATE, main="entries")
        )


class PollFeeds(PooledFetchFn):
    """Polls feeds in a pool (FetchFeeds), or one at a time through `fetch` and `emit` (the streaming job)."""

    def requests(self, element):
        host, specs = element
        for spec in specs:
            yield host, spec

    def fetch(self, spec):
        """(outcome, new state, entries, warnings, seconds or error details); runs in a pool thread."""
        now = datetime.now(timezone.utc)
        state = spec.get("state")
        started = time.perf_counter()
        skip, validators = feed_state.poll_plan(state, now)
        if skip:
            return feed_state.SKIPPED, feed_state.carried(state, now), [], [], skip
        try:
            response, found_at = self._fetch_document(spec["url"], (state or {}).get("discovered_url"), validators)
            body, entries, warnings = response.body, None, []
            if not response.not_modified and sniff(body) == "sitemapindex":
                entries, warnings, body = self._read_index(spec, response)
            outcome, new = feed_state.after_success(state, spec["url"], now, status=response.status,
                                                    headers=response.headers, body=body)
            new["discovered_url"] = found_at if found_at != spec["url"] else None
            if entries is not None:  # an index may stay the same while its sitemaps change: the hash covers them
                new.update(conditional=False, conditional_note="sitemap index: its sitemaps are compared by hash")
            if outcome in (feed_state.NOT_MODIFIED, feed_state.UNCHANGED):
                return outcome, new, [], [], time.perf_counter() - started
            if entries is None:
                entries, warnings = parse_feed(body, spec["url"], spec, response.content_type, base_url=response.final_url)
            new["entries"] = len(entries)
            return outcome, new, entries, warnings, time.perf_counter() - started
        except (FetchError, FeedError) as exc:
            stage = "fetch_feed" if isinstance(exc, FetchError) else "parse_feed"
            error = (stage, exc.error, exc.message, getattr(exc, "http_status", None), getattr(exc, "attempts", 1))
            new = feed_state.after_failure(state, spec["url"], now, error=exc.error, message=exc.message,
                                           http_status=error[3], retry_after=getattr(exc, "retry_after", None))
            return feed_state.FAILED, new, [], [], error
        except Exception as exc:  # a bug or a library failure must not end the run
            new = feed_state.after_failure(state, spec["url"], now, error="internal_error", message=internal_error(exc))
            return feed_state.FAILED, new, [], [], ("parse_feed", "internal_error", internal_error(exc), None, 1)

    def _fetch_document(self, url: str, known_feed: str | None, validators: dict | None):
        """The feed's response and where the feed is: the URL itself, or the feed its homepage announces.

        A feed found on a homepage before is polled directly; when it is gone, the homepage is read again.
        A homepage from the network may announce http(s) feeds only (named_url_problem).
        """
        if known_feed and named_url_problem(known_feed, url):  # found by an earlier version, which did not ask
            known_feed = None
        if known_feed:
            try:
                return self._client.get(known_feed, accept=FEED_ACCEPT, validators=validators), known_feed
            except FetchError as exc:
                if exc.http_status not in (404, 410):
                    raise
            validators = None
        response = self._client.get(url, accept=FEED_ACCEPT, validators=None if known_feed else validators)
        if response.not_modified or not looks_like_page(response):
            return response, url
        announced = discover_feeds(response.body, response.final_url)
        candidates = [feed for feed in announced if not named_url_problem(feed, response.final_url)]
        if not candidates:
            why = (f"an HTML page announcing no feed that may be read: {named_url_problem(announced[0], response.final_url)}"
                   if announced else 'an HTML page that announces no feed (no <link rel="alternate" type="application/rss+xml">)')
            raise FeedError("not_a_feed", why)
        return self._client.get(candidates[0], accept=FEED_ACCEPT), candidates[0]

    def _read_index(self, spec: dict, response):
        """(entries, warnings, index and sitemap bodies) of a sitemap index, its newest sitemaps read."""
        entries, warnings, bodies = [], [], [response.body]
        for child in sitemap_children(response.body, response.final_url):
            refused = named_url_problem(child, response.final_url)
            if refused:  # never read, so nothing is said about it but why
                warnings.append(f"sitemap {child} skipped: {refused}")
                continue
            try:
                part = self._client.get(child, accept=FEED_ACCEPT)
                found, said = parse_feed(part.body, spec["url"], {**spec, "max_entries": None}, part.content_type,
                                         base_url=part.final_url)
            except (FetchError, FeedError) as exc:
                warnings.append(f"sitemap {child} skipped: {exc.message}")
                continue
            bodies.append(part.body)
            entries.extend(found)
            warnings.extend(said)
        if not entries and warnings:
            raise FeedError("sitemap_index", "; ".join(warnings)[:1000])
        return newest(entries, spec), warnings, b"\0".join(bodies)

    def emit(self, spec, outcome):
        url = spec["url"]
        if isinstance(outcome, Exception):  # fetch() itself failed: a bug
            yield _feed_error("fetch_feed", "internal_error", internal_error(outcome), url, None)
            return
        result, new, entries, warnings, detail = outcome
        yield beam.pvalue.TaggedOutput(FEED_STATE, new)
        count(f"feeds_{result}")
        if result != feed_state.FAILED and result != feed_state.SKIPPED:
            count("feeds_fetched")
        if result == feed_state.SKIPPED:
            return
        if result == feed_state.FAILED:
            stage, error, message, status, attempts = detail
            if attempts > 1:
                count("fetch_retries", attempts - 1)
            yield _feed_error(stage, error, message, url, status)
            return
        observe_ms("fetch_feed_ms", seconds=detail)
        if warnings:
            count("feeds_malformed_kept")
        for entry in entries:
            count("entries_discovered")
            if entry.get("error"):
                yield from fail_entries([entry], "feed_entry", *entry["error"])
            elif entry["link"]:
                yield entry
            else:
                count("entries_without_link")
                yield from fail_entries([entry], "feed_entry", "no_link", f"entry {entry['title']!r} has no link")


def _feed_error(stage, error, message, url, status):
    return beam.pvalue.TaggedOutput(
        ERRORS, error_row(stage=stage, error=error, message=message, url=url, feed_url=url, http_status=status)
    )
