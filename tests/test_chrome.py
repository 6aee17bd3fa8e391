"""Unit tests of strip_chrome in transforms/chrome.py.

The excerpts below are short quotations of news articles (AFP, AP via inkl, Bloomberg and a
rewritten report), used only as test fixtures for chrome stripping.
"""

from __future__ import annotations

import pytest

from newsbeam.transforms.chrome import strip_chrome

# Seed 001: an aggregator page, its promo header, body paragraphs and paywall tail.
INKL_HEADER = [
    "Get all your news in one place.",
    "100’s of premium titles.",
    "One app.",
    "Start reading",
]
INKL_BODY = [
    "The head of Myanmar’s military government traveled to Russia on Monday on an official visit to a major ally "
    "of the Southeast Asian nation that has been shunned by much of the West for overthrowing a democratically "
    "elected government and subsequent brutal repression.",
    "Senior Gen. Min Aung Hlaing, who departed from the military airport in the capital, Naypyitaw, will meet with "
    "Russian President Vladimir Putin.",
    "Russia defends Myanmar’s military government in international forums, and the ruling generals generally "
    "support Moscow’s foreign policy agenda.",
    "Russia and Myanmar have also held joint military drills and signed a pact on developing nuclear power.",
]
INKL_PAYWALL = [
    "Sign up to read this article",
    "Read news from 100’s of titles, curated specifically for you.",
    "Already a member? Sign in here",
    "Related Stories",
    "Top stories on inkl right now",
    "One subscription that gives you access to news from hundreds of sites",
    "Already a member? Sign in here",
    "Our Picks",
    "Fourteen days free",
    "Download the app",
    "One app. One membership.",
    "100+ trusted global sources.",
]

# Seed 000: AFP body ending in the desk slug.
AFP = [
    "Min Aung Hlaing earlier this month met with leaders from the Bay of Bengal littoral nations at a plush "
    "Bangkok hotel, an invitation that drew criticism.",
    "His presence at that summit represented a diplomatic win for Myanmar's isolated government, as it broke with "
    "a regional policy of not inviting junta leaders to major events.",
    "burs-sjc/bjt",
]

# Seed 002: Bloomberg credit, a subheading, copyright footer.
BLOOMBERG_LEAD = (
    "Cambodian Prime Minister Hun Sen is due to arrive in Myanmar on Friday, becoming the first foreign leader "
    "to visit the country since the junta seized power in a coup nearly a year ago."
)
BLOOMBERG = [
    "(Bloomberg) -- " + BLOOMBERG_LEAD,
    "Myanmar’s junta spokesman Zaw Min Tun confirmed the two leaders would meet on Friday to boost ties.",
    "Asean Divided",
    "Hun Sen has said the Myanmar regime has the right to attend Asean meetings.",
    "©2022 Bloomberg L.P.",
]

# Seed 003: a dateline that belongs to the article.
BANGKOK = (
    "BANGKOK — The leader of Myanmar’s military administration landed in Russia on Monday, signaling a visit to a "
    "crucial ally amid international isolation from Western nations."
)


def strip(lines, titles=()):
    stripped = strip_chrome("\n".join(lines), titles)
    return stripped.text, stripped.removed


def test_aggregator_header_and_paywall_tail_are_removed():
    text, _ = strip(INKL_HEADER + INKL_BODY + INKL_PAYWALL)
    assert text.split("\n") == INKL_BODY


def test_removed_lines_are_returned():
    _, removed = strip(INKL_HEADER + INKL_BODY + INKL_PAYWALL)
    assert sorted(removed) == sorted(INKL_HEADER + INKL_PAYWALL)


@pytest.mark.parametrize("line", INKL_HEADER + INKL_PAYWALL)
def test_each_promo_line_is_chrome_on_its_own(line):
    text, removed = strip(INKL_BODY[:1] + [line] + INKL_BODY[1:])
    assert text.split("\n") == INKL_BODY
    assert removed == [line]


def test_paywall_tail_after_blank_lines_is_removed():
    text = strip_chrome("\n\n".join(INKL_BODY) + "\n\n" + "\n".join(INKL_PAYWALL) + "\n").text
    assert text.split("\n") == INKL_BODY


