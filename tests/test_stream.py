"""`newsbeam stream`: polls of a loopback feed that gains a story between polls, on DirectRunner."""

from __future__ import annotations

import json
import os
import signal
import threading

import pandas as pd
import pyarrow.parquet as pq

from conftest import Route, respond
from newsbeam.pipeline.cli import main
from newsweb import article_page, body_paragraphs, rss

FAST = ["--allow-private-network", "--host-delay", "0", "--retries", "0", "--read-timeout", "2", "--deadline", "5", "-q"]


class GrowingFeed:
    """A feed that has one more story each time it is polled (the first poll sees one)."""

    def __init__(self, web):
        self.web, self.items, self.polls = web, [], 0
        web.routes["/grow/feed.xml"] = Route(handler=self.handle)

    def handle(self, request):
        self.polls += 1
        i = len(self.items)
        link = self.web.add(f"/grow/story-{i}.html", article_page(f"Growing story {i}", body_paragraphs(i), f"https://g.example/{i}", "Grow Post"))
        self.items.append({"title": f"Growing story {i}", "link": link})
        respond(request, 200, rss("Grow Post", self.items).encode(), {"Content-Type": "application/rss+xml"})


def test_three_polls_write_each_new_article_once_in_readable_files(web, tmp_path, capsys):
    feed = GrowingFeed(web)
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(web.url("/grow/feed.xml") + "\n")
    out = tmp_path / "data"
    code = main(["stream", "--feeds", str(feeds), "--out", str(out), "--poll-interval", "0.1", "--max-polls", "3",
                 "--run-id", "s", *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    assert "stream s complete: 3 polls (0 failed), 3 articles added" in printed
    assert feed.polls == 3
    articles = pd.read_parquet(out / "articles")
    assert sorted(articles.title) == ["Growing story 0", "Growing story 1", "Growing story 2"]
    assert articles.url.is_unique and set(articles.run_id) == {"s-p00001", "s-p00002", "s-p00003"}
    for path in out.rglob("*.parquet"):
        assert pq.read_metadata(path).num_rows >= 0  # every file has its footer
    stream = json.loads((out / "runs" / "s.json").read_text())
    assert [p["run_id"] for p in stream["polls"]] == ["s-p00001", "s-p00002", "s-p00003"]
    assert [(p["links"]["articles"], p["links"]["already_stored"]) for p in stream["polls"]] == [(1, 0), (1, 1), (1, 2)]
    assert [p["counts"]["pages_fetched"] for p in stream["polls"]] == [1, 1, 1]  # each poll's own counters
    assert [p["feeds"] for p in stream["polls"]] == [{"ok": 1}] * 3
    assert all((out / "runs" / f"{p['run_id']}.json").is_file() for p in stream["polls"])


def test_sigterm_ends_the_stream_after_the_poll_under_way(web, tmp_path, capsys):
    GrowingFeed(web)
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(web.url("/grow/feed.xml") + "\n")
    out = tmp_path / "data"
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM))  # during the first poll
    timer.start()
    try:
        code = main(["stream", "--feeds", str(feeds), "--out", str(out), "--poll-interval", "60", "--run-id", "t", *FAST])
    finally:
        timer.cancel()
    assert code == 0
    assert "stream t stopped: 1 polls (0 failed), 1 articles added" in capsys.readouterr().out
    assert json.loads((out / "runs" / "t.json").read_text())["status"] == "stopped"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is given back


def test_a_stream_restarted_with_the_same_id_goes_on_from_its_last_poll(web, tmp_path, capsys):
    GrowingFeed(web)
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(web.url("/grow/feed.xml") + "\n")
    out = tmp_path / "data"
    args = ["stream", "--feeds", str(feeds), "--out", str(out), "--poll-interval", "0.1", "--max-polls", "1", "--run-id", "s", *FAST]
    assert main(args) == 0
    first = pd.read_parquet(out / "articles")
    assert main(args) == 0  # restarted: its first poll must not replace the earlier stream's first poll
    articles = pd.read_parquet(out / "articles")
    assert sorted(articles.run_id) == ["s-p00001", "s-p00002"] and articles.url.is_unique
    assert set(first.url) < set(articles.url)
    assert json.loads((out / "runs" / "s.json").read_text())["first_poll"] == "s-p00002"
