"""Whole-pipeline runs on DirectRunner over a news web served on loopback, output read back with pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import parse_sources, read_sources
from newsweb import build_news_web

FAST = FetchSettings(connect_timeout=2, read_timeout=1.0, deadline=2.5, allow_private_network=True,
                     retries=1, backoff=0.05, host_delay=0)


def run(feeds_file: Path, out: Path, run_id: str, beam_args=None) -> dict:
    config = RunConfig(feeds=read_sources(str(feeds_file)), feeds_location=str(feeds_file), out=str(out), run_id=run_id, fetch=FAST)
    return run_job(config, beam_args)


def read(out: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(out / table)


@pytest.fixture(scope="module")
def first_run(module_web, tmp_path_factory):
    folder = tmp_path_factory.mktemp("news")
    news = build_news_web(module_web, folder)
    out = folder / "data"
    manifest = run(news.feeds_file, out, "first")
    return news, out, manifest


def test_every_link_ends_where_expected(first_run):
    news, out, _ = first_run
    articles, duplicates, errors = read(out, "articles"), read(out, "duplicates"), read(out, "errors")
    for link, outcome in news.expected.items():
        if outcome == "article":
            assert (articles.url == link).sum() == 1, link
        elif outcome == "duplicate":
            assert (duplicates.url == link).sum() == 1, link
        else:
            rows = errors[errors.url == link]
            assert list(rows.stage) == [outcome[1]], link
    for feed_url, stage in news.feed_errors.items():
        assert list(errors[errors.feed_url == feed_url].stage) == [stage], feed_url
    assert list(errors[errors.stage == "feed_entry"].error) == ["no_link"]


def test_nothing_lost_identity(first_run):
    news, out, manifest = first_run
    entry_errors = read(out, "errors").query("stage not in ['read_sources', 'fetch_feed', 'parse_feed']")
    links = manifest["links"]
    assert links["discovered"] == news.links
    assert links["articles"] == len(read(out, "articles"))
    assert links["duplicates"] == len(read(out, "duplicates"))
    assert links["errors"] == len(entry_errors)
    assert links["already_stored"] == 0
    assert links["discovered"] == links["articles"] + links["duplicates"] + links["errors"] + links["already_stored"]
    assert links["balanced"] is True


def test_copies_point_at_the_kept_article(first_run):
    news, out, _ = first_run
    articles, duplicates = read(out, "articles"), read(out, "duplicates").set_index("url")
    original = articles.set_index("canonical_url").loc["https://a.example/story-0"]
    copy = duplicates.loc[[l for l, o in news.expected.items() if o == "duplicate" and "/b/wire/" in l][0]]
    assert copy.tier == "exact" and copy.duplicate_of == original.article_id
    tracking = duplicates.loc[[l for l in duplicates.index if "utm_source" in l][0]]
    story_1 = articles.set_index("canonical_url").loc["https://a.example/story-1"]
    assert tracking.tier == "url" and tracking.duplicate_of == story_1.article_id


def test_articles_are_clean_and_typed(first_run):
    _, out, _ = first_run
    articles = read(out, "articles")
    assert str(articles.published_at.dtype) == "datetime64[us, UTC]"
    assert str(articles.fetched_at.dtype) == "datetime64[us, UTC]"
    assert all(isinstance(a, (list, tuple)) or hasattr(a, "__len__") for a in articles.authors)
    assert set(articles.date.astype(str)) >= {"2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"}
    for text in articles.text:
        assert "Sign up for our newsletter" not in text
        assert "All rights reserved" not in text
        assert not text.startswith("Council story")
    video = articles.set_index("canonical_url").loc["https://a.example/video"]
    assert video.extraction_method == "feed_content" and video.word_count > 60
    assert (articles.language == "en").all()
    assert articles.article_id.is_unique and (articles.story_id == articles.article_id).all()


def test_partition_column_only_in_folder_names(first_run):
    _, out, _ = first_run
    files = sorted(out.glob("*/date=*/*.parquet"))
    assert files
    for f in files:
        assert "date" not in pq.read_schema(f).names
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"


def test_duckdb_and_polars_read_the_dataset(first_run):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    _, out, _ = first_run
    query = f"select count(*), count(distinct date) from read_parquet('{out}/articles/*/*.parquet', hive_partitioning=true)"
    n, days = duckdb.connect().execute(query).fetchall()[0]
    assert days == read(out, "articles").date.nunique()
    assert n == len(read(out, "articles"))
    frame = pl.read_parquet(f"{out}/articles/**/*.parquet", hive_partitioning=True)
    assert frame.height == n and "date" in frame.columns


def test_second_run_finds_the_feeds_unchanged_and_the_failed_ones_backing_off(first_run, tmp_path):
    news, out, first = first_run
    before = read(out, "articles")
    second = run(news.feeds_file, out, "second")
    after = read(out, "articles")
    assert len(after) == len(before)
    # The test server sends no validators, so the unchanged feeds are recognised by their body hash.
    assert second["counts"]["feeds_unchanged"] == first["counts"]["feeds_fetched"] == 2
    assert second["counts"]["feeds_skipped"] == len(news.feed_errors)  # failed 15 minutes ago: not yet again
    assert second["links"]["discovered"] == 0 and second["links"]["balanced"]
    failing = {f["feed_url"]: f for f in second["feed_health"]["failing"]}
    assert set(failing) == set(news.feed_errors)
    assert all(f["consecutive_failures"] == 1 and f["next_poll_at"] for f in failing.values())


def test_rerunning_a_run_id_replaces_its_files(module_web, tmp_path):
    news = build_news_web(module_web, tmp_path)
    out = tmp_path / "data"
    run(news.feeds_file, out, "again")
    first_count = len(read(out, "articles"))
    partition = next((out / "articles").glob("date=*"))
    stale = partition / "part-again-00042.parquet"
    stale.write_bytes(next(partition.glob("part-again-*.parquet")).read_bytes())
    assert len(read(out, "articles")) > first_count
    manifest = run(news.feeds_file, out, "again")
    assert not stale.exists()
    assert len(read(out, "articles")) == first_count == manifest["links"]["articles"]
    assert manifest["links"]["already_stored"] == 0


def test_multi_processing_gives_the_same_tables(first_run, module_web, tmp_path):
    news, out, first = first_run
    mp_out = tmp_path / "mp"
    manifest = run(news.feeds_file, mp_out, "mp", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert manifest["links"] == {**first["links"]}
    assert sorted(read(mp_out, "articles").article_id) == sorted(read(out, "articles").article_id)


def test_private_addresses_are_refused_by_default(web, tmp_path):
    feed = web.add("/feed.xml", "<rss version='2.0'><channel><title>t</title></channel></rss>", content_type="application/rss+xml")
    (tmp_path / "feeds.txt").write_text(f"{feed}\n")
    config = RunConfig(feeds=read_sources(str(tmp_path / "feeds.txt")), feeds_location="feeds.txt", out=str(tmp_path / "data"), run_id="guarded")
    manifest = run_job(config)
    errors = read(tmp_path / "data", "errors")
    assert list(errors.error) == ["private_address"] and list(errors.stage) == ["fetch_feed"]
    assert "--allow-private-network" in errors.message[0]
    assert web.requests == [], "the guard must refuse before any request is sent"
    assert manifest["counts"]["feeds_failed"] == 1


def test_a_crashed_write_is_invisible_and_cleaned_by_the_rerun(module_web, tmp_path):
    news = build_news_web(module_web, tmp_path)
    out = tmp_path / "data"
    run(news.feeds_file, out, "crashy")
    rows = len(read(out, "articles"))
    partition = next((out / "articles").glob("date=*"))
    # What a crash between writing and renaming leaves: a hidden, half-written file.
    leftover = partition / ".part-crashy-00000.parquet.0123abcd.tmp"
    leftover.write_bytes(next(partition.glob("*.parquet")).read_bytes()[:100])
    assert len(read(out, "articles")) == rows
    run(news.feeds_file, out, "crashy")
    assert not leftover.exists()


def test_a_copy_of_an_article_stored_by_an_earlier_run_is_a_duplicate(web, tmp_path):
    from newsweb import article_page, body_paragraphs, rss

    original = web.add("/orig.html", article_page("Original", body_paragraphs(2), "https://a.example/orig", "A"))
    (tmp_path / "feeds.txt").write_text(web.add("/feed1.xml", rss("A", [{"title": "Original", "link": original}])) + "\n")
    out = tmp_path / "data"
    run(tmp_path / "feeds.txt", out, "day1")
    kept = read(out, "articles").article_id.item()
    copy = web.add("/copy.html", article_page("Copy elsewhere", body_paragraphs(2), "https://b.example/copy", "B"))
    web.add("/feed1.xml", rss("A", [{"title": "Original", "link": original}, {"title": "Copy", "link": copy}]))
    manifest = run(tmp_path / "feeds.txt", out, "day2")
    duplicates = read(out, "duplicates")
    assert list(duplicates.url) == [copy] and duplicates.tier.item() == "exact" and duplicates.duplicate_of.item() == kept
    assert manifest["links"] | {} == {"discovered": 2, "articles": 0, "duplicates": 1, "errors": 0, "already_stored": 1, "balanced": True}
    assert len(read(out, "articles")) == 1


def test_manifest_times_the_costly_stages(first_run):
    _, _, manifest = first_run
    stages, counts = manifest["timings"]["stages"], manifest["counts"]
    assert stages["fetch_feed_ms"]["count"] == counts["feeds_fetched"]
    assert stages["fetch_page_ms"]["count"] == counts["pages_fetched"]
    extracted = sum(v for k, v in counts.items() if k.startswith("extracted_"))
    assert stages["extract_ms"]["count"] == extracted > 0


def _edited(paragraphs: list[str], every: int = 19) -> list[str]:
    """A copy desk's light edits: every `every`-th word changed."""
    words = " ".join(paragraphs).split(" ")
    return [" ".join(w if i % every else w.upper() + "s" for i, w in enumerate(words))]


