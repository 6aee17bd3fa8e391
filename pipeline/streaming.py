"""The streaming job: the batch pipeline's stages once per poll, in the poll's window, with memory between polls.

Ticks (Beam's PeriodicImpulse on Dataflow; a TestStream in tests) start the polls. The
feeds are polled with their state kept per feed; entries whose link an earlier poll listed
are dropped (transforms/remember.py); the rest go through fetching, extraction, chrome,
normalisation and deduplication in fixed windows of one poll interval, each poll's window
on its own. Before the tiers, documents whose URL or text an earlier poll brought become
duplicates of the article kept then. Each window is written as a run of its own, run id
STREAM_ID-wSTART: its tables, its state files (for batch runs and `newsbeam feeds` that follow),
every file read back once written, then its manifest, runs/STREAM_ID-wSTART.json, with the
window's link accounting, feed health and files. The same counters as a batch run's are
Beam metrics, shown in the Dataflow job's console.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import apache_beam as beam
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.utils.timestamp import MAX_TIMESTAMP

from newsbeam.pipeline.build import clean_pages, feed_specs, keep_state, stored_inputs
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.manifest import feed_health, link_accounting, write_manifest, written_tables
from newsbeam.schemas import TABLES
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.errors import ERRORS, FEED_STAGES
from newsbeam.transforms.feeds import FEED_STATE
from newsbeam.transforms.metrics import count
from newsbeam.transforms.pages import ALREADY_STORED, FetchPages
from newsbeam.transforms.remember import REMEMBER, SEEN, PollFeedsKeyed, SeenBefore, SkipSeenLinks
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.write import WriteTables, remove_stale, window_run_id

STATE_NAMES = ("feeds", "chrome", "near", "story")


def poll_ticks(p: beam.Pipeline, start: float, poll_interval: float, max_polls: int | None):
    """A tick every `poll_interval` seconds from `start` (Unix time); after `max_polls` ticks, if given, none."""
    stop = start + (max_polls - 1) * poll_interval + poll_interval / 2 if max_polls else MAX_TIMESTAMP
    return p | "Polls" >> PeriodicImpulse(start_timestamp=start, stop_timestamp=stop, fire_interval=poll_interval)


def poll_windows(start: float, poll_interval: float) -> beam_window.FixedWindows:
    """Fixed windows one poll interval long, each starting at a tick."""
    return beam_window.FixedWindows(poll_interval, offset=start % poll_interval)


def build_streaming(p: beam.Pipeline, config: RunConfig, stored: StoredState, ticks, start: float,
                    poll_interval: float, remember: timedelta = REMEMBER):
    """Ticks -> polls -> each poll window's tables, state and manifest under config.out."""
    windows = poll_windows(start, poll_interval)

    def in_polls(name, pcoll):
        return pcoll | name >> beam.WindowInto(windows)

    known = stored_inputs(p, stored)
    feeds = ticks | "ReadSources" >> ReadSources(feed_specs(config, stored))
    polled = feeds.feeds | "KeyByFeed" >> beam.Map(lambda spec: (spec["url"], spec)) | "PollFeeds" >> PollFeedsKeyed(config.fetch)
    fresh = polled.entries | "SkipSeenLinks" >> SkipSeenLinks(remember)
    pages = in_polls("PollWindows", fresh.entries) | "FetchPages" >> FetchPages(config.fetch, known.links)
    extracted, stripped, normalised = clean_pages(p, pages["pages"], known.chrome)
    seen = normalised.documents | "AcrossPolls" >> beam.WindowInto(beam_window.GlobalWindows()) | "SeenBefore" >> SeenBefore(remember)
    deduped = in_polls("BackToPolls", seen["documents"]) | "Dedup" >> Dedup(known.links, known.hashes, known.signatures,
                                                                           known.stories)

    errors = [in_polls("FeedListErrors", feeds[ERRORS]), in_polls("FeedErrors", polled[ERRORS])]
    errors += [stage[ERRORS] for stage in (pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": (deduped["duplicates"], in_polls("EarlierPollCopies", seen["duplicates"])) | "AllDuplicates" >> beam.Flatten(),
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    feed_states = in_polls("FeedStates", polled[FEED_STATE])
    files = [tables | "Write" >> WriteTables(config.out, config.run_id, per_window=True),
             *keep_state(config, feed_states, stripped, deduped, per_window=True)]
    parts = [  # what the window's manifest counts, from the data (Beam metrics are per job, not per window)
        files | "AllFiles" >> beam.Flatten() | "TagFiles" >> beam.Map(lambda f: ("file", f)),
        feed_states | "TagFeeds" >> beam.Map(lambda row: ("feed", row)),
        in_polls("Discovered", polled.entries) | "TagEntries" >> beam.Map(lambda _: ("entry", 1)),
        (in_polls("AlreadySeen", fresh[SEEN]), pages[ALREADY_STORED]) | "Skipped" >> beam.Flatten()
        | "TagSkipped" >> beam.Map(lambda _: ("skipped", 1)),
        tables["errors"] | "TagEntryErrors" >> beam.FlatMap(
            lambda row: [("entry_error", 1)] if row["stage"] not in FEED_STAGES else []),
    ]
    return (
        parts
        | "WindowParts" >> beam.Flatten()
        | "OneWindow" >> beam.Map(lambda part: (0, part))
        | "GroupWindow" >> beam.GroupByKey()
        | "CloseWindow" >> beam.ParDo(_CloseWindowFn(config, poll_interval))
    )


class _CloseWindowFn(beam.DoFn):
    """A poll window's parts -> its files checked, its stale files removed, its manifest written."""

    def __init__(self, config: RunConfig, poll_interval: float):
        self._out, self._stream_id = config.out, config.run_id
        self._feeds_list, self._poll_interval = config.feeds_location, poll_interval

    def process(self, keyed, window=beam.DoFn.WindowParam):
        run_id = window_run_id(self._stream_id, window)
        parts: dict[str, list] = {"file": [], "feed": [], "entry": [], "skipped": [], "entry_error": []}
        for tag, value in keyed[1]:
            parts[tag].append(value)
        written = remove_stale(parts["file"], self._out, run_id, list(TABLES), STATE_NAMES)
        tables = written_tables(self._out, run_id)  # every table file's footer read back
        expected = {f["path"]: f["rows"] for f in written if not f["table"].startswith("_state/")}
        found = {f["path"]: f["rows"] for table in tables.values() for f in table["files"]}
        if found != expected:
            raise IOError(f"window {run_id}: files on storage {found} differ from those written {expected}")
        window_counts = {"entries_discovered": len(parts["entry"]), "links_already_stored": len(parts["skipped"]),
                         "entry_errors": len(parts["entry_error"])}
        manifest = {
            "status": "complete",
            "kind": "stream_window",
            "stream_id": self._stream_id,
            "window": {"start": window.start.to_utc_datetime().replace(tzinfo=timezone.utc).isoformat(),
                       "end": window.end.to_utc_datetime().replace(tzinfo=timezone.utc).isoformat()},
            "closed_at": datetime.now(timezone.utc).isoformat(),
            "feeds_list": self._feeds_list,
            "out": self._out,
            "poll_interval_seconds": self._poll_interval,
            "feed_health": feed_health(parts["feed"]),
            "links": link_accounting(window_counts, tables),
            "tables": tables,
            "state_files": [f for f in written if f["table"].startswith("_state/")],
        }
        write_manifest(self._out, run_id, manifest)
        count("windows_closed")
        yield {"run_id": run_id, **manifest}

