"""`newsbeam dedup DATASET --out DIR` over merged datasets that never saw each other (issue 4)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pandas as pd

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, body_paragraphs, rss
from test_cli import newsbeam

FAST = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, allow_private_network=True,
                     retries=1, backoff=0.05, host_delay=0)


def crawl(web, folder, name, pages):
    """One dataset: a feed of `pages` ({path: html}) run into folder/name."""
    items = [{"title": path, "link": web.add(f"/{name}{path}", html)} for path, html in pages.items()]
    feeds = folder / f"{name}.txt"
    feeds.write_text(web.add(f"/{name}/feed.xml", rss(name, items)) + "\n")
    run_job(RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(folder / name), run_id=name, fetch=FAST))
    return folder / name


def test_dedup_finds_copies_across_merged_datasets(web, tmp_path):
    now = datetime.now(timezone.utc).isoformat()
    story = body_paragraphs(1) + body_paragraphs(2)[1:]
    teaser = story[:4] + ["Read the full story at the Alder Post."]
    east = crawl(web, tmp_path, "east", {
        "/pier.html": article_page("Pier plan", story, "https://a.example/pier", "Alder Post", now),
        "/library.html": article_page("Library", body_paragraphs(4), "https://a.example/library", "Alder Post", now),
    })
    west = crawl(web, tmp_path, "west", {
        "/pier-teaser.html": article_page("Pier plan backed", teaser, "https://w.example/pier", "West Wire", now),
        "/school.html": article_page("School roof", body_paragraphs(6), "https://w.example/school", "West Wire", now),
    })
    merged = tmp_path / "merged" / "articles"
    for dataset in (east, west):
        shutil.copytree(dataset / "articles", merged, dirs_exist_ok=True)

    result = newsbeam("dedup", tmp_path / "merged", "--out", tmp_path / "deduped", "--run-id", "backfill")
    assert result.returncode == 0, result.stderr
    assert "4 articles read -> 3 kept, 1 duplicates" in result.stdout
    articles = pd.read_parquet(tmp_path / "deduped" / "articles")
    duplicates = pd.read_parquet(tmp_path / "deduped" / "duplicates")
    assert len(articles) == 3 and set(articles.run_id) == {"backfill"}
    assert duplicates.tier.tolist() == ["near"] and duplicates.canonical_url.tolist() == ["https://w.example/pier"]
    assert duplicates.duplicate_of.item() == articles.set_index("canonical_url").article_id["https://a.example/pier"]
    manifest = json.loads((tmp_path / "deduped" / "runs" / "backfill.json").read_text())
    assert manifest["articles"] == {"read": 4, "kept": 3, "duplicates": 1, "balanced": True}
    near_state = pd.read_parquet(tmp_path / "deduped" / "_state" / "near")
    story_state = pd.read_parquet(tmp_path / "deduped" / "_state" / "story")  # rows passed through spill files
    assert sorted(near_state.article_id) == sorted(story_state.article_id) == sorted(articles.article_id)
    assert story_state.story_id.notna().all() and story_state.names.map(len).gt(0).all()
    assert sorted(p.name for p in (tmp_path / "deduped").iterdir()) == ["_state", "articles", "duplicates", "runs"]  # no spill left

    # A run into the deduplicated dataset knows its links through the key index dedup wrote: the kept pier story's
    # and the teaser's (a duplicate's link) are stored, and not fetched again.
    pier, teaser_link = web.url("/east/pier.html"), web.url("/west/pier-teaser.html")
    fetched = web.requests.count("/east/pier.html"), web.requests.count("/west/pier-teaser.html")
    feeds = tmp_path / "again.txt"
    feeds.write_text(web.add("/again.xml", rss("again", [{"title": "Pier", "link": pier}, {"title": "Teaser", "link": teaser_link}])))
    again = run_job(RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(tmp_path / "deduped"),
                              run_id="hourly", fetch=FAST))
    assert again["links"]["already_stored"] == 2 and again["counts"]["stored_keys_found"] == 2
    assert (web.requests.count("/east/pier.html"), web.requests.count("/west/pier-teaser.html")) == fetched


def test_dedup_usage_mistakes_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for args, words in ((["dedup", tmp_path / "missing", "--out", tmp_path / "o"], "not a folder"),
                        (["dedup", tmp_path / "empty", "--out", tmp_path / "o"], "no articles Parquet files"),
                        (["dedup", tmp_path / "empty"], "--out")):
        result = newsbeam(*args)
        assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_dedup_killed_at_each_write_boundary_then_rerun_gives_what_an_uninterrupted_one_gives(web, tmp_path):
    # The tiers spill their batches (and the story tier its scored candidates) under DIR/_tmp-RUN_ID; a kill
    # leaves them and part of the tables behind. A rerun of the same id must sweep both and write the same dataset.
    import subprocess
    import sys
    from pathlib import Path

    now = datetime.now(timezone.utc).isoformat()
    story = body_paragraphs(1) + body_paragraphs(2)[1:]
    east = crawl(web, tmp_path, "east", {
        "/pier.html": article_page("Pier plan", story, "https://a.example/pier", "Alder Post", now),
        "/library.html": article_page("Library", body_paragraphs(4), "https://a.example/library", "Alder Post", now),
    })
    west = crawl(web, tmp_path, "west", {
        "/pier-copy.html": article_page("Pier plan backed", story[:4] + ["Read the full story at the Alder Post."],
                                        "https://w.example/pier", "West Wire", now),
        "/school.html": article_page("School roof", body_paragraphs(6), "https://w.example/school", "West Wire", now),
    })
    dataset = tmp_path / "merged"
    for part in (east, west):
        shutil.copytree(part / "articles", dataset / "articles", dirs_exist_ok=True)

    def tables(out):
        articles = pd.read_parquet(out / "articles").sort_values("url")
        duplicates = pd.read_parquet(out / "duplicates")
        state = [sorted(pd.read_parquet(out / "_state" / name).article_id) for name in ("near", "story")]
        return articles[["url", "story_id"]].values.tolist(), duplicates[["url", "tier", "duplicate_of"]].values.tolist(), state

    assert newsbeam("dedup", dataset, "--out", tmp_path / "whole", "--run-id", "once").returncode == 0
    expected = tables(tmp_path / "whole")
    crash_run = Path(__file__).with_name("crash_run.py")
    for boundary in ("state:near", "state:story", "table:articles", "manifest:before", "manifest:after"):
        out = tmp_path / boundary.replace(":", "-")
        child = subprocess.run([sys.executable, str(crash_run), boundary, "dedup", str(dataset), "--out", str(out),
                                "--run-id", "once"], capture_output=True, text=True, timeout=300)
        assert child.returncode == -9, f"not killed at {boundary}: {child.stderr[-2000:]}"
        assert list(out.glob("_tmp-once")), f"the killed run left no spills at {boundary}: the rerun has nothing to sweep"
        rerun = newsbeam("dedup", dataset, "--out", out, "--run-id", "once")
        assert rerun.returncode == 0, rerun.stderr
        assert tables(out) == expected, boundary
        manifest = json.loads((out / "runs" / "once.json").read_text())
        assert manifest["articles"] == {"read": 4, "kept": 3, "duplicates": 1, "balanced": True}, boundary
        assert not list(out.glob("_tmp-*")) and not (out / ".newsbeam.lock").exists(), boundary
        committed = set(manifest["files"])
        on_disk = {str(p.relative_to(out)) for t in ("articles", "duplicates", "_state") for p in (out / t).rglob("*")
                   if p.is_file()}
        assert on_disk == committed, boundary
