"""Hostile feeds, one whole `newsbeam run` (issue 14): no feed can crash a run or read our files.

A loopback web serves a homepage announcing a file:// feed (a real local feed, with titles of its
own), another announcing a file that does not exist, a sitemap index listing file:// sitemaps, a
feed that redirects to the local feed, an item link that redirects to file:///etc/passwd, a JSON
Feed with a lone surrogate in its titles, an RSS feed with `&#xD800;` in one title among 28 good
items, and items linking `http://[::1/x` and a port out of range; the feed list has a line
`https://[::1`. The run must complete; nothing local may be read on a network document's word,
and no error may say whether a local file exists; every entry must end as an article or an error
row, and the manifest's links must balance.
"""

from __future__ import annotations

import json
import random
import re

import pandas as pd
import pytest

from newsbeam.pipeline.cli import main
from newsbeam.transforms.errors import FEED_STAGES
from newsweb import article_page, body_paragraphs, rss

SECRET = "LOCAL SECRET TITLE"
REFUSED = "a document from the network may not name local files"
GOOD_ITEMS = 28
VOCABULARY = sorted({w for i in range(8) for w in re.findall(r"[a-z]+", " ".join(body_paragraphs(i)).lower()) if len(w) > 3})


def unique_paragraphs(seed: int) -> list[str]:
    """Four paragraphs no other page shares a line or a phrase of (so none is a copy or learned chrome)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(32)).capitalize() + "." for _ in range(4)]


def local_rss(web, prefix: str, n: int = 3) -> str:
    """A feed as a local file would hold it: secret titles, linking pages the loopback web really serves."""
    items = [{"title": f"{SECRET} {prefix} {i}", "link": web.add(f"/local/{prefix}-{i}.html", page(f"{SECRET} {i}", 900 + i))}
             for i in range(n)]
    return rss("Local only", items)


def page(title: str, seed: int) -> str:
    return article_page(title, unique_paragraphs(seed), f"https://hostile.example/{seed}", "Hostile Herald")


def news_sitemap(items: list[tuple[str, str]]) -> str:
    urls = "".join(f"<url><loc>{link}</loc><news:news><news:publication><news:name>Hostile</news:name>"
                   f"<news:language>en</news:language></news:publication><news:title>{title}</news:title>"
                   "<news:publication_date>2026-11-21T09:00:00Z</news:publication_date></news:news></url>"
                   for title, link in items)
    return ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>')


def homepage(feed_href: str) -> str:
    return (f'<!doctype html><html><head><title>Home</title><link rel="alternate" type="application/rss+xml" href="{feed_href}">'
            "</head><body><p>Welcome</p></body></html>")


@pytest.fixture(scope="module")
def hostile(module_web, tmp_path_factory):
    web = module_web
    folder = tmp_path_factory.mktemp("hostile")
    local = folder / "local"
    local.mkdir()
    (local / "feed.xml").write_text(local_rss(web, "feed"), encoding="utf-8")
    (local / "sitemap.xml").write_text(news_sitemap([(f"{SECRET} sitemap", web.add("/local/sitemap-0.html", page(SECRET, 950)))]),
                                       encoding="utf-8")
    missing = local / "missing.xml"

    home_local = web.add("/h/home-local.html", homepage((local / "feed.xml").as_uri()))
    home_missing = web.add("/h/home-missing.html", homepage(missing.as_uri()))
    remote_sitemap = web.add("/h/sitemap.xml", news_sitemap([("Sitemap story", web.add("/h/sitemap-story.html", page("Sitemap story", 1)))]),
                             content_type="application/xml")
    index = web.add("/h/index.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                    + "".join(f"<sitemap><loc>{loc}</loc></sitemap>"
                              for loc in ((local / "sitemap.xml").as_uri(), "file:///etc/shadow", remote_sitemap))
                    + "</sitemapindex>", content_type="application/xml")
    redirected_feed = web.add("/h/feed-to-file.xml", status=302, headers={"Location": (local / "feed.xml").as_uri()})

    good_link = web.add("/h/links-good.html", page("A good story", 2))
    to_passwd = web.add("/h/to-passwd.html", status=302, headers={"Location": "file:///etc/passwd"})
    links = web.add("/h/links.xml", rss("Hostile links", [
        {"title": "Good", "link": good_link},
        {"title": "To passwd", "link": to_passwd},
        {"title": "Unclosed IPv6", "link": "http://[::1/x"},
        {"title": "Bad port", "link": "http://127.0.0.1:99999/x"},
    ]), content_type="application/rss+xml")

    json_links = [web.add(f"/h/json-{i}.html", page(f"JSON story {i}", 10 + i)) for i in range(3)]
    json_feed = ('{"version": "https://jsonfeed.org/version/1.1", "title": "Surrogate \\ud800 Wire", "items": ['
                 f'{{"url": "{json_links[0]}", "title": "Lone \\ud800 surrogate", "summary": "half \\udc00 a pair",'
                 ' "authors": [{"name": "Ann \\udbff Lee"}]},'
                 f'{{"url": "{json_links[1]}", "title": "Fine JSON story"}},'
                 f'{{"url": "{json_links[2]}", "title": "Another \\udfff one"}}]}}')
    surrogate = web.add("/h/surrogate.json", json_feed, content_type="application/feed+json")

    rss_items = [{"title": f"Good item {i}", "link": web.add(f"/h/good-{i}.html", page(f"Good item {i}", 100 + i))}
                 for i in range(GOOD_ITEMS)]
    rss_items.insert(11, {"title": "Broken &#xD800; title", "link": web.add("/h/broken-title.html", page("Broken title", 99))})
    charref = web.add("/h/charref.xml", rss("Charref Times", rss_items), content_type="application/rss+xml")

    feeds = folder / "feeds.txt"
    feeds.write_text("\n".join([home_local, home_missing, index, redirected_feed, links, surrogate, charref, "https://[::1"]) + "\n")
    out = folder / "data"
    code = main(["run", "--feeds", str(feeds), "--out", str(out), "--run-id", "hostile", "--quiet", "--allow-private-network",
                 "--host-delay", "0", "--retries", "0", "--connect-timeout", "2", "--read-timeout", "2", "--deadline", "5"])
    manifest_path = out / "runs" / "hostile.json"
    return {
        "code": code, "out": out, "web": web, "local": local, "missing": missing,
        "manifest": json.loads(manifest_path.read_text()) if manifest_path.exists() else None,
        "home_local": home_local, "home_missing": home_missing, "index": index, "redirected_feed": redirected_feed,
        "links": links, "good_link": good_link, "to_passwd": to_passwd, "surrogate": surrogate, "json_links": json_links,
        "charref": charref, "rss_items": rss_items,
    }


def table(hostile, name: str) -> pd.DataFrame:
    return pd.read_parquet(hostile["out"] / name)


def rows_of(errors: pd.DataFrame, column: str, value: str) -> list[tuple]:
    return [tuple(r) for r in errors[errors[column] == value][["stage", "error", "message"]].itertuples(index=False)]


def test_the_run_completes(hostile):
    assert hostile["code"] == 0
    assert hostile["manifest"]["status"] == "complete"


def test_the_bad_feed_list_line_is_an_invalid_feed_row(hostile):
    errors = table(hostile, "errors")
    assert rows_of(errors, "feed_url", "https://[::1") == [("read_sources", "invalid_feed", "invalid URL: Invalid IPv6 URL")]


def test_no_local_file_named_by_the_network_is_read(hostile):
    articles, errors = table(hostile, "articles"), table(hostile, "errors")
    local_files = [hostile["local"] / "feed.xml", hostile["local"] / "sitemap.xml"]
    assert not articles.title.str.contains(SECRET).any()
    assert not [path for path in hostile["web"].requests if path.startswith("/local/")], "a local file's links were followed"
    contents = [line for path in local_files for line in path.read_text().split("<") if SECRET in line]
    for message in errors.message:
        assert SECRET not in message and not any(line in message for line in contents)


def test_errors_do_not_say_whether_a_local_file_exists(hostile):
    errors = table(hostile, "errors")
    announced = f"an HTML page announcing no feed that may be read: {REFUSED}"
    assert rows_of(errors, "feed_url", hostile["home_local"]) == [("parse_feed", "not_a_feed", announced)]
    assert rows_of(errors, "feed_url", hostile["home_missing"]) == [("parse_feed", "not_a_feed", announced)]
    for message in errors.message:
        assert "no such file" not in message.lower() and "permission" not in message.lower() and "root:" not in message


def test_a_sitemap_index_keeps_its_http_sitemaps_and_skips_its_local_ones(hostile):
    articles, errors = table(hostile, "articles"), table(hostile, "errors")
    assert hostile["index"] not in set(errors.feed_url)
    assert list(articles[articles.feed_url == hostile["index"]].title) == ["Sitemap story"]


def test_redirects_to_local_files_are_refused(hostile):
    errors = table(hostile, "errors")
    assert rows_of(errors, "feed_url", hostile["redirected_feed"]) == [("fetch_feed", "refused", f"redirect refused: {REFUSED}")]
    assert rows_of(errors, "url", hostile["to_passwd"]) == [("fetch_page", "refused", f"redirect refused: {REFUSED}")]


def test_links_that_are_no_urls_fail_only_their_entries(hostile):
    articles, errors = table(hostile, "articles"), table(hostile, "errors")
    assert list(articles[articles.feed_url == hostile["links"]].url) == [hostile["good_link"]]
    assert rows_of(errors, "url", "http://[::1/x") == [("feed_entry", "invalid_url", "invalid URL: Invalid IPv6 URL")]
    assert rows_of(errors, "url", "http://127.0.0.1:99999/x") == [("feed_entry", "invalid_url", "invalid URL: Port out of range 0-65535")]


def test_a_lone_surrogate_costs_one_character_not_the_feed(hostile):
    articles = table(hostile, "articles").set_index("url")
    assert sorted(articles.loc[hostile["json_links"]].title) == ["Another \ufffd one", "Fine JSON story", "Lone \ufffd surrogate"]
    first = articles.loc[hostile["json_links"][0]]
    assert first.summary == "half \ufffd a pair" and list(first.authors) == ["Ann \ufffd Lee"]
    assert set(articles.loc[hostile["json_links"]].source) == {"Surrogate \ufffd Wire"}


def test_a_reference_to_no_character_costs_one_character_not_the_other_28_items(hostile):
    articles, errors = table(hostile, "articles"), table(hostile, "errors")
    kept = articles[articles.feed_url == hostile["charref"]].set_index("url")
    good = [item["link"] for item in hostile["rss_items"] if item["title"].startswith("Good item")]
    assert len(good) == GOOD_ITEMS and set(good) <= set(kept.index)
    broken = hostile["rss_items"][11]["link"]
    assert kept.loc[broken].title == "Broken \ufffd title"
    assert not len(errors[errors.feed_url == hostile["charref"]])


def test_every_link_is_accounted_for(hostile):
    articles, errors = table(hostile, "articles"), table(hostile, "errors")
    entry_errors = errors[~errors.stage.isin(FEED_STAGES)]
    assert len(articles) == 1 + 1 + 3 + GOOD_ITEMS + 1 and len(entry_errors) == 3  # and no duplicates: every page is its own
    assert hostile["manifest"]["links"] == {"discovered": len(articles) + len(entry_errors), "articles": len(articles),
                                            "duplicates": 0, "errors": len(entry_errors), "already_stored": 0, "balanced": True}
