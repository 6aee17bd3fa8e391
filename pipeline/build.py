"""The batch pipeline, every stage in order."""

from __future__ import annotations

import apache_beam as beam

from newsbeam.pipeline.config import RunConfig, StoredState
from newsbeam.pipeline.runner import single_process
from newsbeam.transforms.chrome import LEARNED, StripChrome
from newsbeam.transforms.dedup import Dedup
from newsbeam.transforms.extract import Extract
from newsbeam.transforms.feeds import FEED_STATE, FetchFeeds
from newsbeam.transforms.normalise import Normalise
from newsbeam.transforms.pages import FetchPages
from newsbeam.transforms.sources import ReadSources
from newsbeam.transforms.write import WriteState, WriteTables


def build_pipeline(p: beam.Pipeline, config: RunConfig, stored: StoredState):
    """Feeds -> entries -> pages -> articles, duplicates and errors as Parquet, and state for the next run."""
    links = beam.pvalue.AsDict(p | "StoredLinks" >> beam.Create(sorted(stored.links.items())))
    hashes = beam.pvalue.AsDict(p | "StoredHashes" >> beam.Create(sorted(stored.hashes.items())))
    chrome = beam.pvalue.AsDict(p | "StoredChrome" >> beam.Create(sorted(stored.chrome.items())))
    signatures = p | "StoredSignatures" >> beam.Create(stored.signatures)
    stories = p | "StoredStories" >> beam.Create(stored.stories)

    specs = [{**spec, "state": stored.feeds.get(spec["url"])} for spec in config.feeds]
    feeds = p | "ReadSources" >> ReadSources(specs)
    entries = feeds.feeds | "FetchFeeds" >> FetchFeeds(config.fetch)
    pages = entries.entries | "FetchPages" >> FetchPages(config.fetch, links)
    fetched = pages.pages
    if not single_process(p.options):  # fetching is grouped by host; extraction is spread over the workers again
        fetched = fetched | "SpreadPages" >> beam.Reshuffle()
    extracted = fetched | "Extract" >> Extract()
    stripped = extracted.documents | "StripChrome" >> StripChrome(chrome)
    normalised = stripped.documents | "Normalise" >> Normalise()
    deduped = normalised.documents | "Dedup" >> Dedup(links, hashes, signatures, stories)

    errors = [stage.errors for stage in (feeds, entries, pages, extracted, stripped, normalised)]
    tables = {
        "articles": deduped["articles"],
        "duplicates": deduped["duplicates"],
        "errors": errors | "AllErrors" >> beam.Flatten(),
    }
    stripped[LEARNED] | "ChromeBatch" >> beam.Map(lambda row: (0, [row])) | "KeepChromeState" >> WriteState(
        config.out, config.run_id, "chrome")
    entries[FEED_STATE] | "FeedStates" >> beam.combiners.ToList() | "FeedBatch" >> beam.Map(lambda rows: (0, rows)) | (
        "KeepFeedState" >> WriteState(config.out, config.run_id, "feeds"))
    deduped["near_state"] | "KeepNearState" >> WriteState(config.out, config.run_id, "near")
    deduped["story_state"] | "KeepStoryState" >> WriteState(config.out, config.run_id, "story")
    return tables | "Write" >> WriteTables(config.out, config.run_id)
