"""A run commits whole or leaves no trace: kills at every write boundary, reruns of old and crashed ids, run ids that
are prefixes of others, two runs at once. Whole runs over a loopback web, the dataset read back with pandas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from newsbeam.pipeline.cli import main
from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.commits import committed_runs, owner_of
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, body_paragraphs, rss

FAST = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, allow_private_network=True, retries=0, host_delay=0)
CLI_FAST = ["--allow-private-network", "--host-delay", "0", "--retries", "0", "--read-timeout", "2", "--deadline", "5"]
CRASH_RUN = Path(__file__).with_name("crash_run.py")
ENTRY_STAGES_EXCLUDED = ("read_state", "read_sources", "fetch_feed", "parse_feed")


def little_web(web, folder: Path, delay: float = 0.0) -> tuple[Path, list[str]]:
    """Two feeds, seven links: four articles, a syndicated copy, a tracking link to an article, a dead link."""
    a_items = []
    for i in range(3):
        link = web.add(f"/a/{i}.html", article_page(f"Harbour story {i}", body_paragraphs(i), f"https://a.example/{i}",
                                                   "Alder Post", published=f"2026-11-2{i}T09:00:00+00:00"), delay=delay)
        a_items.append({"title": f"Harbour story {i}", "link": link})
    a_items.append({"title": "Gone", "link": web.url("/a/gone.html")})
    copy = web.add("/b/copy.html", article_page("Coast plan", body_paragraphs(0), "https://b.example/copy", "Birch Gazette",
                                                published="2026-11-20T15:00:00+00:00"))
    own = web.add("/b/own.html", article_page("Market hall", body_paragraphs(7), "https://b.example/own", "Birch Gazette"))
    b_items = [{"title": "Coast plan", "link": copy}, {"title": "Harbour story 1", "link": web.url("/a/1.html") + "?utm_source=b"},
               {"title": "Market hall", "link": own}]
    feeds = folder / "feeds.txt"
    feeds.write_text(web.add("/a/feed.xml", rss("Alder Post", a_items), content_type="application/rss+xml") + "\n"
                     + web.add("/b/feed.xml", rss("Birch Gazette", b_items), content_type="application/rss+xml") + "\n")
    return feeds, [item["link"] for item in a_items + b_items]


def run(feeds: Path, out: Path, run_id: str) -> dict:
    config = RunConfig(feeds=read_sources(str(feeds)), feeds_location=str(feeds), out=str(out), run_id=run_id, fetch=FAST)
    return run_job(config)


def crash(boundary: str, feeds: Path, out: Path, run_id: str) -> None:
    """A whole `newsbeam run` in a child process, killed at `boundary`."""
    child = subprocess.run([sys.executable, str(CRASH_RUN), boundary, "run", "--feeds", str(feeds), "--out", str(out),
                            "--run-id", run_id, "-q", *CLI_FAST], capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, f"the run was not killed at {boundary} (exit {child.returncode}): {child.stderr[-2000:]}"


def ends(out: Path) -> list[str]:
    """Every link the dataset accounts for, once per row: articles, duplicates and entry errors."""
    found = []
    for table in ("articles", "duplicates", "errors"):
        if (out / table).exists():
            rows = pd.read_parquet(out / table)
            if table == "errors":
                rows = rows[~rows.stage.isin(ENTRY_STAGES_EXCLUDED)]
            found += list(rows.url)
    return sorted(found)


def files_on_disk(out: Path) -> set[str]:
    folders = [out / t for t in ("articles", "duplicates", "errors", "_state")]
    return {str(p.relative_to(out)) for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()}


def files_committed(out: Path) -> set[str]:
    return {name for path in (out / "runs").glob("*.json") for name in json.loads(path.read_text()).get("files", [])}


def assert_whole(out: Path, links: list[str], manifest: dict) -> None:
    """Each link ends exactly once, every file on disk is one a committed manifest names, the run balances."""
    assert ends(out) == sorted(links)
    assert files_on_disk(out) == files_committed(out)
    assert manifest["links"]["balanced"], manifest["links"]
    duplicates = pd.read_parquet(out / "duplicates")
    assert not (duplicates.tier == "near").any(), "an article was filed as a near copy of itself"
    assert not (out / ".newsbeam.lock").exists()
    assert not list(out.glob("_tmp-*")), "a run's spilled batches outlived it"


@pytest.fixture(scope="module")
def crashed(module_web, tmp_path_factory):
    """One dataset per boundary, each left by a run killed there (the child processes run once per module)."""
    folder = tmp_path_factory.mktemp("crashes")
    feeds, links = little_web(module_web, folder)
    return folder, feeds, links


BOUNDARIES = ["state:feeds", "state:chrome", "state:keys", "state:near", "state:story", "table:articles", "table:errors",
              "manifest:before", "manifest:after", "launcher"]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_run_killed_at_a_write_boundary_then_rerun_accounts_for_every_link_once(crashed, boundary):
    folder, feeds, links = crashed
    out = folder / boundary.replace(":", "-")
    crash(boundary, feeds, out, "night")
    # killed while its pipeline ran (all but the launcher's last steps): its spilled batches are left behind
    assert (out / "_tmp-night").is_dir() == (boundary != "launcher")
    same_id, new_id = out.with_name(out.name + "-same"), out.with_name(out.name + "-new")
    shutil.copytree(out, same_id)
    shutil.copytree(out, new_id)

    after = run(feeds, new_id, "morning")
    # Nothing of an uncommitted run counts: not its feed state (the links would be lost), not its links, not its
    # near signatures (the re-fetched articles would be copies of themselves). After a committed one the
    # feeds are unchanged.
    assert ends(new_id) == sorted(links)
    committed = boundary in ("manifest:after", "launcher")
    assert after["links"]["discovered"] == (0 if committed else len(links))
    assert_whole(new_id, links, after)
    assert {owner_of(f).run_id for f in files_on_disk(new_id)} == ({"night", "morning"} if committed else {"morning"})
    assert ("night" in committed_runs(str(out))) == committed, "the run counts exactly when its manifest is written"

    again = run(feeds, same_id, "night")
    assert ends(same_id) == sorted(links)
    assert_whole(same_id, links, again)
    assert again["links"]["articles"] + again["links"]["duplicates"] + again["links"]["errors"] == len(links)


def test_rerunning_an_old_run_id_replaces_that_run_and_leaves_later_runs_alone(web, tmp_path):
    feeds, links = little_web(web, tmp_path)
    out = tmp_path / "data"
    for run_id in ("r1", "r2", "r3", "r4"):
        run(feeds, out, run_id)
    later = {p.name: p.read_bytes() for p in out.rglob("*.parquet") if owner_of(str(p)).run_id != "r1"}
    first = run(feeds, out, "r1")  # sees the feeds as they were before r1: not "unchanged", as r4 left them
    assert ends(out) == sorted(links)
    assert first["links"]["articles"] == 4 and first["links"]["balanced"]
    assert set(pd.read_parquet(out / "articles").run_id) == {"r1"}
    assert {p.name: p.read_bytes() for p in out.rglob("*.parquet") if owner_of(str(p)).run_id != "r1"} == later
    assert_whole(out, links, first)


def test_a_run_id_that_is_a_prefix_of_another_leaves_the_other_alone(web, tmp_path):
    feeds, links = little_web(web, tmp_path)
    out = tmp_path / "data"
    run(feeds, out, "nightly-2")
    theirs = sorted(out.rglob("part-nightly-2-*.parquet"))
    assert any("articles" in p.parts for p in theirs)
    for _ in range(2):  # once, and rerun
        manifest = run(feeds, out, "nightly")
        assert all(p.exists() for p in theirs)
        assert ends(out) == sorted(links)
        assert_whole(out, links, manifest)
    assert set(pd.read_parquet(out / "articles").run_id) == {"nightly-2"}


@pytest.mark.parametrize("boundary", ["manifest:before", "manifest:after"])
def test_a_rerun_of_a_committed_run_killed_at_its_commit_leaves_one_whole_version(web, tmp_path, boundary):
    feeds, links = little_web(web, tmp_path)
    out = tmp_path / "data"
    first = run(feeds, out, "r1")
    crash(boundary, feeds, out, "r1")
    attempt = committed_runs(str(out))["r1"].attempt
    assert (attempt == first["attempt"]) == (boundary == "manifest:before")
    manifest = run(feeds, out, "r2")  # the next run sweeps what the dead attempt left
    assert manifest["links"]["discovered"] == 0  # the feeds are as the committed version of r1 left them
    assert ends(out) == sorted(links)
    assert files_on_disk(out) == files_committed(out)


def test_a_second_run_into_the_same_dataset_is_refused_while_the_first_is_under_way(web, tmp_path, capsys):
    feeds, links = little_web(web, tmp_path, delay=1.5)  # pages slow enough that the first run is still fetching
    out = tmp_path / "data"
    first = subprocess.Popen([sys.executable, "-m", "newsbeam.pipeline.cli", "run", "--feeds", str(feeds), "--out", str(out),
                              "--run-id", "first", "-q", *CLI_FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(path.startswith("/a/") and path.endswith(".html") for path in web.requests) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the first run is fetching its pages
        capsys.readouterr()
        code = main(["run", "--feeds", str(feeds), "--out", str(out), "--run-id", "second", "-q", *CLI_FAST])
        said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("newsbeam:")]
    finally:
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert ends(out) == sorted(links), "stored once: the second run wrote nothing"
    assert code == 2 and len(said) == 1, said
    assert "is being written by run first (newsbeam run, pid" in said[0] and str(out) in said[0]
    assert not (out / "runs" / "second.json").exists()
    assert main(["run", "--feeds", str(feeds), "--out", str(out), "--run-id", "third", "-q", *CLI_FAST]) == 0  # free again


def test_a_corrupt_file_is_named_in_one_line_skipped_as_an_error_row_and_the_run_goes_on(web, tmp_path, capsys):
    feeds, links = little_web(web, tmp_path)
    out = tmp_path / "data"
    run(feeds, out, "r1")
    # a file of the key index that holds a link of the feeds: the workers read it to know the link is stored
    damaged = next(f for f in sorted(out.glob("_state/keys/*.parquet")) if links[0] in set(pd.read_parquet(f).key))
    damaged.write_bytes(b"not parquet at all")
    web.add("/b/feed.xml", rss("Birch Gazette", [{"title": "Harbour story 0", "link": links[0]}]))  # a changed feed names it
    manifest = run(feeds, out, "r2")
    said = [line for line in capsys.readouterr().err.splitlines() if "cannot be read" in line]
    assert len(said) == 1 and str(damaged) in said[0] and "magic bytes" in said[0]
    errors = pd.read_parquet(out / "errors")
    row = errors[errors.stage == "read_state"]
    assert list(row.error) == ["unreadable_file"] and list(row.url) == [str(damaged)]  # once, though read twice
    assert manifest["links"]["balanced"] and manifest["counts"]["stored_files_unreadable"] == 1
    assert damaged.exists(), "a committed file that cannot be read is never swept"
    assert main(["feeds", str(out)]) == 0


def test_a_manifest_that_cannot_be_read_stops_the_run_in_one_line(web, tmp_path, capsys):
    feeds, _ = little_web(web, tmp_path)
    out = tmp_path / "data"
    run(feeds, out, "r1")
    (out / "runs" / "r1.json").write_text('{"run_id": "r1", "status": "compl')
    capsys.readouterr()
    code = main(["run", "--feeds", str(feeds), "--out", str(out), "--run-id", "r2", "-q", *CLI_FAST])
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("newsbeam:")]  # not the web's own
    assert code == 2 and len(said) == 1 and "r1.json cannot be read" in said[0], said
    assert not (out / "runs" / "r2.json").exists()
    assert all((out / f).exists() for f in files_on_disk(out)), "nothing is swept while a manifest is unreadable"


def test_a_temporary_file_a_crashed_run_left_is_swept_by_the_next_run_of_another_id(web, tmp_path):
    feeds, links = little_web(web, tmp_path)
    out = tmp_path / "data"
    run(feeds, out, "r1")
    partition = next((out / "articles").glob("date=*"))
    leftover = partition / ".part-crashed-00000.parquet.0123456789abcdef0123456789abcdef.tmp"
    leftover.write_bytes(b"PAR1 half")
    run(feeds, out, "r2")
    assert not leftover.exists()
    stray = out / "_state" / "near" / "part-crashed-00003.0badf00d.parquet"  # a whole file, never committed
    stray.write_bytes(b"PAR1 never committed")
    run(feeds, out, "r3")
    assert not stray.exists()
    assert ends(out) == sorted(links)
