"""Polling feeds across runs on DirectRunner: conditional GET answered with 304s, feeds that change,
homepages with autodiscovery, news sitemaps and JSON Feed, robots.txt, and `newsbeam feeds DIR`."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from conftest import Route, respond_with_etag
from newsbeam.pipeline.cli import main
from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, body_paragraphs, rss

LOCAL = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, allow_private_network=True, retries=1, backoff=0.05, host_delay=0)


class ETagFeed:
    """A feed route that honours If-None-Match, and records what each request sent."""

    def __init__(self, web, path: str, title: str):
        self.web, self.path, self.title = web, path, title
        self.items: list[dict] = []
        self.seen: list[str | None] = []
        web.routes[path] = Route(handler=self.handle)

    @property
    def url(self):
        return self.web.url(self.path)

    def add_story(self, i: int) -> str:
        link = self.web.add(f"/etag/story-{i}.html", article_page(f"Story {i}", body_paragraphs(i), f"https://e.example/{i}", "Etag Times"))
        self.items.append({"title": f"Story {i}", "link": link})
        return link

    def handle(self, request):
        body = rss(self.title, self.items).encode()
        self.seen.append(request.headers.get("If-None-Match"))
        respond_with_etag(request, '"' + hashlib.sha1(body).hexdigest()[:12] + '"', body, {"Content-Type": "application/rss+xml"})


def run(feeds_file, out, run_id, settings=LOCAL):
    config = RunConfig(feeds=read_sources(str(feeds_file)), feeds_location=str(feeds_file), out=str(out), run_id=run_id, fetch=settings)
    return run_job(config)


def test_second_run_is_answered_with_304_and_a_changed_feed_brings_only_its_new_story(web, tmp_path):
    feed = ETagFeed(web, "/etag/feed.xml", "Etag Times")
    for i in range(3):
        feed.add_story(i)
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text(feed.url + "\n")
    out = tmp_path / "data"

    first = run(feeds_file, out, "r1")
    assert first["links"]["articles"] == 3 and first["counts"]["feeds_ok"] == 1

    pages_before = sum(path.startswith("/etag/story-") for path in web.requests)
    second = run(feeds_file, out, "r2")
    assert second["counts"]["feeds_not_modified"] == 1 and "feeds_ok" not in second["counts"]
    assert feed.seen[-1] is not None  # the poll carried the ETag of the first run's response
    assert second["links"]["discovered"] == 0
    assert sum(path.startswith("/etag/story-") for path in web.requests) == pages_before  # no page fetched again
    assert second["feed_health"]["by_status"] == {"not_modified": 1}

    new_link = feed.add_story(3)
    third = run(feeds_file, out, "r3")
    assert third["counts"]["feeds_ok"] == 1
    assert (third["links"]["discovered"], third["links"]["articles"], third["links"]["already_stored"]) == (4, 1, 3)
    articles = pd.read_parquet(out / "articles")
    assert len(articles) == 4 and (articles.url == new_link).sum() == 1


def test_homepage_sitemap_and_json_feed_sources(web, tmp_path):
    story = lambda i, site: web.add(f"/{site}/s{i}.html", article_page(f"{site} story {i}", body_paragraphs(i), f"https://{site}.example/{i}", site))
    # A homepage that announces its feed.
    feed_url = web.add("/home/rss.xml", rss("Home Herald", [{"title": "H", "link": story(0, "home")}]), content_type="application/rss+xml")
    homepage = web.add("/home/", f'<!doctype html><html><head><link rel="alternate" type="application/rss+xml" href="{feed_url}">'
                                 "</head><body><p>Welcome</p></body></html>")
    # A news sitemap behind a sitemap index.
    sitemap = web.add("/map/news.xml", f"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{story(1, "map")}</loc><news:news><news:publication><news:name>Map Post</news:name><news:language>en</news:language>
</news:publication><news:publication_date>2026-11-24T06:30:00+01:00</news:publication_date><news:title>Map story</news:title></news:news></url>
</urlset>""", content_type="application/xml")
    index = web.add("/map/index.xml", f"""<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{sitemap}</loc><lastmod>2026-11-24</lastmod></sitemap></sitemapindex>""", content_type="application/xml")
    # A JSON Feed.
    json_feed = web.add("/json/feed.json", json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Json Journal",
                        "items": [{"id": "j2", "url": story(2, "json"), "title": "Json story", "date_published": "2026-11-24T08:00:00Z"}]}),
                        content_type="application/feed+json")
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text("\n".join([homepage, index, json_feed]) + "\n")
    out = tmp_path / "data"
    manifest = run(feeds_file, out, "sources")
    assert manifest["links"]["articles"] == 3, manifest["counts"]
    articles = pd.read_parquet(out / "articles").set_index("source")
    assert set(articles.index) == {"Home Herald", "Map Post", "Json Journal"}
    assert articles.loc["Map Post", "feed_url"] == index
    assert articles.loc["Home Herald", "feed_url"] == homepage
    states = {row["feed_url"]: row for row in pd.read_parquet(out / "_state" / "feeds").to_dict("records")}
    assert states[homepage]["discovered_url"] == feed_url
    # The next run polls the discovered feed directly, not the homepage.
    home_hits = web.requests.count("/home/")
    run(feeds_file, out, "sources-2")
    assert web.requests.count("/home/") == home_hits


