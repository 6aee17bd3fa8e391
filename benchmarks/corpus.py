"""What the benchmarks share: where the corpora are, the arguments that choose them, and their pages."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CORPUS = "../shared/corpora/fundus"  # relative to the repository root
DEFAULT_WCXB = "../shared/corpora/wcxb-dev-articles"
REPO = Path(__file__).resolve().parents[1]


def corpus_parser(description: str, default_repeat: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--corpus", default=str(REPO / DEFAULT_CORPUS), help=f"fundus corpus folder (default: {DEFAULT_CORPUS})")
    parser.add_argument("--repeat", type=int, default=default_repeat,
                        help=f"timed runs of each side, interleaved; medians are reported (default {default_repeat})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def corpus_or_skip(parser: argparse.ArgumentParser, args) -> Path | None:
    """The corpus folder, or None after printing the one-line skip message when it is absent."""
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    corpus = Path(args.corpus)
    if not (corpus / "manifest.jsonl").is_file():
        shown = DEFAULT_CORPUS if args.corpus == str(REPO / DEFAULT_CORPUS) else args.corpus
        print(f"skipped: {shown} not found; pass --corpus")
        return None
    return corpus


def ground_truth(corpus: Path):
    """(manifest row, its ground-truth version) for every page of the corpus, each truth file read once."""
    truths: dict[str, dict] = {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            yield row, truths.setdefault(row["json"], json.loads((corpus / row["json"]).read_text()))[row["version"]]


def fundus_expected(body: dict) -> str:
    """fundus's text for scoring: summary lines, then each section's headline lines and paragraphs."""
    lines = list(body.get("summary") or [])
    for section in body.get("sections") or []:
        lines += list(section.get("headline") or []) + list(section.get("paragraphs") or [])
    return "\n".join(lines)


def fundus_pages(corpus: Path) -> list[dict]:
    """Every fundus page: name, url, source (its publisher), expected text and the page's bytes."""
    return [{"name": row["html"].removesuffix(".gz"), "url": row["url"], "source": row["publisher"],
             "country": row["country"], "expected": fundus_expected(truth["body"]),
             "bytes": gzip.decompress((corpus / row["html"]).read_bytes())} for row, truth in ground_truth(corpus)]


def wcxb_pages(corpus: Path) -> list[dict]:
    """Every WCXB page: as fundus_pages, the source being the page's host, plus its `with` and `without` snippets."""
    pages = []
    for truth_path in sorted((corpus / "ground-truth").glob("*.json")):
        record = json.loads(truth_path.read_text())
        truth = record["ground_truth"]
        url = record.get("url") or f"https://unknown.invalid/{truth_path.stem}"
        pages.append({"name": truth_path.stem, "url": url, "source": urlsplit(url).hostname or "",
                      "expected": truth.get("main_content") or "", "with": list(truth.get("with") or []),
                      "without": list(truth.get("without") or []),
                      "bytes": gzip.decompress((corpus / "html" / f"{truth_path.stem}.html.gz").read_bytes())})
    return pages


def parse_sizes(parser: argparse.ArgumentParser, text: str, what: str) -> list[int]:
    """--sizes "2000,10_000" -> [2000, 10000], sorted and distinct; a usage error for anything else."""
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: not a list of numbers: {text!r}")
    if not sizes or sizes[0] < 1:
        parser.error(f"--sizes: give positive {what}")
    return sizes
