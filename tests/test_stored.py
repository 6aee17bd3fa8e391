"""The key index under DIR/_state/keys (transforms/stored.py): its rows, its lookups by row-group statistics, whole runs
that know earlier runs only through it (or, for runs from before it, through their tables), and a job graph that does
not grow with the stored history. Runs over a loopback web on DirectRunner, the dataset read back with pandas."""

from __future__ import annotations

import base64
import bz2
import dataclasses
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
import pandas as pd
import pyarrow.parquet as pq

from newsbeam.pipeline.build import build_pipeline
from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import load_stored_state, run_job
from newsbeam.schemas import SCHEMA_VERSION
from newsbeam.transforms.commits import RunFiles, commit, committed_runs
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.pages import link_key
from newsbeam.transforms.sources import read_sources
from newsbeam.transforms.stored import StoredView, key_rows, keyed_by_shard, lookup_file, matching_row_groups, shard_of
from newsbeam.transforms.write import parquet_bytes, state_dir, to_arrow, write_file
from newsweb import article_page, body_paragraphs, rss

FAST = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, allow_private_network=True, retries=0, host_delay=0)
SAMPLE = Path(__file__).resolve().parents[1] / "pipeline" / "sample" / "feeds.opml"
ATTEMPT = "0badcafe"


def run(feeds: Path, out: Path, run_id: str) -> dict:
    config = RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(out), run_id=run_id, fetch=FAST)
    return run_job(config)


def feed_file(web, folder: Path, route: str, links: dict[str, str]) -> Path:
    """A feed list naming one RSS feed served at `route`, with an item per (title, link)."""
    path = folder / f"{route.strip('/').replace('/', '_')}.txt"
    path.write_text(web.add(route, rss("Mixed", [{"title": t, "link": u} for t, u in links.items()]),
                            content_type="application/rss+xml") + "\n")
    return path


def state_file(out: Path, run_id: str, name: str, chunk: int, rows: list[dict], row_group_size=None) -> dict:
    """One state file of `name` written as a run writes it (stamped, sorted by key for the index); its file info."""
    rows = [{**row, "run_id": run_id, "schema_version": SCHEMA_VERSION} for row in rows]
    if name == "keys":
        rows.sort(key=lambda row: (row["key"], row["kind"]))
    path = RunFiles(str(out), run_id, ATTEMPT).path(state_dir(str(out), name), chunk)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_file(path, parquet_bytes(to_arrow(name, rows), row_group_size), len(rows))
    return {"table": f"_state/{name}", "path": path, "rows": len(rows)}


def commit_keys(out: Path, run_id: str, index_rows: list[dict], extra_files=()) -> dict:
    """Commit a run whose only files are its key index (a file per shard) and `extra_files`."""
    files = [state_file(out, run_id, "keys", shard, rows) for shard, rows in keyed_by_shard(index_rows)]
    return commit(str(out), run_id, ATTEMPT, files + list(extra_files), {"kind": "run"})


# ---------------------------------------------------------------- index rows


def test_key_rows_of_an_article_and_a_duplicate():
    article = {"article_id": "a1", "url": "HTTP://Example.com/story?utm_source=rss#top",
               "canonical_url": "https://example.com/story", "content_hash": "h1"}
    assert key_rows("articles", article) == [
        {"key": "http://example.com/story", "kind": "link", "article_id": "a1"},
        {"key": "https://example.com/story", "kind": "link", "article_id": "a1"},
        {"key": "h1", "kind": "text", "article_id": "a1"},
    ]
    one_key = {**article, "url": "https://EXAMPLE.com/story?utm_medium=feed"}  # canonicalises to the canonical URL
    assert [row["key"] for row in key_rows("articles", one_key)] == ["https://example.com/story", "h1"]
    duplicate = {"url": "https://b.example/copy?fbclid=x", "canonical_url": None, "duplicate_of": "a1"}
    assert key_rows("duplicates", duplicate) == [{"key": "https://b.example/copy", "kind": "link", "article_id": "a1"}]


