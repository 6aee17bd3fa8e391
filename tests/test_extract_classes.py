"""Pages unlike fundus's: what the layout rules must never take from trafilatura's text (issue 15).

Each page is our own writing, built the way a kind of site builds it: a 2008-style table
layout, a data table inside an article, a body that trafilatura returns as one long line
beginning with the headline, a listicle with repeated subheads and linked product names, a
technical post with code blocks, and card-style pages that wrap each paragraph, or the whole
article, in a link.
Each runs through the pipeline's Extract, StripChrome and Normalise cores (`clean_pages`).
"""

from __future__ import annotations

import re

import pytest

from newsbeam.pipeline.extract_cmd import clean_pages
from newsbeam.transforms.extract_core import extract_document
from newsweb import body_paragraphs

_WORDS = re.compile(r"\w+")
PARAS = body_paragraphs(1) + body_paragraphs(4)
NAV = "".join(f"<a href='/{s}'>{s.title()}</a> " for s in ("news", "sport", "weather", "letters", "archive"))


def words(text: str) -> str:
    return " " + " ".join(_WORDS.findall(text.casefold())) + " "


def cleaned(html: str, url: str = "https://news.example/2026/12/story") -> str:
    (doc,) = clean_pages([(html.encode(), url)])
    assert isinstance(doc, dict), doc
    return doc["text"]


def assert_kept(text: str, *pieces: str) -> None:
    missing = [p for p in pieces if words(p) not in words(text)]
    assert not missing, f"lost {missing!r} from:\n{text}"


def test_an_article_laid_out_in_a_table_keeps_its_body():
    paras = "".join(f"<p>{p}</p>" for p in PARAS)
    html = (f"<html><head><title>Quay repairs begin | Kettleby Gazette</title></head><body>"
            f"<table width='780'><tr><td colspan='2'>{NAV}</td></tr>"
            f"<tr><td width='160' valign='top'>{NAV.replace(' ', '<br>')}</td>"
            f"<td valign='top'><h1>Quay repairs begin</h1><font size='2'>{paras}</font></td></tr>"
            f"<tr><td colspan='2'>Kettleby Gazette, 12 High Street</td></tr></table></body></html>")
    assert_kept(cleaned(html), *PARAS)


def test_a_data_table_in_an_article_is_content():
    table = ("<table><tr><th>Route</th><th>Sailings 2025</th><th>Sailings 2026</th></tr>"
             "<tr><td>Kettleby to Skerry</td><td>1,240</td><td>980</td></tr>"
             "<tr><td>Skerry to Holm</td><td>610</td><td>455</td></tr></table>")
    paras = [f"<p>{p}</p>" for p in PARAS]
    html = (f"<html><head><title>Ferry sailings cut</title></head><body><main><article><h1>Ferry sailings cut</h1>"
            f"{''.join(paras[:3])}{table}{''.join(paras[3:])}</article></main></body></html>")
    text = cleaned(html)
    assert_kept(text, *PARAS)
    assert_kept(text, "Kettleby to Skerry", "1,240", "Skerry to Holm", "455")


def test_a_body_returned_as_one_line_starting_with_the_headline_is_kept():
    title = "How to grow leeks, chard and kale through a hard winter"  # longer than the 40 characters a line is traced by
    body = " ".join([title + "."] + PARAS)  # no paragraph markup: one block of text under the headline
    html = (f"<html><head><title>{title}</title><meta property='og:title' content='{title}'></head><body>"
            f"<div class='masthead'><h1>{title}</h1></div><main><div class='entry'>{body}</div></main></body></html>")
    text = cleaned(html)
    assert_kept(text, *PARAS)


def test_a_listicle_keeps_its_subheads_lists_and_linked_product_names():
    items = []
    names = ["Harbour Lamp 200", "Quayside Torch Mini", "Skerry Beacon Pro"]
    for i, name in enumerate(names):
        items.append(f"<h2><a href='/shop/{i}'>{i + 1}. {name}</a></h2><p>{PARAS[i]}</p>"
                     f"<h3>Pros and cons</h3><ul><li>Runs {10 + i} hours on one charge</li>"
                     f"<li>Weighs {200 + 10 * i} grams</li><li>Costs {30 + 5 * i} pounds</li></ul>")
    html = (f"<html><head><title>The best torches for a winter walk</title></head><body><main><article>"
            f"<h1>The best torches for a winter walk</h1><p>{PARAS[3]}</p>{''.join(items)}<p>{PARAS[4]}</p>"
            f"</article></main></body></html>")
    text = cleaned(html, "https://reviews.example/best-torches")
    assert_kept(text, *PARAS[:5], *names, "Runs 11 hours on one charge", "Weighs 220 grams", "Costs 40 pounds")
    assert text.count("Pros and cons") == 3  # a repeated subhead is structure, not a placeholder


