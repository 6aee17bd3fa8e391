"""Page metadata for the Extract stage, read from one parsed tree: JSON-LD, meta tags, <time>, the URL.

Each date comes with where it was found (`jsonld`, `meta`, `time`, `url`), so analysts can
judge it. Cheaper than trafilatura's own metadata pass, which also hunts categories and
tags we do not store.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime, timezone

from dateutil import parser as dateparser
from lxml import etree

_ARTICLE_TYPES = {"article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle", "blogposting",
                  "opinionnewsarticle", "backgroundnewsarticle", "reviewnewsarticle", "liveblogposting",
                  "socialmediaposting", "webpage", "report"}
_PUBLISHED_META = ("article:published_time", "og:published_time", "datepublished", "publishdate", "pubdate",
                   "publish-date", "dc.date.issued", "dcterms.created", "dc.date", "sailthru.date",
                   "parsely-pub-date", "date", "article.published")
_UPDATED_META = ("article:modified_time", "og:updated_time", "datemodified", "lastmod", "last-modified",
                 "dc.date.modified", "dcterms.modified", "article.updated")
_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?:/|$|[-_])")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2} \w+ \d{4}|\w+ \d{1,2}, \d{4}")


def parse_date(value) -> datetime | None:
    """A tz-aware UTC datetime from the date strings pages use; naive times are taken as UTC."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        if not _DATE_LIKE.search(text):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown zone names ("CEST") parse as naive
                dt = dateparser.parse(text, fuzzy=False)
        except (ValueError, OverflowError, TypeError):
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    return dt if 1990 <= dt.year <= 2100 else None


# The elements metadata reads, found in one walk of the tree (an XPath per kind would walk it once each).
_READ_TAGS = ("script", "meta", "link", "title", "h1")
# Compiled once: compiling an XPath costs about as much as running it on a page.
_ITEMPROPS = etree.XPath("//*[@itemprop]")


class _Found:
    """The elements of one page that metadata reads, in document order."""

    def __init__(self, tree):
        self.jsonld, self.metas, self.canonical, self.titles, self.h1 = [], [], [], [], []
        root = tree.getroottree().getroot()  # as `//` does: the whole document, which may have more than one top element
        tops = [*reversed(list(root.itersiblings(preceding=True))), root, *root.itersiblings()]
        for el in (el for top in tops for el in top.iter(_READ_TAGS)):
            tag = el.tag
            if tag == "meta":
                if el.get("content") is not None:
                    self.metas.append(el)
            elif tag == "script":
                if el.get("type") == "application/ld+json":
                    self.jsonld.append(el)
            elif tag == "link":
                if el.get("rel") == "canonical" and el.get("href") is not None:
                    self.canonical.append(el.get("href"))
            elif tag == "title":
                self.titles.extend(t for t in (el.text, *(child.tail for child in el)) if t is not None)
            else:
                self.h1.append(el)
        self.itemprops = _ITEMPROPS(tree)

    def itemprop_dates(self, prop: str) -> list[str]:
        """`<time itemprop=prop datetime=…>` and `<… itemprop=prop content=…>` values, in document order."""
        return [value for el in self.itemprops if el.get("itemprop") == prop for name, value in el.attrib.items()
                if name == "content" or (name == "datetime" and el.tag == "time")]


def _jsonld_objects(scripts) -> list[dict]:
    found = []
    for script in scripts:
        raw = (script.text or "").strip()
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            try:
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", raw.replace("\n", " ")))
            except ValueError:
                continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                if "@graph" in item:
                    stack.append(item["@graph"])
                types = item.get("@type")
                types = types if isinstance(types, list) else [types]
                if any(isinstance(t, str) and t.lower() in _ARTICLE_TYPES for t in types):
                    found.append(item)
    # The most specific article object first: a NewsArticle over a WebPage.
    return sorted(found, key=lambda o: str(o.get("@type")).lower() in ("webpage", "['webpage']"))


