"""`newsbeam extract`: what the pipeline's Extract, StripChrome and Normalise stages make of a page."""

from __future__ import annotations

import gzip
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from newsbeam.transforms.chrome import strip_chrome, with_stripped
from newsbeam.transforms.extract import ExtractionError, extract_document
from newsbeam.transforms.normalise import normalise_article

FIELDS = ("path", "url", "title", "text", "authors", "published_at", "published_at_source", "updated_at",
          "updated_at_source", "language", "wire", "paywalled", "extraction_method")


def clean_page(html: bytes, url: str, entry: dict | None = None) -> dict:
    """The three stages' pure cores, in pipeline order, on one page."""
    doc = extract_document(html, url, entry)
    stripped = strip_chrome(doc["text"], (doc.get("title"), *doc.get("page_titles", ())), doc.get("authors"))
    doc = with_stripped(doc, stripped)
    return normalise_article({**doc, "fetched_at": datetime.now(timezone.utc)})


def read_page(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def extract_paths(paths: list[str], url: str | None, out=sys.stdout) -> int:
    """One JSON line per page; a page that cannot be read or gives no text is a line with an `error`."""
    failures = 0
    for name in paths:
        path = Path(name)
        record = {"path": str(path), "url": url or path.resolve().as_uri()}
        try:
            doc = clean_page(read_page(path), record["url"])
            record.update({k: doc.get(k) for k in FIELDS if k not in record})
        except (OSError, gzip.BadGzipFile, EOFError) as exc:
            record["error"] = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        except ExtractionError as exc:
            record["error"] = exc.message
        failures += "error" in record
        out.write(json.dumps(record, ensure_ascii=False, default=_iso) + "\n")
    return failures


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
