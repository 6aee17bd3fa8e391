"""Streaming stages: what a stream remembers between polls, in Beam keyed state that expires.

A batch run learns what earlier runs stored from the dataset's files; a streaming job cannot
re-read them on every poll, so it keeps the same knowledge in keyed state, in the global
window, across its poll windows:

- `PollFeedsKeyed`: each feed's state (validators, health, backoff), keyed by feed URL: a poll
  is conditional on the last one, as in batch runs. A listed feed's state is kept for the
  whole job (one small row per feed).
- `SkipSeenLinks`: the links of feed entries, keyed by link; a link seen in an earlier poll is
  not fetched again (`links_already_seen`). Entries of the same poll naming one link all pass,
  so the page is fetched once and the other entries become url-tier duplicates, as in a batch run.
- `SeenBefore`: the canonical URL and text hash of every document that reached deduplication;
  one seen in an earlier poll is a duplicate (tier url or exact) of the article kept then.

Every key is forgotten `remember` after it was last seen (an event-time timer, moved on each
sighting), so state holds the links feeds still list plus those of the last `remember`: it
stays bounded on a stream of weeks. A link a feed lists again after that long is fetched again
and, its text forgotten too, kept again: `remember` should be longer than feeds list a link.
The near-copy and story tiers compare the documents of one poll window with each other and
with what batch runs stored before the job started, not with earlier windows.
"""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration

from newsbeam.transforms.dedup import duplicate_rows, keep_order
from newsbeam.transforms.errors import ERRORS
from newsbeam.transforms.feeds import FEED_STATE, PollFeeds
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.metrics import count
from newsbeam.transforms.pages import link_key
from newsbeam.transforms.normalise import article_id

REMEMBER = timedelta(days=30)
SEEN = "seen"  # side output of SkipSeenLinks: one element per entry skipped, for the window's manifest


def sighting(known: tuple | None, when: int, candidate: tuple) -> tuple[bool, tuple]:
    """Whether a keyed thing seen at `when` (microseconds) is new, and what to remember of it.

    `known` is (first poll, rank, value) or None; a sighting in the first poll is new, and of
    several in that poll the one of lowest rank is remembered (the one its window's tiers keep);
    a sighting in a later poll is not new and changes nothing.
    """
    if known is None:
        return True, (when, *candidate)
    first, rank, _ = known
    if first != when:
        return False, known
    return True, (when, *candidate) if candidate[0] < rank else known


class _ExpiringFn(beam.DoFn):
    """Base of the keyed DoFns: state per key, cleared by an event-time timer `remember` after the last sighting."""

    KNOWN = ReadModifyWriteStateSpec("known", PickleCoder())
    FORGET = TimerSpec("forget", TimeDomain.WATERMARK)

    def __init__(self, remember: timedelta, what: str):
        self._remember = Duration(micros=int(remember.total_seconds() * 1_000_000))
        self._what = what

    def sight(self, known, forget, timestamp, candidate: tuple) -> tuple[bool, tuple]:
        """Whether the key is new in this poll (see `sighting`), remembered for `remember` from now."""
        new, remembered = sighting(known.read(), timestamp.micros, candidate)
        known.write(remembered)
        forget.set(timestamp + self._remember)
        return new, remembered

    @on_timer(FORGET)
    def forget(self, known=beam.DoFn.StateParam(KNOWN)):
        known.clear()
        count(f"{self._what}_forgotten")


class SkipSeenLinks(beam.PTransform):
    """Entries -> the entries whose link no earlier poll listed; one `seen` element per entry skipped."""

    def __init__(self, remember: timedelta = REMEMBER):
        super().__init__()
        self._remember = remember

    def expand(self, entries):
        return (
            entries
            | "KeyByLink" >> beam.Map(lambda entry: (link_key(entry), entry))
            | "FirstPoll" >> beam.ParDo(_SkipSeenFn(self._remember, "links")).with_outputs(SEEN, main="entries")
        )


class _SkipSeenFn(_ExpiringFn):
    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, known=beam.DoFn.StateParam(_ExpiringFn.KNOWN),
                forget=beam.DoFn.TimerParam(_ExpiringFn.FORGET)):
        _, entry = keyed
        new, _ = self.sight(known, forget, timestamp, ((), None))
        if new:
            yield entry
        else:
            count("links_already_seen")
            yield beam.pvalue.TaggedOutput(SEEN, 1)


class SeenBefore(beam.PTransform):
    """Normalised documents -> those whose canonical URL and text no earlier poll brought; the others to
    `duplicates`, as rows naming the article kept then."""

    def __init__(self, remember: timedelta = REMEMBER):
        super().__init__()
        self._remember = remember

    def expand(self, docs):
        by_url = (
            docs
            | "KeyByUrl" >> beam.Map(lambda doc: (doc["canonical_url"], doc))
            | "UrlSeen" >> beam.ParDo(_SeenBeforeFn(self._remember, "urls", "url")).with_outputs("duplicates", main="documents")
        )
        by_text = (
            by_url.documents
            | "KeyByText" >> beam.Map(lambda doc: (doc["content_hash"], doc))
            | "TextSeen" >> beam.ParDo(_SeenBeforeFn(self._remember, "texts", "exact")).with_outputs("duplicates", main="documents")
        )
        return {"documents": by_text.documents,
                "duplicates": (by_url.duplicates, by_text.duplicates) | "EarlierPolls" >> beam.Flatten()}


class _SeenBeforeFn(_ExpiringFn):
    def __init__(self, remember: timedelta, what: str, tier: str):
        super().__init__(remember, what)
        self._tier = tier

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, known=beam.DoFn.StateParam(_ExpiringFn.KNOWN),
                forget=beam.DoFn.TimerParam(_ExpiringFn.FORGET)):
        _, doc = keyed
        # a URL names one article id; of one text's documents in a poll, its tiers keep the first in keep_order
        rank = () if self._tier == "url" else keep_order(doc)
        new, remembered = self.sight(known, forget, timestamp, (rank, article_id(doc["canonical_url"])))
        if new:
            yield doc
            return
        count(f"duplicates_{self._tier}_earlier_poll", len(doc["entries"]))
        for row in duplicate_rows(doc, remembered[2], self._tier):
            yield beam.pvalue.TaggedOutput("duplicates", row)


class PollFeedsKeyed(beam.PTransform):
    """(feed URL, spec) per poll -> entries; failures to `errors`, new states to `feed_state`, each feed's
    state kept between polls (so a poll is conditional on the last, and backoff holds)."""

    def __init__(self, settings: FetchSettings):
        super().__init__()
        self._settings = settings

    def expand(self, keyed_specs):
        return keyed_specs | "PollFeed" >> beam.ParDo(_PollWithStateFn(self._settings)).with_outputs(
            ERRORS, FEED_STATE, main="entries")


class _PollWithStateFn(beam.DoFn):
    STATE = ReadModifyWriteStateSpec("feed_state", PickleCoder())

    def __init__(self, settings: FetchSettings):
        self._poll = PollFeeds(settings)

    def setup(self):
        self._poll.open_client()

    def teardown(self):
        self._poll.teardown()

    def process(self, keyed, state=beam.DoFn.StateParam(STATE)):
        _, spec = keyed
        spec = {**spec, "state": state.read() or spec.get("state")}
        for out in self._poll.emit(spec, self._poll.fetch(spec)):
            if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == FEED_STATE:
                state.write(out.value)
            yield out
