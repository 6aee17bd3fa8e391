"""Properties of the URL keys (canonical_url, link_key, host_of, link_problem): total, idempotent, query kept."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsbeam.transforms.normalise import TRACKING_PARAMS, canonical_url
from newsbeam.transforms.pages import host_of, link_key, link_problem

PROPERTIES = settings(max_examples=300, deadline=None)

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)  # lone surrogates and control characters too
TRACKERS = ["utm_source", "UTM_Campaign", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
            "igshid", "yclid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "xtor"]
NAMES = ["id", "cid", "uid", "ref", "source", "sourceid", "gallery", "game", "page", "p", ""]
NOISE = ["\ud800", "\udfff", "\udce9", "\x00", "\x01", "\x1f", "\x7f", "\t", "\n", "\r", " ", "\u00a0", "\u2028", "%", "%zz"]

schemes = st.sampled_from(["http", "https", "HTTP", "HtTpS", "file", "FILE", "ftp", "mailto", "javascript", "x-y+z.1", ""])
userinfo = st.sampled_from(["", "user@", "User:Pass@", ":pw@", "a@b@", "@", "us%20er@"])
hosts = st.one_of(
    st.sampled_from(["news.example.com", "NEWS.Example.COM.", "xn--bcher-kva.example", "Bücher.example", "xn--zz-invalid",
                     "127.0.0.1", "", "a..b", "[::1]", "[2001:DB8::1]", "[fe80::1%25eth0]", "[::ffff:1.2.3.4]",
                     "[::1", "::1]", "[not-an-ip]", "[::1]x", "[", "]", "a[b]c", "[v1.future]"]),
    st.text(st.characters(exclude_characters="?#"), max_size=12),  # any text at all: test_any_text_...
)
ports = st.sampled_from(["", ":", ":0", ":80", ":443", ":8080", ":0080", ":65535", ":65536", ":99999", ":abc", ":-1",
                         ":٣", ":80:90", ":" + "0" * 5000 + "1"])
segments = st.one_of(st.sampled_from(["", ".", "..", "a b", "café", "%2e%2E", "%c3%a9", "%zz", "a+b;c=d", "ü/ö", "..%2f"]),
                     st.text(st.characters(exclude_characters="?#"), max_size=8))
paths = st.lists(segments, max_size=5).map(lambda parts: "".join("/" + p for p in parts))
values = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
parameters = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES + TRACKERS), values), values, st.booleans()), max_size=6)
fragments = st.one_of(st.just(""), ANY_TEXT.map(lambda text: "#" + text))


def query_of(params) -> str:
    """name=value pairs (or a bare name), encoded, each name repeated as it comes."""
    return "&".join(quote_plus(name) + ("=" + quote_plus(value) if equals else "") for name, value, equals in params)


@st.composite
def urls(draw, noisy: bool = True):
    """(url, parameters): a URL from the parts above, and the parameters its query was built from."""
    params = draw(parameters)
    url = (draw(schemes) + "://" + draw(userinfo) + draw(hosts) + draw(ports) + draw(paths)
           + ("?" + query_of(params) if params or draw(st.booleans()) else "") + draw(fragments))
    if noisy:
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(url)))
            url = url[:at] + draw(st.sampled_from(NOISE)) + url[at:]
    return url, params


def query_pairs(url: str) -> Counter:
    """The decoded (name, value) pairs of a canonical URL's query (its first '?': a canonical path has none)."""
    return Counter(parse_qsl(url.partition("?")[2], keep_blank_values=True))


def assert_total_and_idempotent(url: str) -> str:
    canonical = canonical_url(url)
    assert isinstance(canonical, str)
    assert canonical_url(canonical) == canonical
    assert "#" not in canonical
    assert not [name for name, _ in query_pairs(canonical) if TRACKING_PARAMS.fullmatch(name)]
    assert link_key({"link": url}) == canonical
    assert isinstance(host_of(url), str) and host_of(url) == host_of(url)
    assert host_of(canonical) == (canonical if canonical.startswith("file:") else host_of(url))
    problem = link_problem(url)
    assert problem is None or problem.startswith("invalid URL")
    return canonical


@PROPERTIES
@given(ANY_TEXT)
def test_any_text_has_a_canonical_form_a_key_and_a_host(text):
    assert_total_and_idempotent(text)


@PROPERTIES
@given(urls())
def test_generated_urls_have_a_canonical_form_without_fragment_or_tracking(generated):
    url, _ = generated
    assert_total_and_idempotent(url)


@PROPERTIES
@given(urls(noisy=False))
def test_canonical_form_keeps_every_parameter_but_the_tracking_ones(generated):
    url, params = generated
    canonical = assert_total_and_idempotent(url)
    if canonical.startswith("file:"):
        assert "?" not in canonical  # local files have no query
        return
    kept = Counter((name, value if equals else "") for name, value, equals in params
                   if (name or equals) and not TRACKING_PARAMS.fullmatch(name))  # an empty piece ('a=1&&b=2') names nothing
    assert query_pairs(canonical) == kept


@pytest.mark.parametrize(
    "link, problem",
    [
        ("http://news.example.com/a?b=1#c", None),
        ("https://[::1]:8443/x", None),
        ("file:///srv/site/a.html", None),
        ("ftp://news.example.com/a", None),  # readable; the fetch stage refuses the scheme
        ("http://127.0.0.1:99999/a", "invalid URL: Port out of range 0-65535"),
        ("http://127.0.0.1:abc/b", "invalid URL: Port could not be cast to integer value as 'abc'"),
        ("http://[::1/x", "invalid URL: Invalid IPv6 URL"),
        ("http://[not-an-ip]/x", "invalid URL: 'not-an-ip' does not appear to be an IPv4 or IPv6 address"),
        ("http:///x", "invalid URL: no host"),
        ("http://news.example.com:0/a", "invalid URL: port 0"),
    ],
)
def test_link_problem_names_what_cannot_be_fetched_as_written(link, problem):
    assert link_problem(link) == problem


def test_host_of_is_the_canonical_host():
    assert host_of("HTTP://News.Example.COM:8080/a?b#c") == "news.example.com"
    assert host_of("http://[2001:DB8::1]:8080/a") == "[2001:db8::1]"
    assert host_of("http://xn--bcher-kva.example/a") == "bücher.example"
    assert host_of("file:///srv/site/a.html") == "file:///srv/site/a.html"
    assert host_of("http://127.0.0.1:99999/a") == "127.0.0.1:99999"
