"""Chrome learned from repetition: lines a source repeats across its pages, caught without any fixed rule."""

from __future__ import annotations

import pandas as pd

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.chrome import chrome_from_rows, learn_source_chrome, line_key, state_rows, strip_chrome
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import read_sources
from newsweb import body_paragraphs, rss

# A site's own promo, worded so that no fixed rule knows it.
PROMO = "Tideline readers get the Friday digest first: forty stories, one coffee, no noise."


def page(i: int, with_promo: bool = True) -> str:
    promo = f'<div class="box"><p>{PROMO}</p></div>' if with_promo else ""
    paras = "".join(f"<p>{p}</p>" for p in body_paragraphs(i)) + f"<p>Story number {i} ends here with its own closing line.</p>"
    return (f"<html lang='en'><head><title>Story {i}</title><link rel='canonical' href='https://tide.example/{i}'></head>"
            f"<body><article><h1>Story {i}</h1>{paras[:len(paras) // 2]}{promo}{paras[len(paras) // 2:]}</article></body></html>")


def test_a_line_repeated_across_a_sources_pages_is_learned():
    texts = [f"{body_paragraphs(i)[0]}\n{PROMO}\n{body_paragraphs(i)[1]}" for i in range(4)]
    boilerplate = learn_source_chrome(texts).boilerplate()
    assert line_key(PROMO) in boilerplate
    assert not any(line_key(p) in boilerplate for i in range(4) for p in body_paragraphs(i)[:2])
    stripped = strip_chrome(texts[0], boilerplate=boilerplate)
    assert PROMO not in stripped.text and stripped.removed == [PROMO]


def test_copies_of_one_text_do_not_teach_their_own_lines():
    text = "\n".join(body_paragraphs(1)[:2])
    assert learn_source_chrome([text] * 5).boilerplate() == frozenset()


def test_two_pages_are_not_enough_evidence():
    texts = [f"{body_paragraphs(i)[0]}\n{PROMO}" for i in range(2)]
    assert learn_source_chrome(texts).boilerplate() == frozenset()


def test_state_rows_round_trip():
    learned = learn_source_chrome([f"{body_paragraphs(i)[0]}\n{PROMO}" for i in range(3)])
    restored = chrome_from_rows(state_rows("Tideline", learned, learn_source_chrome([])))["Tideline"]
    assert restored.docs == 3 and restored.lines[line_key(PROMO)] == 3
    assert line_key(PROMO) in restored.boilerplate()


FAST = FetchSettings(read_timeout=2, deadline=5, allow_private_network=True,
                     retries=1, backoff=0.05, host_delay=0)


def run(web, tmp_path, pages, run_id):
    items = [{"title": f"Story {i}", "link": web.add(f"/t{i}.html", html)} for i, html in pages]
    feed = web.add(f"/feed-{run_id}.xml", rss("Tideline", items), content_type="application/rss+xml")
    (tmp_path / f"{run_id}.txt").write_text(feed + "\n")
    config = RunConfig(feeds=read_sources(str(tmp_path / f"{run_id}.txt")), feeds_location="x", out=str(tmp_path / "data"),
                       run_id=run_id, fetch=FAST)
    return run_job(config)


def test_the_pipeline_learns_per_source_and_later_runs_benefit(web, tmp_path):
    run(web, tmp_path, [(i, page(i)) for i in range(4)], "first")
    articles = pd.read_parquet(tmp_path / "data" / "articles")
    assert len(articles) == 4
    assert not articles.text.str.contains("Friday digest").any()
    assert articles.text.str.contains("ends here with its own closing line").all()
    state = pd.read_parquet(tmp_path / "data" / "_state" / "chrome")
    assert set(state.source) == {"Tideline"}

    # One new page in a later run: alone it is no evidence, but the stored state is.
    run(web, tmp_path, [(5, page(5))], "second")
    new = pd.read_parquet(tmp_path / "data" / "articles").query("run_id == 'second'")
    assert len(new) == 1 and "Friday digest" not in new.text.item()
    assert "Story number 5 ends here" in new.text.item()


def test_copies_of_one_article_in_a_source_do_not_teach_its_short_paragraphs_as_chrome():
    long_paragraph, short_paragraph = " ".join(body_paragraphs(2)[:2]), "Anwar chairs the regional bloc this year."
    copies = [f"{long_paragraph}\n{short_paragraph}\n{PROMO}", f"{short_paragraph}\n{long_paragraph}\n{PROMO}",
              f"{long_paragraph}\n{short_paragraph}"]
    others = [f"{body_paragraphs(i)[0]}\n{PROMO}" for i in (3, 4)]
    boilerplate = learn_source_chrome(copies + others).boilerplate()
    assert line_key(short_paragraph) not in boilerplate  # three copies of one story are one page's evidence
    assert line_key(PROMO) in boilerplate  # the promo is on three different stories
