"""Feed list, dataset and state on a non-local Beam FileSystem (a stand-in for gs://).

`fakegs://` is a Beam FileSystem registered here that keeps its objects in a local folder and
lists them as a flat namespace, as Cloud Storage does. Everything newsbeam reads and writes
must go through Beam's filesystems for the runs below to work; the files are then checked
where the stand-in keeps them, with pandas.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from datetime import datetime, timedelta, timezone

import apache_beam as beam
import pandas as pd
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

from newsbeam.pipeline.cli import main
from newsbeam.pipeline.config import RunConfig, check_out
from newsbeam.pipeline.job import load_stored_state, run_job
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import read_sources
from newsbeam.transforms.stored import LookupKeys, StoredView
from newsweb import build_news_web

SCHEME = "fakegs://"
LOCAL = FetchSettings(connect_timeout=2, read_timeout=1.0, deadline=2.5, allow_private_network=True, retries=1, backoff=0.05, host_delay=0)


class FakeCloudFileSystem(LocalFileSystem):
    """Objects under `root`, named fakegs://bucket/key; no directories, like an object store."""

    root: str | None = None

    @classmethod
    def scheme(cls):
        return "fakegs"

    def _local(self, path: str) -> str:
        assert path.startswith(SCHEME), path
        return os.path.join(self.root, path[len(SCHEME):])

    def _remote(self, local: str) -> str:
        return SCHEME + os.path.relpath(local, self.root)

    def join(self, base, *paths):
        return posixpath.join(base, *paths)

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def has_dirs(self):
        return False

    def mkdirs(self, path):
        pass  # an object store has no folders

    def exists(self, path):
        return os.path.isfile(self._local(path))  # nor can a folder exist: only objects do, as on Cloud Storage

    def _list(self, prefix):
        local = self._local(prefix)
        top = local if os.path.isdir(local) else os.path.dirname(local)
        for folder, _, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                if path.startswith(local):
                    yield FileMetadata(self._remote(path), os.path.getsize(path), os.path.getmtime(path))

    def create(self, path, *args, **kwargs):
        os.makedirs(os.path.dirname(self._local(path)), exist_ok=True)
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def copy(self, sources, destinations):
        for s, d in zip(sources, destinations):
            os.makedirs(os.path.dirname(self._local(d)), exist_ok=True)
            shutil.copy(self._local(s), self._local(d))

    def rename(self, sources, destinations):
        for s, d in zip(sources, destinations):
            os.makedirs(os.path.dirname(self._local(d)), exist_ok=True)
            os.replace(self._local(s), self._local(d))

    def size(self, path):
        return os.path.getsize(self._local(path))

    def last_updated(self, path):
        return os.path.getmtime(self._local(path))

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        local = self._local(path)
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def delete(self, paths):
        for path in paths:
            local = self._local(path)
            shutil.rmtree(local) if os.path.isdir(local) else os.remove(local)


@pytest.fixture
def bucket(tmp_path):
    FakeCloudFileSystem.root = str(tmp_path / "objects")
    os.makedirs(FakeCloudFileSystem.root)
    yield tmp_path / "objects" / "news-bucket"
    FakeCloudFileSystem.root = None


def news_in_bucket(bucket, module_web, tmp_path) -> tuple:
    """The news web's feed list put in the stand-in bucket: (news web, feed list URL, dataset URL)."""
    (tmp_path / "web").mkdir()
    news = build_news_web(module_web, tmp_path / "web")
    (bucket / "lists").mkdir(parents=True)
    shutil.copy(news.feeds_file, bucket / "lists" / "feeds.opml")
    return news, f"{SCHEME}news-bucket/lists/feeds.opml", f"{SCHEME}news-bucket/data"