def test_keyed_by_shard_keeps_one_row_per_kind_and_key_the_articles_first():
    article = {"article_id": "kept", "url": "https://a.example/x", "canonical_url": "https://a.example/x", "content_hash": "h"}
    duplicate = {"url": "https://a.example/x?utm_source=b", "canonical_url": "https://c.example/y", "duplicate_of": "other"}
    batches = keyed_by_shard(key_rows("articles", article) + key_rows("duplicates", duplicate))
    assert [shard for shard, _ in batches] == sorted({shard for shard, _ in batches})
    rows = {(row["kind"], row["key"]): row["article_id"] for _, found in batches for row in found}
    assert sum(len(found) for _, found in batches) == len(rows) == 3
    assert rows == {("link", "https://a.example/x"): "kept", ("text", "h"): "kept", ("link", "https://c.example/y"): "other"}
    assert all(shard_of(row["key"]) == shard for shard, found in batches for row in found)


# ---------------------------------------------------------------- reading a key file


def test_lookup_reads_the_wanted_keys_from_the_row_groups_that_can_hold_them(tmp_path):
    rows = [{"key": f"k{i:03d}", "kind": "link", "article_id": f"a{i:03d}"} for i in range(100)]
    info = state_file(tmp_path, "r1", "keys", 0, rows, row_group_size=10)
    metadata = pq.read_metadata(info["path"])
    assert metadata.num_row_groups == 10
    column = metadata.schema.to_arrow_schema().get_field_index("key")
    assert matching_row_groups(metadata, column, ["k003", "k0055", "k007"]) == [0]
    assert matching_row_groups(metadata, column, ["k003", "k095"]) == [0, 9]
    assert matching_row_groups(metadata, column, ["k015", "k016"]) == [1]
    assert matching_row_groups(metadata, column, ["a", "k0999", "z"]) == []  # below, past and above every group

    wanted = {("link", "k003"), ("link", "k007"), ("link", "k0055"), ("text", "k005"), ("link", "k042")}
    assert sorted(lookup_file(info["path"], wanted)) == [("link", "k003", "a003"), ("link", "k007", "a007"),
                                                         ("link", "k042", "a042")]
    assert lookup_file(info["path"], {("link", "nope")}) == []


# ---------------------------------------------------------------- whole runs


def test_a_run_knows_earlier_links_and_texts_only_through_the_index(web, tmp_path):
    stored_link = web.add("/a/stored.html", article_page("Stored link", body_paragraphs(1), "https://a.example/stored", "A"))
    copy = web.add("/b/copy.html", article_page("Stored text", body_paragraphs(2), "https://b.example/copy", "B"))
    # the content hash as the pipeline computes it: from a real run into a scratch dataset
    run(feed_file(web, tmp_path, "/scratch.xml", {"Copy": copy}), tmp_path / "scratch", "scratch")
    text_hash = pd.read_parquet(tmp_path / "scratch" / "articles").content_hash.item()

    out = tmp_path / "data"  # no articles or duplicates tables: one committed run of key files only
    commit_keys(out, "hand", [{"key": link_key({"link": stored_link}), "kind": "link", "article_id": "hand-link"},
                              {"key": text_hash, "kind": "text", "article_id": "hand-text"}])
    assert {p.parts[-3] for p in out.rglob("*.parquet")} == {"_state"}
    fetched_before = web.requests.count("/a/stored.html")

    manifest = run(feed_file(web, tmp_path, "/feed.xml", {"Stored": stored_link, "Copy": copy}), out, "r1")
    assert manifest["links"] == {"discovered": 2, "articles": 0, "duplicates": 1, "errors": 0, "already_stored": 1,
                                 "balanced": True}
    assert web.requests.count("/a/stored.html") == fetched_before == 0, "a stored link is not fetched again"
    assert not list(out.glob("articles/**/*.parquet"))
    duplicates = pd.read_parquet(out / "duplicates")
    assert list(duplicates.url) == [copy] and duplicates.tier.item() == "exact"
    assert duplicates.duplicate_of.item() == "hand-text"
    assert manifest["counts"]["stored_keys_found"] == 2  # the link, then the text


def from_before_the_index(out: Path, run_id: str) -> None:
    """Make a run look as a run from before the index left it: no key files, none named by its (still valid) manifest."""
    for path in out.glob(f"_state/keys/part-{run_id}-*.parquet"):
        path.unlink()
    manifest_path = out / "runs" / f"{run_id}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = [f for f in manifest["files"] if not f.startswith("_state/keys/")]
    manifest["state_files"] = [f for f in manifest["state_files"] if "/_state/keys/" not in f["path"]]
    manifest_path.write_text(json.dumps(manifest, indent=2))


