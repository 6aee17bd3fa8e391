"""`newsbeam feeds DIR`: each feed's health, from the state runs keep in DIR/_state/feeds."""

from __future__ import annotations

import json
import os
import sys

from newsbeam.pipeline.config import UsageError
from newsbeam.transforms.commits import committed_runs
from newsbeam.transforms.feed_state import latest_states
from newsbeam.transforms.write import read_state

COLUMNS = ("last_status", "consecutive_failures", "last_success_at", "next_poll_at", "conditional", "feed_url")
HEADERS = ("status", "failures", "last success", "next poll", "conditional", "feed")


def feed_rows(out: str, unreadable: list | None = None) -> list[dict]:
    """The newest state of every feed that committed runs polled into `out`, failing feeds first; files that cannot
    be read are skipped and listed in `unreadable`."""
    rows = latest_states(read_state(out, "feeds", committed_runs(out), unreadable=unreadable))
    return sorted(rows.values(), key=lambda r: (-r["consecutive_failures"], r["feed_url"]))


def show_feeds(out: str, failing: bool = False, as_json: bool = False, as_opml: bool = False, stream=None) -> int:
    """Print the feeds' health (a table, JSON lines or OPML); the exit status is 1 when `failing` finds any."""
    stream = stream or sys.stdout  # looked up now: bound at import, it would be whatever stdout was then
    if "://" not in out:
        out = os.path.abspath(os.path.expanduser(out))
    unreadable: list = []
    rows = feed_rows(out, unreadable)
    if not rows and not unreadable:
        raise UsageError(f"no feed state in {out}: not a newsbeam output folder, or no run has polled feeds into it yet")
    rows = [r for r in rows if r["consecutive_failures"] or not failing]
    for path, reason in unreadable:
        print(f"newsbeam: warning: skipping {path}, which cannot be read ({reason})", file=sys.stderr)
    status = 1 if failing and rows else 0
    if as_json:
        for row in rows:
            print(json.dumps({k: _cell(v) for k, v in row.items()}, ensure_ascii=False), file=stream)
        return status
    if as_opml:
        print(feeds_opml([row["feed_url"] for row in rows]), file=stream)
        return status
    table = [HEADERS] + [tuple(str(_cell(row[c])) for c in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
    for line, row in zip(table, [None] + rows):
        print("  ".join([v.ljust(w) for v, w in zip(line, widths)] + [line[-1]]), file=stream)
        if row is not None and row["last_error"] and row["consecutive_failures"]:
            print(f"    last error: {row['last_error']}", file=stream)
    bad = sum(1 for r in rows if r["consecutive_failures"])
    print(f"{len(rows)} feeds, {bad} failing", file=stream)
    return status


def feeds_opml(urls: list[str], title: str = "newsbeam feeds") -> str:
    """An OPML 2.0 feed list of the URLs (in order), as feed readers and `newsbeam run --feeds` read it."""
    from xml.etree import ElementTree as ET

    opml = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(opml, "head"), "title").text = title
    body = ET.SubElement(opml, "body")
    for url in urls:
        ET.SubElement(body, "outline", type="rss", text=url, xmlUrl=url)
    ET.indent(opml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(opml, encoding="unicode")


def _cell(value):
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    return "" if value is None else value
