"""The streaming job on DirectRunner: polls driven by a TestStream of ticks, a real loopback web.

TestStream stands in for the PeriodicImpulse that drives the job on Dataflow (Beam 2.77's
local runner held PeriodicImpulse's watermark until the last tick, so every window closed at
the end); everything after the ticks is the job as it is submitted. The runner finishes each tick's work before the next tick, so
the feeds' versions follow the polls. The figures checked are the windows' manifests: this
runner reported each Beam counter as of one bundle (`feeds_listed` 1 after three polls).
"""

from __future__ import annotations

import json
from datetime import timedelta

import apache_beam as beam
import pandas as pd
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_stream
from apache_beam.transforms.window import TimestampedValue

from conftest import Route, respond_with_etag
from newsbeam.pipeline.cli import main
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.extract_cmd import clean_pages
from newsbeam.pipeline.streaming import build_streaming
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.normalise import article_id, canonical_url
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, body_paragraphs, rss
from test_stored import commit_keys

POLL = 60.0  # seconds between ticks, in event time (the test does not wait for them)
T0 = 1_790_000_000.0  # the first tick, 2026-09-21 UTC


class VersionedFeed:
    """A feed that serves its next version on each poll (the last one from then on), with an ETag per version."""

    def __init__(self, web, path: str, versions: list[list[dict]]):
        self.versions, self.polls = versions, 0
        self.url = web.url(path)
        web.routes[path] = Route(handler=self.handle)

    def handle(self, request):
        version = min(self.polls, len(self.versions) - 1)
        self.polls += 1
        respond_with_etag(request, f'"v{version}"', rss("Versioned", self.versions[version]).encode(),
                          {"Content-Type": "application/rss+xml"})


def story(web, path: str, i: int, canonical: str | None = None) -> dict:
    canonical = canonical or web.url(path)
    link = web.add(path, article_page(f"Story {i}", body_paragraphs(i), canonical, "Stream Post"))
    return {"title": f"Story {i}", "link": link}


def run_stream_job(tmp_path, feeds: list[str], ticks: list[float], remember: timedelta, stored: StoredState = StoredState()):
    listed = tmp_path / "feeds.txt"
    listed.write_text("\n".join(feeds) + "\n")
    out = tmp_path / "data"
    out.mkdir(exist_ok=True)
    config = RunConfig(feeds=read_sources(str(listed)), feeds_location=str(listed), out=str(out), run_id="s",
                       fetch=FetchSettings(allow_private_network=True, host_delay=0, retries=0, read_timeout=5, deadline=10))
    events = test_stream.TestStream()
    for tick in ticks:
        events = events.advance_watermark_to(tick).add_elements([TimestampedValue(tick, tick)])
    events = events.advance_watermark_to_infinity()
    p = beam.Pipeline(runner="DirectRunner", options=PipelineOptions(["--streaming"]))
    build_streaming(p, config, stored, p | "Ticks" >> events, T0, POLL, remember)
    result = p.run()
    result.wait_until_finish()
    manifests = sorted((json.loads(path.read_text()) for path in (out / "runs").glob("s-w*.json")),
                       key=lambda m: m["window"]["start"])
    return out, manifests


@pytest.fixture
def growing(web):
    """Feed A gains a story on its second poll, then stays the same (304s); feed C gains, on its second
    poll, a copy of A's first story under another URL."""
    first, second = story(web, "/a/one.html", 1), story(web, "/a/two.html", 2)
    copy = story(web, "/c/copy-of-one.html", 1)
    third = story(web, "/c/three.html", 3)
    a = VersionedFeed(web, "/a/feed.xml", [[first], [first, second]])
    c = VersionedFeed(web, "/c/feed.xml", [[third], [third, copy]])
    return a, c


def test_each_poll_window_writes_new_articles_once_and_copies_of_earlier_polls_as_duplicates(web, tmp_path, growing):
    a, c = growing
    out, manifests = run_stream_job(tmp_path, [a.url, c.url], [T0, T0 + POLL, T0 + 2 * POLL], timedelta(days=1))
    assert a.polls == c.polls == 3

    articles = pd.read_parquet(out / "articles")
    assert sorted(articles.title) == ["Story 1", "Story 2", "Story 3"]  # each written once
    assert articles.url.is_unique
    duplicates = pd.read_parquet(out / "duplicates")
    assert list(duplicates.url) == [web.url("/c/copy-of-one.html")]  # found in poll 2, kept in poll 1
    assert list(duplicates.tier) == ["exact"]
    assert list(duplicates.duplicate_of) == [article_id(canonical_url(web.url("/a/one.html")))]

    # one window per poll, each a run of its own with its manifest; every file whole and counted there
    assert [m["window"]["start"][:19] for m in manifests] == ["2026-09-21T14:13:20", "2026-09-21T14:14:20", "2026-09-21T14:15:20"]
    assert [(m["links"]["articles"], m["links"]["duplicates"], m["links"]["already_stored"]) for m in manifests] == [
        (2, 0, 0), (1, 1, 2), (0, 0, 0)]
    assert all(m["links"]["balanced"] for m in manifests)
    assert [m["feed_health"]["by_status"] for m in manifests] == [{"ok": 2}, {"ok": 2}, {"not_modified": 2}]
    by_window = articles.groupby("run_id").size().to_dict()
    assert by_window == {m["run_id"]: m["links"]["articles"] for m in manifests if m["links"]["articles"]}
    listed = {f["path"]: f["rows"] for m in manifests for t in m["tables"].values() for f in t["files"]}
    listed.update({f["path"]: f["rows"] for m in manifests for f in m["state_files"]})
    on_disk = {str(path): pq.read_metadata(path).num_rows for path in out.rglob("*.parquet")}
    assert on_disk == listed
    assert not list(out.rglob(".*.tmp"))
    feed_state = pd.read_parquet(out / "_state" / "feeds")
    assert len(feed_state) == 6 and set(feed_state.run_id) == {m["run_id"] for m in manifests}


