"""HttpClient against a real loopback server (conftest.py's LoopbackWeb) and the local file system."""

from __future__ import annotations

import socket
import time
import tracemalloc
import zlib

import pytest

from conftest import Route, flaky, open_ended, respond, respond_with_etag
from newsbeam.transforms.http import (
    AddressRefused,
    FetchError,
    FetchSettings,
    HttpClient,
    address_guard,
    decode_html,
    named_url_problem,
    parse_retry_after,
)

MB = 1024 * 1024
# Loopback is a private address; these tests opt in the way a local mirror would.
FAST = FetchSettings(connect_timeout=1.0, read_timeout=0.5, deadline=2.0, max_bytes=MB, max_redirects=3, allow_private_network=True,
                     retries=0, host_delay=0)


@pytest.fixture
def web(module_web):
    """conftest's loopback server, shared by this module (a fresh one costs ~0.5 s at shutdown); paths are per test."""
    return module_web


@pytest.fixture
def client():
    c = HttpClient(FAST)
    yield c
    c.close()


def fetch_error(client, url) -> FetchError:
    with pytest.raises(FetchError) as info:
        client.get(url)
    return info.value


def chunks(count, size=64 * 1024):
    return lambda wfile: [wfile.write(b"y" * size) for _ in range(count)]


def trickle(wfile, seconds, every=0.2):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        wfile.write(b"x")
        wfile.flush()
        time.sleep(every)


def echo_header(name):
    return lambda request: respond(request, 200, (request.headers.get(name) or "").encode())


# Success


def test_ok_body_status_and_content_type(web, client):
    url = web.add("/ok/story.html", "<p>Myanmar’s junta chief held talks.</p>")
    response = client.get(url)
    assert response.status == 200
    assert response.body == "<p>Myanmar’s junta chief held talks.</p>".encode("utf-8")
    assert response.content_type == "text/html; charset=utf-8"
    assert response.mime_type == "text/html"
    assert response.url == response.final_url == url
    assert response.fetched_at.utcoffset().total_seconds() == 0


def test_request_carries_the_accept_header(web, client):
    web.routes["/echo/accept"] = Route(handler=echo_header("Accept"))
    assert client.get(web.url("/echo/accept"), accept="application/rss+xml").body == b"application/rss+xml"


def test_request_carries_the_configured_user_agent(web, client):
    web.routes["/echo/ua"] = Route(handler=echo_header("User-Agent"))
    assert client.get(web.url("/echo/ua")).body.decode() == FAST.user_agent


def test_request_offers_gzip(web, client):
    web.routes["/echo/encoding"] = Route(handler=echo_header("Accept-Encoding"))
    assert b"gzip" in client.get(web.url("/echo/encoding")).body


def test_gzip_body_is_decoded(web, client):
    url = web.add_gzip("/gzip/feed.xml", b"<rss version='2.0'></rss>", content_type="application/rss+xml")
    assert client.get(url).body == b"<rss version='2.0'></rss>"


# HTTP errors


@pytest.mark.parametrize("status", [404, 410, 500, 503])
def test_error_status_is_a_fetch_error(web, client, status):
    url = web.add(f"/status/{status}", "nope", status=status)
    error = fetch_error(client, url)
    assert (error.error, error.http_status, error.url) == ("http_status", status, url)


def test_unregistered_path_is_404(web, client):
    error = fetch_error(client, web.url("/no/such/page"))
    assert (error.error, error.http_status) == ("http_status", 404)


# Redirects


def test_redirect_is_followed_to_the_target(web, client):
    target = web.add("/moved/story.html", "<p>story</p>")
    start = web.add("/moved/s/123", status=301, headers={"Location": target})
    response = client.get(start)
    assert (response.url, response.final_url, response.body) == (start, target, b"<p>story</p>")


def test_relative_redirect_resolves_against_the_current_url(web, client):
    web.add("/relative/story.html", "<p>story</p>")
    start = web.add("/relative/old.html", status=302, headers={"Location": "story.html"})
    assert client.get(start).final_url == web.url("/relative/story.html")


