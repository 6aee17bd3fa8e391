"""The `newsbeam` command as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from newsbeam.schemas import SCHEMA_VERSION
from newsweb import article_page, body_paragraphs, rss


def newsbeam(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "newsbeam.pipeline.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )


def assert_usage_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("newsbeam: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def test_bundled_sample_runs_offline(tmp_path):
    result = newsbeam("run", "--out", tmp_path / "data", "--run-id", "sample")
    assert result.returncode == 0, result.stderr
    assert "bundled offline sample" in result.stderr
    assert "run sample complete" in result.stdout
    manifest = json.loads((tmp_path / "data" / "runs" / "sample.json").read_text())
    assert manifest["links"]["balanced"] and manifest["sample"] is True
    # The sample's README promises: 13 links, 9 articles, a URL, an exact and a near duplicate, one missing page.
    assert manifest["links"]["discovered"] == 13
    articles = pd.read_parquet(tmp_path / "data" / "articles")
    assert len(articles) == 9
    assert sorted(pd.read_parquet(tmp_path / "data" / "duplicates").tier) == ["exact", "near", "url"]
    assert list(pd.read_parquet(tmp_path / "data" / "errors").stage) == ["fetch_page"]
    assert set(articles.language) == {"en", "de"}
    assert (articles.extraction_method == "feed_content").sum() == 1
    assert not articles.text.str.contains("Subscribe|Sign up|All rights reserved|Northwind Wire\\) --").any()
    # The sample's pages declare article:published_time; the copy credits its (fictional) agency.
    assert set(articles.published_at_source) == {"meta"}
    assert str(articles.paywalled.dtype) == "bool" and not articles.paywalled.any()
    assert (articles.schema_version == SCHEMA_VERSION).all()
    wire_story = articles.set_index("title").loc["Fire destroys net store on Kettleby's East Quay"]
    assert wire_story.wire == "Northwind Wire" and list(wire_story.authors) == ["Ilse Marrow"]


def test_the_sample_runs_only_where_it_cannot_mix_with_real_data(tmp_path):
    """Without --feeds, the bundled sample's fictional articles go into a new or empty folder, or one of sample runs
    only; a dataset of real runs, or a folder of other files, gets one line saying --feeds is missing."""
    from newsbeam.pipeline.config import sample_feeds_location

    (tmp_path / "empty").mkdir()
    assert newsbeam("run", "-q", "--out", tmp_path / "empty", "--run-id", "first").returncode == 0
    again = newsbeam("run", "-q", "--out", tmp_path / "empty", "--run-id", "second")  # sample runs only: fine
    assert again.returncode == 0, again.stderr

    real = newsbeam("run", "-q", "--feeds", sample_feeds_location(), "--out", tmp_path / "real", "--run-id", "real")
    assert real.returncode == 0, real.stderr  # the same pages, named as a feed list: a real run as far as it knows
    refused = newsbeam("run", "--out", tmp_path / "real")
    assert_usage_error(refused, "--feeds is missing", "runs of real feeds")
    assert sorted(p.name for p in (tmp_path / "real" / "runs").glob("*.json")) == ["real.json"]  # nothing written

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a dataset")
    assert_usage_error(newsbeam("run", "--out", tmp_path / "other"), "--feeds is missing", "not a newsbeam sample dataset")


def test_default_out_is_newsbeam_data_in_the_working_folder(tmp_path):
    result = newsbeam("run", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "newsbeam-data" / "articles").glob("date=*/*.parquet"))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--feeds", "missing.txt"], ["not found", "missing.txt"]),
        (["--feeds", "bad.yaml"], ["YAML"]),
        (["--feeds", "bad.opml"], ["OPML"]),
        (["--feeds", "unknown-key.yaml"], ["unknown setting", "interval"]),
        (["--out", "a-file/sub"], ["cannot write to --out"]),
        (["--out", "a-file"], ["not a folder"]),
        (["--run-id", "../escape"], ["--run-id"]),
        (["--run-id", "x\n"], ["--run-id"]),  # a trailing newline would name files with it
        (["--no-such-option", "1"], ["--no_such_option"]),
        (["--direct_running_mode", "multi_threading"], ["multi_threading"]),
        (["--max-bytes", "0"], ["--max-bytes"]),
    ],
)
def test_usage_mistakes_are_one_clear_line(tmp_path, args, words):
    (tmp_path / "bad.yaml").write_text("feeds: [\n")
    (tmp_path / "bad.opml").write_text("<opml><body><outline xmlUrl='x'></body>")
    (tmp_path / "unknown-key.yaml").write_text("feeds:\n  - url: https://example.com/feed\n    interval: 5\n")
    (tmp_path / "a-file").write_text("")
    result = newsbeam("run", *args, cwd=tmp_path)
    assert_usage_error(result, *words)


def test_yaml_feed_list_with_settings_and_progress(web, tmp_path):
    items = [{"title": f"Story {i}", "link": web.add(f"/s{i}.html", article_page(f"Story {i}", body_paragraphs(i), f"https://s.example/{i}", "Site"))}
             for i in range(4)]
    web.add("/slow.html", article_page("Slow", body_paragraphs(5), "https://s.example/slow", "Site"), delay=3.5)
    items.insert(0, {"title": "Slow", "link": web.url("/slow.html")})
    feed = web.add("/feed.xml", rss("Site", items), content_type="application/rss+xml")
    (tmp_path / "feeds.yaml").write_text(f"defaults:\n  max_entries: 4\nfeeds:\n  - url: {feed}\n    name: My Site\n")
    result = newsbeam("run", "--feeds", "feeds.yaml", "--out", "data", "--allow-private-network", "--read-timeout", "10",
                      "--progress-every", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("[") and "feeds" in line and "pages" in line for line in result.stderr.splitlines()), result.stderr
    articles = pd.read_parquet(tmp_path / "data" / "articles")
    assert len(articles) == 4  # max_entries: the fifth entry is never discovered
    assert set(articles.source) == {"My Site"}


def test_extract_reports_unreadable_files_and_refuses_url_for_many(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><article>" + "".join(f"<p>{p}</p>" for p in body_paragraphs(3)) + "</article></body></html>")
    result = newsbeam("extract", page, tmp_path / "missing.html")
    assert result.returncode == 0, result.stderr
    ok, missing = [json.loads(line) for line in result.stdout.splitlines()]
    assert ok["text"] == "\n".join(body_paragraphs(3)) and "error" not in ok
    assert missing["error"].startswith("cannot read")
    assert newsbeam("extract", tmp_path / "missing.html").returncode == 1
    assert_usage_error(newsbeam("extract", page, page, "--url", "https://x.example/a"), "--url")


def test_progress_fits_where_it_runs():
    """On a terminal the line is rewritten in place and ended when the run ends; in a log each update is a line of
    its own, less often; the line has pages done of those to fetch, a rate and an ETA once the feeds are read."""
    import io
    import time as clock

    from newsbeam.pipeline.progress import LOG_SECONDS, TERMINAL_SECONDS, ProgressReporter, progress_line

    tally = {"feeds_fetched": 3, "feeds_failed": 0, "feeds_skipped": 0, "entry_errors": 1, "entries_discovered": 120,
             "links_already_stored": 10, "links_already_seen": 5, "entries_without_link": 5, "pages_fetched": 40,
             "pages_failed": 10, "extracted_trafilatura": 38, "extracted_feed_content": 0, "extracted_feed_summary": 0,
             "articles_kept": 30}
    from collections import Counter

    line = progress_line(Counter(tally), 3, 30.0, pages_since=5.0)
    assert "pages 50/100 fetched (2.0/s, ETA 0m25s)" in line and "feeds 3/3" in line and "errors 1" in line
    assert "ETA" not in progress_line(Counter({**tally, "feeds_fetched": 1}), 3, 30.0, 5.0)  # more links may come

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def shown_on(stream):
        with ProgressReporter(3, interval=0.05, stream=stream):
            waited = clock.monotonic()
            while stream.getvalue().count("[") < 3 and clock.monotonic() - waited < 30:  # a few updates, however slow the machine
                clock.sleep(0.05)
        return stream.getvalue()

    text = shown_on(Terminal())
    assert text.startswith("\r[") and text.count("\n") == 1 and text.endswith("\n") and "\x1b[K" in text
    logged = shown_on(io.StringIO())
    lines = logged.splitlines()
    assert len(lines) >= 3 and all(line.startswith("[") for line in lines) and "\r" not in logged
    assert ProgressReporter(3, stream=Terminal())._interval == TERMINAL_SECONDS
    assert ProgressReporter(3, stream=io.StringIO())._interval == LOG_SECONDS
