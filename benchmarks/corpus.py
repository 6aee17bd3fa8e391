"""What the benchmarks share: where the fundus corpus is, and the arguments that choose it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_CORPUS = "../shared/corpora/fundus"  # relative to the repository root
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