def test_redirect_loop(web, client):
    start = web.add("/loop/a", status=302, headers={"Location": "/loop/b"})
    web.add("/loop/b", status=307, headers={"Location": "/loop/a"})
    assert fetch_error(client, start).error == "redirect_loop"


def chain(web, name, length):
    """A chain of `length` redirects ending in a 200 page; returns its first URL."""
    for i in range(length):
        web.add(f"/{name}/{i}", status=302, headers={"Location": f"/{name}/{i + 1}"})
    web.add(f"/{name}/{length}", "end")
    return web.url(f"/{name}/0")


def test_redirects_up_to_the_limit_are_followed(web, client):
    assert client.get(chain(web, "short-chain", FAST.max_redirects)).body == b"end"


def test_too_many_redirects(web, client):
    error = fetch_error(client, chain(web, "long-chain", FAST.max_redirects + 1))
    assert error.error == "too_many_redirects"
    assert f"/long-chain/{FAST.max_redirects + 1}" not in web.requests


@pytest.mark.parametrize("exists", [True, False], ids=["existing-file", "missing-file"])
def test_redirect_to_a_local_file_is_refused_and_says_nothing_of_the_file(web, client, tmp_path, exists):
    secret = tmp_path / "secret.txt"
    if exists:
        secret.write_text("local secret")
    start = web.add(f"/to-file-{exists}", status=302, headers={"Location": secret.as_uri()})
    error = fetch_error(client, start)
    assert (error.error, error.message) == ("refused", "redirect refused: a document from the network may not name local files")


@pytest.mark.parametrize("location", ["ftp://files.example/feed.xml", "gopher://x/1", "javascript:alert(1)"])
def test_redirect_to_another_scheme_is_refused(web, client, location):
    start = web.add("/to-" + location.split(":")[0], status=301, headers={"Location": location})
    error = fetch_error(client, start)
    assert error.error == "refused" and "unsupported URL scheme" in error.message


def test_redirect_to_an_unclosed_ipv6_host_is_an_invalid_url_error(web, client):
    start = web.add("/to-unclosed-ipv6", status=302, headers={"Location": "http://[::1/x"})
    assert fetch_error(client, start).error == "invalid_url"


@pytest.mark.parametrize(
    "url, named_by, allowed",
    [
        ("https://a.example/feed", "http://b.example/", True),
        ("http://a.example/feed", "file:///srv/feeds/home.html", True),
        ("file:///srv/feeds/world.xml", "file:///srv/feeds/home.html", True),
        ("file:///etc/passwd", "http://b.example/", False),
        ("FILE:///etc/passwd", "https://b.example/", False),
        ("ftp://a.example/feed", "http://b.example/", False),
        ("mailto:news@a.example", "file:///srv/feed.xml", False),
    ],
)
def test_named_url_problem_lets_only_local_documents_name_local_files(url, named_by, allowed):
    assert (named_url_problem(url, named_by) is None) == allowed


# Size cap


def test_declared_content_length_over_the_cap(web, client):
    url = web.add("/cap/declared", b"z" * (2 * MB), headers={"Connection": "close"})
    error = fetch_error(client, url)
    assert (error.error, error.http_status) == ("too_large", 200)
    assert "Content-Length" in error.message


def test_body_over_the_cap_without_content_length(web, client):
    web.routes["/cap/streamed"] = Route(handler=open_ended(chunks(40)))
    error = fetch_error(client, web.url("/cap/streamed"))
    assert error.error == "too_large"
    assert "Content-Length" not in error.message


def test_body_under_the_cap_without_content_length(web, client):
    web.routes["/cap/small-stream"] = Route(handler=open_ended(chunks(4)))
    assert len(client.get(web.url("/cap/small-stream")).body) == 4 * 64 * 1024


