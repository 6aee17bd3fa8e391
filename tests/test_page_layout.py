"""Layout chrome: lines of trafilatura's body judged by where they sit in the page."""

from __future__ import annotations

import trafilatura
from newsbeam.transforms.extract_core import load_page as load_html

from newsbeam.transforms.page_layout import clean_body, trace_lines, with_lead
from newsweb import body_paragraphs

BODY = body_paragraphs(2) + body_paragraphs(5)
LEAD = "The harbour board has agreed to rebuild the old pier after two winters of storm damage left it closed."


def page(extra_head: str = "", before: str = "", inside_end: str = "", after: str = "") -> bytes:
    paras = "".join(f"<p>{p}</p>" for p in BODY)
    return (
        f"<html><head><title>Pier to be rebuilt | Gazette</title>"
        f"<meta property='og:title' content='Pier to be rebuilt'>{extra_head}</head><body>"
        f"<main><article>{before}<h1>Pier to be rebuilt</h1>{paras}{inside_end}</article>{after}</main></body></html>"
    ).encode()


def clean(html: bytes, description=None) -> list[str]:
    tree = load_html(html)
    doc = trafilatura.bare_extraction(tree, include_comments=False)
    return clean_body(tree, doc.body, ["Pier to be rebuilt"], description).text.split("\n")


def test_every_body_paragraph_is_traced_to_its_element():
    html = page()
    tree = load_html(html)
    lines = trace_lines(tree, trafilatura.bare_extraction(tree).body).lines
    traced = [l for l in lines if l.text in BODY]
    assert len(traced) == len(BODY) and all(l.element is not None and l.element.tag == "p" for l in traced)


def test_body_is_kept_and_headline_dropped():
    lines = clean(page())
    assert lines == BODY


def test_caption_and_link_list_and_teaser_are_dropped():
    figure = "<figure><img src='p.jpg'><figcaption>The pier in October. Photo: Harbour Board</figcaption></figure>"
    related = ("<ul class='related'><li><a href='/a'>Ferry fares rise again this winter</a></li>"
               "<li><a href='/b'>Storm closes coast road for a day</a></li></ul>")
    teaser = "<p><a href='/c'>Why the old pier matters to the town more than its councillors think</a></p>"
    lines = clean(page(inside_end=figure + related + teaser))
    assert lines == BODY


def test_lines_after_the_article_container_are_dropped():
    after = "<div class='box'><p>Our reporters cover the coast every day of the year, in all weathers.</p></div>"
    assert clean(page(after=after)) == BODY


def test_a_long_quote_in_the_article_is_kept():
    quote = "<blockquote><p>We will rebuild it stronger than before, and it will stand for another hundred years.</p></blockquote>"
    lines = clean(page(inside_end=quote))
    assert "We will rebuild it stronger than before, and it will stand for another hundred years." in lines


def test_lead_shown_on_the_page_is_put_back_once():
    html = page(extra_head=f"<meta name='description' content='{LEAD}'>", before=f"<header><p class='standfirst'>{LEAD}</p></header>")
    lines = clean(html, LEAD)
    assert lines[0] == LEAD and lines.count(LEAD) == 1 and lines[1:] == BODY


def test_lead_not_shown_on_the_page_is_not_invented():
    assert with_lead("\n".join(BODY), LEAD, visible="nothing like it") == "\n".join(BODY)
    assert with_lead("\n".join(BODY), "Too short to lead.", visible="Too short to lead.") == "\n".join(BODY)


def test_the_pipelines_parser_gives_trafilatura_the_same_body_as_its_own():
    from trafilatura.utils import load_html as trafilatura_load_html

    html = page(inside_end="<form><label>Name</label><input name='q'><select><option>One</option></select></form>")
    ours, theirs = load_html(html), trafilatura_load_html(html)
    assert trafilatura.bare_extraction(ours).text == trafilatura.bare_extraction(theirs).text
    assert all(type(el) is type(ours) for el in ours.iter())  # no per-element class lookup


def test_the_pipelines_parser_decodes_and_refuses_like_trafilatura():
    legacy = "<html><head><meta charset='windows-1252'></head><body><p>Caf\u00e9 cr\u00e8me \u2013 r\u00e9sum\u00e9</p><p>x</p></body></html>"
    tree = load_html(legacy.encode("cp1252"))
    assert "Caf\u00e9 cr\u00e8me \u2013 r\u00e9sum\u00e9" in tree.text_content()
    declared = "<?xml version='1.0' encoding='utf-8'?><html><body><p>Declared</p><p>twice</p></body></html>"
    assert "Declared" in load_html(declared).text_content()  # lxml refuses a str with a declaration; bytes it takes
    assert load_html(b"just some words, no markup") is None
    assert load_html(b"   ") is None


def page_with_middle(middle: str) -> bytes:
    """The article page with `middle` between its third and fourth paragraphs."""
    paras = [f"<p>{p}</p>" for p in BODY]
    return page().replace("".join(paras).encode(), "".join(paras[:3] + [middle] + paras[3:]).encode())


def test_an_embedded_social_post_in_mid_text_is_dropped():
    tweet = ("<blockquote class='twitter-tweet'><p lang='en'>The pier is closed again tonight and the council says it will "
             "stay shut until the engineers have finished their survey of the damage.</p>&mdash; Harbour Watch "
             "(@harbourwatch) <a href='https://twitter.com/x/status/1'>July 18, 2026</a></blockquote>")
    assert clean(page_with_middle(tweet)) == BODY


def test_a_short_label_repeated_in_the_body_is_dropped_but_a_repeated_sentence_is_kept():
    label = "<div class='map-info'><p>Load the interactive map</p></div>"  # a widget's placeholder: its class says so
    html = page_with_middle(label + "<p>A map of the closed section.</p>" + label)
    assert clean(html) == BODY[:3] + ["A map of the closed section."] + BODY[3:]
    # Repetition alone is no evidence: a comparison repeats its own subheads and labels.
    label = "<p>Pros and cons</p>"
    html = page_with_middle(label + "<p>A map of the closed section.</p>" + label)
    assert clean(html) == BODY[:3] + ["Pros and cons", "A map of the closed section.", "Pros and cons"] + BODY[3:]
    refrain = "<p>The pier stays shut.</p>"
    html = page_with_middle(refrain + "<p>A map of the closed section.</p>" + refrain)
    assert clean(html).count("The pier stays shut.") == 2


def test_a_class_on_the_article_container_is_not_evidence_against_its_lines():
    # The whole article sits in an element whose class names a chrome word ("share"): that class
    # describes the page, not a line, so the short line closing the article is not an edge label.
    tally = "Vote at the harbour board: 12 for, 1 against"
    paras = "".join(f"<p>{p}</p>" for p in BODY)
    html = (f"<html><head><title>Pier to be rebuilt</title></head><body><div class='share-wrapper'>"
            f"<h1>Pier to be rebuilt</h1>{paras}<p>{tally}</p></div></body></html>").encode()
    assert clean(html) == BODY + [tally]
    # The same line in an element of its own with that class is the page's chrome.
    html = html.replace(f"<p>{tally}</p>".encode(), f"<div class='share-row'><p>{tally}</p></div>".encode())
    assert clean(html) == BODY
