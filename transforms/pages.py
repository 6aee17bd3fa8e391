"""FetchPages stage: one fetch per distinct article link, links stored by earlier runs skipped.

Entries are keyed by the canonical form of their link, so the same article reached from
two feeds, or with tracking parameters, is fetched once; the other entries travel with the
page and become `url` duplicates in Dedup. Every entry of a link that fails becomes an
error row, so each discovered link ends somewhere.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import apache_beam as beam

from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.messages import internal_error
from newsbeam.transforms.http import FetchError, FetchSettings, decode_html
from newsbeam.transforms.metrics import count, observe_ms
from newsbeam.transforms.normalise import canonical_url, scheme_and_host
from newsbeam.transforms.politeness import RobotsRules
from newsbeam.transforms.pool import PooledFetchFn
from newsbeam.transforms.write import Batches, unspill

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
HTML_TYPES = {"text/html", "application/xhtml+xml", "application/xml", "text/xml", "text/plain", ""}


def link_key(entry: dict) -> str:
    return canonical_url(entry["link"])


def refusal(entry: dict) -> str | None:
    """Why a link must not be fetched at all, or None."""
    link_scheme = urlsplit(entry["link"]).scheme.lower()
    if link_scheme == "file" and urlsplit(entry["feed_url"]).scheme.lower() != "file":
        return "a remote feed may not point at local files"
    if link_scheme not in ("http", "https", "file"):
        return f"unsupported URL scheme {link_scheme or '(none)'!r}"
    return None


def looks_like_html(mime_type: str, body: bytes) -> bool:
    if mime_type not in HTML_TYPES:
        return False
    if mime_type in ("", "text/plain", "application/xml", "text/xml"):
        head = body[:2048].lstrip().lower()
        return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in head or b"<p" in head
    return True


def host_of(url: str) -> str:
    """What fetching is grouped by: the URL's host; a local file is its own group (no host to spare). Total."""
    scheme, host = scheme_and_host(url)
    return url if scheme == "file" else host


def link_problem(link: str) -> str | None:
    """Why a link cannot be fetched as written (a port or host urllib, and so the fetch stage, cannot read), or None."""
    try:
        parts = urlsplit(link)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a broken IPv6 literal
        return f"invalid URL: {exc}"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return "invalid URL: no host"
    if port == 0:
        return "invalid URL: port 0"
    return None


ALREADY_STORED = "already_stored"


class FetchPages(beam.PTransform):
    """Entries -> {'pages': one per distinct link, with every entry that named it, primary first;
    'errors': failures; 'already_stored': the link key of each entry skipped as stored by earlier runs}.

    Links are grouped by host before fetching, so each host is fetched by one worker, politely;
    the pages are spread over the workers again afterwards, for extraction. They are grouped in
    batches, spilled to files under `spill` when given (write.Batches).
    """

    def __init__(self, settings: FetchSettings, stored_links, spill: str | None = None):
        super().__init__()
        self._settings = settings
        self._stored_links = stored_links
        self._spill = spill

    def expand(self, entries):
        keyed = entries | "KeyByHost" >> beam.ParDo(_KeyNewLinksFn(), stored=self._stored_links).with_outputs(
            ALREADY_STORED, ERRORS, main="new")
        fetched = (
            keyed.new
            | "Batch" >> Batches(self._spill)
            | "GroupByHost" >> beam.GroupByKey()
            | "Fetch" >> beam.ParDo(_FetchPagesFn(self._settings)).with_outputs(ERRORS, main="pages")
        )
        errors = (keyed[ERRORS], fetched[ERRORS]) | "PageErrors" >> beam.Flatten()
        return {"pages": fetched.pages, ERRORS: errors, ALREADY_STORED: keyed[ALREADY_STORED]}


@beam.typehints.with_output_types(tuple[str, tuple[str, dict]])  # the main output; a GroupByKey follows
class _KeyNewLinksFn(beam.DoFn):
    """entry -> (host, (link key, entry)); links stored by earlier runs to `already_stored`, links that cannot
    be fetched as written to `errors` (one bad link must not stop the feed, nor every later run)."""

    def process(self, entry, stored):
        problem = link_problem(entry["link"])
        if problem:
            yield from fail_entries([entry], "fetch_page", "invalid_url", problem)
            return
        key = link_key(entry)
        if key in stored:
            count("links_already_stored")
            yield beam.pvalue.TaggedOutput(ALREADY_STORED, key)
            return
        yield host_of(key), (key, entry)


class _FetchPagesFn(PooledFetchFn):
    """(host, batches of (link key, entry)) -> one page per distinct link, fetched side by side with other hosts' links."""

    def setup(self):
        super().setup()
        self._robots = RobotsRules(lambda url: self._client.get(url, accept="text/plain, */*;q=0.5"),
                                   self._settings.user_agent, self._client.gate) if self._settings.obey_robots else None

    def requests(self, element):
        host, batches = element
        links: dict[str, list] = {}
        for key, entry in (keyed for batch in batches for keyed in unspill(batch, consume=True)):
            links.setdefault(key, []).append(entry)
        for key, entries in links.items():
            yield host, (key, sorted(entries, key=lambda e: (e["link"] != key, e["feed_url"], e["link"])))

    def fetch(self, item):
        """The fetched page or the FetchError that stopped it; runs in a pool thread."""
        key, entries = item
        primary = entries[0]
        started = time.perf_counter()
        try:
            why = refusal(primary)
            if why:
                raise FetchError("refused", why, url=primary["link"])
            forbidden = self._robots.check(primary["link"]) if self._robots else None
            if forbidden:
                raise FetchError("robots_disallowed", forbidden, url=primary["link"])
            response = self._client.get(primary["link"], accept=PAGE_ACCEPT)
            if not looks_like_html(response.mime_type, response.body):
                raise FetchError(
                    "unsupported_content_type",
                    f"not an HTML page: {response.content_type or 'no content type'}",
                    response.status,
                    primary["link"],
                )
            text, _ = decode_html(response.body, response.content_type)
        except Exception as exc:
            return exc, time.perf_counter() - started
        return (response, text), time.perf_counter() - started

    def emit(self, item, outcome):
        key, entries = item
        count("links_unique")
        result, seconds = outcome if isinstance(outcome, tuple) else (outcome, 0.0)
        if isinstance(result, Exception):
            count("pages_failed")
            attempts = getattr(result, "attempts", 1)
            if attempts > 1:
                count("fetch_retries", attempts - 1)
            if isinstance(result, FetchError):
                yield from fail_entries(entries, "fetch_page", result.error, result.message, result.http_status)
            else:  # never let one page end the run
                yield from fail_entries(entries, "fetch_page", "internal_error", internal_error(result))
            return
        response, text = result
        if response.attempts > 1:
            count("fetch_retries", response.attempts - 1)
        count("pages_fetched")
        observe_ms("fetch_page_ms", seconds=seconds)
        yield {
            "link_key": key,
            "entries": entries,
            "url": entries[0]["link"],
            "final_url": response.final_url,
            "html": text,
            "http_status": response.status,
            "fetched_at": response.fetched_at,
        }
