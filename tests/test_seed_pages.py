"""The seeds' chrome, rebuilt as HTML pages (tests/fixtures/seeds): none of it left, every body paragraph kept.

Runs `newsbeam extract`, which runs the pipeline's own Extract, StripChrome and Normalise code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lxml.html
import pytest

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
CHROME = {
    "001-aggregator-ap.html": [
        "Get all your news in one place.", "100’s of premium titles.", "One app.", "Start reading",
        "The Independent UK", "National", "Via AP news wire", "Sign up to read this article",
        "Read news from 100’s of titles", "Already a member? Sign in here", "Related Stories",
        "Top stories on inkl right now", "One subscription that gives you access", "Our Picks",
        "Fourteen days free", "Download the app", "One membership", "100+ trusted global sources",
        "Myanmar's head of military government travels to ally Russia for talks with Putin",
    ],
    "000-afp.html": ["burs-sjc/bjt", "All rights reserved", "Myanmar junta chief meets Malaysian PM in Bangkok"],
    "002-bloomberg.html": ["(Bloomberg) --", "©2022 Bloomberg L.P.", "Hun Sen to Visit Myanmar in First Trip"],
    "003-rewrite.html": ["Myanmar military leader lands in Moscow"],
}
WIRE = {"001-aggregator-ap.html": "AP", "000-afp.html": "AFP", "002-bloomberg.html": "Bloomberg", "003-rewrite.html": None}


def body_paragraphs(path: Path) -> list[str]:
    """The article paragraphs of a fixture: its <article> <p> elements that are not chrome."""
    tree = lxml.html.parse(str(path))
    chrome = CHROME[path.name]
    paragraphs = [" ".join(p.text_content().split()) for p in tree.xpath("//article/p")]
    paragraphs = [p for p in paragraphs if not any(c in p for c in chrome if c != "(Bloomberg) --")]
    return [p.replace("(Bloomberg) -- ", "") for p in paragraphs]


@pytest.fixture(scope="module")
def extracted() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "newsbeam.pipeline.cli", "extract", *sorted(map(str, SEEDS.glob("*.html")))],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return {Path(r["path"]).name: r for r in records}


@pytest.mark.parametrize("name", sorted(CHROME))
def test_every_body_paragraph_is_kept(extracted, name):
    lines = extracted[name]["text"].split("\n")
    paragraphs = body_paragraphs(SEEDS / name)
    assert len(paragraphs) >= 3
    for paragraph in paragraphs:
        assert paragraph in lines, paragraph


@pytest.mark.parametrize("name", sorted(CHROME))
def test_no_chrome_is_left(extracted, name):
    text = extracted[name]["text"]
    for chrome in CHROME[name]:
        assert chrome not in text, chrome


@pytest.mark.parametrize("name", sorted(CHROME))
def test_wire_agency_is_recognised(extracted, name):
    assert extracted[name]["wire"] == WIRE[name]


def test_dateline_is_kept_and_dates_are_utc(extracted):
    assert extracted["003-rewrite.html"]["text"].startswith("BANGKOK — The leader")
    assert extracted["000-afp.html"]["published_at"] == "2025-04-17T07:02:00+00:00"
    assert extracted["000-afp.html"]["published_at_source"] == "jsonld"


def test_paywall_flag(extracted):
    assert extracted["001-aggregator-ap.html"]["paywalled"] is True
    assert not any(extracted[n]["paywalled"] for n in CHROME if n != "001-aggregator-ap.html")


def test_agency_is_not_an_author(extracted):
    assert extracted["001-aggregator-ap.html"]["authors"] == []
    assert extracted["002-bloomberg.html"]["authors"] == []
