"""The batch pipeline, every stage in order; and the parts of it the streaming job shares."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.runner import single_process
from newsbeam.transforms.chrome import LEARNED, StripChrome
from newsbeam.transforms.commits import CommitRun, RunFiles
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.errors import ERRORS, unreadable_rows
from newsbeam.transforms.extract import Extract
from newsbeam.transforms.feeds import FEED_STATE, FetchFeeds
from newsbeam.transforms.normalise import Normalise
from newsbeam.transforms.pages import ALREADY_STORED, FetchPages
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.write import WriteState, WriteTables


class Stored(NamedTuple):
    """What earlier runs stored, as the pipeline's side inputs (dicts) and PCollections (state rows, unreadable files)."""

    links: beam.pvalue.AsDict
    hashes: beam.pvalue.AsDict
    chrome: beam.pvalue.AsDict
    signatures: beam.PCollection
    stories: beam.PCollection
    unreadable: beam.PCollection


def stored_inputs(p: beam.Pipeline, stored: StoredState) -> Stored:
    return Stored(
        links=beam.pvalue.AsDict(p | "StoredLinks" >> beam.Create(sorted(stored.links.items()))),
        hashes=beam.pvalue.AsDict(p | "StoredHashes" >> beam.Create(sorted(stored.hashes.items()))),
        chrome=beam.pvalue.AsDict(p | "StoredChrome" >> beam.Create(sorted(stored.chrome.items()))),
        signatures=p | "StoredSignatures" >> beam.Create(stored.signatures),
        stories=p | "StoredStories" >> beam.Create(stored.stories),
        unreadable=p | "UnreadableState" >> beam.Create(unreadable_rows(stored.unreadable)),
    )


def feed_specs(config: RunConfig, stored: StoredState) -> list[dict]:
    """The listed feeds, each with the state earlier runs left for it."""
    return [{**spec, "state": stored.feeds.get(spec["url"])} for spec in config.feeds]


def clean_pages(p: beam.Pipeline, pages, chrome) -> tuple:
    """Fetched pages -> (extracted, stripped, normalised) stage outputs: extraction, chrome, normalisation."""
    if not single_process(p.options):  # fetching is grouped by host; extraction is spread over the workers again
        pages = pages | "SpreadPages" >> beam.Reshuffle()
    extracted = pages | "Extract" >> Extract()
    stripped = extracted.documents | "StripChrome" >> StripChrome(chrome)
    normalised = stripped.documents | "Normalise" >> Normalise()
    return extracted, stripped, normalised


def keep_state(run: RunFiles, feed_states, stripped, deduped) -> list:
    """Write what the next runs need under DIR/_state (feeds, learned chrome, near and story state); the files written."""
    def batch(name, rows):
        return rows | f"{name}Batch" >> beam.Map(lambda row: (0, [row]))

    return [
        batch("Feed", feed_states) | "KeepFeedState" >> WriteState(run, "feeds"),
        batch("Chrome", stripped[LEARNED]) | "KeepChromeState" >> WriteState(run, "chrome"),
        deduped["near_state"] | "KeepNearState" >> WriteState(run, "near"),
        deduped["story_state"] | "KeepStoryState" >> WriteState(run, "story"),
    ]


def build_pipeline(p: beam.Pipeline, config: RunConfig, stored: StoredState, run: RunFiles, about: dict):
    """Feeds -> entries -> pages -> articles, duplicates and errors as Parquet, state for the next run; then the
    commit: the manifest (`about` and what was written) that makes them count."""
    known = stored_inputs(p, stored)
    feeds = p | "ReadSources" >> ReadSources(feed_specs(config, stored))
    entries = feeds.feeds | "FetchFeeds" >> FetchFeeds(config.fetch)
    pages = entries.entries | "FetchPages" >> FetchPages(config.fetch, known.links)
    extracted, stripped, normalised = clean_pages(p, pages["pages"], known.chrome)
    deduped = normalised.documents | "Dedup" >> Dedup(known.links, known.hashes, known.signatures, known.stories)

    errors = [known.unreadable] + [stage[ERRORS] for stage in (feeds, entries, pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": deduped["duplicates"],
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    files = [tables | "Write" >> WriteTables(run), *keep_state(run, entries[FEED_STATE], stripped, deduped)]
    return {
        "files": files | "AllFiles" >> beam.Flatten(),
        "feeds": entries[FEED_STATE],
        "entries": entries.entries,
        "skipped": pages[ALREADY_STORED],
        "errors": tables["errors"],
    } | "Commit" >> CommitRun(run, about)