def test_a_stream_starts_from_what_earlier_runs_stored(web, tmp_path):
    """Links and texts of the dataset's earlier runs (in its key index, read by the workers) are not kept again."""
    first, second = story(web, "/a/one.html", 1), story(web, "/a/two.html", 2)
    copy = story(web, "/a/copy-of-two.html", 2)
    feed = VersionedFeed(web, "/a/feed.xml", [[first, second, copy]])
    stored_id = article_id(canonical_url(web.url("/elsewhere/two.html")))
    second_hash = content_hash_of(web, "/a/two.html")
    commit_keys(tmp_path / "data", "earlier", [{"key": canonical_url(first["link"]), "kind": "link", "article_id": "stored-one"},
                                               {"key": second_hash, "kind": "text", "article_id": stored_id}])
    out, manifests = run_stream_job(tmp_path, [feed.url], [T0], timedelta(days=1))

    assert manifests[0]["links"] == {"discovered": 3, "articles": 0, "duplicates": 2, "errors": 0, "already_stored": 1,
                                     "balanced": True}
    assert web.requests.count("/a/one.html") == 0  # stored: not fetched
    duplicates = pd.read_parquet(out / "duplicates")
    assert set(duplicates.duplicate_of) == {stored_id} and set(duplicates.tier) == {"exact"}


def content_hash_of(web, path: str) -> str:
    """The content hash the pipeline gives the page at `path` (what an earlier run would have stored)."""
    return clean_pages([(web.routes[path].body, web.url(path))])[0]["content_hash"]


def test_what_a_stream_remembers_is_forgotten_after_remember(web, tmp_path):
    """A link listed again after `remember` without a sighting is fetched again: its state was let go."""
    first, second = story(web, "/a/one.html", 1), story(web, "/a/two.html", 2)
    feed = VersionedFeed(web, "/a/feed.xml", [[first], [first], [first, second]])
    remember = timedelta(seconds=3 * POLL)
    ticks = [T0, T0 + POLL, T0 + 10 * POLL]  # the second poll finds the feed unchanged: it sees no link
    out, manifests = run_stream_job(tmp_path, [feed.url], ticks, remember)

    assert [m["feed_health"]["by_status"] for m in manifests] == [{"ok": 1}, {"unchanged": 1}, {"ok": 1}]
    assert web.requests.count("/a/one.html") == 2  # forgotten between the second poll and the third
    articles = pd.read_parquet(out / "articles")
    assert sorted(articles.title) == ["Story 1", "Story 1", "Story 2"]
    assert [m["links"]["already_stored"] for m in manifests] == [0, 0, 0]


def test_failures_are_error_rows_of_their_window_and_the_stream_goes_on(web, tmp_path, capsys):
    """A feed that fails backs off (as in batch runs, by its state kept between polls); a dead link is an
    error row of the window that found it; every window's links are accounted for."""
    first = story(web, "/a/one.html", 1)
    dead = {"title": "Withdrawn", "link": web.url("/a/withdrawn.html")}
    feed = VersionedFeed(web, "/a/feed.xml", [[first, dead]])
    web.add("/b/feed.xml", "unavailable", status=503, content_type="text/plain")
    out, manifests = run_stream_job(tmp_path, [feed.url, web.url("/b/feed.xml"), "ftp://news.example/feed.xml"], [T0, T0 + POLL], timedelta(days=1))

    assert [m["feed_health"]["by_status"] for m in manifests] == [{"failed": 1, "ok": 1}, {"not_modified": 1, "skipped": 1}]
    assert web.requests.count("/b/feed.xml") == 1  # backing off: not polled again within 15 minutes
    assert [(m["links"]["discovered"], m["links"]["articles"], m["links"]["errors"]) for m in manifests] == [(2, 1, 1), (0, 0, 0)]
    assert all(m["links"]["balanced"] for m in manifests)
    errors = pd.read_parquet(out / "errors")
    by_window = {run_id: sorted(zip(rows.stage, rows.error)) for run_id, rows in errors.groupby("run_id")}
    assert by_window == {
        manifests[0]["run_id"]: [("fetch_feed", "http_status"), ("fetch_page", "http_status"), ("read_sources", "invalid_feed")],
        manifests[1]["run_id"]: [("read_sources", "invalid_feed")],  # the feed list is checked at every poll
    }

    assert main(["feeds", str(out)]) == 0  # the window's feed state is the dataset's, as a batch run's is
    shown = capsys.readouterr().out
    assert feed.url in shown and web.url("/b/feed.xml") in shown
