"""The feed-state rules (transforms/feed_state.py): conditional polls, lying validators, backoff and recovery."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


from newsbeam.transforms import feed_state as fs

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
URL = "http://news.example/feed.xml"


def first_fetch(body=b"<rss>v1</rss>", etag='"v1"', last_modified="Fri, 20 Nov 2026 07:00:00 GMT"):
    return fs.after_success(None, URL, T0, status=200, headers={"etag": etag, "last-modified": last_modified}, body=body)


def test_a_new_feed_is_polled_unconditionally():
    assert fs.poll_plan(None, T0) == (None, None)


def test_after_a_fetch_the_next_poll_is_conditional():
    outcome, state = first_fetch()
    assert outcome == fs.OK and state["body_sha256"] == fs.body_hash(b"<rss>v1</rss>")
    skip, validators = fs.poll_plan(state, T0 + timedelta(hours=1))
    assert skip is None and validators == {"etag": '"v1"', "last_modified": "Fri, 20 Nov 2026 07:00:00 GMT"}


def test_once_a_day_the_poll_is_unconditional_to_check_the_server():
    _, state = first_fetch()
    assert fs.poll_plan(state, T0 + fs.VERIFY_AFTER + timedelta(minutes=1)) == (None, None)


def test_a_feed_without_validators_is_polled_unconditionally():
    _, state = first_fetch(etag=None, last_modified=None)
    assert fs.poll_plan(state, T0 + timedelta(hours=1)) == (None, None)


def test_304_keeps_the_validators_and_notes_when():
    _, state = first_fetch()
    later = T0 + timedelta(hours=1)
    outcome, state = fs.after_success(state, URL, later, status=304, headers={}, body=None)
    assert outcome == fs.NOT_MODIFIED and state["etag"] == '"v1"' and state["last_not_modified_at"] == later
    assert state["full_fetch_at"] == T0


def test_the_same_body_is_unchanged_whatever_the_server_says():
    _, state = first_fetch()
    outcome, state = fs.after_success(state, URL, T0 + timedelta(hours=1), status=200, headers={"etag": '"v2"'}, body=b"<rss>v1</rss>")
    assert outcome == fs.UNCHANGED and state["conditional"]


def test_a_changed_body_under_the_same_etag_turns_conditional_polls_off():
    _, state = first_fetch()
    outcome, state = fs.after_success(state, URL, T0 + timedelta(days=1, minutes=1), status=200,
                                      headers={"etag": '"v1"'}, body=b"<rss>v2</rss>")
    assert outcome == fs.OK and state["conditional"] is False
    assert "unchanged ETag" in state["conditional_note"]
    assert fs.poll_plan(state, T0 + timedelta(days=1, hours=1)) == (None, None)  # unconditional from now on


def test_a_304_for_a_changed_feed_is_caught_by_the_daily_check():
    _, state = first_fetch(etag=None)
    _, state = fs.after_success(state, URL, T0 + timedelta(hours=1), status=304, headers={}, body=None)
    outcome, state = fs.after_success(state, URL, T0 + timedelta(days=1, minutes=1), status=200,
                                      headers={"last-modified": "Fri, 20 Nov 2026 07:00:00 GMT"}, body=b"<rss>v2</rss>")
    assert outcome == fs.OK and state["conditional"] is False and "304" in state["conditional_note"]


def test_an_honest_change_keeps_conditional_polls():
    _, state = first_fetch()
    _, state = fs.after_success(state, URL, T0 + timedelta(hours=1), status=304, headers={}, body=None)
    outcome, state = fs.after_success(state, URL, T0 + timedelta(hours=2), status=200,
                                      headers={"etag": '"v2"', "last-modified": "Fri, 20 Nov 2026 09:30:00 GMT"}, body=b"<rss>v2</rss>")
    assert outcome == fs.OK and state["conditional"] and state["etag"] == '"v2"'
    assert state["last_not_modified_at"] is None


def test_failures_back_off_exponentially_up_to_a_day():
    state, waits = None, []
    now = T0
    for _ in range(10):
        state = fs.after_failure(state, URL, now, error="http_status", message="HTTP 503", http_status=503)
        waits.append(state["next_poll_at"] - now)
        now = state["next_poll_at"]
    assert waits[:4] == [fs.BACKOFF_BASE, fs.BACKOFF_BASE * 2, fs.BACKOFF_BASE * 4, fs.BACKOFF_BASE * 8]
    assert max(waits) == fs.BACKOFF_MAX and waits[-1] == fs.BACKOFF_MAX  # never given up on
    assert state["consecutive_failures"] == 10 and state["last_error"] == "http_status: HTTP 503"


def test_retry_after_longer_than_the_backoff_wins():
    state = fs.after_failure(None, URL, T0, error="http_status", message="HTTP 429", http_status=429, retry_after=7200)
    assert state["next_poll_at"] == T0 + timedelta(hours=2)


def test_a_feed_backing_off_is_skipped_until_its_next_poll():
    state = fs.after_failure(None, URL, T0, error="timeout", message="timed out")
    skip, _ = fs.poll_plan(state, T0 + timedelta(minutes=5))
    assert skip and "backing off after 1 failed polls" in skip
    assert fs.poll_plan(state, state["next_poll_at"])[0] is None


def test_a_success_after_failures_resets_health_and_keeps_validators():
    _, state = first_fetch()
    state = fs.after_failure(state, URL, T0 + timedelta(hours=1), error="timeout", message="timed out")
    state = fs.after_failure(state, URL, T0 + timedelta(hours=2), error="timeout", message="timed out")
    assert state["etag"] == '"v1"' and state["last_success_at"] == T0
    outcome, state = fs.after_success(state, URL, T0 + timedelta(hours=3), status=304, headers={}, body=None)
    assert outcome == fs.NOT_MODIFIED
    assert (state["consecutive_failures"], state["next_poll_at"], state["last_error"]) == (0, None, None)


def test_latest_state_per_feed_wins():
    rows = [{"feed_url": URL, "checked_at": T0, "n": 1}, {"feed_url": URL, "checked_at": T0 + timedelta(hours=1), "n": 2},
            {"feed_url": "http://other/", "checked_at": T0, "n": 3}]
    assert {k: v["n"] for k, v in fs.latest_states(rows).items()} == {URL: 2, "http://other/": 3}


# Reading the state back: the newest files, not every run's


def _commit_feed_state(out, run_id, rows):
    """A committed run that wrote only feed state."""
    from newsbeam.schemas import SCHEMA_VERSION
    from newsbeam.transforms.commits import RunFiles, commit, new_attempt
    from newsbeam.transforms.write import state_dir, write_rows

    run = RunFiles(str(out), run_id, new_attempt())
    info = write_rows("feeds", run.path(state_dir(str(out), "feeds"), 0),
                      [{**r, "run_id": run_id, "schema_version": SCHEMA_VERSION} for r in rows])
    commit(str(out), run_id, run.attempt, [{**info, "table": "_state/feeds"}], {"kind": "run"})
    return info["path"]


def test_a_run_reads_the_newest_feed_state_files_only_as_far_as_it_needs(tmp_path):
    from newsbeam.pipeline.job import load_stored_state

    other = "http://other.example/feed.xml"
    _, old = first_fetch()
    oldest = _commit_feed_state(tmp_path, "r1", [old])
    _, newer = fs.after_success(old, URL, T0 + timedelta(hours=1), status=304, headers={}, body=None)
    _commit_feed_state(tmp_path, "r2", [newer, {**old, "feed_url": other}])
    with open(oldest, "wb") as f:
        f.write(b"not parquet any more")  # a run that needs only the newest commit's file never opens this one
    stored = load_stored_state(str(tmp_path), "r3", {URL, other})
    assert stored.feeds[URL]["last_status"] == fs.NOT_MODIFIED and set(stored.feeds) == {URL, other}
    assert stored.unreadable == []
    everything = load_stored_state(str(tmp_path), "r3")  # reading every file does reach it: named, skipped
    assert [path for path, _ in everything.unreadable] == [oldest]
    assert "magic bytes" in everything.unreadable[0][1] and everything.feeds[URL]["last_status"] == fs.NOT_MODIFIED
