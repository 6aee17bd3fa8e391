"""`newsbeam compact` (pipeline/compact_cmd.py, transforms/compact.py) on datasets that real runs wrote over a
loopback web: files fall to one a partition, every row stays (a content hash of each row), the next run decides
as it would have, a crash at each write boundary leaves a dataset readers see whole and the next command
finishes the job, and a compacted run cannot be rerun under its id. Read back with pandas."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from newsbeam.pipeline.cli import main
from newsbeam.pipeline.compact_cmd import compact
from newsbeam.pipeline.lock import LockedError, writer_lock
from newsbeam.pipeline.stream_cmd import next_uncompacted, poll_id
from newsbeam.transforms.commits import committed_runs, retired_path
from newsweb import article_page, body_paragraphs
from test_stored import feed_file, from_before_the_index, run

TABLES = ("articles", "duplicates", "errors")
CRASH_RUN = Path(__file__).with_name("crash_run.py")
TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = [f"{TODAY - timedelta(days=d):%Y-%m-%d}" for d in (2, 1)]  # within the near and story lookbacks


def story(web, i: int, site: str = "a", paragraphs: list[str] | None = None) -> str:
    day = DAYS[i % len(DAYS)]
    return web.add(f"/{site}/s{i}.html", article_page(f"Story {i} of {site}", paragraphs or body_paragraphs(i, 6),
                                                      f"https://{site}.example/s{i}", site.upper(), f"{day}T08:00:00Z"))


@pytest.fixture(scope="module")
def history(module_web, tmp_path_factory):
    """Four runs into one dataset: new stories each time over two days, a copy or two, a link that fails."""
    web, folder = module_web, tmp_path_factory.mktemp("history")
    out = folder / "data"
    for r in range(4):
        links = {f"Story {i}": story(web, i) for i in range(3 * r, 3 * r + 3)}
        links[f"Copy {r}"] = story(web, 100 + r, "b", body_paragraphs(3 * r, 6))  # the same text at another site
        links[f"Gone {r}"] = web.url(f"/missing-{r}.html")  # a 404: an error row
        run(feed_file(web, folder, f"/feed{r}.xml", links), out, f"r{r}")
    return web, folder, out


def rows_of(out: Path) -> dict[str, Counter]:
    """Every row of each table, as pandas reads the folder, by a hash of its content."""
    found = {}
    for table in TABLES:
        frame = pd.read_parquet(out / table) if (out / table).exists() else pd.DataFrame()
        found[table] = Counter(hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
                               for row in frame.to_dict("records"))
    return found


def partition_files(out: Path) -> dict[str, int]:
    return dict(Counter(str(p.parent.relative_to(out)) for table in TABLES for p in (out / table).rglob("*.parquet")))


def copy_of(out: Path, to: Path) -> Path:
    shutil.copytree(out, to)
    return to


def test_compact_merges_each_partition_into_one_file_and_keeps_every_row(history, tmp_path):
    _, _, original = history
    out = copy_of(original, tmp_path / "data")
    before, files_before = rows_of(out), partition_files(out)
    state_before = len(list((out / "_state").rglob("*.parquet")))
    assert max(files_before.values()) > 1, "the runs left several files in a partition"

    done = compact(str(out), keep_recent=timedelta(0))

    assert done["compacted_runs"] == 4
    assert rows_of(out) == before  # not a row lost or doubled
    assert set(partition_files(out)) == set(files_before) and set(partition_files(out).values()) == {1}
    assert len(list((out / "_state").rglob("*.parquet"))) < state_before
    assert [p.name for p in (out / "runs").glob("*.json")] == [f"{done['run_id']}.json"]
    assert sorted(p.name for p in (out / "runs" / "_compacted").glob("*.json")) == [f"r{r}.json" for r in range(4)]
    assert not (out / "_compact").exists(), "no staging folder left"
    assert list(committed_runs(str(out))) == [done["run_id"]]


def test_compacting_again_changes_nothing(history, tmp_path):
    out = copy_of(history[2], tmp_path / "data")
    compact(str(out), keep_recent=timedelta(0))
    files = sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert compact(str(out), keep_recent=timedelta(0))["compacted_runs"] == 0
    assert sorted(str(p) for p in out.rglob("*") if p.is_file()) == files


NEW_STORY = ["Ferry crews at the harbour walked out on Monday over the new night rota, the union said.",
             "The operator said two of its five crossings would still sail and that talks would resume on Thursday.",
             "Passengers queued at the terminal from dawn; some were turned back when the last boat filled.",
             "The union wants the rota delayed until a review of rest hours, which the operator rejects.",
             "Freight lorries were diverted to the northern route, adding two hours to the journey.",
             "Both sides said they expected a deal before the holiday timetable begins next month."]


LATER_STORY = ["The observatory on the ridge reopened after two winters of repairs to its dome, the trust said.",
               "Volunteers rebuilt the track motor by hand; the lens itself needed only cleaning.",
               "School groups can book evening sessions from next week, with the first clear night already full.",
               "The trust still needs a new roof for the visitor hut before the autumn storms arrive.",
               "A local firm has offered the timber; the trust is asking for help with the labour.",
               "The dome will open to everyone on the first Saturday of each month."]


def test_a_later_compaction_rewrites_what_changed_and_keeps_the_rest(history, tmp_path):
    web, folder, original = history
    out = copy_of(original, tmp_path / "data")
    compact(str(out), keep_recent=timedelta(0))
    first = {p.parent.name: p for p in (out / "articles").rglob("*.parquet")}
    latest = max(first)  # a new run adds to one partition only
    later = story(web, 50 + DAYS.index(latest[len("date="):]), "f", LATER_STORY)
    run(feed_file(web, folder, "/later.xml", {"Later": later}), out, "later")
    before = rows_of(out)

    done = compact(str(out), keep_recent=timedelta(0))
    assert done["compacted_runs"] == 2 and done["carried"] > 0
    again = {p.parent.name: p for p in (out / "articles").rglob("*.parquet")}
    assert set(again) == set(first)
    changed = {day for day in first if again[day] != first[day]}
    assert len(changed) == 1 and all(again[d] == first[d] for d in set(first) - changed)  # the rest carried over
    assert rows_of(out) == before
    run(feed_file(web, tmp_path, "/empty.xml", {}), out, "after")  # its sweep keeps what the compaction carried
    assert rows_of(out) == before and all(p.exists() for p in again.values())


def next_run(web, folder: Path, out: Path, run_id: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """A run that meets the history every way: a stored link, a stored text at a new URL, an edited copy, a new story."""
    links = {"Stored": story(web, 1), "Same text": story(web, 200, "c", body_paragraphs(4, 6)),
             "Edited": story(web, 201, "d", body_paragraphs(7, 6) + ["The copy adds a paragraph of its own at the end, as syndicated copies do."]),
             "New": story(web, 300, "e", NEW_STORY)}
    manifest = run(feed_file(web, folder, "/next.xml", links), out, run_id)
    mine = lambda frame: frame[frame.run_id == run_id].drop(columns=["run_id", "fetched_at"], errors="ignore")  # noqa: E731
    articles = mine(pd.read_parquet(out / "articles"))[["url", "article_id", "story_id", "content_hash"]]
    duplicates = mine(pd.read_parquet(out / "duplicates"))[["url", "tier", "duplicate_of"]]
    return manifest, articles.sort_values("url", ignore_index=True), duplicates.sort_values("url", ignore_index=True)


def test_the_next_run_decides_as_it_would_have_without_compaction(history, tmp_path):
    web, folder, original = history
    plain, compacted = copy_of(original, tmp_path / "plain"), copy_of(original, tmp_path / "compacted")
    compact(str(compacted), keep_recent=timedelta(0))

    expected = next_run(web, folder, plain, "next")
    got = next_run(web, folder, compacted, "next")
    assert got[0]["links"] == expected[0]["links"] and expected[0]["links"]["already_stored"] == 1
    pd.testing.assert_frame_equal(got[1], expected[1])
    pd.testing.assert_frame_equal(got[2], expected[2])
    assert set(expected[2].tier) == {"exact", "near"}, expected[2]  # a text and an edited copy of the history


@pytest.mark.parametrize("stop", ["journal", "files", "commit", "swap"])
def test_a_compaction_killed_at_each_boundary_is_finished_by_the_next_command(history, tmp_path, stop):
    """`newsbeam compact` killed with SIGKILL (nothing gets to clean up) after each step: readers see every row once,
    and the next command, a run or compact, rolls it back or finishes it."""
    out = copy_of(history[2], tmp_path / "data")
    before = rows_of(out)

    child = subprocess.run([sys.executable, str(CRASH_RUN), f"compact:{stop}", "compact", str(out), "--keep-recent",
                            "0.000001"], capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-2000:]
    assert rows_of(out) == before, f"a reader after a kill at {stop!r} sees every row once"

    if stop in ("commit", "swap"):  # committed: any command under the lock finishes it; a run is one
        assert len(committed_runs(str(out))) == 1
        run(feed_file(history[0], tmp_path, "/empty.xml", {}), out, "after")
        assert rows_of(out) == before
        assert set(partition_files(out).values()) == {1}
    compact(str(out), keep_recent=timedelta(0))
    assert rows_of(out) == before
    assert set(partition_files(out).values()) == {1}
    assert not list((out / "_compact").glob("*"))
    named = {name for c in committed_runs(str(out)).values() for name in c.files}
    assert {str(p.relative_to(out)) for p in out.rglob("*.parquet")} <= named, "every file left is committed"


def test_a_reader_during_compaction_sees_every_row_once(history, tmp_path):
    """pandas reading the tables over and over while compact swaps the partitions: each read that succeeds has every
    row once (one that listed a partition just before its swap may fail to find a file, and reads again)."""
    import threading

    out = copy_of(history[2], tmp_path / "data")
    before = rows_of(out)
    reads, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                reads.append(rows_of(out) == before)
            except (FileNotFoundError, OSError):
                reads.append(None)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        compact(str(out), keep_recent=timedelta(0))
    finally:
        stop.set()
        thread.join()
    assert reads and False not in reads, reads
    assert rows_of(out) == before


def test_a_compacted_run_is_not_rerun_under_its_id(history, tmp_path, capsys):
    web, folder, original = history
    out = copy_of(original, tmp_path / "data")
    assert main(["compact", str(out), "--keep-recent", "0.000001"]) == 0
    assert "4 runs compacted into one: " in capsys.readouterr().out
    feeds = feed_file(web, folder, "/feed0.xml", {"Story 0": story(web, 0)})
    assert main(["run", "--feeds", str(feeds), "--out", str(out), "--run-id", "r1", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "r1" in err[0] and "was compacted" in err[0]


def test_compact_waits_for_no_one_and_refuses_a_held_dataset_or_a_folder_that_is_not_one(history, tmp_path, capsys):
    out = copy_of(history[2], tmp_path / "data")
    with writer_lock(str(out), "busy", "run"):
        with pytest.raises(LockedError):
            compact(str(out), keep_recent=timedelta(0))
    assert main(["compact", str(tmp_path)]) == 2
    assert "not a newsbeam dataset" in capsys.readouterr().err


def test_a_local_run_compacts_once_enough_old_runs_wait_and_not_with_no_compact(module_web, tmp_path):
    from dataclasses import replace

    from newsbeam.pipeline.compact_cmd import AUTO_COMPACT
    from newsbeam.pipeline.config import RunConfig
    from newsbeam.pipeline.job import run_job
    from newsbeam.transforms.sources import read_sources
    from test_stored import FAST, _history

    out = tmp_path / "data"
    _history(out, runs=AUTO_COMPACT, articles=2)  # hand-made runs, committed two days ago
    for path in (out / "runs").glob("*.json"):
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, "committed_at": (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()}))
    feeds = feed_file(module_web, tmp_path, "/auto.xml", {"Story": story(module_web, 400, "g", LATER_STORY)})
    config = RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(out), run_id="held", fetch=FAST)

    assert "compacted" not in run_job(replace(config, compact=False))
    assert len(list((out / "runs").glob("*.json"))) == AUTO_COMPACT + 1
    manifest = run_job(replace(config, run_id="next"))
    assert manifest["compacted"]["compacted_runs"] == AUTO_COMPACT  # "held" is too recent, and so is "next"
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == sorted(
        [f"{manifest['compacted']['run_id']}.json", "held.json", "next.json"])


def test_a_file_compaction_cannot_read_stops_it_in_one_line_and_changes_nothing(history, tmp_path, capsys):
    out = copy_of(history[2], tmp_path / "data")
    before, files = rows_of(out), sorted(str(p) for p in out.rglob("*.parquet"))
    damaged = sorted((out / "_state" / "keys").glob("*.parquet"))[0]
    damaged.write_bytes(b"not parquet at all")

    assert main(["compact", str(out), "--keep-recent", "0.000001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(damaged) in err[0] and "nothing was compacted" in err[0]
    assert rows_of(out) == before and sorted(str(p) for p in out.rglob("*.parquet")) == files  # what it wrote is gone
    assert len(committed_runs(str(out))) == 4 and not list((out / "_compact").glob("*"))
    run(feed_file(history[0], tmp_path, "/empty.xml", {}), out, "after")  # and runs go on as before
    assert rows_of(out) == before


def test_compaction_indexes_a_run_from_before_the_index(module_web, tmp_path):
    """A run whose manifest names no key files is indexed from its tables: after compaction the next run finds its
    links in the key index (and reads no table for them)."""
    web = module_web
    links = {f"Old {i}": story(web, 500 + i, "h", [f"Paragraph {j} of the old story number {i}, told at length." for j in range(6)])
             for i in range(3)}
    out = tmp_path / "data"
    run(feed_file(web, tmp_path, "/old.xml", links), out, "old")
    from_before_the_index(out, "old")
    run(feed_file(web, tmp_path, "/none.xml", {}), out, "other")  # a second run, so there is something to merge

    compact(str(out), keep_recent=timedelta(0))
    assert sum(len(pd.read_parquet(p)) for p in out.glob("_state/keys/*.parquet")) >= 2 * len(links)
    again = run(feed_file(web, tmp_path, "/old-again.xml", links), out, "again")
    assert again["links"]["already_stored"] == len(links) and again["counts"]["stored_keys_found"] == len(links)


def test_a_restarted_stream_numbers_its_polls_after_the_compacted_ones(tmp_path):
    out = str(tmp_path)
    assert next_uncompacted(out, "s", 1) == 1
    for n in range(1, 38):  # polls 1..37 compacted
        path = Path(retired_path(out, poll_id("s", n)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert next_uncompacted(out, "s", 1) == 38
    assert next_uncompacted(out, "s", 40) == 40