def test_near_copies_in_a_run_are_duplicates_of_the_original_and_other_stories_stay(web, tmp_path):
    from newsweb import article_page, body_paragraphs, rss

    story = body_paragraphs(2) + body_paragraphs(3)[1:]  # a longer original: seven paragraphs
    pages = {
        "original": ("Pier to be rebuilt", story, "https://a.example/pier", "2026-11-20T09:00:00+00:00"),
        "edited": ("Council backs pier plan", _edited(story), "https://b.example/pier-plan", "2026-11-20T11:00:00+00:00"),
        "truncated": ("Pier plan approved", story[:4] + ["Read the full story at the Alder Post."], "https://c.example/p",
                      "2026-11-20T12:00:00+00:00"),
        "other": ("Library budget", body_paragraphs(5), "https://a.example/library", "2026-11-20T10:00:00+00:00"),
        "old copy": ("Pier (archive)", _edited(story, every=23), "https://d.example/pier-2025", "2026-10-01T09:00:00+00:00"),
    }
    links = {name: web.add(f"/{i}.html", article_page(title, paras, canonical, name, published))
             for i, (name, (title, paras, canonical, published)) in enumerate(pages.items())}
    (tmp_path / "feeds.txt").write_text(web.add("/feed.xml", rss("Mixed", [{"title": n, "link": u} for n, u in links.items()])) + "\n")
    out = tmp_path / "data"
    manifest = run(tmp_path / "feeds.txt", out, "near")
    articles, duplicates = read(out, "articles"), read(out, "duplicates")
    kept = articles.set_index("url").article_id
    assert set(articles.url) == {links["original"], links["other"], links["old copy"]}  # the old copy is outside the window
    assert set(duplicates.url) == {links["edited"], links["truncated"]}
    assert set(duplicates.tier) == {"near"} and set(duplicates.duplicate_of) == {kept[links["original"]]}
    assert duplicates.similarity.between(0.6, 1.0).all()
    assert manifest["links"]["balanced"] and manifest["counts"]["duplicates_near"] == 2
    state = pq.read_table(out / "_state" / "near").to_pandas()
    assert set(state.article_id) == set(articles.article_id) and (state.shingles > 0).all()


