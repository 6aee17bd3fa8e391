"""The Extract stage's core: article body and metadata from a page with trafilatura; no Beam.

trafilatura finds the body; page_layout then drops the lines whose place in the page marks
them as chrome (captions, link lines, teasers, what follows the article container) and puts
back the lead the page shows, unless together they would take most of the body (then
trafilatura's text stands); metadata reads dates, authors and titles from the same tree.

When trafilatura finds no body, the feed's own content, then its summary, stands in;
`extraction_method` records which was used. A page with no text from any of them is
an error row.

This module and what it imports run in the extraction pool's worker processes
(transforms/extract_pool.py), which never import Beam: each would carry some 150 MiB of it.
"""

from __future__ import annotations

import html as htmllib
import re
import time
from urllib.parse import urljoin, urlsplit

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.utils import decode_file, is_dubious_html, repair_faulty_html

from newsbeam.transforms.messages import internal_error
from newsbeam.transforms.metadata import clean_authors, page_metadata
from newsbeam.transforms.page_layout import clean_body
from newsbeam.transforms.readability_gate import extractor

# Below this many words trafilatura has found a caption or a teaser, not a body.
MIN_BODY_WORDS = 25
_BLOCK_TAGS = re.compile(r"</?(p|div|br|li|h[1-6]|blockquote|tr|section|article)\b[^>]*>", re.IGNORECASE)
_WORDS = re.compile(r"\w+")


# trafilatura's parser settings with a C-level element class lookup. lxml.html's own lookup calls
# back into Python for every element proxy made, which costs trafilatura's extraction about a
# tenth of its time; trafilatura never uses lxml.html's form-element classes, and on the fundus
# pages its output is the same either way.
_PARSER = lxml.html.HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
)
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
)


def load_page(page_html: bytes | str):
    """The page's tree as trafilatura's load_html makes it (decoding, repairs, checks), parsed with _PARSER."""
    if not page_html or not page_html.strip():
        return None
    text = decode_file(page_html)
    beginning = text[:50].lower()
    text = repair_faulty_html(text, beginning)
    try:
        tree = lxml.html.fromstring(text, parser=_PARSER)
    except ValueError:  # a str with an encoding declaration: lxml wants bytes
        tree = None
    if tree is None or len(tree) < 1:
        try:
            tree = lxml.html.fromstring(text.encode("utf-8", "surrogatepass"), parser=_PARSER)
        except (etree.LxmlError, ValueError):
            return None
    if is_dubious_html(beginning) and len(tree) < 2:
        return None  # not HTML at all
    return tree


class ExtractionError(Exception):
    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error
        self.message = message


def html_to_text(fragment: str | None) -> str:
    """Plain text of an HTML fragment from a feed, one line per block."""
    if not fragment or not fragment.strip():
        return ""
    if "<" not in fragment:
        return htmllib.unescape(fragment).strip()
    try:
        root = lxml.html.fragment_fromstring(_BLOCK_TAGS.sub(lambda m: "\n" + m.group(0), fragment), create_parent="div")
        return root.text_content().strip()
    except (lxml.etree.ParserError, ValueError):
        return re.sub(r"<[^>]+>", " ", fragment).strip()


def extract_document(page_html: bytes | str, url: str, entry: dict | None = None) -> dict:
    """Body and metadata of one page; the feed entry supplies what the page lacks."""
    entry = entry or {}
    tree = load_page(page_html)
    meta = page_metadata(tree, url) if tree is not None else {}
    text, guarded = "", False
    if tree is not None:
        # The tree is parsed once: trafilatura copies it before cleaning; metadata and layout read the original.
        # trafilatura's defaults without comments; readability_gate skips its readability comparison where that cannot change the text.
        doc = trafilatura.bare_extraction(tree, options=extractor(url))
        if doc is not None:
            text, guarded = clean_body(tree, doc.body, meta.get("headlines", ()), meta.get("description"))
    method = "trafilatura"
    if len(_WORDS.findall(text)) < MIN_BODY_WORDS:
        for method, candidate in (("feed_content", entry.get("content")), ("feed_summary", entry.get("summary"))):
            fallback = html_to_text(candidate)
            if len(_WORDS.findall(fallback)) > len(_WORDS.findall(text)):
                text = fallback
                break
        else:
            method = "trafilatura"
    if not text.strip():
        raise ExtractionError("empty_text", "no article text in the page or the feed entry")
    published, published_source = meta.get("published_at"), meta.get("published_at_source")
    if published is None and entry.get("published_at"):
        published, published_source = entry["published_at"], "feed"
    if published is None and meta.get("url_date"):
        published, published_source = meta["url_date"], "url"
    site_names = (meta.get("site_name"), entry.get("source"))
    return {
        "url": url,
        "canonical_url": _trusted_canonical(meta.get("canonical_url"), url),
        "title": entry.get("title") or meta.get("title"),
        "page_titles": [meta.get("title"), meta.get("headline")],
        "text": text,
        "summary": html_to_text(entry.get("summary")) or meta.get("description"),
        "authors": clean_authors(entry.get("authors") or meta.get("authors"), site_names),
        "published_at": published,
        "published_at_source": published_source,
        "updated_at": meta.get("updated_at"),
        "updated_at_source": meta.get("updated_at_source"),
        "language_hints": [meta.get("language"), entry.get("language")],
        "accessible_for_free": meta.get("accessible_for_free"),
        "extraction_method": method,
        "body_guarded": guarded and method == "trafilatura",
    }


def _trusted_canonical(candidate: str | None, url: str) -> str:
    """rel=canonical / og:url when it names a real page; a canonical pointing at a site's home is a site bug."""
    if not candidate:
        return url
    absolute = urljoin(url, candidate.strip())
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return url
    if parts.path in ("", "/") and urlsplit(url).path not in ("", "/"):
        return url
    return absolute


def extract_outcome(page_html: bytes | str, url: str, entry: dict) -> tuple:
    """extract_document as a value that crosses processes: ("doc", document, seconds), ("failed", error, message) or
    ("internal", message). Pure: what to count and emit is decided on the runner's thread (_ExtractFn)."""
    started = time.perf_counter()
    try:
        doc = extract_document(page_html, url, entry)
    except ExtractionError as exc:
        return ("failed", exc.error, exc.message)
    except Exception as exc:  # trafilatura or lxml failing on odd markup must not end the run
        return ("internal", internal_error(exc))
    return ("doc", doc, time.perf_counter() - started)


def extract_batch(pages: list[tuple]) -> list[tuple]:
    """extract_outcome of (html, url, entry) triples, in order: one task of the extraction pool."""
    return [extract_outcome(*page) for page in pages]
