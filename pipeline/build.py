"""The batch pipeline, every stage in order; and the parts of it the streaming job shares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

import apache_beam as beam

from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.runner import single_process
from newsbeam.transforms.chrome import LEARNED, StripChrome
from newsbeam.transforms.commits import CommitRun, RunFiles
from newsbeam.transforms.dedup import Dedup, as_dict
from newsbeam.transforms.errors import ERRORS
from newsbeam.transforms.extract import Extract
from newsbeam.transforms.extract_pool import usable_cpus
from newsbeam.transforms.feeds import FEED_STATE, FetchFeeds
from newsbeam.transforms.normalise import Normalise
from newsbeam.transforms.pages import ALREADY_STORED, FetchPages, link_key, link_problem
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.stored import UNREADABLE, KeepKeys, LookupKeys, StoredView, unreadable_errors
from newsbeam.transforms.write import WriteState, WriteTables


class Stored(NamedTuple):
    """What earlier runs stored, as the pipeline sees it: the view the workers read it through, the learned chrome
    (a dict side input), and the files the launcher could not read ((path, reason) pairs)."""

    view: StoredView
    chrome: beam.pvalue.AsDict
    unreadable: beam.PCollection


def stored_inputs(p: beam.Pipeline, config: RunConfig, stored: StoredState) -> Stored:
    return Stored(
        view=stored.view or StoredView(config.out, config.run_id, datetime.now(timezone.utc)),
        chrome=beam.pvalue.AsDict(p | "StoredChrome" >> beam.Create(sorted(stored.chrome.items()))),
        unreadable=p | "UnreadableState" >> beam.Create(stored.unreadable),
    )


def stored_links(entries, view: StoredView):
    """Entries -> ({link key: article_id} of the links earlier runs stored, as a side input; unreadable files)."""
    looked = (entries | "LinkKeys" >> beam.FlatMap(lambda e: [] if link_problem(e["link"]) else [("link", link_key(e))])
              | "LookupLinks" >> LookupKeys(view))
    return as_dict(looked["found"] | "ByLinkKey" >> beam.Map(lambda found: (found[0][1], found[1]))), looked[UNREADABLE]


def feed_specs(config: RunConfig, stored: StoredState) -> list[dict]:
    """The listed feeds, each with the state earlier runs left for it."""
    return [{**spec, "state": stored.feeds.get(spec["url"])} for spec in config.feeds]


def extraction_processes(options, wanted: int | None) -> int:
    """How many processes extract: in a local run in one process, `wanted` or every usable core; else one per
    worker process (Dataflow and Beam's multi-process mode already run one per core)."""
    if not single_process(options):
        return 1
    return wanted if wanted else usable_cpus()


def clean_pages(p: beam.Pipeline, pages, chrome, processes: int | None = None, spill: str | None = None) -> tuple:
    """Fetched pages -> (extracted, stripped, normalised) stage outputs: extraction, chrome, normalisation."""
    if not single_process(p.options):  # fetching is grouped by host; extraction is spread over the workers again
        pages = pages | "SpreadPages" >> beam.Reshuffle()
    extracted = pages | "Extract" >> Extract(extraction_processes(p.options, processes))
    stripped = extracted.documents | "StripChrome" >> StripChrome(chrome, spill)
    normalised = stripped.documents | "Normalise" >> Normalise()
    return extracted, stripped, normalised


def keep_state(run: RunFiles, feed_states, stripped, deduped) -> list:
    """Write what the next runs need under DIR/_state (feeds, learned chrome, the key index, near and story state);
    the files written."""
    def batch(name, rows):
        return rows | f"{name}Batch" >> beam.Map(lambda row: (0, [row]))

    return [
        batch("Feed", feed_states) | "KeepFeedState" >> WriteState(run, "feeds"),
        batch("Chrome", stripped[LEARNED]) | "KeepChromeState" >> WriteState(run, "chrome"),
        {"articles": deduped["articles"], "duplicates": deduped["duplicates"]} | "KeepKeys" >> KeepKeys(run),
        deduped["near_state"] | "KeepNearState" >> WriteState(run, "near"),
        deduped["story_state"] | "KeepStoryState" >> WriteState(run, "story"),
    ]


def build_pipeline(p: beam.Pipeline, config: RunConfig, stored: StoredState, run: RunFiles, about: dict,
                   spill: str | None = None):
    """Feeds -> entries -> pages -> articles, duplicates and errors as Parquet, state for the next run; then the
    commit: the manifest (`about` and what was written) that makes them count. With `spill` (a local folder, in a
    local run), what the stages group is spilled there in batches, so that the runner holds paths and small
    records, not every page of the run."""
    known = stored_inputs(p, config, stored)
    feeds = p | "ReadSources" >> ReadSources(feed_specs(config, stored))
    entries = feeds.feeds | "FetchFeeds" >> FetchFeeds(config.fetch)
    links, unreadable_links = stored_links(entries.entries, known.view)
    pages = entries.entries | "FetchPages" >> FetchPages(config.fetch, links, spill)
    extracted, stripped, normalised = clean_pages(p, pages["pages"], known.chrome, config.extract_processes, spill)
    deduped = normalised.documents | "Dedup" >> Dedup(known.view, spill)

    unreadable = unreadable_errors([known.unreadable, unreadable_links, deduped[UNREADABLE]])
    errors = [unreadable] + [stage[ERRORS] for stage in (feeds, entries, pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": deduped["duplicates"],
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    files = [tables | "Write" >> WriteTables(run, spill), *keep_state(run, entries[FEED_STATE], stripped, deduped)]
    return {
        "files": files | "AllFiles" >> beam.Flatten(),
        "feeds": entries[FEED_STATE],
        "entries": entries.entries,
        "skipped": pages[ALREADY_STORED],
        "errors": tables["errors"],
    } | "Commit" >> CommitRun(run, about)