def test_a_run_committed_before_the_index_is_still_deduplicated_against(web, tmp_path):
    pages = {f"Story {i}": web.add(f"/p{i}.html", article_page(f"Story {i}", body_paragraphs(i + 3), f"https://a.example/{i}", "A"))
             for i in range(3)}
    old = dict(list(pages.items())[:2])
    out = tmp_path / "data"
    run(feed_file(web, tmp_path, "/feed.xml", old), out, "old")
    from_before_the_index(out, "old")
    legacy = committed_runs(str(out))["old"]
    assert any(f.startswith("articles/") for f in legacy.files) and not any(f.startswith("_state/keys/") for f in legacy.files)

    second = run(feed_file(web, tmp_path, "/feed.xml", pages), out, "new")  # a changed feed names the old links again
    assert second["links"] == {"discovered": 3, "articles": 1, "duplicates": 0, "errors": 0, "already_stored": 2,
                               "balanced": True}
    assert all(web.requests.count(f"/p{i}.html") == 1 for i in range(3)), web.requests
    articles = pd.read_parquet(out / "articles")
    assert sorted(articles.url) == sorted(pages.values()) and articles.article_id.is_unique
    assert list(out.glob("_state/keys/part-new-*.parquet")), "the new run is indexed"


# ---------------------------------------------------------------- the job graph


def graph_size(p) -> int:
    """The serialized job graph's length (of a Pipeline, or of a pipeline proto as a runner translated it). Beam's
    Create pickles a class of its own by value, and cloudpickle stamps it with a new uuid4 at each build, inside a
    bz2 payload: those payloads are counted decompressed, uuids blanked."""
    graph = p.to_runner_api() if isinstance(p, beam.Pipeline) else p
    for transform in graph.components.transforms.values():
        if transform.spec.urn == "beam:transform:pickled_python:v1":
            raw = bz2.decompress(base64.b64decode(transform.spec.payload))
            transform.spec.payload = re.sub(rb"[0-9a-f]{32}", b"0" * 32, raw)
    return len(graph.SerializeToString())


def _history(out: Path, runs: int = 3, articles: int = 300) -> None:
    """`runs` committed runs of `articles` articles each: their key index and near and story state."""
    when = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    for r in range(runs):
        run_id = f"old{r}"
        ids = [f"{run_id}-{i:04d}" for i in range(articles)]
        index = [row for i, a in enumerate(ids) for row in key_rows("articles", {
            "article_id": a, "url": f"https://a.example/{a}?utm_source=x", "canonical_url": f"https://a.example/{a}",
            "content_hash": f"{r:02d}{i:030x}"})]
        near = [{"article_id": a, "published_at": when, "shingles": 40, "full": bytes(64), "lead": bytes(32)} for a in ids]
        story = [{"article_id": a, "story_id": a, "published_at": when, "names": ["Saltmere"], "terms": ["pier"],
                  "counts": [2], "lead": ["pier"], "numbers": ["12"]} for a in ids]
        commit_keys(out, run_id, index, [state_file(out, run_id, "near", 5000 + r, near),
                                         state_file(out, run_id, "story", 5000 + r, story)])


def test_the_job_graph_does_not_grow_with_the_stored_history(tmp_path):
    out = tmp_path / "data"  # one path for both builds: the graph holds it, in compressed pickles
    before = datetime(2100, 1, 1, tzinfo=timezone.utc)  # one StoredView time for both; after every commit
    config = RunConfig(feeds=read_sources(str(SAMPLE)), feeds_location=str(SAMPLE), out=str(out), run_id="next")
    about = {"kind": "run", "feeds": "sample"}

    def build() -> tuple[int, int]:
        stored = load_stored_state(config.out, config.run_id)
        stored = dataclasses.replace(stored, view=StoredView(config.out, config.run_id, before))
        p = beam.Pipeline()
        build_pipeline(p, config, stored, RunFiles(config.out, "next", ATTEMPT), about)
        return len(stored.view.commits()), graph_size(p)

    empty = build()
    _history(out)
    full = build()
    assert len(list(out.glob("_state/keys/*.parquet"))) == 3 * 16
    assert empty[0] == 0 and full[0] == 3
    assert empty[1] == full[1], (empty, full)