def test_robots_txt_is_obeyed_for_article_pages_unless_told_not_to(web, tmp_path):
    allowed = web.add("/site/news/open.html", article_page("Open", body_paragraphs(1), "https://s.example/open", "Site"))
    blocked = web.add("/site/private/closed.html", article_page("Closed", body_paragraphs(2), "https://s.example/closed", "Site"))
    web.add("/robots.txt", "User-agent: *\nDisallow: /site/private/\n", content_type="text/plain")
    feed = web.add("/site/feed.xml", rss("Site", [{"title": "Open", "link": allowed}, {"title": "Closed", "link": blocked}]),
                   content_type="application/rss+xml")
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text(feed + "\n")
    manifest = run(feeds_file, tmp_path / "data", "robots")
    errors = pd.read_parquet(tmp_path / "data" / "errors")
    assert manifest["links"]["articles"] == 1
    assert list(errors.query("url == @blocked").error) == ["robots_disallowed"]
    assert "/site/private/closed.html" not in web.requests
    assert web.requests.count("/robots.txt") == 1

    ignoring = run(feeds_file, tmp_path / "data2", "ignoring", FetchSettings(**{**LOCAL.__dict__, "obey_robots": False}))
    assert ignoring["links"]["articles"] == 2


def test_feeds_command_shows_health(web, tmp_path, capsys):
    good = web.add("/h/feed.xml", rss("Good", []), content_type="application/rss+xml")
    bad = web.url("/h/gone.xml")
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text(f"{good}\n{bad}\n")
    run(feeds_file, tmp_path / "data", "health")
    assert main(["feeds", str(tmp_path / "data")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["status", "failures"] and lines[0].endswith("feed")
    assert lines[1].startswith("failed") and lines[1].endswith(bad)  # failing feeds first, URLs whole
    assert lines[2].strip() == "last error: http_status: HTTP 404"
    assert lines[3].startswith("ok") and lines[3].endswith(good)
    assert lines[-1] == "2 feeds, 1 failing"
    assert main(["feeds", str(tmp_path / "data"), "--failing", "--json"]) == 1  # a failing feed: a scheduler can alert
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["feed_url"], r["consecutive_failures"]) for r in rows] == [(bad, 1)]

    assert main(["feeds", str(tmp_path / "data"), "--opml"]) == 0
    (tmp_path / "back.opml").write_text(capsys.readouterr().out)
    assert sorted(f["url"] for f in read_sources(str(tmp_path / "back.opml"))) == sorted([good, bad])  # the round trip

    healthy = tmp_path / "healthy.txt"
    healthy.write_text(f"{good}\n")
    run(healthy, tmp_path / "healthy", "healthy")
    assert main(["feeds", str(tmp_path / "healthy"), "--failing"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 feeds, 0 failing"


def test_feeds_command_on_a_folder_without_state_is_one_line(tmp_path, capsys):
    assert main(["feeds", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("newsbeam: error: no feed state in")
