"""HttpClient against a real loopback server (conftest.py's LoopbackWeb) and the local file system."""

from __future__ import annotations

import socket
import time
import tracemalloc

import pytest

from conftest import Route
from newsbeam.transforms.http import FetchError, FetchSettings, HttpClient

MB = 1024 * 1024
# Loopback is a private address; these tests opt in the way a local mirror would.
FAST = FetchSettings(connect_timeout=1.0, read_timeout=0.5, deadline=2.0, max_bytes=MB, max_redirects=3, allow_private_network=True)


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


def open_ended(write):
    """A route handler: headers without Content-Length, then `write(wfile)`, then close."""

    def handler(request):
        request.close_connection = True
        try:
            request.send_response(200)
            request.send_header("Content-Type", "text/plain")
            request.end_headers()
            write(request.wfile)
        except (BrokenPipeError, ConnectionResetError):
            pass

    return handler


def chunks(count, size=64 * 1024):
    return lambda wfile: [wfile.write(b"y" * size) for _ in range(count)]


def trickle(wfile, seconds, every=0.2):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        wfile.write(b"x")
        wfile.flush()
        time.sleep(every)


def echo_header(name):
    def handler(request):
        body = (request.headers.get(name) or "").encode()
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler


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


def test_redirect_to_a_local_file_is_not_read(web, client, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("local secret")
    start = web.add("/to-file", status=302, headers={"Location": secret.as_uri()})
    assert fetch_error(client, start).error in ("invalid_url", "unsupported_scheme")


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


@pytest.mark.parametrize("url", ["http:///feed.xml", "http://news.example.com:99999/feed.xml"], ids=["no-host", "bad-port"])
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