def _names(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [n for v in value for n in _names(v)]
    return []


def _meta(nodes) -> dict[str, str]:
    metas = {}
    for node in nodes:
        key = (node.get("property") or node.get("name") or node.get("itemprop") or node.get("http-equiv") or "").strip().lower()
        if key and key not in metas:
            metas[key] = node.get("content").strip()
    return metas


def page_metadata(tree, url: str = "") -> dict:
    """Title, authors, dates (with their sources), language, canonical URL, site name, access flag."""
    if tree is None:
        return {}
    found = _Found(tree)
    jsonld = _jsonld_objects(found.jsonld)
    metas = _meta(found.metas)
    article = jsonld[0] if jsonld else {}

    published, published_source = _first_date(
        (article.get("datePublished"), "jsonld"),
        *((metas.get(k), "meta") for k in _PUBLISHED_META),
        *((t, "time") for t in found.itemprop_dates("datePublished")),
    )
    updated, updated_source = _first_date(
        (article.get("dateModified"), "jsonld"),
        *((metas.get(k), "meta") for k in _UPDATED_META),
        *((t, "time") for t in found.itemprop_dates("dateModified")),
    )
    url_date = None
    match = _URL_DATE.search(url or "")
    if match:
        try:
            url_date = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=timezone.utc)
        except ValueError:
            url_date = None

    authors = _names(article.get("author")) or [metas[k] for k in ("author", "article:author", "dc.creator", "byl", "sailthru.author") if metas.get(k) and not metas[k].startswith("http")]
    html_lang = (tree.get("lang") or tree.get("xml:lang") or "").strip() or None
    accessible = article.get("isAccessibleForFree")
    canonical = next(iter(found.canonical), None) or metas.get("og:url")
    html_title = next((" ".join(t.split()) for t in found.titles if t.strip()), None)
    title = metas.get("og:title") or (article.get("headline") if isinstance(article.get("headline"), str) else None)
    title = title or _without_site_suffix(html_title)
    headline = next((" ".join(h.text_content().split()) for h in found.h1 if h.text_content().strip()), None)
    return {
        "title": title,
        "headline": headline,
        "headlines": [h for h in (metas.get("og:title"), html_title, headline) if h],
        "authors": authors,
        "published_at": published,
        "published_at_source": published_source,
        "updated_at": updated,
        "updated_at_source": updated_source,
        "url_date": url_date,
        "language": html_lang or metas.get("content-language") or (article.get("inLanguage") if isinstance(article.get("inLanguage"), str) else None),
        "canonical_url": canonical,
        "site_name": metas.get("og:site_name") or next(iter(_names(article.get("publisher"))), None),
        "description": metas.get("og:description") or metas.get("description"),
        "accessible_for_free": None if accessible is None else str(accessible).strip().lower() not in ("false", "0", "no"),
    }


_BY = re.compile(r"^(by|von|par|por|di|door|av|af|od|przez|от|автор)\s*[:\-]?\s+", re.IGNORECASE)
_JOINERS = re.compile(r"\s*(?:;|,|&|\||/|\s(?:and|und|og|och|y|et|e|en|i|a|ja|és|и)\s)\s*", re.IGNORECASE)
_INITIALS = re.compile(r"\s*\([^)]{1,12}\)\.?$")
_DOMAIN = re.compile(r"\b[\w-]+\.(?:com|de|org|net|co|uk|fr|es|it|nl|at|ch|info|news|tv)\b", re.IGNORECASE)


def clean_authors(names, not_authors=()) -> list[str]:
    """Person names only: no "By", split on "and"/commas, no e-mails, domains, numbers or site names."""
    banned = {n.casefold().strip() for n in not_authors if n}
    out: list[str] = []
    for raw in names or []:
        if not isinstance(raw, str):
            continue
        for part in _JOINERS.split(_BY.sub("", raw.strip())):
            name = _INITIALS.sub("", _BY.sub("", part.strip())).strip(" .,-–—")
            if (
                not name
                or "@" in name
                or "://" in name
                or _DOMAIN.search(name)
                or not re.search(r"[^\W\d_]", name)
                or len(name) > 60
                or name.casefold() in banned
            ):
                continue
            if name.casefold() not in {n.casefold() for n in out}:
                out.append(name)
    return out


_TITLE_SEPARATORS = re.compile(r"\s+[|–—·:-]\s+|\s+::\s+")


def _without_site_suffix(title: str | None) -> str | None:
    """ "Headline | Site" -> "Headline": the longest part of a <title> split at its separators."""
    if not title:
        return title
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    return max(parts, key=len).strip() if parts else title


def _first_date(*candidates) -> tuple[datetime | None, str | None]:
    for value, source in candidates:
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed:
            return parsed, source
    return None, None