def test_body_without_chrome_is_unchanged():
    text, removed = strip(INKL_BODY)
    assert (text.split("\n"), removed) == (INKL_BODY, [])


@pytest.mark.parametrize(
    "paragraph",
    [
        "Readers who subscribe to the paper's print edition will lose access to the online archive, the publisher "
        "said in a statement on Monday, adding that it would sign in new partners.",
        "Already a member of the ruling council, the general was asked to sign in the presence of Russian officials, "
        "state television MRTV reported on Monday evening.",
        "Sign up to read this article, the message said, but the page had been shared thousands of times by then "
        "across social media platforms in the region.",
    ],
    ids=["subscribe", "already-a-member", "sign-up-to-read"],
)
def test_long_paragraph_mentioning_prompts_is_kept(paragraph):
    text, removed = strip(INKL_BODY[:2] + [paragraph] + INKL_BODY[2:])
    assert text.split("\n") == INKL_BODY[:2] + [paragraph] + INKL_BODY[2:]
    assert removed == []


def test_wire_slug_last_line_is_removed():
    text, removed = strip(AFP)
    assert text.split("\n") == AFP[:2]
    assert removed == ["burs-sjc/bjt"]


def test_wire_credit_is_removed_but_the_lead_paragraph_kept():
    text, removed = strip(BLOOMBERG)
    assert text.split("\n")[0] == BLOOMBERG_LEAD
    assert "(Bloomberg) --" in removed


def test_via_news_wire_line_is_removed():
    text, removed = strip(["Via AP news wire"] + INKL_BODY)
    assert text.split("\n") == INKL_BODY
    assert removed == ["Via AP news wire"]


def test_wire_credit_with_an_em_dash_is_removed():
    text, _ = strip(["(AP) — " + BLOOMBERG_LEAD])
    assert text == BLOOMBERG_LEAD


def test_subheading_is_kept_and_copyright_footer_removed():
    text, removed = strip(BLOOMBERG)
    assert text.split("\n")[1:] == BLOOMBERG[1:4]
    assert "©2022 Bloomberg L.P." in removed


@pytest.mark.parametrize("footer", ["© 2024 The Associated Press. All rights reserved.", "Copyright 2022 Agence France-Presse", "All rights reserved."])
def test_copyright_footers_are_removed(footer):
    text, removed = strip(AFP[:2] + [footer])
    assert text.split("\n") == AFP[:2]
    assert removed == [footer]


def test_dateline_is_kept():
    text, removed = strip([BANGKOK] + INKL_BODY[1:])
    assert text.split("\n")[0] == BANGKOK
    assert removed == []


def test_first_line_equal_to_the_title_is_removed():
    title = "Myanmar's head of military government travels to ally Russia for talks with Putin"
    text, removed = strip([title] + INKL_BODY, titles=(None, title))
    assert text.split("\n") == INKL_BODY
    assert removed == [title]


def test_title_match_ignores_case_and_punctuation():
    title = "Myanmar's head of military government travels to ally Russia for talks with Putin"
    text, _ = strip([title.upper() + "!"] + INKL_BODY, titles=(title,))
    assert text.split("\n") == INKL_BODY


def test_title_later_in_the_body_is_kept():
    title = "Russia and Myanmar have also held joint military drills and signed a pact on developing nuclear power."
    text, removed = strip(INKL_BODY, titles=(title,))
    assert text.split("\n") == INKL_BODY
    assert removed == []


def test_title_behind_a_promo_line_is_removed():
    title = "Myanmar's head of military government travels to ally Russia for talks with Putin"
    text, _ = strip(["Advertisement", title] + INKL_BODY, titles=(title,))
    assert text.split("\n") == INKL_BODY


def test_short_paragraph_starting_with_copyright_is_kept():
    paragraph = "Copyright claims against the broadcaster doubled last year, the regulator said."
    text, _ = strip(INKL_BODY[:2] + [paragraph])
    assert text.split("\n") == INKL_BODY[:2] + [paragraph]


def test_all_chrome_gives_empty_text():
    text, removed = strip(INKL_PAYWALL)
    assert text == ""
    assert removed == INKL_PAYWALL