def test_feed_list_dataset_and_state_on_a_remote_filesystem(bucket, module_web, tmp_path):
    _, feeds, out = news_in_bucket(bucket, module_web, tmp_path)
    out = check_out(out)  # as the CLI checks it: an object store has no folder to create

    first = run_job(RunConfig(feeds=read_sources(feeds), feeds_location=feeds, out=out, run_id="one", fetch=LOCAL))
    articles = pd.read_parquet(bucket / "data" / "articles")
    assert first["links"]["balanced"] and first["links"]["articles"] == len(articles) > 0
    assert first["tables"]["articles"]["files"][0]["path"].startswith(f"{SCHEME}news-bucket/data/articles/date=")
    assert (bucket / "data" / "runs" / "one.json").is_file()
    assert not [p for p in (bucket / "data").rglob(".*") if p.is_file()], "temporary objects left behind"

    # The second run reads what the first stored (feed state, link keys) through the same filesystem.
    second = run_job(RunConfig(feeds=read_sources(feeds), feeds_location=feeds, out=out, run_id="two", fetch=LOCAL))
    assert second["stored_before"]["feed_states"] == first["feeds"]
    # ... the same as reading those files where they lie, as a local dataset (the second run's own excluded)
    local = load_stored_state(str(bucket / "data"), "two")
    assert second["stored_before"]["feed_states"] == len(local.feeds) > 0
    assert second["counts"]["feeds_unchanged"] == first["counts"]["feeds_fetched"]
    # The workers find the first run's links and texts in its key index through the remote filesystem.
    wanted = [("link", url) for url in articles.canonical_url] + [("text", h) for h in articles.content_hash]
    with beam.Pipeline(runner="DirectRunner") as p:
        found = p | beam.Create(wanted) | LookupKeys(StoredView(out, "two", datetime.now(timezone.utc)))
        assert_that(found["found"] | beam.Keys(), equal_to(wanted))
    assert len(pd.read_parquet(bucket / "data" / "articles")) == len(articles)


def test_compact_on_an_object_store_keeps_every_row_and_the_next_run_goes_on(bucket, module_web, tmp_path, capsys):
    from newsbeam.pipeline.compact_cmd import compact

    _, feeds, out = news_in_bucket(bucket, module_web, tmp_path)
    for run_id in ("one", "two"):
        run_job(RunConfig(feeds=read_sources(feeds), feeds_location=feeds, out=out, run_id=run_id, fetch=LOCAL))
    tables = ("articles", "duplicates", "errors")
    before = {t: sorted(map(str, pd.read_parquet(bucket / "data" / t).to_dict("records"))) for t in tables}

    done = compact(out, keep_recent=timedelta(0))

    assert done["compacted_runs"] == 2
    assert {t: sorted(map(str, pd.read_parquet(bucket / "data" / t).to_dict("records"))) for t in tables} == before
    assert [p.name for p in (bucket / "data" / "runs").glob("*.json")] == [f"{done['run_id']}.json"]
    assert not [p for p in (bucket / "data" / "_compact").rglob("*") if p.is_file()], "no staged object left"
    third = run_job(RunConfig(feeds=read_sources(feeds), feeds_location=feeds, out=out, run_id="three", fetch=LOCAL))
    assert third["stored_before"]["feed_states"] > 0 and third["links"]["articles"] == 0
    assert main(["compact", f"{SCHEME}news-bucket/nothing-here"]) == 2
    assert "not a newsbeam dataset" in capsys.readouterr().err


def test_feeds_command_reads_a_remote_dataset(bucket, tmp_path, capsys, module_web):
    news, feeds, out = news_in_bucket(bucket, module_web, tmp_path)
    run_job(RunConfig(feeds=read_sources(feeds), feeds_location=feeds, out=out, run_id="one", fetch=LOCAL))
    assert main(["feeds", out]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{len(read_sources(feeds))} feeds, {len(news.feed_errors)} failing")


def _lock_object(bucket, heartbeat):
    lock = bucket / "data" / ".newsbeam.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"run_id": "elsewhere", "command": "newsbeam run", "host": "worker-7", "pid": 4242,
                                "started_at": heartbeat, "heartbeat_at": heartbeat, "token": "t0"}))
    return lock


def test_on_an_object_store_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(bucket, module_web, tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    _, feeds, out = news_in_bucket(bucket, module_web, tmp_path)
    args = ["run", "--feeds", feeds, "--out", out, "--allow-private-network", "--host-delay", "0", "--retries", "0", "-q"]
    now = datetime.now(timezone.utc)
    lock = _lock_object(bucket, (now - timedelta(seconds=30)).isoformat())
    assert main([*args, "--run-id", "mine"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "is being written by run elsewhere (newsbeam run, pid 4242 on worker-7" in said[0], said
    assert not (bucket / "data" / "runs").exists()

    _lock_object(bucket, (now - timedelta(minutes=11)).isoformat())  # its holder stopped beating ten minutes ago
    assert main([*args, "--run-id", "mine"]) == 0
    assert (bucket / "data" / "runs" / "mine.json").is_file() and not lock.exists()