def test_a_technical_post_keeps_its_code_blocks():
    code = ("if err != nil {\n    return err\n}\nrows, err := db.Query(q)\nif err != nil {\n    return err\n}\n"
            "for rows.Next() {\n    count++\n}\nif err != nil {\n    return err\n}")
    html = (f"<html><head><title>Counting rows in Go</title></head><body><main><article><h1>Counting rows in Go</h1>"
            f"<p>{PARAS[0]}</p><pre><code>{code}</code></pre><p>{PARAS[1]}</p><p>{PARAS[2]}</p></article></main></body></html>")
    text = cleaned(html, "https://blog.example/go-rows")
    assert_kept(text, *PARAS[:3], "rows, err := db.Query(q)", "for rows.Next()")
    assert words(text).count(" if err nil return err ") == 3


def test_rules_that_would_take_most_of_the_body_are_overruled():
    # A card layout: each paragraph sits inside a link of its own, so every line reads as a teaser link.
    paras = "".join(f"<a class='card' href='/2026/12/net-store-fire#{i}'><p>{p}</p></a>" for i, p in enumerate(PARAS))
    html = (f"<html><head><title>Net store fire</title></head><body><main><article><h1>Net store fire</h1>"
            f"{paras}</article></main></body></html>")
    doc = extract_document(html.encode(), "https://news.example/2026/12/net-store-fire")
    assert doc["body_guarded"] is True
    assert_kept(doc["text"], *PARAS)


def test_an_article_inside_one_link_is_not_a_teaser():
    # The link holds the whole article: it is the article's container, not evidence against its lines.
    paras = "".join(f"<p>{p}</p>" for p in PARAS)
    html = (f"<html><head><title>Net store fire</title></head><body><main><article><h1>Net store fire</h1>"
            f"<a class='card' href='/2026/12/net-store-fire'><div>{paras}</div></a></article></main></body></html>")
    doc = extract_document(html.encode(), "https://news.example/2026/12/net-store-fire")
    assert doc["body_guarded"] is False
    assert_kept(doc["text"], *PARAS)


RELATED = ("<ul class='related'><li><a href='/a'>Ferry fares rise again</a></li>"
           "<li><a href='/b'>Storm closes coast road</a></li></ul>")


@pytest.mark.parametrize("middle", ["", RELATED])
def test_the_guard_does_not_fire_on_an_ordinary_article(middle):
    paras = [f"<p>{p}</p>" for p in PARAS]
    html = (f"<html><head><title>Net store fire</title></head><body><main><article><h1>Net store fire</h1>"
            f"{''.join(paras[:3])}{middle}{''.join(paras[3:])}</article></main></body></html>")
    doc = extract_document(html.encode(), "https://news.example/2026/12/net-store-fire")
    assert doc["body_guarded"] is False
    assert_kept(doc["text"], *PARAS)
    assert "Ferry fares rise again" not in doc["text"]


def test_a_run_counts_the_pages_the_guard_kept(web, tmp_path):
    """Whole pipeline over loopback: the card page keeps its body, and the manifest says the guard fired once."""
    from newsweb import rss
    from test_pipeline import read, run

    card, ordinary = body_paragraphs(2), body_paragraphs(3)
    card_page = (f"<html><head><title>Net store fire</title></head><body><main><article><h1>Net store fire</h1>"
                 f"{''.join(f'<a class=card href=/net-store-fire#{i}><p>{p}</p></a>' for i, p in enumerate(card))}"
                 f"</article></main></body></html>")
    ordinary_page = (f"<html><head><title>Quay repairs begin</title></head><body><main><article><h1>Quay repairs begin</h1>"
                     f"{''.join(f'<p>{p}</p>' for p in ordinary)}</article></main></body></html>")
    links = [web.add("/net-store-fire", card_page, content_type="text/html; charset=utf-8"),
             web.add("/quay-repairs", ordinary_page, content_type="text/html; charset=utf-8")]
    feed = web.add("/feed.xml", rss("Gazette", [{"title": t, "link": link} for t, link in
                                                zip(("Net store fire", "Quay repairs begin"), links)]),
                   content_type="application/rss+xml")
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text(feed + "\n")
    manifest = run(feeds_file, tmp_path / "out", "guarded")
    articles = read(tmp_path / "out", "articles").set_index("url")
    assert manifest["counts"].get("body_guarded") == 1
    assert_kept(articles.loc[links[0], "text"], *card)
    assert_kept(articles.loc[links[1], "text"], *ordinary)