def test_client_is_usable_after_an_aborted_body(web, client):
    web.routes["/cap/aborted"] = Route(handler=open_ended(chunks(40)))
    after = web.add("/cap/after", "fine")
    assert fetch_error(client, web.url("/cap/aborted")).error == "too_large"
    assert client.get(after).body == b"fine"


def test_gzip_bomb_stops_at_the_cap(web, client):
    # Connection: close, so the server does not wait for a next request on the socket the client aborts.
    url = web.add_gzip("/cap/bomb", bytes(50 * MB), headers={"Connection": "close"})
    assert len(web.routes["/cap/bomb"].body) < MB  # small on the wire, 50 MB decoded
    tracemalloc.start()
    try:
        error = fetch_error(client, url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.error == "too_large"
    assert peak < 8 * MB  # decompressed in bounded steps, never whole


# Timeouts


def test_slow_headers_time_out(web, client):
    url = web.add("/slow/headers", "late", delay=FAST.read_timeout + 0.5)
    error = fetch_error(client, url)
    assert error.error == "timeout" and "timed out" in error.message


def test_trickling_body_times_out_at_the_deadline(web, client):
    web.routes["/slow/body"] = Route(handler=open_ended(lambda w: trickle(w, seconds=FAST.deadline + 3)))
    error = fetch_error(client, web.url("/slow/body"))
    assert error.error == "timeout"
    assert "no complete response within" in error.message  # the deadline, not the per-read timeout


# Connection failures and refused addresses


@pytest.fixture
def closed_port():
    """A port with a socket bound but not listening: connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_refused_connection_is_a_connection_error(client, closed_port):
    assert fetch_error(client, f"http://127.0.0.1:{closed_port}/feed.xml").error == "connection_error"


def test_loopback_is_refused_by_default(web):
    url = web.add("/private/internal", "internal")
    client = HttpClient(FetchSettings(read_timeout=0.5, deadline=2.0))
    try:
        error = fetch_error(client, url)
    finally:
        client.close()
    assert error.error == "private_address"
    assert "/private/internal" not in web.requests


@pytest.mark.parametrize("url", ["http:///feed.xml", "http://news.example.com:99999/feed.xml", "http://[::1/feed.xml"],
                         ids=["no-host", "bad-port", "unclosed-ipv6"])
def test_invalid_url(client, url):
    assert fetch_error(client, url).error == "invalid_url"


# Schemes and files


@pytest.mark.parametrize("url", ["ftp://files.example.com/feed.xml", "news.example.com/feed.xml", "gopher://x/1"])
def test_unsupported_scheme(client, url):
    assert fetch_error(client, url).error == "unsupported_scheme"


def test_file_url_is_read(client, tmp_path):
    path = tmp_path / "feeds" / "world.rss"
    path.parent.mkdir()
    path.write_bytes(b"<rss version='2.0'/>")
    response = client.get(path.as_uri())
    assert (response.status, response.body, response.content_type) == (200, b"<rss version='2.0'/>", "application/rss+xml")
    assert response.final_url == path.as_uri()


def test_file_url_with_an_escaped_space(client, tmp_path):
    path = tmp_path / "my feeds.xml"
    path.write_bytes(b"<rss/>")
    assert "%20" in path.as_uri()
    assert client.get(path.as_uri()).body == b"<rss/>"


def test_missing_file_is_not_found(client, tmp_path):
    assert fetch_error(client, (tmp_path / "missing.xml").as_uri()).error == "not_found"


def test_directory_is_not_found(client, tmp_path):
    assert fetch_error(client, tmp_path.as_uri()).error == "not_found"


def test_file_over_the_cap(client, tmp_path):
    path = tmp_path / "huge.xml"
    path.write_bytes(b"x" * (MB + 1))
    assert fetch_error(client, path.as_uri()).error == "too_large"


# Retries


def retrying_client(sleeps, **settings):
    return HttpClient(FetchSettings(**{**FAST.__dict__, "retries": 3, "backoff": 0.4, **settings}), sleep=sleeps.append)


def test_503_then_success_is_retried_with_growing_backoff(web):
    handler = flaky([(503, {}), (503, {})])
    web.routes["/retry/503"] = Route(handler=handler)
    sleeps = []
    response = retrying_client(sleeps).get(web.url("/retry/503"))
    assert (response.body, response.attempts, len(handler.calls)) == (b"finally", 3, 3)
    # jittered: between half and all of 0.4 s, then of 0.8 s
    assert 0.2 <= sleeps[0] <= 0.4 and 0.4 <= sleeps[1] <= 0.8


def test_429_waits_as_long_as_retry_after_says(web):
    handler = flaky([(429, {"Retry-After": "7"})])
    web.routes["/retry/429"] = Route(handler=handler)
    sleeps = []
    assert retrying_client(sleeps).get(web.url("/retry/429")).body == b"finally"
    assert sleeps == [7.0]


def test_retry_after_beyond_the_bound_gives_up_at_once(web):
    handler = flaky([(429, {"Retry-After": "3600"})])
    web.routes["/retry/toolong"] = Route(handler=handler)
    sleeps = []
    error = fetch_error(retrying_client(sleeps, max_retry_after=60), web.url("/retry/toolong"))
    assert (error.http_status, error.attempts, sleeps, len(handler.calls)) == (429, 1, [], 1)
    assert "Retry-After 3600 s is longer than the 60 s bound" in error.message


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_other_4xx_are_never_retried(web, status):
    handler = flaky([(status, {})] * 5)
    web.routes[f"/retry/{status}"] = Route(handler=handler)
    sleeps = []
    error = fetch_error(retrying_client(sleeps), web.url(f"/retry/{status}"))
    assert (error.http_status, len(handler.calls), sleeps) == (status, 1, [])


def test_persistent_5xx_gives_up_after_the_retries(web):
    handler = flaky([(502, {})] * 10)
    web.routes["/retry/502"] = Route(handler=handler)
    sleeps = []
    error = fetch_error(retrying_client(sleeps, retries=2), web.url("/retry/502"))
    assert (error.http_status, error.attempts, len(handler.calls), len(sleeps)) == (502, 3, 3, 2)


def test_connection_reset_is_retried(web):
    handler = flaky([(0, {})], body=b"after reset")
    web.routes["/retry/reset"] = Route(handler=handler)
    sleeps = []
    response = retrying_client(sleeps).get(web.url("/retry/reset"))
    assert (response.body, len(handler.calls), len(sleeps)) == (b"after reset", 2, 1)


def test_timeout_is_retried(web):
    url = web.add("/retry/slow", "late", delay=FAST.read_timeout + 0.3)
    sleeps = []
    error = fetch_error(retrying_client(sleeps, retries=1), url)
    assert (error.error, error.attempts, len(sleeps)) == ("timeout", 2, 1)
    assert web.requests.count("/retry/slow") == 2


@pytest.mark.parametrize("value, expected", [("120", 120.0), ("0", 0.0), ("soon", None), ("", None), (None, None)])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0  # 07:28:00 + 30 s
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412600.0) == 0.0  # already past


# Address guard (SSRF)


def guarded_client(**settings):
    return HttpClient(FetchSettings(**{**FAST.__dict__, "allow_private_network": False, **settings}))


def test_allowed_network_lets_one_private_range_through(web):
    url = web.add("/guard/mirror", "mirror")
    assert guarded_client(allowed_networks=("127.0.0.1/32",)).get(url).body == b"mirror"


def test_redirect_to_the_metadata_address_is_refused_before_connecting(web):
    url = web.add("/guard/to-metadata", "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    error = fetch_error(guarded_client(allowed_networks=("127.0.0.1/32",)), url)
    assert error.error == "private_address" and "169.254.169.254" in error.message
    assert error.url == url


def test_redirect_to_another_loopback_address_is_refused(web):
    target = web.url("/guard/target").replace("127.0.0.1", "127.0.0.2")
    url = web.add("/guard/to-loopback", "", status=302, headers={"Location": target})
    error = fetch_error(guarded_client(allowed_networks=("127.0.0.1/32",)), url)
    assert error.error == "private_address" and "127.0.0.2" in error.message
    assert "/guard/target" not in web.requests


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.1", "224.0.0.1", "0.0.0.0", "100.64.0.1", "::1", "fe80::1", "::ffff:127.0.0.1"])
def test_guard_refuses_non_public_addresses(address):
    check = address_guard(FetchSettings())
    with pytest.raises(AddressRefused):
        check("host.example", address)


def test_guard_lets_public_addresses_through():
    check = address_guard(FetchSettings())
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        check("host.example", address)
    assert address_guard(FetchSettings(allow_private_network=True)) is None


# Conditional requests


def conditional(etag: str, body: bytes):
    return lambda request: respond_with_etag(request, etag, body)


def test_conditional_request_gets_304_with_an_empty_body(web, client):
    web.routes["/cond/feed"] = Route(handler=conditional('"v1"', b"<rss/>"))
    first = client.get(web.url("/cond/feed"))
    assert (first.status, first.headers["etag"], first.not_modified) == (200, '"v1"', False)
    again = client.get(web.url("/cond/feed"), validators={"etag": first.headers["etag"]})
    assert (again.status, again.body, again.not_modified) == (304, b"", True)


def test_304_to_an_unconditional_request_is_an_error(web, client):
    url = web.add("/cond/bogus", "", status=304)
    assert fetch_error(client, url).error == "http_status"


# Content encodings and charsets


def test_deflate_body_is_decoded_with_or_without_zlib_header(web, client):
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    url_raw = web.add("/enc/raw", raw.compress(b"raw deflate") + raw.flush(), headers={"Content-Encoding": "deflate"})
    url_zlib = web.add("/enc/zlib", zlib.compress(b"zlib deflate"), headers={"Content-Encoding": "deflate"})
    assert client.get(url_raw).body == b"raw deflate"
    assert client.get(url_zlib).body == b"zlib deflate"


def test_unknown_content_encoding_is_an_error(web, client):
    url = web.add("/enc/br", b"\x00\x01", headers={"Content-Encoding": "br"})
    assert fetch_error(client, url).error == "unsupported_encoding"


def test_corrupt_gzip_is_a_decode_error(web, client):
    url = web.add("/enc/corrupt", b"\x1f\x8b\x08\x00garbage-not-gzip", headers={"Content-Encoding": "gzip"})
    assert fetch_error(client, url).error == "decode_error"


@pytest.mark.parametrize(
    "body, content_type, text, encoding",
    [
        ("<p>café</p>".encode("cp1252"), "text/html; charset=windows-1252", "<p>café</p>", "cp1252"),
        ('<meta charset="iso-8859-1"><p>café</p>'.encode("latin-1"), "text/html", '<meta charset="iso-8859-1"><p>café</p>', "cp1252"),
        ("<p>naïve</p>".encode("utf-8"), "text/html; charset=no-such-codec", "<p>naïve</p>", "utf-8"),
        (b"\xef\xbb\xbf<p>bom</p>", "text/html; charset=latin-1", "<p>bom</p>", "utf-8"),
        ("<p>Größe</p>".encode("utf-8") + b"\xff", "text/html; charset=utf-8", "<p>Größe</p>\ufffd", "utf-8"),
    ],
    ids=["header", "meta", "bad-label-detected", "bom-wins", "invalid-utf8-replaced"],
)
def test_decode_html_picks_the_charset(body, content_type, text, encoding):
    assert decode_html(body, content_type) == (text, encoding)


def test_decode_html_detects_a_legacy_encoding_without_any_label():
    body = ("<p>Die Straße über den Fluß wird wegen Bauarbeiten für drei Wochen gesperrt, sagte der Bürgermeister.</p>" * 3).encode("cp1252")
    text, encoding = decode_html(body)
    assert "Straße über den Fluß" in text and encoding != "utf-8"