def test_a_near_copy_of_an_article_stored_by_an_earlier_run_is_found_from_its_signature(web, tmp_path):
    from newsweb import article_page, body_paragraphs, rss
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).isoformat()
    story = body_paragraphs(6) + body_paragraphs(7)[2:]
    original = web.add("/orig.html", article_page("Original", story, "https://a.example/orig", "A", now))
    (tmp_path / "feeds.txt").write_text(web.add("/feed.xml", rss("A", [{"title": "Original", "link": original}])) + "\n")
    out = tmp_path / "data"
    run(tmp_path / "feeds.txt", out, "day1")
    kept = read(out, "articles").article_id.item()
    copy = web.add("/copy.html", article_page("Edited copy", _edited(story), "https://b.example/copy", "B", now))
    web.add("/feed.xml", rss("A", [{"title": "Original", "link": original}, {"title": "Copy", "link": copy}]))
    manifest = run(tmp_path / "feeds.txt", out, "day2")
    duplicates = read(out, "duplicates")
    assert list(duplicates.url) == [copy] and duplicates.tier.item() == "near" and duplicates.duplicate_of.item() == kept
    assert manifest["counts"]["stored_near_records"] == 1  # read by the workers, for the blocks the run's articles meet
    assert manifest["links"]["balanced"] and len(read(out, "articles")) == 1


