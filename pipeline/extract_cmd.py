"""`newsbeam extract`: what the pipeline's Extract, StripChrome and Normalise stages make of pages.

Pages in the same folder count as one source, so chrome they repeat is learned from each
other exactly as the pipeline learns it from one feed source's pages.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from newsbeam.transforms.chrome import strip_source
from newsbeam.transforms.extract_core import ExtractionError, extract_document
from newsbeam.transforms.normalise import normalise_article

FIELDS = ("path", "url", "title", "text", "authors", "published_at", "published_at_source", "updated_at",
          "updated_at_source", "language", "wire", "paywalled", "extraction_method")


def clean_pages(pages: list[tuple[bytes, str]]) -> list[dict | ExtractionError]:
    """The three stages' pure cores, in pipeline order, on pages of one source: (html, url) each."""
    docs: list[dict | ExtractionError] = []
    for html, url in pages:
        try:
            docs.append(extract_document(html, url))
        except ExtractionError as exc:
            docs.append(exc)
    _, results = strip_source([d for d in docs if isinstance(d, dict)])
    stripped = iter(doc for doc, _ in results)
    fetched_at = datetime.now(timezone.utc)
    return [normalise_article({**next(stripped), "fetched_at": fetched_at}) if isinstance(d, dict) else d for d in docs]


def read_page(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def extract_paths(paths: list[str], url: str | None, out=None) -> int:
    """One JSON line per page, in the order given; a page that cannot be read or gives no text has an `error`."""
    out = out or sys.stdout
    records: list[dict] = []
    by_source: dict[str, list[int]] = {}
    pages: dict[int, tuple[bytes, str]] = {}
    for i, name in enumerate(paths):
        path = Path(name)
        record = {"path": str(path), "url": url or path.resolve().as_uri()}
        records.append(record)
        try:
            pages[i] = (read_page(path), record["url"])
            by_source.setdefault(str(path.resolve().parent), []).append(i)
        except (OSError, gzip.BadGzipFile, EOFError) as exc:
            record["error"] = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
    for indexes in by_source.values():
        for i, doc in zip(indexes, clean_pages([pages[i] for i in indexes])):
            if isinstance(doc, ExtractionError):
                records[i]["error"] = doc.message
            else:
                records[i].update({k: doc.get(k) for k in FIELDS if k not in records[i]})
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, default=_iso) + "\n")
    return sum("error" in r for r in records)


def _iso(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
