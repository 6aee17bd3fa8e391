"""The extraction pool of local runs (transforms/extract_pool.py): the pooled path writes the same rows as the
in-process one, a bundle too small for the pool never starts one, and a worker that dies costs only its page."""

from __future__ import annotations

import os
import random

import pandas as pd
import pytest

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.extract_core import extract_batch, extract_outcome
from newsbeam.transforms.extract_pool import POOL_FROM, ExtractionPool
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, body_paragraphs
from test_stored import FAST, feed_file

PAGES = POOL_FROM + 16
WORDS = ("harbour council ferry budget school bridge storm repair vote strike museum rail freight festival clinic "
         "reservoir pension audit tunnel levy market orchard quarry lighthouse library canal").split()


def the_web(web) -> dict[str, str]:
    """PAGES article pages (some of them copies of others), two pages with no article and one that is not HTML."""
    links, texts = {}, []
    for i in range(PAGES):
        rng = random.Random(i)
        texts.append([" ".join(rng.choice(WORDS) for _ in range(18)).capitalize() + "." for _ in range(6)])
        paragraphs = texts[i - 1] if i % 10 == 9 else texts[i]  # every tenth page copies the page before
        links[f"Story {i}"] = web.add(f"/p/{i}.html", article_page(f"Story {i}", paragraphs, f"https://n.example/{i}", "N"))
    links["Empty"] = web.add("/p/empty.html", "<html><body><nav>Home</nav></body></html>")
    links["Binary"] = web.add("/p/binary.html", "\x00\x01\x02 not a page", content_type="text/html")
    return links


def rows(out) -> dict[str, list]:
    found = {}
    for table in ("articles", "duplicates", "errors"):
        frame = pd.read_parquet(out / table)
        frame = frame.drop(columns=[c for c in frame.columns if c in ("run_id", "fetched_at", "failed_at", "date")])
        found[table] = sorted(map(str, frame.to_dict("records")))
    return found


def test_the_pooled_path_writes_the_same_rows_as_the_in_process_one(web, tmp_path):
    feeds = feed_file(web, tmp_path, "/many.xml", the_web(web))
    results = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        config = RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(out), run_id="r",
                           fetch=FAST, extract_processes=processes)
        manifest = run_job(config)
        assert manifest["links"]["balanced"]
        results[processes] = rows(out), manifest["counts"]
    (one, one_counts), (two, two_counts) = results[1], results[2]
    assert one == two
    assert len(one["articles"]) > POOL_FROM // 2 and one["errors"]  # the run kept articles and failed some pages
    for name in ("extract_failed", "extracted_trafilatura"):
        assert one_counts.get(name) == two_counts.get(name), name
    assert "extract_pooled" not in one_counts and two_counts["extract_pooled"] == PAGES + 2  # every page, in the pool


def crash_on(args: list) -> list:
    """A worker's task that kills its process on a page whose url says so, as a crash in lxml would."""
    if any("crash" in url for _, url, _ in args):
        os._exit(3)
    return extract_batch(args)


def test_a_worker_that_dies_costs_only_the_page_that_killed_it():
    page = article_page("Story", body_paragraphs(1, 6), "https://n.example/1", "N")
    pool = ExtractionPool(2, crash_on)
    try:
        args = [(page, f"https://n.example/{i}", {}) for i in range(6)]
        args[3] = (page, "https://n.example/crash", {})
        pool.submit(list(range(3)), args[:3])
        pool.submit(list(range(3, 6)), args[3:])
        outcomes = dict(pool.done(block=True))
    finally:
        pool.shutdown()
    assert sorted(outcomes) == list(range(6))
    assert outcomes[3][0] == "internal" and "died" in outcomes[3][1]
    expected = extract_outcome(page, "https://n.example/0", {})
    assert all(outcomes[i][0] == "doc" and outcomes[i][1]["text"] == expected[1]["text"] for i in (0, 1, 2, 4, 5))


@pytest.mark.parametrize("processes", [1, 2])
def test_a_small_run_never_starts_a_pool(web, tmp_path, processes, monkeypatch):
    import newsbeam.transforms.extract as extract

    started = []
    monkeypatch.setattr(extract, "ExtractionPool", lambda *a, **k: started.append(a) or pytest.fail("a pool started"))
    links = {f"Story {i}": web.add(f"/s/{i}.html", article_page(f"S{i}", body_paragraphs(i, 6), f"https://s.example/{i}", "S"))
             for i in range(5)}
    feeds = feed_file(web, tmp_path, "/few.xml", links)
    manifest = run_job(RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(tmp_path / "out"),
                                 run_id="r", fetch=FAST, extract_processes=processes))
    assert manifest["links"]["balanced"] and not started


def test_where_no_pool_can_start_the_run_extracts_in_place(web, tmp_path, monkeypatch):
    """No /dev/shm for multiprocessing's semaphores (some containers): the run extracts in one process, all rows kept."""
    import newsbeam.transforms.extract as extract

    def no_semaphores(*args, **kwargs):
        raise OSError(38, "Function not implemented: sem_open")

    monkeypatch.setattr(extract, "ExtractionPool", no_semaphores)
    feeds = feed_file(web, tmp_path, "/many.xml", the_web(web))
    manifest = run_job(RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(tmp_path / "out"),
                                 run_id="r", fetch=FAST, extract_processes=2))
    assert manifest["links"]["balanced"] and manifest["counts"]["extract_pool_unavailable"] == 1
    assert "extract_pooled" not in manifest["counts"]
    assert manifest["counts"]["extracted_trafilatura"] == PAGES
