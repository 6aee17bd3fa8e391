"""The streaming job: the batch pipeline's stages once per poll, in the poll's window, with memory between polls.

Ticks (Beam's PeriodicImpulse on Dataflow; a TestStream in tests) start the polls. The
feeds are polled with their state kept per feed; entries whose link an earlier poll listed
are dropped (transforms/remember.py); the rest go through fetching, extraction, chrome,
normalisation and deduplication in fixed windows of one poll interval, each poll's window
on its own. Before the tiers, documents whose URL or text an earlier poll brought become
duplicates of the article kept then. Each window is written as a run of its own, run id
STREAM_ID-wSTART: its tables, its state files (for batch runs and `newsbeam feeds` that follow),
every file read back once written, then its manifest, runs/STREAM_ID-wSTART.json, the window's
commit (transforms/commits.py), with its link accounting, feed health and files. The same counters as a batch run's are
Beam metrics, shown in the Dataflow job's console.
"""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
from apache_beam.transforms import window as beam_window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.utils.timestamp import MAX_TIMESTAMP

from newsbeam.pipeline.build import clean_pages, feed_specs, keep_state, stored_inputs, stored_links
from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.transforms.commits import CommitRun, RunFiles, new_attempt
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.errors import ERRORS
from newsbeam.transforms.feeds import FEED_STATE
from newsbeam.transforms.pages import ALREADY_STORED, FetchPages
from newsbeam.transforms.remember import REMEMBER, SEEN, PollFeedsKeyed, SeenBefore, SkipSeenLinks
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.stored import UNREADABLE, unreadable_errors
from newsbeam.transforms.write import WriteTables


def poll_ticks(p: beam.Pipeline, start: float, poll_interval: float, max_polls: int | None):
    """A tick every `poll_interval` seconds from `start` (Unix time); after `max_polls` ticks, if given, none."""
    stop = start + (max_polls - 1) * poll_interval + poll_interval / 2 if max_polls else MAX_TIMESTAMP
    return p | "Polls" >> PeriodicImpulse(start_timestamp=start, stop_timestamp=stop, fire_interval=poll_interval)


def poll_windows(start: float, poll_interval: float) -> beam_window.FixedWindows:
    """Fixed windows one poll interval long, each starting at a tick."""
    return beam_window.FixedWindows(poll_interval, offset=start % poll_interval)


def build_streaming(p: beam.Pipeline, config: RunConfig, stored: StoredState, ticks, start: float,
                    poll_interval: float, remember: timedelta = REMEMBER, attempt: str | None = None, about: dict | None = None):
    """Ticks -> polls -> each poll window's tables, state and manifest (its commit) under config.out."""
    windows = poll_windows(start, poll_interval)
    run = RunFiles(config.out, config.run_id, attempt or new_attempt(), per_window=True)

    def in_polls(name, pcoll):
        return pcoll | name >> beam.WindowInto(windows)

    known = stored_inputs(p, config, stored)
    feeds = ticks | "ReadSources" >> ReadSources(feed_specs(config, stored))
    polled = feeds.feeds | "KeyByFeed" >> beam.Map(lambda spec: (spec["url"], spec)) | "PollFeeds" >> PollFeedsKeyed(config.fetch)
    fresh = polled.entries | "SkipSeenLinks" >> SkipSeenLinks(remember)
    polled_entries = in_polls("PollWindows", fresh.entries)
    links, unreadable_links = stored_links(polled_entries, known.view)
    pages = polled_entries | "FetchPages" >> FetchPages(config.fetch, links)
    extracted, stripped, normalised = clean_pages(p, pages["pages"], known.chrome, config.extract_processes)
    seen = normalised.documents | "AcrossPolls" >> beam.WindowInto(beam_window.GlobalWindows()) | "SeenBefore" >> SeenBefore(remember)
    deduped = in_polls("BackToPolls", seen["documents"]) | "Dedup" >> Dedup(known.view)

    errors = [in_polls("FeedListErrors", feeds[ERRORS]), in_polls("FeedErrors", polled[ERRORS]),
              unreadable_errors([unreadable_links, deduped[UNREADABLE]])]  # files a window's workers could not read
    errors += [stage[ERRORS] for stage in (pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": (deduped["duplicates"], in_polls("EarlierPollCopies", seen["duplicates"])) | "AllDuplicates" >> beam.Flatten(),
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    feed_states = in_polls("FeedStates", polled[FEED_STATE])
    files = [tables | "Write" >> WriteTables(run), *keep_state(run, feed_states, stripped, deduped)]
    payload = {**(about or {}), "kind": "stream_window", "stream_id": config.run_id, "feeds_list": config.feeds_location,
               "out": config.out, "poll_interval_seconds": poll_interval}
    return {  # what each window's manifest counts comes from the data (Beam metrics are per job, not per window)
        "files": files | "AllFiles" >> beam.Flatten(),
        "feeds": feed_states,
        "entries": in_polls("Discovered", polled.entries),
        "skipped": (in_polls("AlreadySeen", fresh[SEEN]), pages[ALREADY_STORED]) | "Skipped" >> beam.Flatten(),
        "errors": tables["errors"],
    } | "CloseWindow" >> CommitRun(run, payload)
