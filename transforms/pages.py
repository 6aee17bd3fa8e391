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

from newsbeam.transforms.errors import ERRORS, fail_entries, internal_error
from newsbeam.transforms.http import FetchError, FetchSettings, HttpClient
from newsbeam.transforms.metrics import count, observe_ms
from newsbeam.transforms.normalise import canonical_url

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


class FetchPages(beam.PTransform):
    """Entries -> pages (one per distinct link, with every entry that named it, primary first); failures to `errors`."""

    def __init__(self, settings: FetchSettings, stored_links):
        super().__init__()
        self._settings = settings
        self._stored_links = stored_links

    def expand(self, entries):
        return (
            entries
            | "KeyByLink" >> beam.ParDo(_KeyNewLinksFn(), stored=self._stored_links)
            | "GroupByLink" >> beam.GroupByKey()
            | "Fetch" >> beam.ParDo(_FetchPageFn(self._settings)).with_outputs(ERRORS, main="pages")
        )


class _KeyNewLinksFn(beam.DoFn):
    def process(self, entry, stored):
        key = link_key(entry)
        if key in stored:
            count("links_already_stored")
            return
        yield key, entry


class _FetchPageFn(beam.DoFn):
    def __init__(self, settings: FetchSettings):
        self._settings = settings
        self._client = None

    def setup(self):
        self._client = HttpClient(self._settings)

    def teardown(self):
        if self._client:
            self._client.close()

    def process(self, keyed):
        key, entries = keyed
        entries = sorted(entries, key=lambda e: (e["link"] != key, e["feed_url"], e["link"]))
        primary = entries[0]
        count("links_unique")
        started = time.perf_counter()
        try:
            why = refusal(primary)
            if why:
                raise FetchError("refused", why, url=primary["link"])
            response = self._client.get(primary["link"], accept=PAGE_ACCEPT)
            if not looks_like_html(response.mime_type, response.body):
                raise FetchError(
                    "unsupported_content_type",
                    f"not an HTML page: {response.content_type or 'no content type'}",
                    response.status,
                    primary["link"],
                )
        except FetchError as exc:
            count("pages_failed")
            yield from fail_entries(entries, "fetch_page", exc.error, exc.message, exc.http_status)
            return
        except Exception as exc:  # never let one page end the run
            count("pages_failed")
            yield from fail_entries(entries, "fetch_page", "internal_error", internal_error(exc))
            return
        count("pages_fetched")
        observe_ms("fetch_page_ms", started)
        yield {
            "link_key": key,
            "entries": entries,
            "url": primary["link"],
            "final_url": response.final_url,
            "html": response.body,
            "http_status": response.status,
            "fetched_at": response.fetched_at,
        }