def test_a_story_continues_into_a_later_run_from_the_stored_features(web, tmp_path):
    from datetime import datetime, timedelta, timezone

    from newsweb import article_page, rss
    from test_stories import FLOOD_A, FLOOD_FOLLOW_UP

    day1 = datetime.now(timezone.utc) - timedelta(days=2)
    first = web.add("/flood.html", article_page("River Osk floods Varnholm", FLOOD_A.split("\n"), "https://a.example/flood", "A",
                                                day1.isoformat()))
    (tmp_path / "feeds.txt").write_text(web.add("/feed.xml", rss("A", [{"title": "Flood", "link": first}])) + "\n")
    out = tmp_path / "data"
    run(tmp_path / "feeds.txt", out, "day1")
    later = web.add("/return.html", article_page("Varnholm residents return", FLOOD_FOLLOW_UP.split("\n"), "https://b.example/return",
                                                 "B", (day1 + timedelta(days=2)).isoformat()))
    web.add("/feed.xml", rss("A", [{"title": "Flood", "link": first}, {"title": "Return", "link": later}]))
    manifest = run(tmp_path / "feeds.txt", out, "day2")
    articles = read(out, "articles").set_index("url")
    assert manifest["counts"]["stored_story_records"] == 1
    assert articles.story_id[later] == articles.story_id[first] == articles.article_id[first]


def test_a_run_worked_through_in_pieces_finds_what_one_piece_finds(web, tmp_path, monkeypatch):
    """Local runs spill what the stages group in batches (write.Batches): with batches of one page, every copy is
    in another piece than its original, and the tiers must decide exactly as over one piece."""
    from newsbeam.transforms import write
    from newsweb import article_page, body_paragraphs, rss
    from test_stories import FLOOD_A, FLOOD_FOLLOW_UP

    news = build_news_web(web, tmp_path)
    story = body_paragraphs(2) + body_paragraphs(3)[1:]
    pages = {
        "original": ("Pier to be rebuilt", story, "https://a.example/pier", "2026-11-20T09:00:00+00:00"),
        "edited": ("Council backs pier plan", _edited(story), "https://b.example/pier-plan", "2026-11-20T11:00:00+00:00"),
        "exact": ("Pier to be rebuilt (wire)", story, "https://c.example/pier", "2026-11-20T13:00:00+00:00"),
        "flood": ("River Osk floods Varnholm", FLOOD_A.split("\n"), "https://a.example/flood", "2026-11-18T09:00:00+00:00"),
        "return": ("Varnholm residents return", FLOOD_FOLLOW_UP.split("\n"), "https://b.example/return",
                   "2026-11-19T09:00:00+00:00"),
    }
    links = {name: web.add(f"/more/{i}.html", article_page(title, paras, canonical, name, published))
             for i, (name, (title, paras, canonical, published)) in enumerate(pages.items())}
    more = web.add("/more.xml", rss("More", [{"title": n, "link": u} for n, u in links.items()]))
    feeds = read_sources(str(news.feeds_file)) + parse_sources(more + "\n", "more.txt")

    def tables(out: Path, run_id: str) -> tuple[dict, dict]:
        manifest = run_job(RunConfig(feeds=feeds, feeds_location="pieces", out=str(out), run_id=run_id, fetch=FAST))
        found = {
            "articles": read(out, "articles")[["url", "article_id", "story_id", "content_hash", "text"]],
            "duplicates": read(out, "duplicates")[["url", "duplicate_of", "tier", "similarity"]],
            "errors": read(out, "errors")[["url", "stage", "error", "message"]],
        }
        return {name: sorted(tuple(map(str, row)) for row in frame.itertuples(index=False)) for name, frame in found.items()}, manifest

    whole, one = tables(tmp_path / "whole", "whole")
    monkeypatch.setattr(write, "SPILL_BATCH", 1)
    pieces, many = tables(tmp_path / "pieces", "pieces")
    assert pieces == whole
    assert many["counts"]["batches_spilled"] >= 2 * len(whole["articles"])  # pages by source, chunks, rows: each alone
    assert many["counts"]["batches_spilled"] > one["counts"]["batches_spilled"]
    tiers = {row[2] for row in whole["duplicates"]}
    assert {"url", "exact", "near"} <= tiers, tiers
    story = {row[0]: row[2] for row in whole["articles"]}
    assert story[links["return"]] == story[links["flood"]]
    assert many["links"]["balanced"] and many["links"] == one["links"]
