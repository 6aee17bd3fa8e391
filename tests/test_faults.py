"""Fault injection: a hostile loopback web, one whole `newsbeam run` in a child process.

Slow headers, a body that never ends, connection resets, 429 with Retry-After, 503 then success,
a redirect loop, a redirect to the cloud metadata address, a gzip bomb, a 50 MB page, a PDF, invalid
UTF-8, malformed XML and an XML entity-expansion bomb. The run must finish, every link must end in
articles or in errors with its reason, and the child's peak memory must stay far below what an
unbounded read of the bomb or the big page would take.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib

import pandas as pd
import pytest

from conftest import Route, flaky, open_ended, reset_connection
from newsweb import article_page, body_paragraphs, rss

MB = 1024 * 1024
BOMB_BYTES = 1024 * MB  # decoded size of the gzip bomb; ~4.6 MB on the wire
MEMORY_BOUND = 700 * MB  # the child's peak RSS; a Beam run on this sample peaks near 300 MB


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    return b"".join([packer.compress(zeros) for _ in range(size // MB)] + [packer.flush()])


def entity_bomb_feed(link: str) -> str:
    entities = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{i} "{("&e%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]><rss version="2.0"><channel><title>&e9;</title>'
            f"<item><title>Laughs</title><link>{link}</link></item></channel></rss>")


def endless(wfile):
    for _ in range(600):
        wfile.write(b"<p>still going</p>")
        wfile.flush()
        time.sleep(0.1)


def huge(wfile):
    wfile.write(b"<html><body>")
    for _ in range(50):
        wfile.write(b"<p>" + b"x" * (MB - 7) + b"</p>")


@pytest.fixture(scope="module")
def hostile_run(module_web, tmp_path_factory):
    web = module_web
    folder = tmp_path_factory.mktemp("faults")
    page = lambda i: article_page(f"Fault story {i}", body_paragraphs(i), f"https://f.example/{i}", "Fault Gazette")
    expect = {}  # link -> "article" or the error kind

    def link(path, outcome, **route):
        web.routes[path] = Route(**route)
        expect[web.url(path)] = outcome
        return web.url(path)

    link("/f/ok.html", "article", body=page(0).encode())
    link("/f/slow-headers.html", "timeout", body=page(1).encode(), delay=2.5)
    link("/f/slow-body.html", "timeout", handler=open_ended(endless, "text/html"))
    link("/f/reset.html", "connection_error", handler=reset_connection)
    link("/f/429.html", "article", handler=flaky([(429, {"Retry-After": "1"})], page(2).encode()))
    link("/f/503.html", "article", handler=flaky([(503, {})], page(3).encode()))
    link("/f/loop-a.html", "redirect_loop", status=302, headers={"Location": "/f/loop-b.html"})
    web.routes["/f/loop-b.html"] = Route(status=302, headers={"Location": "/f/loop-a.html"})
    link("/f/metadata.html", "private_address", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    link("/f/bomb.html", "too_large", body=gzip_bomb(BOMB_BYTES), headers={"Content-Encoding": "gzip", "Connection": "close"})
    link("/f/huge.html", "too_large", handler=open_ended(huge, "text/html"))
    link("/f/report.pdf", "unsupported_content_type", body=b"%PDF-1.7 " + os.urandom(2048), content_type="application/pdf")
    bad_utf8 = page(4).replace("</article>", "<p>Broken byte here: \x00MARK</p></article>").encode().replace(b"\x00MARK", b"\xff\xfe!")
    link("/f/bad-utf8.html", "article", body=bad_utf8)
    laughs = link("/f/laughs-story.html", "article", body=page(5).encode())

    main = web.add("/f/feed.xml", rss("Fault Gazette", [{"title": f"item {i}", "link": url} for i, url in enumerate(expect) if url != laughs]),
                   content_type="application/rss+xml")
    malformed = web.add("/f/malformed.xml", "<?xml version='1.0'?><rss version='2.0'><channel><title>Cut", content_type="application/rss+xml")
    laughing = web.add("/f/laughs.xml", entity_bomb_feed(laughs), content_type="application/rss+xml")
    feeds = folder / "feeds.txt"
    feeds.write_text(f"{main}\n{malformed}\n{laughing}\n")
    out = folder / "data"
    command = [sys.executable, "-m", "newsbeam.pipeline.cli", "run", "--feeds", str(feeds), "--out", str(out), "--quiet",
               "--allow-network", "127.0.0.1/32", "--host-delay", "0", "--retries", "2",
               "--connect-timeout", "1", "--read-timeout", "1", "--deadline", "4"]
    with open(folder / "stdout", "wb") as stdout, open(folder / "stderr", "wb") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.2)
        else:
            child.kill()
            pytest.fail("newsbeam run hung on the hostile web")
    child.returncode = os.waitstatus_to_exitcode(status)
    return {"out": out, "expect": expect, "returncode": child.returncode, "peak_rss": usage.ru_maxrss * 1024,
            "stdout": (folder / "stdout").read_text(), "stderr": (folder / "stderr").read_text(),
            "malformed": malformed, "laughing": laughing}


def test_the_run_finishes_and_says_so(hostile_run):
    assert hostile_run["returncode"] == 0, hostile_run["stderr"]
    assert "complete" in hostile_run["stdout"] and "manifest:" in hostile_run["stdout"]


def test_every_link_ends_in_articles_or_errors_with_its_reason(hostile_run):
    out = hostile_run["out"]
    articles, errors = pd.read_parquet(out / "articles"), pd.read_parquet(out / "errors")
    for url, outcome in hostile_run["expect"].items():
        if outcome == "article":
            assert (articles.url == url).sum() == 1, (url, errors[errors.url == url].to_dict("records"))
        else:
            rows = errors[errors.url == url]
            assert list(rows.error) == [outcome], (url, rows.to_dict("records"))
            assert list(rows.stage) == ["fetch_page"]


def test_feeds_that_are_not_readable_are_error_rows(hostile_run):
    errors = pd.read_parquet(hostile_run["out"] / "errors")
    assert list(errors[errors.feed_url == hostile_run["malformed"]].stage) == ["parse_feed"]
    # The entity bomb is stopped by the XML parser's amplification limit; the feed's one item still gets through.
    assert hostile_run["laughing"] not in set(errors.feed_url)


def test_invalid_utf8_is_replaced_not_fatal(hostile_run):
    articles = pd.read_parquet(hostile_run["out"] / "articles")
    text = articles[articles.url.str.endswith("/f/bad-utf8.html")].text.iloc[0]
    assert "Broken byte here: \ufffd" in text


def test_memory_stays_bounded(hostile_run):
    # Reading the bomb or the big page whole would take well over a gigabyte.
    assert hostile_run["peak_rss"] < MEMORY_BOUND, f"peak RSS {hostile_run['peak_rss'] / MB:.0f} MB"
