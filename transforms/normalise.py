"""Normalise stage: Unicode, whitespace, canonical URL, UTC dates, language, word count, hashes.

The pure functions here are also used by other stages (the link key before fetching is
``canonical_url`` of the entry link), so there is one definition of each normal form.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, datetime, timezone
from typing import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apache_beam as beam
from courlan import normalize_url

from newsbeam.transforms.errors import ERRORS, fail_entries, internal_error
from newsbeam.transforms.metrics import count

# Parameters that identify a click, not a document. courlan removes the common ones;
# these are the ones it keeps that we have seen in feeds.
_TRACKING_PARAMS = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|_gl|ocid|cmpid|"
    r"ito|smid|smtyp|ref_src|ref_url|rss|taid|at_medium|at_campaign|sr_share|wt_mc|wt\.mc_id)$",
    re.IGNORECASE,
)
# Language detection reads the start of the text: on the fundus pages 600 characters already gave
# the same language as 5,000 on all 257 texts; 1,000 leaves a margin for close languages (no/da)
# at a fifth of the cost.
LANGUAGE_SAMPLE_CHARS = 1000
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACES = re.compile(r"[^\S\n]+")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")  # a regex: str.translate is ten times slower


def canonical_url(url: str) -> str:
    """One spelling per document: lower-case scheme and host, no tracking parameters, no fragment.

    ``file:`` URLs lose their query too, since local files have none.
    """
    url = (url or "").strip()
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        return urlunsplit(("file", parts.netloc.lower(), parts.path, "", ""))
    try:
        # A split URL, not a string: courlan unescapes HTML entities in strings ("&para=" -> "¶=").
        # Not strict: strict mode keeps only a short list of query names and merges distinct articles.
        url = normalize_url(urlsplit(url), strict=False)
    except (ValueError, AttributeError):
        pass  # courlan refuses some odd but fetchable URLs; fall back to our own rules below
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)]
    host = (parts.hostname or "").lower().rstrip(".")
    netloc = host
    if parts.port and not (parts.scheme == "http" and parts.port == 80 or parts.scheme == "https" and parts.port == 443):
        netloc = f"{host}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", urlencode(sorted(query)), ""))


def normalise_text(text: str) -> str:
    """NFC, no invisible characters, single spaces, one blank-free line per paragraph."""
    text = text or ""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def word_count(text: str) -> int:
    return len(_WORD.findall(text or ""))


def content_hash(text: str) -> str:
    """Hash of the words only (case-folded), so spacing and punctuation changes do not matter."""
    words = " ".join(_WORD.findall(unicodedata.normalize("NFKC", text or "").casefold()))
    return hashlib.blake2b(words.encode("utf-8"), digest_size=16).hexdigest()


def article_id(canonical: str) -> str:
    """Stable id of an article: the same canonical URL gives the same id in every run."""
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=12).hexdigest()


def to_utc(value) -> datetime | None:
    """A tz-aware UTC datetime from a datetime, date, struct_time or ISO 8601 string; naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif hasattr(value, "tm_year"):
        dt = datetime(*value[:6])
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    if not 1990 <= dt.year <= 2100:
        return None
    return dt


def detect_language(text: str, hints: Iterable[str | None] = (), words: int | None = None) -> str | None:
    """ISO 639-1 code: the page's or feed's declared language, checked against the text.

    A declared language wins unless detection on enough text confidently says otherwise
    (sites often declare ``en`` site-wide while publishing in other languages).
    """
    declared = next((h.split("-")[0].split("_")[0].lower() for h in hints if h and h.strip()), None)
    words = word_count(text) if words is None else words
    if words < 20:
        return declared
    import py3langid

    detected, _ = py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])
    if declared and detected != declared and words < 60:
        return declared
    return detected


def partition_date(published_at: datetime | None, fetched_at: datetime) -> str:
    """The UTC date an article is filed under: its publication date, else the fetch date."""
    return (published_at or fetched_at).astimezone(timezone.utc).date().isoformat()


def normalise_article(doc: dict) -> dict:
    """Fill the normal forms of an extracted, chrome-stripped document."""
    text = normalise_text(doc["text"])
    canonical = canonical_url(doc.get("canonical_url") or doc["url"])
    published = to_utc(doc.get("published_at"))
    fetched = to_utc(doc["fetched_at"])
    words = word_count(text)
    return {
        **doc,
        "text": text,
        "title": normalise_text(doc.get("title") or "").replace("\n", " ") or None,
        "summary": normalise_text(doc.get("summary") or "") or None,
        "authors": [a for a in map(normalise_text, doc.get("authors") or []) if a],
        "canonical_url": canonical,
        "article_id": article_id(canonical),
        "published_at": published,
        "updated_at": to_utc(doc.get("updated_at")),
        "fetched_at": fetched,
        "language": detect_language(text, doc.get("language_hints") or (), words),
        "word_count": words,
        "content_hash": content_hash(text),
    }


class Normalise(beam.PTransform):
    """Documents -> documents in normal form (see normalise_article); failures to `errors`."""

    def expand(self, docs):
        return docs | "NormaliseFields" >> beam.ParDo(_NormaliseFn()).with_outputs(ERRORS, main="documents")


class _NormaliseFn(beam.DoFn):
    def process(self, doc):
        try:
            normalised = normalise_article(doc)
        except Exception as exc:  # one odd document must not end the run
            yield from fail_entries(doc["entries"], "normalise", "internal_error", internal_error(exc))
            return
        count("articles_normalised")
        yield normalised