@pytest.mark.parametrize("text", ["", None, "\n \n"])
def test_empty_input(text):
    assert strip_chrome(text)[:2] == ("", [])


BODY_LINE = "The council met on Tuesday to discuss the budget for the coming year and its many line items."


@pytest.mark.parametrize(
    "credit, wire",
    [
        ("—Associated Press writer Jane Roe in Paris contributed to this report.", "AP"),
        ("With reporting by Associated Press writer Sam Poe", "AP"),
        ("With files from The Canadian Press", "CP"),
        ("(Quelle: APA/sda/dpa)", "APA"),
        ("SDA/sep", "Keystone-SDA"),
        ("Mit Agenturmaterial.", None),
    ],
)
def test_wire_credit_lines_are_removed_and_name_the_agency(credit, wire):
    stripped = strip_chrome(f"{BODY_LINE}\n{credit}")
    assert stripped.text == BODY_LINE and stripped.wire == wire


def test_a_sentence_starting_with_source_is_kept():
    line = "Source: the ministry said the figures would be revised next month."
    assert strip_chrome(f"{BODY_LINE}\n{line}").text == f"{BODY_LINE}\n{line}"


STORY = [
    "The harbour board voted on Tuesday to rebuild the old pier after two winters of storm damage left it closed to walkers.",
    "Work is due to start in March and the board expects the pier to reopen before the summer season of next year.",
]


@pytest.mark.parametrize(
    "line",
    [
        "Photo: AFP",
        "Fotos: Jane Doe",
        "Andrea Rossi/Getty Images",
        "STR/AFP via Getty Images",
        "Got a story? Get in touch with our news team at newsdesk@example.org.",
        "— Harbour Watch (@harbourwatch) July 18, 2026",
        "The pier is closed again tonight. pic.twitter.com/AbC123xyz",
        "Pier Plan Approved at Last Pier Plan Approved at Last",
        "Stand: 22.04.2024, 06:00 Uhr",
        "Updated 15.59 | Published 14.14",
        "Read more: Storm season",
        "First published in The Coastal Review.",
        "Most read in Local News",
        "Sign up for our morning briefing, delivered every weekday.",
        "Join the conversation",
        "- Sign up to our weekend newsletter",
    ],
)
def test_credits_contacts_embeds_cards_stamps_and_prompts_are_chrome(line):
    """Each is a whole line that tells the reader about the page, not about the story."""
    assert strip_chrome("\n".join([STORY[0], line, STORY[1]])).text.split("\n") == STORY


def test_a_photo_credit_does_not_make_the_story_wire_copy():
    assert strip_chrome("\n".join([STORY[0], "Photo: AFP", STORY[1]])).wire is None


@pytest.mark.parametrize(
    "line",
    [
        "The meeting closed at 19:25 after the vote.",  # a time in a sentence
        "Talks resumed on 12.05.2024 in Geneva and went on late.",
        "Who will pay for it? The board says the town will.",  # a question that is prose
        "Image quality was the main complaint of the inspectors, the report found, though the repairs were cheap.",
        "Yes, yes.",  # too short to be a doubled title
    ],
)
def test_sentences_like_the_new_rules_are_kept(line):
    lines = [STORY[0], line, STORY[1]]
    assert strip_chrome("\n".join(lines)).text.split("\n") == lines


def test_a_last_line_announcing_what_extraction_left_out_is_removed():
    text = "\n".join(STORY + ["Follow the latest on our live blog:"])
    assert strip_chrome(text).text.split("\n") == STORY
    inner = [STORY[0], "The board listed three reasons:", STORY[1]]
    assert strip_chrome("\n".join(inner)).text.split("\n") == inner  # not the last line: what it announces follows


@pytest.mark.parametrize("line", ["| 1/1/2013 | +13.1% |", "| 06:00 | Kettleby | 14:30 |", "4.7", "3.2 out of 5", "13.15%"])
def test_table_rows_and_decimals_are_not_time_stamps(line):
    """A data table's dates and a rating are the article's data: only a page's own stamps go (issue 15)."""
    text = "\n".join([STORY[0], line, STORY[1]])
    assert strip_chrome(text).text.split("\n") == [STORY[0], line, STORY[1]]
