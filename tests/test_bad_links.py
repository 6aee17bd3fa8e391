"""Links no one can fetch as written (a port out of range or not a number) are error rows, not the end of the run."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from newsbeam.transforms.errors import ERRORS
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.pages import FetchPages
from newsbeam.transforms.stored import stored_keys
from newsweb import article_page, body_paragraphs, rss
from test_pipeline import read, run

BAD = {"http://127.0.0.1:99999/a": "Port out of range", "http://127.0.0.1:abc/b": "Port could not be cast"}


def serve_feed(web, goods: list[int]) -> list[str]:
    """The feed at /feed.xml: the good articles `goods` with the bad links among them; returns the good links."""
    links = [web.add(f"/good-{i}.html", article_page(f"Good story {i}", body_paragraphs(i), f"https://good.example/{i}", "Link Post"))
             for i in goods]
    items = [{"title": f"Item {n}", "link": link} for n, link in enumerate([links[0], *BAD, *links[1:]])]
    web.add("/feed.xml", rss("Link Post", items), content_type="application/rss+xml")
    return links


def test_bad_links_are_error_rows_and_the_run_and_the_next_one_complete(web, tmp_path):
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(web.url("/feed.xml") + "\n")
    out = tmp_path / "data"
    goods = serve_feed(web, [1, 2])
    first = run(feeds, out, "first")
    assert sorted(read(out, "articles").url) == sorted(goods)
    errors = read(out, "errors")
    assert sorted(errors.url) == sorted(BAD)
    # Feed parsing may refuse them already; if it lets them through, FetchPages' keying does.
    assert set(errors.stage) <= {"feed_entry", "fetch_page"} and set(errors.error) == {"invalid_url"}
    for url, why in BAD.items():
        assert why in errors.set_index("url").message[url]
    assert first["links"] == {"discovered": 4, "articles": 2, "duplicates": 0, "errors": 2, "already_stored": 0, "balanced": True}

    # The feed changes: its bad links come again, beside the stored articles and a new one.
    goods = serve_feed(web, [1, 2, 3])
    second = run(feeds, out, "second")
    assert sorted(read(out, "articles").url) == sorted(goods)
    assert sorted(read(out, "errors").url) == sorted([*BAD, *BAD])
    assert second["links"] == {"discovered": 5, "articles": 1, "duplicates": 0, "errors": 2, "already_stored": 2, "balanced": True}


def test_fetch_pages_gives_links_it_cannot_fetch_as_error_rows_and_fetches_the_rest(web):
    good = web.add("/good.html", article_page("Good story", body_paragraphs(1), "https://good.example/1", "Link Post"))
    bad = [*BAD, "http://[::1/x", "http:///no-host", "http://127.0.0.1:0/c"]
    entries = [{"link": link, "feed_url": web.url("/feed.xml"), "title": link} for link in [good, *bad]]
    settings = FetchSettings(allow_private_network=True, host_delay=0, retries=0, read_timeout=5, deadline=10)
    p = beam.Pipeline(runner="DirectRunner")
    fetched = p | beam.Create(entries) | FetchPages(settings, beam.pvalue.AsDict(p | "Stored" >> beam.Create([])))
    assert_that(fetched["pages"] | "Urls" >> beam.Map(lambda page: page["url"]), equal_to([good]), label="Pages")
    errors = fetched[ERRORS] | "Kinds" >> beam.Map(lambda row: (row["url"], row["stage"], row["error"]))
    assert_that(errors, equal_to([(link, "fetch_page", "invalid_url") for link in bad]), label="Errors")
    result = p.run()
    result.wait_until_finish()
    counted = result.metrics().query(MetricsFilter().with_name("entry_errors"))["counters"]
    assert sum(c.committed for c in counted) == len(bad)  # counted as entry errors, as the link accounting needs


def test_stored_keys_take_odd_stored_urls():
    articles = [{"url": "http://[::1/x", "canonical_url": "http://host:abc/y", "article_id": "a1", "content_hash": "h1"},
                {"url": "http://host:99999/z", "canonical_url": "", "article_id": "a2", "content_hash": "h2"}]
    duplicates = [{"url": "http://[not-an-ip]/d", "canonical_url": None, "duplicate_of": "a1"}]
    assert stored_keys(articles, duplicates) == {
        ("link", "http://[::1/x"): "a1", ("link", "http://host:abc/y"): "a1", ("link", "http://host:99999/z"): "a2",
        ("link", "http://[not-an-ip]/d"): "a1", ("text", "h1"): "a1", ("text", "h2"): "a2"}
