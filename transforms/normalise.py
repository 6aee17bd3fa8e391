"""Normalise stage: Unicode, whitespace, canonical URL, UTC dates, language, word count, hashes.

The pure functions here are also used by other stages (the link key before fetching is
``canonical_url`` of the entry link), so there is one definition of each normal form.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from datetime import date, datetime, timezone
from typing import Iterable
from urllib.parse import quote, quote_plus, unquote_plus

import apache_beam as beam

from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.messages import internal_error
from newsbeam.transforms.metrics import count

# Query parameters that identify a click or a campaign, not a document (matched on the decoded name, in any
# case). Every other parameter is kept: sites name their articles by any of them (article.php?cid=123), so a
# list that guesses by substring ("cid", "uid", "source", "ref") merges different articles.
TRACKING_PARAMS = re.compile(
    r"utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|twclid|ttclid|li_fat_id|yclid|ysclid|igshid|wickedid|s_kwcid"
    r"|_ga|_gl|_openstat|mc_cid|mc_eid|_hsenc|_hsmi|__hstc|__hssc|__hsfp|mkt_tok|oly_anon_id|oly_enc_id|vero_id|vero_conv"
    r"|pk_(?:campaign|kwd|keyword|source|medium|content)|mtm_(?:campaign|kwd|keyword|source|medium|content|group|placement)"
    r"|xtor|ocid|cmpid|ito|smid|smtyp|ref_src|ref_url|rss|taid|at_medium|at_campaign|sr_share|wt_mc|wt\.mc_id",
    re.IGNORECASE,
)
# RFC 3986's split of a reference (scheme, authority, path, query; the fragment dropped), which matches any
# string; the scheme as urllib reads it (a letter, then letters, digits, "+-.").
_REFERENCE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.DOTALL)
_EDGES = re.compile(r"^[\s\x00-\x20]+|[\s\x00-\x20]+$")  # what urllib strips, and any other white space
_TABS_AND_BREAKS = re.compile("[\t\r\n]")  # removed anywhere, as urllib does (links wrapped in feeds)
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = re.compile("%[0-9a-fA-F]{2}")
_SLASHES = re.compile("/+")
_LEADING_DOTS = re.compile(r"^(?:/\.\.(?![^/]))+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Language detection reads the start of the text: on the fundus pages 600 characters already gave
# the same language as 5,000 on all 257 texts; 1,000 leaves a margin for close languages (no/da)
# at a fifth of the cost.
LANGUAGE_SAMPLE_CHARS = 1000
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACES = re.compile(r"[^\S\n]+")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")  # a regex: str.translate is ten times slower


def canonical_url(url: str) -> str:
    """One spelling per document: lower-case scheme and host, no default port, no tracking parameters, no fragment.

    Total and idempotent: any string gives a string. Other parameters are kept, sorted; the path's
    percent-encoding is normalised; an IDN host is spelt in Unicode. ``file:`` URLs lose their query too,
    since local files have none. A host and port that cannot be read (`host:99999`) are kept, lower-cased.
    """
    url = _cleaned(url)
    if not url:
        return url
    scheme, netloc, path, query = _REFERENCE.fullmatch(url).groups()
    scheme = (scheme or "").lower()
    if scheme == "file":  # as written (a local path), but for what the fragment leaves at the end: white space
        return _EDGES.sub("", f"file://{(netloc or '').lower()}{path if path[:1] in ('', '/') else '/' + path}")
    authority = "" if netloc is None else "//" + _canonical_netloc(scheme, netloc)
    query = _canonical_query(query or "")
    return (f"{scheme}:" if scheme else "") + authority + _canonical_path(path) + (f"?{query}" if query else "")


def scheme_and_host(url: str) -> tuple[str, str]:
    """The scheme and host of a URL as canonical_url spells them ('' when there is none); total, like canonical_url."""
    scheme, netloc = _REFERENCE.fullmatch(_cleaned(url)).group(1, 2)
    hostport = (netloc or "").rpartition("@")[2]
    read = _host_and_port(hostport)
    return (scheme or "").lower(), hostport.lower() if read is None else read[0]


def _cleaned(url: str) -> str:
    """The URL without surrounding white space and control characters, tabs and line breaks, or lone surrogates."""
    return _TABS_AND_BREAKS.sub("", _EDGES.sub("", _SURROGATE.sub("\ufffd", url or "")))


def _canonical_netloc(scheme: str, netloc: str) -> str:
    """The user name (never a password), host and port, lower-cased; a host and port that cannot be read as they are."""
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.partition(":")[0].lower()
    read = _host_and_port(hostport)
    if read is None:
        hostport = hostport.lower()
    else:
        host, port = read
        hostport = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{user}@{hostport}" if user else hostport


def _host_and_port(hostport: str) -> tuple[str, int | None] | None:
    """(canonical host, port or None) as urllib would read them, or None for a broken IPv6 literal or port."""
    if hostport.startswith("["):
        literal, bracket, rest = hostport[1:].partition("]")
        if not bracket or rest[:1] not in ("", ":"):
            return None
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return None
        host, port = f"[{literal.lower()}]", rest[1:]
    elif "[" in hostport or "]" in hostport:
        return None
    else:
        host, _, port = hostport.partition(":")
        host = ".".join(map(_unicode_label, host.lower().split("."))).lower().rstrip(".")
    if not port:
        return host, None
    digits = port.lstrip("0") or "0"
    if not (port.isascii() and port.isdigit() and len(digits) <= 5 and int(digits) <= 65535):
        return None
    return host, int(digits)


def _unicode_label(label: str) -> str:
    """An IDN label (`xn--bcher-kva`) in Unicode (`bücher`); any other label as it is."""
    if not label.startswith("xn--"):
        return label
    try:
        return label.encode("utf-8").decode("idna")
    except ValueError:  # not valid punycode, or not IDNA: keep the label as written
        return label


def _canonical_path(path: str) -> str:
    """Escapes in upper case, runs of slashes as one, leading `/..` gone, the rest percent-encoded (UTF-8).

    Apart from the case of escapes, courlan's spelling, which earlier runs' article ids were made from.
    """
    path = _ESCAPE.sub(lambda m: m[0].upper(), path)
    return quote(_LEADING_DOTS.sub("", _SLASHES.sub("/", path)), safe="/%!=:,-") or "/"


def _canonical_query(query: str) -> str:
    """Every parameter but the tracking ones, sorted, with or without its `=` as given, re-encoded.

    Escapes are decoded to bytes and encoded again (surrogateescape), so `%E9` stays itself rather than
    becoming U+FFFD and meeting every other Latin-1 letter.
    """
    kept = []
    for pair in query.split("&"):
        if pair:
            name, equals, value = pair.partition("=")
            name, value = (unquote_plus(part, errors="surrogateescape") for part in (name, value))
            if not TRACKING_PARAMS.fullmatch(name):
                kept.append((name, value, equals))
    return "&".join(
        quote_plus(name, errors="surrogateescape") + equals + quote_plus(value, errors="surrogateescape")
        for name, value, equals in sorted(kept)
    )


# What no text may hold: lone surrogates (UTF-8 cannot encode them: hashing, dedup and Parquet fail
# on them) and the C0 controls XML forbids (lxml refuses strings that hold them).
_NOT_TEXT = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]")


def valid_text(text: str) -> str:
    """`text` with lone surrogates and control characters (but tab and line breaks) replaced by U+FFFD."""
    return _NOT_TEXT.sub("\ufffd", text)


def valid_values(value):
    """`value` with every string in it, also inside lists and tuples, made valid_text."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(valid_values(v) for v in value)
    return value


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
