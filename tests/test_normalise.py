"""Unit tests of the normal forms in transforms/normalise.py."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import pytest

from newsbeam.transforms.normalise import (
    article_id,
    canonical_url,
    content_hash,
    detect_language,
    normalise_text,
    partition_date,
    to_utc,
    word_count,
)

UTC = timezone.utc

GERMAN = (
    "Die Bundesregierung hat am Mittwoch ein neues Gesetz zur Förderung der erneuerbaren Energien beschlossen. "
    "Der Bundestag muss noch zustimmen, bevor das Gesetz in Kraft treten kann. "
    "Kritiker bemängeln, dass die Maßnahmen nicht weit genug gehen und die Klimaziele verfehlt werden. "
    "Die Opposition kündigte Widerstand an und forderte schnellere Schritte beim Ausbau der Windkraft "
    "und der Solarenergie in ganz Deutschland. "
    "Nach Angaben des Ministeriums sollen die ersten Maßnahmen bereits im kommenden Jahr umgesetzt werden."
)


# canonical_url


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTP://News.Example.COM/world/story", "http://news.example.com/world/story"),
        ("http://news.example.com:80/world/story", "http://news.example.com/world/story"),
        ("https://news.example.com:443/world/story", "https://news.example.com/world/story"),
        ("https://news.example.com:8443/world/story", "https://news.example.com:8443/world/story"),
        ("https://news.example.com", "https://news.example.com/"),
        ("https://news.example.com/world/story#comments", "https://news.example.com/world/story"),
    ],
    ids=["host-case", "http-default-port", "https-default-port", "other-port-kept", "empty-path", "fragment"],
)
def test_canonical_url_host_port_path_fragment(url, expected):
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "query",
    ["utm_source=rss&utm_medium=feed&utm_campaign=x", "fbclid=IwAR0abc", "gclid=Cj0KCQ", "utm_source=rss&fbclid=a&gclid=b"],
)
def test_canonical_url_drops_tracking_parameters(query):
    assert canonical_url(f"https://news.example.com/world/story?{query}") == "https://news.example.com/world/story"


def test_canonical_url_keeps_and_sorts_allow_listed_parameters():
    url = "https://news.example.com/article.php?page=2&utm_source=rss&id=5"
    assert canonical_url(url) == "https://news.example.com/article.php?id=5&page=2"


def test_canonical_url_keeps_other_parameters_sorted():
    url = "https://news.example.com/story.php?story=123&section=world&utm_source=rss#top"
    assert canonical_url(url) == "https://news.example.com/story.php?section=world&story=123"


def test_canonical_url_keeps_different_stories_apart():
    assert canonical_url("https://news.example.com/read?story=123") != canonical_url("https://news.example.com/read?story=456")


def test_canonical_url_does_not_read_parameters_as_html_entities():
    assert canonical_url("https://news.example.com/article?id=5&para=2") == "https://news.example.com/article?id=5&para=2"


def test_canonical_url_for_file_drops_query_and_fragment():
    assert canonical_url("file:///srv/site/World/story.html?utm_source=x&v=2#top") == "file:///srv/site/World/story.html"


def test_canonical_url_is_idempotent():
    once = canonical_url("HTTPS://News.Example.com:443/a/b?page=3&utm_source=rss#x")
    assert canonical_url(once) == once


@pytest.mark.parametrize("url", ["", "   "])
def test_canonical_url_of_nothing_is_empty(url):
    assert canonical_url(url) == ""


@pytest.mark.parametrize("name", ["cid", "gallery", "game", "uid", "sourceid", "ref", "source", "session", "id"])
def test_canonical_url_keeps_articles_named_by_any_parameter_apart(name):
    first, second = (canonical_url(f"https://news.example.com/article.php?{name}={n}&utm_source=rss") for n in (123, 124))
    assert first == f"https://news.example.com/article.php?{name}=123"
    assert second == f"https://news.example.com/article.php?{name}=124"
    assert article_id(first) != article_id(second)


@pytest.mark.parametrize(
    "tracking",
    ["utm_source=rss", "UTM_Medium=feed", "fbclid=a", "gclid=b", "dclid=c", "gbraid=d", "wbraid=e", "msclkid=f",
     "mc_cid=g", "mc_eid=h", "igshid=i", "yclid=j", "_ga=k", "_gl=l", "_hsenc=m", "_hsmi=n", "mkt_tok=o",
     "oly_anon_id=p", "oly_enc_id=q", "vero_id=r", "xtor=RSS-3208", "at_medium=RSS", "wt.mc_id=s", "utm%5Fcampaign=t"],
)
def test_canonical_url_drops_each_tracking_parameter_and_keeps_the_rest(tracking):
    assert canonical_url(f"https://news.example.com/article.php?{tracking}&cid=7") == "https://news.example.com/article.php?cid=7"


@pytest.mark.parametrize("query", ["42", "print=", "a=1&a=2", "q=%E9t%E9", "q=%E8t%E8", "q=caf%C3%A9"])
def test_canonical_url_keeps_parameters_without_values_repeated_keys_and_raw_bytes(query):
    url = f"https://news.example.com/article.php?{query}"
    assert canonical_url(url) == url


def test_canonical_url_keeps_latin1_escapes_apart():
    assert canonical_url("https://news.example.com/s?q=%E9") != canonical_url("https://news.example.com/s?q=%E8")


def test_canonical_url_spells_each_path_escape_one_way():
    expected = "https://news.example.com/caf%C3%A9/a%28b%29"
    assert canonical_url("https://news.example.com/café/a(b)") == canonical_url("https://news.example.com/caf%c3%a9/a%28b%29") == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("http://xn--bcher-kva.Example/x", "http://bücher.example/x"),
        ("http://Bücher.example/x", "http://bücher.example/x"),
        ("http://127.0.0.1:99999/a?utm_source=x#top", "http://127.0.0.1:99999/a"),
        ("http://Host:ABC/b", "http://host:abc/b"),
        ("http://[::1/x", "http://[::1/x"),
    ],
    ids=["ipv6", "ipv6-default-port", "idn-punycode", "idn-unicode", "port-out-of-range", "port-not-a-number", "broken-ipv6"],
)
def test_canonical_url_of_ip_literals_idn_hosts_and_unreadable_ports(url, expected):
    assert canonical_url(url) == expected


# normalise_text


def test_normalise_text_composes_decomposed_characters():
    decomposed = "Cafe\u0301 de Flore"
    assert normalise_text(decomposed) == "Caf\u00e9 de Flore"


def test_normalise_text_removes_zero_width_and_soft_hyphens():
    assert normalise_text("junta\u200b chief\u00ad \ufeffmeets\u200d Anwar") == "junta chief meets Anwar"


def test_normalise_text_collapses_spaces_and_tabs_within_lines():
    assert normalise_text("  Hun   Sen\tis\u00a0due  to arrive.  ") == "Hun Sen is due to arrive."


def test_normalise_text_drops_blank_lines_and_unifies_line_ends():
    assert normalise_text("First paragraph.\r\n\r\n   \r\nSecond paragraph.\rThird.\n\n") == "First paragraph.\nSecond paragraph.\nThird."


def test_normalise_text_of_none_is_empty():
    assert normalise_text(None) == ""


# to_utc


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-03-05T10:00:00-05:00", datetime(2024, 3, 5, 15, 0, tzinfo=UTC)),
        ("2024-03-05T10:00:00Z", datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ("2024-03-05T10:00:00", datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
        (datetime(2024, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=9))), datetime(2023, 12, 31, 23, 0, tzinfo=UTC)),
        (datetime(2024, 1, 1, 8, 0), datetime(2024, 1, 1, 8, 0, tzinfo=UTC)),
        (date(2024, 3, 5), datetime(2024, 3, 5, tzinfo=UTC)),
        (time.gmtime(1700000000), datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
    ids=["iso-offset", "iso-z", "iso-naive", "iso-date", "aware-datetime", "naive-datetime", "date", "struct_time"],
)
def test_to_utc_converts_to_aware_utc(value, expected):
    result = to_utc(value)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [None, "", "yesterday afternoon", "2024-13-45", "1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC), "2150-01-01"],
    ids=["none", "empty", "junk", "bad-date", "epoch-string", "epoch-datetime", "far-future"],
)
def test_to_utc_gives_none_for_unusable_values(value):
    assert to_utc(value) is None


# content_hash, article_id, word_count


@pytest.mark.parametrize(
    "variant",
    [
        "Five people were  killed in the blast,\npolice said.",
        "FIVE PEOPLE WERE KILLED IN THE BLAST POLICE SAID",
        "Five people were killed in the blast -- police said!",
        "  five people were killed in the blast; police said  ",
    ],
    ids=["whitespace", "case", "punctuation", "edges"],
)
def test_content_hash_ignores_spacing_case_and_punctuation(variant):
    assert content_hash(variant) == content_hash("Five people were killed in the blast, police said.")


def test_content_hash_changes_when_a_number_changes():
    assert content_hash("5 killed in the blast") != content_hash("50 killed in the blast")


def test_content_hash_changes_when_a_word_changes():
    assert content_hash("Junta chief meets Anwar") != content_hash("Junta chief meets Putin")


def test_article_id_is_pinned():
    """Ids must not depend on the process, PYTHONHASHSEED or the run: stored ids stay valid."""
    assert article_id("https://news.example.com/world/story") == "34701eeeb6b2b9d3e7d57ef1"


def test_article_id_differs_between_urls():
    assert article_id("https://news.example.com/world/story") != article_id("https://news.example.com/world/story2")


def test_word_count_counts_unicode_words():
    assert word_count("Myanmar’s junta chief, Min Aung Hlaing — in Moscow.") == 9


# detect_language


def test_detect_language_recognises_german():
    assert detect_language(GERMAN) == "de"


def test_detect_language_overrides_a_wrong_site_wide_hint_on_long_text():
    assert word_count(GERMAN) >= 60
    assert detect_language(GERMAN, ["en"]) == "de"


def test_detect_language_trusts_the_hint_on_short_text():
    assert detect_language("Kurzer deutscher Text", ["en"]) == "en"


@pytest.mark.parametrize(
    "hints, expected",
    [([None, "", "EN-gb"], "en"), (["pt_BR", "es"], "pt"), ([], None)],
    ids=["first-usable-region-tag", "underscore-tag", "no-hint"],
)
def test_detect_language_hint_forms(hints, expected):
    assert detect_language("Short teaser text.", hints) == expected


# partition_date


def test_partition_date_uses_the_utc_publication_date():
    published = datetime(2024, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert partition_date(published, datetime(2025, 6, 1, tzinfo=UTC)) == "2023-12-31"


def test_partition_date_falls_back_to_the_fetch_date():
    fetched = datetime(2024, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert partition_date(None, fetched) == "2024-01-02"
