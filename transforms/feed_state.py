"""What a run remembers about each feed (DIR/_state/feeds): validators, a body hash, and health.

Pure functions; FetchFeeds applies them. A feed is polled conditionally (If-None-Match,
If-Modified-Since) while its server has not been caught lying, and unconditionally at least
once every VERIFY_AFTER, so a server that answers 304 for a changed feed, or sends a changed
feed under an unchanged ETag, is caught by the body hash and polled unconditionally from then
on. A body identical to the last one counts as unchanged, whatever the server said.

Health: each failed poll pushes the next allowed poll further out (BACKOFF_BASE doubling up to
BACKOFF_MAX, or the server's Retry-After when longer); a success resets it. A feed is never
given up on: after a long failure it is still tried once every BACKOFF_MAX.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

BACKOFF_BASE = timedelta(minutes=15)
BACKOFF_MAX = timedelta(hours=24)
VERIFY_AFTER = timedelta(hours=24)

# The outcome of one poll, as FetchFeeds reports it.
OK, NOT_MODIFIED, UNCHANGED, FAILED, SKIPPED = "ok", "not_modified", "unchanged", "failed", "skipped"


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def latest_states(rows: list[dict]) -> dict[str, dict]:
    """The newest state row per feed URL from the rows of every earlier run."""
    latest: dict[str, dict] = {}
    for row in rows:
        seen = latest.get(row["feed_url"])
        if seen is None or row["checked_at"] > seen["checked_at"]:
            latest[row["feed_url"]] = row
    return latest


def poll_plan(state: dict | None, now: datetime) -> tuple[str | None, dict | None]:
    """(why this feed is not polled now, or None; validators for a conditional request, or None)."""
    if not state:
        return None, None
    if state.get("next_poll_at") and now < state["next_poll_at"]:
        return (f"backing off after {state['consecutive_failures']} failed polls "
                f"(last: {state.get('last_error') or 'unknown'}); next poll after {state['next_poll_at'].isoformat()}"), None
    fresh = state.get("full_fetch_at") and now - state["full_fetch_at"] < VERIFY_AFTER
    if state.get("conditional", True) and fresh and (state.get("etag") or state.get("last_modified")):
        return None, {"etag": state.get("etag"), "last_modified": state.get("last_modified")}
    return None, None


def after_success(state: dict | None, feed_url: str, now: datetime, *, status: int, headers: dict, body: bytes | None,
                  entries: int = 0) -> tuple[str, dict]:
    """(outcome, new state) after a response: OK (parse it), NOT_MODIFIED (304) or UNCHANGED (same body)."""
    state = dict(state or {})
    new = {
        **_health_reset(state, feed_url, now),
        "etag": state.get("etag"),
        "last_modified": state.get("last_modified"),
        "body_sha256": state.get("body_sha256"),
        "full_fetch_at": state.get("full_fetch_at"),
        "conditional": state.get("conditional", True),
        "conditional_note": state.get("conditional_note"),
        "entries": state.get("entries"),
    }
    if status == 304:
        new.update(last_status=NOT_MODIFIED, last_not_modified_at=now)
        return NOT_MODIFIED, new
    digest = body_hash(body or b"")
    etag, last_modified = headers.get("etag"), headers.get("last-modified")
    changed = digest != state.get("body_sha256")
    if changed and state.get("body_sha256"):
        lie = _lying_validators(state, etag, last_modified)
        if lie:
            new["conditional"], new["conditional_note"] = False, lie
    new.update(etag=etag, last_modified=last_modified, body_sha256=digest, full_fetch_at=now, last_not_modified_at=None)
    new["last_status"] = OK if changed else UNCHANGED
    if changed:
        new["entries"] = entries
    return new["last_status"], new


def _lying_validators(state: dict, etag: str | None, last_modified: str | None) -> str | None:
    """Why a changed body shows that the server's validators cannot be trusted, or None."""
    if etag and etag == state.get("etag"):
        return f"changed feed sent with the unchanged ETag {etag}"
    if state.get("last_not_modified_at") and last_modified and last_modified == state.get("last_modified"):
        return "answered 304 Not Modified while the feed had changed (Last-Modified unchanged)"
    return None


def _health_reset(state: dict, feed_url: str, now: datetime) -> dict:
    return {
        "feed_url": feed_url,
        "checked_at": now,
        "last_success_at": now,
        "consecutive_failures": 0,
        "next_poll_at": None,
        "last_error": None,
        "last_http_status": None,
        "last_not_modified_at": state.get("last_not_modified_at"),
        "discovered_url": state.get("discovered_url"),
    }


def after_failure(state: dict | None, feed_url: str, now: datetime, *, error: str, message: str,
                  http_status: int | None = None, retry_after: float | None = None) -> dict:
    """The new state after a failed poll: one more consecutive failure and a later next poll."""
    state = dict(state or {})
    failures = (state.get("consecutive_failures") or 0) + 1
    wait = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))
    if retry_after:
        wait = max(wait, min(timedelta(seconds=retry_after), BACKOFF_MAX))
    return {
        **{k: state.get(k) for k in ("etag", "last_modified", "body_sha256", "full_fetch_at", "conditional_note",
                                     "entries", "last_success_at", "last_not_modified_at", "discovered_url")},
        "feed_url": feed_url,
        "checked_at": now,
        "conditional": state.get("conditional", True),
        "last_status": FAILED,
        "consecutive_failures": failures,
        "next_poll_at": now + wait,
        "last_error": f"{error}: {message}"[:500],
        "last_http_status": http_status,
    }


def carried(state: dict, now: datetime) -> dict:
    """The state of a feed this run skipped: unchanged but for when it was checked."""
    return {**state, "checked_at": now, "last_status": SKIPPED}


def feed_health(rows: list[dict]) -> dict:
    """The feeds' health after a run, from the feed-state rows it wrote: counts by outcome, the feeds
    backing off and the feeds whose validators are not trusted."""
    by_status: dict = {}
    for row in rows:
        by_status[row["last_status"]] = by_status.get(row["last_status"], 0) + 1
    failing = sorted((r for r in rows if r["consecutive_failures"]), key=lambda r: (-r["consecutive_failures"], r["feed_url"]))
    return {
        "by_status": dict(sorted(by_status.items())),
        "failing": [
            {"feed_url": r["feed_url"], "consecutive_failures": r["consecutive_failures"], "last_error": r["last_error"],
             "last_success_at": _iso(r["last_success_at"]), "next_poll_at": _iso(r["next_poll_at"])}
            for r in failing
        ],
        "unconditional": [{"feed_url": r["feed_url"], "why": r["conditional_note"]} for r in rows if not r["conditional"]],
    }


def _iso(value):
    return value.isoformat() if value is not None else None
