"""The readability gate: trafilatura's comparison is skipped only where it cannot change the text."""

from pathlib import Path

import pytest
import trafilatura
from lxml import etree

from newsbeam.transforms import readability_gate
from newsbeam.transforms.extract_core import load_page

SEEDS = sorted((Path(__file__).parent / "fixtures" / "seeds").glob("*.html"))
PARAGRAPH = "<p>The council met on Tuesday evening to weigh the harbour plan, and members spoke at length about costs.</p>"


def article(paragraphs: int, chrome: str = "") -> str:
    return f"<html><body><nav>{chrome}</nav><article><h1>Harbour plan</h1>{PARAGRAPH * paragraphs}</article></body></html>"


def both(html: str):
    tree = load_page(html)
    gated = trafilatura.bare_extraction(tree, options=readability_gate.extractor("https://news.example/a"))
    plain = trafilatura.bare_extraction(tree, url="https://news.example/a", include_comments=False, with_metadata=False)
    return gated, plain


def same(a, b) -> bool:
    return (a is None and b is None) or (a.text == b.text and etree.tostring(a.body) == etree.tostring(b.body))


def test_the_gate_is_installed_on_the_trafilatura_it_was_checked_against():
    assert readability_gate.INSTALLED == trafilatura.__version__.startswith(readability_gate.VERIFIED)


@pytest.mark.parametrize("html", [
    article(12),  # a long article: the comparison is skipped
    article(2),  # short: jusText may look
    article(8, "<a href='/x'>" + "Menu entry and more menu words " * 200 + "</a>"),  # the page holds far more text
    "<html><body><div>" + "A line of text without paragraphs, over and over. " * 40 + "</div></body></html>",
    "<html><body><table><tr><td>" + PARAGRAPH * 6 + "</td></tr></table></body></html>",
    "<html><body><article>" + PARAGRAPH * 6 + "<figure><iframe src='https://video.example/v'></iframe></figure></article></body></html>",
], ids=["long", "short", "chrome-heavy", "no-paragraphs", "table", "unclean"])
def test_gated_extraction_is_trafilaturas_to_the_character(html):
    gated, plain = both(html)
    assert same(gated, plain)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_the_seed_pages_extract_the_same_with_the_gate(seed):
    assert same(*both(seed.read_bytes()))


def test_the_comparison_is_skipped_only_when_it_cannot_win(monkeypatch):
    if not readability_gate.INSTALLED:
        pytest.skip(f"gate not installed on trafilatura {trafilatura.__version__}")
    decisions = []
    real = readability_gate.comparison_can_change
    monkeypatch.setattr(readability_gate, "comparison_can_change", lambda *a: decisions.append(real(*a)) or decisions[-1])
    both(article(12))
    assert decisions == [False]  # the own text is over half the page's: readability cannot win
    decisions.clear()
    both(article(8, "<a href='/x'>" + "Menu entry and more menu words " * 200 + "</a>"))
    assert decisions and all(decisions)  # readability could find twice the own text: it runs (a recall retry too)
    decisions.clear()
    trafilatura.extract(article(12), include_comments=False)
    assert decisions == []  # other callers of trafilatura get its cascade untouched


def test_the_bound_drops_what_readability_drops_and_counts_video_frames():
    tree = load_page("<html><body><p>ab<script>xx</script>cd<style>yy</style>ef</p><iframe src='v'></iframe></body></html>")
    assert readability_gate.readability_bound(tree) == len("abcdef") + len("VIDEO")
    assert tree.find(".//script") is None and tree.find(".//p").text == "abcdef"
