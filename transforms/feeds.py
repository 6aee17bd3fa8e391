"""FetchFeeds stage: fetch each feed, parse it with feedparser, emit one entry per item.

An entry is a dict: link (absolute), feed_url, source, title, summary, content (HTML from
the feed, if any), authors, published_at (UTC), language. A feed that cannot be fetched
or is not a feed is an error row; a malformed (`bozo`) feed that still has entries is a
warning and its entries go on.
"""

from __future__ import annotations

import calendar
import time
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

import apache_beam as beam
import feedparser

from newsbeam.schemas import error_row
from newsbeam.transforms.errors import ERRORS, fail_entries, internal_error
from newsbeam.transforms.http import FetchError, FetchSettings, HttpClient
from newsbeam.transforms.metrics import count, observe_ms

FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"


class FeedError(Exception):
    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error
        self.message = message


def parse_feed(
    body: bytes, feed_url: str, spec: dict, content_type: str = "", base_url: str | None = None
) -> tuple[list[dict], list[str]]:
    """Entries of a feed document and the warnings it raised; FeedError when it is no feed at all.

    Relative links resolve against `base_url`, where the feed was found after redirects (default `feed_url`).
    """
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=True, resolve_relative_uris=False)
    problem = parsed.get("bozo_exception")
    if not parsed.entries:
        if not parsed.get("version"):
            detail = f": {problem}" if problem else ""
            raise FeedError("not_a_feed", f"not an RSS, Atom or RDF feed{detail}")
        if problem:
            raise FeedError("malformed_feed", f"malformed feed with no readable entries: {problem}")
    warnings = [f"malformed feed, entries kept: {problem}"] if problem and parsed.entries else []
    feed = parsed.feed
    source = spec.get("name") or feed.get("title") or urlsplit(feed_url).hostname or feed_url
    language = spec.get("language") or feed.get("language")
    items = parsed.entries[: spec["max_entries"]] if spec.get("max_entries") else parsed.entries
    return [_entry(item, feed_url, base_url or feed_url, source, language) for item in items], warnings


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
        "link": urljoin(base_url, link.strip()) if link else None,
        "feed_url": feed_url,
        "source": source,
        "title": item.get("title"),
        "summary": item.get("summary"),
        "content": content,
        "authors": authors,
        "published_at": _struct_to_utc(item.get("published_parsed") or item.get("updated_parsed")),
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
    """Feed specs -> entries; feeds that fail go to the `errors` output."""

    def __init__(self, settings: FetchSettings):
        super().__init__()
        self._settings = settings

    def expand(self, specs):
        return (
            specs
            | "SpreadFeeds" >> beam.Reshuffle()
            | "FetchAndParse" >> beam.ParDo(_FetchFeedFn(self._settings)).with_outputs(ERRORS, main="entries")
        )


class _FetchFeedFn(beam.DoFn):
    def __init__(self, settings: FetchSettings):
        self._settings = settings
        self._client = None

    def setup(self):
        self._client = HttpClient(self._settings)

    def teardown(self):
        if self._client:
            self._client.close()

    def process(self, spec):
        url = spec["url"]
        started = time.perf_counter()
        try:
            response = self._client.get(url, accept=FEED_ACCEPT)
            entries, warnings = parse_feed(response.body, url, spec, response.content_type, base_url=response.final_url)
            observe_ms("fetch_feed_ms", started)
        except FetchError as exc:
            count("feeds_failed")
            yield _feed_error("fetch_feed", exc.error, exc.message, url, exc.http_status)
            return
        except FeedError as exc:
            count("feeds_failed")
            yield _feed_error("parse_feed", exc.error, exc.message, url, None)
            return
        except Exception as exc:  # a bug or a library failure must not end the run
            count("feeds_failed")
            yield _feed_error("parse_feed", "internal_error", internal_error(exc), url, None)
            return
        count("feeds_fetched")
        if warnings:
            count("feeds_malformed_kept")
        for entry in entries:
            count("entries_discovered")
            if entry["link"]:
                yield entry
            else:
                count("entries_without_link")
                yield from fail_entries([entry], "feed_entry", "no_link", f"entry {entry['title']!r} has no link")


def _feed_error(stage, error, message, url, status):
    return beam.pvalue.TaggedOutput(
        ERRORS, error_row(stage=stage, error=error, message=message, url=url, feed_url=url, http_status=status)
    )
