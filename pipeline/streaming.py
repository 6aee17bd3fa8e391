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
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.utils.timestamp import MAX_TIMESTAMP

from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.manifest import feed_health, link_accounting, write_manifest, written_tables
from newsbeam.pipeline.runner import single_process
from newsbeam.schemas import PARTITION_COLUMN, TABLES
from newsbeam.transforms.chrome import LEARNED, StripChrome
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.errors import ERRORS, FEED_STAGES
from newsbeam.transforms.extract import Extract
from newsbeam.transforms.feeds import FEED_STATE
from newsbeam.transforms.metrics import count
from newsbeam.transforms.normalise import Normalise
from newsbeam.transforms.pages import FetchPages
from newsbeam.transforms.remember import REMEMBER, SEEN, PollFeedsKeyed, SeenBefore, SkipSeenLinks
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.write import (WriteState, WriteTables, delete_unwritten, state_dir, table_dir,
                                       window_run_id)

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
    links = beam.pvalue.AsDict(p | "StoredLinks" >> beam.Create(sorted(stored.links.items())))
    hashes = beam.pvalue.AsDict(p | "StoredHashes" >> beam.Create(sorted(stored.hashes.items())))
    chrome = beam.pvalue.AsDict(p | "StoredChrome" >> beam.Create(sorted(stored.chrome.items())))
    signatures = p | "StoredSignatures" >> beam.Create(stored.signatures)
    stories = p | "StoredStories" >> beam.Create(stored.stories)

    def in_polls(name, pcoll):
        return pcoll | name >> beam.WindowInto(windows)

    specs = [{**spec, "state": stored.feeds.get(spec["url"])} for spec in config.feeds]
    feeds = ticks | "ReadSources" >> ReadSources(specs)
    polled = feeds.feeds | "KeyByFeed" >> beam.Map(lambda spec: (spec["url"], spec)) | "PollFeeds" >> PollFeedsKeyed(config.fetch)
    fresh = polled.entries | "SkipSeenLinks" >> SkipSeenLinks(links, remember)
    no_links = beam.pvalue.AsDict(p | "NoLinks" >> beam.Create([]))  # stored links are skipped above, and counted
    pages = in_polls("PollWindows", fresh.entries) | "FetchPages" >> FetchPages(config.fetch, no_links)
    fetched = pages.pages
    if not single_process(p.options):
        fetched = fetched | "SpreadPages" >> beam.Reshuffle()
    extracted = fetched | "Extract" >> Extract()
    stripped = extracted.documents | "StripChrome" >> StripChrome(chrome)
    normalised = stripped.documents | "Normalise" >> Normalise()
    seen = normalised.documents | "AcrossPolls" >> beam.WindowInto(beam_window.GlobalWindows()) | "SeenBefore" >> SeenBefore(remember)
    deduped = in_polls("BackToPolls", seen["documents"]) | "Dedup" >> Dedup(links, hashes, signatures, stories)

    errors = [in_polls("FeedListErrors", feeds.errors), in_polls("FeedErrors", polled[ERRORS])]
    errors += [stage.errors for stage in (pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": (deduped["duplicates"], in_polls("EarlierPollCopies", seen["duplicates"])) | "AllDuplicates" >> beam.Flatten(),
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    feed_states = in_polls("FeedStates", polled[FEED_STATE])
    files = [
        tables | "Write" >> WriteTables(config.out, config.run_id, per_window=True),
        feed_states | "FeedBatch" >> beam.Map(lambda row: (0, [row])) | "KeepFeedState" >> WriteState(
            config.out, config.run_id, "feeds", per_window=True),
        stripped[LEARNED] | "ChromeBatch" >> beam.Map(lambda row: (0, [row])) | "KeepChromeState" >> WriteState(
            config.out, config.run_id, "chrome", per_window=True),
        deduped["near_state"] | "KeepNearState" >> WriteState(config.out, config.run_id, "near", per_window=True),
        deduped["story_state"] | "KeepStoryState" >> WriteState(config.out, config.run_id, "story", per_window=True),
    ]
    parts = [
        files | "AllFiles" >> beam.Flatten() | "TagFiles" >> beam.Map(lambda f: ("file", f)),
        feed_states | "TagFeeds" >> beam.Map(lambda row: ("feed", row)),
        in_polls("Discovered", polled.entries) | "TagEntries" >> beam.Map(lambda _: ("entry", 1)),
        in_polls("AlreadySeen", fresh[SEEN]) | "TagSeen" >> beam.Map(lambda _: ("seen", 1)),
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
        parts: dict[str, list] = {"file": [], "feed": [], "entry": [], "seen": []}
        for tag, value in keyed[1]:
            parts[tag].append(value)
        written = delete_unwritten(
            [FileSystems.join(table_dir(self._out, t), f"{PARTITION_COLUMN}=*") for t in TABLES]
            + [state_dir(self._out, name) for name in STATE_NAMES], run_id, parts["file"])
        tables = written_tables(self._out, run_id)  # every table file's footer read back
        expected = {f["path"]: f["rows"] for f in written if not f["table"].startswith("_state/")}
        found = {f["path"]: f["rows"] for table in tables.values() for f in table["files"]}
        if found != expected:
            raise IOError(f"window {run_id}: files on storage {found} differ from those written {expected}")
        window_counts = {"entries_discovered": len(parts["entry"]), "links_already_stored": len(parts["seen"]),
                         "entry_errors": _entry_errors(tables["errors"]["files"])}
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


def _entry_errors(files: list[dict]) -> int:
    """Error rows of entries (not of feeds) in a window's errors files."""
    stages = []
    for f in files:
        with FileSystems.open(f["path"], compression_type="uncompressed") as handle:
            stages.extend(pq.read_table(handle, columns=["stage"]).column("stage").to_pylist())
    return sum(stage not in FEED_STAGES for stage in stages)
