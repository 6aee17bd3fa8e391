"""Dedup stage: keep one article per URL, per text and per near-copy, within the run and against earlier runs.

Tiers, in the order they run:

- `url`: the same canonical URL, or another feed entry naming the same page;
- `exact`: the same normalised text (a syndicated copy in other chrome);
- `near`: a copy with edits, another headline or dateline, or cut short ("read the full
  story"), found by MinHash-LSH over word shingles and verified by Jaccard or containment
  (transforms/similarity.py), among articles published within NEAR_WINDOW of each other.
  Copies of copies are not chained: a document is a copy only of a kept document it itself
  resembles.

Which copy is kept, in order: one not cut short by a paywall (the original over an
aggregator's teaser), the earliest published, a body extracted from the page over one taken
from the feed, the longer text, then the smaller canonical URL (so reruns agree).
Earlier runs are known from the stored tables' key columns and the near tier's signatures
kept under DIR/_state/near, never their text. After the copies are gone, the story tier
(transforms/stories.py) gives articles about one event a shared story id.

How it scales: no tier moves a document's text. Each document is described once by small
records (`describe`): its keys and rank for the url and exact tiers, its MinHash signature for
the near tier, its story features for the story tier. The url and exact tiers group the keys;
the near and story tiers work per time block (NEAR_WINDOW long) on the block's records and
those of the block before, so every pair of documents within the window meets in exactly one
block as a home member and another, or two home members. What reaches one place is small:
verified copy pairs (to pick copies without chains) and each article's scored story candidates
(packed arrays, joined in time order in one pass: `join_blocks`). The result is one decision per document that is not simply kept
(`Decisions`); the caller applies them to its documents: a run to the documents it holds,
`newsbeam dedup` to the chunks of the dataset it reads again.
"""

from __future__ import annotations

import zlib
from array import array
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import chain

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import IntervalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from newsbeam.transforms.metrics import count
from newsbeam.transforms.features import SKETCH_VERSION, describe_texts
from newsbeam.transforms.similarity import (Signature, band_hashes, copy_similarity, pick_copies, shared_bands,
                                            sketches)
from newsbeam.transforms.stored import UNREADABLE, LookupKeys, ReadStoredBlocks, StoredView
from newsbeam.transforms.stories import (MAX_STORY_GAP, MIN_SHARED_NAMES, POSTING_LIMIT, STORY_REACH, StoryBatch,
                                         StoryColumns, StoryFeatures, described_features, feature_keys, join_stories,
                                         scored_batch, state_feature_counts, unpack_scored)
from newsbeam.transforms.write import Batches, spill, spill_to, unspill

_FAR_FUTURE = "9999"
NEAR_WINDOW = timedelta(days=7)  # copies of a story are compared only within this time of each other
NEAR_LOOKBACK = timedelta(days=30)  # earlier runs' articles published this recently are compared with a run's
BUCKET_LIMIT = 200  # a band shared by more documents than this compares each only with the best-ranked ones
BUCKET_HEAD = 50
if STORY_REACH > NEAR_WINDOW:  # the story tier works in the near tier's time blocks: a block and the one before
    raise RuntimeError("the story tier reaches further back than a time block")


def keep_order(doc: dict) -> tuple:
    """Sort key: the first document in this order is the one kept."""
    published = doc["published_at"].isoformat() if doc.get("published_at") else _FAR_FUTURE
    return (bool(doc.get("paywalled")), published, doc["extraction_method"] != "trafilatura", -doc["word_count"],
            doc["canonical_url"])


def light_record(ref: str, doc: dict) -> tuple:
    """What the url and exact tiers see of a document: (rank, ref, article_id, canonical_url, content_hash)."""
    return (keep_order(doc), ref, doc["article_id"], doc["canonical_url"], doc["content_hash"])


def keep_one(records: list[tuple]) -> tuple[tuple, list[tuple]]:
    """Light records of one URL or one text -> (the one kept, the copies): by keep_order, then ref."""
    ordered = sorted(records)
    return ordered[0], ordered[1:]


def duplicate_rows(doc: dict, duplicate_of: str, tier: str, similarity: float = 1.0, entries=None) -> list[dict]:
    """One duplicates row per feed entry that led to `doc`."""
    return [
        {
            "url": entry["link"],
            "canonical_url": doc["canonical_url"],
            "feed_url": entry["feed_url"],
            "duplicate_of": duplicate_of,
            "tier": tier,
            "similarity": similarity,
            "fetched_at": doc["fetched_at"],
        }
        for entry in (doc["entries"] if entries is None else entries)
    ]


def article_row(doc: dict) -> dict:
    return {
        "article_id": doc["article_id"],
        "url": doc["url"],
        "canonical_url": doc["canonical_url"],
        "feed_url": doc["feed_url"],
        "source": doc["source"],
        "title": doc["title"],
        "text": doc["text"],
        "summary": doc["summary"],
        "authors": doc["authors"],
        "published_at": doc["published_at"],
        "published_at_source": doc.get("published_at_source"),
        "updated_at": doc.get("updated_at"),
        "updated_at_source": doc.get("updated_at_source"),
        "fetched_at": doc["fetched_at"],
        "language": doc["language"],
        "word_count": doc["word_count"],
        "content_hash": doc["content_hash"],
        "story_id": doc.get("story_id") or doc["article_id"],
        "extraction_method": doc["extraction_method"],
        "wire": doc.get("wire"),
        "paywalled": bool(doc.get("paywalled")),
    }


# ---------------------------------------------------------------- records: what the tiers see of a document

COPY_TIERS = ("url", "exact", "near")


def when_of(doc: dict) -> datetime:
    return doc.get("published_at") or doc["fetched_at"]


def describe(items: list[tuple[str, dict]]) -> list[dict]:
    """The records the tiers work on, for (ref, document) pairs; `ref` is unique among the documents deduplicated.

    Per document: 'light': (rank, ref, article_id, canonical_url, content_hash) for the url and
    exact tiers; 'near': (rank, ref, article_id, when, stored, shingles, full, lead), or None for a
    text too short to sign; 'story': (ref, article_id, when, story_id, names, terms, counts, lead,
    numbers), story_id None for a new document. `when` is a POSIX timestamp; rank is keep_order.
    Plain tuples: Beam encodes them without pickling. The batch is described at once (features.describe_texts).
    """
    batch = describe_texts([doc["text"] for _, doc in items], [doc.get("title") for _, doc in items])
    described = []
    for (ref, doc), sig, story in zip(items, sketches(batch), described_features(batch)):
        rank, when = keep_order(doc), when_of(doc).timestamp()
        described.append({
            "light": light_record(ref, doc),
            "near": None if sig is None else (rank, ref, doc["article_id"], when, False, sig.shingles, sig.full, sig.lead),
            "story": (ref, doc["article_id"], when, None, *pack_story(story.state_fields())),
        })
    return described


def stored_near_record(row: dict) -> tuple:
    """An earlier run's near-state row as a near record (ranked before every new document)."""
    return ((), row["article_id"], row["article_id"], row["published_at"].timestamp(), True, row["shingles"], row["full"],
            row["lead"])


def stored_story_record(row: dict) -> tuple:
    """An earlier run's story-state row as a story record: it keeps its story id."""
    return (row["article_id"], row["article_id"], row["published_at"].timestamp(), row["story_id"],
            *pack_story(row))


def _near_signature(record: tuple) -> Signature:
    return Signature(record[5], record[6], record[7])


_SEP = "\x1f"  # the unit separator: in no feature (they are words, names and numbers)


def pack_story(state: dict) -> tuple:
    """Story-state columns as a story record's fields: lists of strings joined, counts as bytes; a few objects
    per article instead of a hundred, so a time block's records stay small in memory and in spills."""
    return (*(_SEP.join(state.get(k) or ()) for k in ("names", "terms")), array("I", state.get("counts") or ()).tobytes(),
            *(_SEP.join(state.get(k) or ()) for k in ("lead", "numbers")))


def _split(joined: str) -> list[str]:
    """One of pack_story's joined fields back to its list."""
    return joined.split(_SEP) if joined else []


def unpack_story(fields) -> dict:
    """pack_story's fields back to story-state columns."""
    names, terms, counts, lead, numbers = fields
    return {"names": _split(names), "terms": _split(terms), "counts": array("I", counts).tolist(), "lead": _split(lead),
            "numbers": _split(numbers)}


def _story_features(record: tuple) -> StoryFeatures:
    return StoryFeatures.from_state(unpack_story(record[4:]))


def block_of(when: float) -> int:
    return int(when // NEAR_WINDOW.total_seconds())


def near_blocks_of(block: int) -> list[int]:
    """The stored time blocks a document of `block` can meet in the near tier: its own and those either side."""
    return [block - 1, block, block + 1]


def blocked(records, when_index: int, reach: timedelta = NEAR_WINDOW) -> list[tuple[int, tuple[list, list]]]:
    """Records -> (block, (home records, visiting records)): each record is home in its NEAR_WINDOW-long
    time block and visits the next if it is within `reach` of it, so two records within `reach` of each
    other (at most NEAR_WINDOW) meet in one block."""
    blocks: dict[int, tuple[list, list]] = {}
    window, reach = NEAR_WINDOW.total_seconds(), reach.total_seconds()
    for record in records:
        block = block_of(record[when_index])
        blocks.setdefault(block, ([], []))[0].append(record)
        if record[when_index] >= (block + 1) * window - reach:
            blocks.setdefault(block + 1, ([], []))[1].append(record)
    return sorted(blocks.items())


def near_blocks(records) -> list[tuple[int, tuple[list, list]]]:
    return blocked(records, 3)


def story_blocks(records) -> list[tuple[int, tuple[list, list]]]:
    """Story records visit the next block only within STORY_REACH of it: older ones could not join its articles."""
    return blocked(records, 2, STORY_REACH)


def _members(parts, dropped, ref_index: int) -> list[tuple[tuple, bool]]:
    """A block's (record, home) members from its grouped (homes, visitors[, background]) parts, less the dropped refs."""
    members = []
    for part in map(unspill, parts):
        homes, visitors = part[0], part[1]
        members.extend((r, True) for r in homes if r[ref_index] not in dropped)
        members.extend((r, False) for r in visitors if r[ref_index] not in dropped)
    return members


def _background(parts):
    """The story IDF counts of a block's earlier-run articles not read as records (StoryPick), summed; None if none."""
    found = [part[2] for part in map(unspill, parts) if len(part) > 2]
    if not found:
        return None
    n, name_df, term_df = 0, Counter(), Counter()
    for count_, names, terms in found:
        n += count_
        name_df.update(names)
        term_df.update(terms)
    return n, name_df, term_df


# ---------------------------------------------------------------- the near tier, per block

def block_copies(members: list[tuple[tuple, bool]]) -> list[tuple[tuple, tuple, float]]:
    """Verified copy pairs among one time block's near records: ((rank, ref, article_id, stored), (...), similarity).

    `members` are (near record, home) pairs: the block's own records (home) and the block
    before's (visitors, whose pairs among themselves are found in their own block). Pairs share
    a band key (similarity.shared_bands, best-ranked first so a crowded band keeps its best
    members), are within NEAR_WINDOW, are not both from earlier runs, and pass copy_similarity.
    """
    ordered = sorted(members, key=lambda m: (not m[0][4], m[0][0], m[0][1]))  # earlier runs' first, then by rank
    sigs = [_near_signature(record) for record, _ in ordered]
    window = NEAR_WINDOW.total_seconds()
    found = []
    for i, j in sorted(shared_bands(sigs, BUCKET_LIMIT, BUCKET_HEAD)):
        (a, a_home), (b, b_home) = ordered[i], ordered[j]
        if not (a_home or b_home) or (a[4] and b[4]) or abs(a[3] - b[3]) > window:
            continue
        similarity = copy_similarity(sigs[i], sigs[j])
        if similarity is not None:
            found.append(((a[0], a[1], a[2], a[4]), (b[0], b[1], b[2], b[4]), similarity))
    return found


def assign_copies(verified: list[tuple]) -> list[tuple[str, str, float]]:
    """(copy ref, kept article_id, similarity) from all verified pairs: pick_copies over them."""
    ranks, ids, similar, stored = {}, {}, {}, set()
    for a, b, sim in verified:
        for rank, ref, doc_id, is_stored in (a, b):
            ranks[ref], ids[ref] = rank, doc_id
            if is_stored:
                stored.add(ref)
        similar[(a[1], b[1])] = max(sim, similar.get((a[1], b[1]), 0.0))
    order = sorted(ranks, key=lambda ref: (ref not in stored, ranks[ref], ref))
    copies = pick_copies(order, similar, frozenset(stored))
    return [(copy, ids[kept], sim) for copy, (kept, sim) in sorted(copies.items())]


# ---------------------------------------------------------------- the story tier, per block

def block_story_candidates(members: list[tuple[tuple, bool]], background=None) -> dict:
    """One time block's story evidence: {'scored': the candidates of its new home members, scored (stories.scored_batch),
    'known': {ref: stored story id} of its earlier-run members, 'ids': {ref: article id} of its new members}.
    join_blocks joins every block's in one pass.

    Visitors (the block before's members) are candidates here, not scored: their own block scores them.
    `background`: the IDF counts of the block's earlier-run articles that could not join (story_links).
    """
    records = [record for record, _ in members]
    refs = [record[0] for record in records]
    batch = StoryBatch(StoryColumns.packed(*([record[i] for record in records] for i in (4, 8, 5, 6, 7)), separator=_SEP),
                       np.array([record[2] for record in records], np.float64), refs, background)
    scored = scored_batch(batch, [home and record[3] is None for record, home in members], refs)
    known = {record[0]: record[3] for record in records if record[3] is not None}
    ids = {record[0]: record[1] for record in records if record[3] is None}
    return {"scored": scored, "known": known, "ids": ids}


def _block_candidates(grouped, dropped) -> tuple[int, object]:
    """(block, its story parts) -> (block, its block_story_candidates), spilled beside its records when those were."""
    block, parts = grouped
    return block, beside(parts[0], "candidates", block_story_candidates(_members(parts, dropped, 0), _background(parts)))


def join_blocks(blocks: list[tuple[int, dict]]) -> list[tuple[int, list[tuple[str, str]]]]:
    """(block, block_story_candidates or the path it was spilled to) of every block -> (block, [(ref, story id)])
    for each article that joins another's story, the story id being its first article's id or a stored story id.

    Blocks are joined in time order, so an article's candidates (earlier articles, of its block or the block
    before) have their stories by then: join_stories' one pass over the whole history, with each block's
    candidates scored by its own IDF. Each article is scored once, in its own block. Only the current and
    the previous block's stories are held."""
    stories: dict[str, tuple] = {}
    previous: list[str] = []
    found = []
    for block, part in sorted(blocks, key=lambda item: item[0]):
        evidence = unspill(part, consume=True)  # spilled beside the block's records, when those were
        links = join_stories(unpack_scored(evidence["scored"]), evidence["known"], stories)
        ids = evidence["ids"]
        refs, docs = evidence["scored"][:2]
        current = [refs[doc] for doc in docs.tolist()]
        for ref in current:  # a story started here is named by its first article's id from now on
            kind, story = stories[ref]
            if kind == "new":
                stories[ref] = ("id", ids[story])
        joined = [(ref, stories[ref][1]) for ref in current if ref in links]
        if joined:
            found.append((block, joined))
        for ref in previous:  # two blocks back: no later article's candidate
            stories.pop(ref, None)
        previous = current + list(evidence["known"])
    return found


# ---------------------------------------------------------------- decisions

SHARDS = 256  # the url and exact tiers move light records in batches per shard of their key, not one by one


def shards(records, field: int) -> list[tuple[int, list[tuple]]]:
    """Light records -> (shard, records) batches by a hash of one of their fields: equal keys meet in one shard."""
    found: dict[int, list] = {}
    for record in records:
        found.setdefault(zlib.crc32(str(record[field]).encode("utf-8")) % SHARDS, []).append(record)
    return sorted(found.items())


def keep_firsts(records, field: int) -> tuple[list[tuple], list[tuple[tuple, tuple]]]:
    """A shard's light records -> (the one kept per key, [(copy, the kept record of its key)]), by keep_one."""
    by_key: dict = {}
    for record in records:
        by_key.setdefault(record[field], []).append(record)
    kept, copies = [], []
    for group in by_key.values():
        first, others = keep_one(group)
        kept.append(first)
        copies.extend((other, first) for other in others)
    return kept, copies


class Decisions(beam.PTransform):
    """The tiers over documents' records -> {'decisions', 'near_state', 'story_state'}.

    Input: a dict of PCollections: 'light' (lists of light records, a document's or a chunk's),
    'near' and 'story' ((block, (homes, visitors)) batches of near and story records, see
    `near_blocks` and `story_blocks`, or (block, path) of batches spilled to files, see `spill`;
    earlier runs' records among them). Output 'decisions': lists of (ref, (tier, article_id,
    similarity)) for each copy (tier url, exact or near; article_id the kept one) and (ref,
    ('story', story_id, None)) for each article that joins another's story; every other document
    is an article of its own story. 'near_state' and 'story_state': (block, rows) of the articles
    kept, for later runs (rows spilled to a file when the block's records were).

    The tiers work within each window of their input (one window in a batch run, a poll's window in
    the streaming job); an empty window gives no decisions.

    Everything that crosses a grouping moves in batches (per shard of a key, per time block),
    so a million documents make thousands of elements, not millions: local runners pay for each.
    """

    def expand(self, records):
        url = (
            records["light"]
            | "UrlShards" >> beam.FlatMap(shards, 3)
            | "GroupUrl" >> beam.GroupByKey()
            | "KeepOneUrl" >> beam.ParDo(_KeepOneFn("url", 3, then=4)).with_outputs("kept", main="decisions")
        )
        exact = url.kept | "GroupText" >> beam.GroupByKey() | "KeepOneText" >> beam.ParDo(_KeepOneFn("exact", 4))
        early = (url.decisions, exact) | "EarlyCopies" >> beam.Flatten()
        early_pairs = early | "EarlyPairs" >> beam.FlatMap(list)
        near = (
            records["near"]
            | "GroupNearBlocks" >> beam.GroupByKey()
            | "VerifyPairs" >> beam.Map(lambda block, dropped: block_copies(_members(block[1], dropped, 1)),
                                        as_dict(early_pairs))
            | "AllPairs" >> beam.combiners.ToList().without_defaults()
            | "PickCopies" >> beam.Map(lambda pairs: [(copy, ("near", kept, sim))
                                                      for copy, kept, sim in assign_copies(chain.from_iterable(pairs))])
        )
        dropped = as_dict((early_pairs, near | "NearPairs" >> beam.FlatMap(list)) | "Copies" >> beam.Flatten())
        joined = (
            records["story"]
            | "GroupStoryBlocks" >> beam.GroupByKey()
            | "StoryCandidates" >> beam.Map(_block_candidates, dropped)
            | "AllCandidates" >> beam.combiners.ToList().without_defaults()
            | "JoinBlocks" >> beam.FlatMap(join_blocks)
        )
        stories = joined | "StoryDecisions" >> beam.Map(lambda batch: [(ref, ("story", story, None)) for ref, story in batch[1]])
        near_state = records["near"] | "NearState" >> beam.FlatMap(_near_state, dropped)
        story_state = (
            {"records": records["story"], "stories": joined}
            | "StoriesByBlock" >> beam.CoGroupByKey()
            | "StoryState" >> beam.FlatMap(_story_state, dropped)
        )
        decisions = (early, near, stories) | "AllDecisions" >> beam.Flatten()
        return {"decisions": decisions, "near_state": near_state, "story_state": story_state}


def as_dict(pcoll) -> beam.pvalue.AsDict:
    """`pcoll` as a dict side input, in each window of the main input (a poll's window in the streaming job).

    Beam 2.77's local streaming runner maps the window of a bundle's last element onto the side
    input's windows, and an empty bundle has none: the mapping raised AttributeError in the
    runner's thread and the job never ended. An empty bundle reads no side input, so any
    window will do; the earliest is ready at once. Other runners never map a missing window.
    """
    view = beam.pvalue.AsDict(pcoll)
    view._window_mapping_fn = partial(_window_or_earliest, view._window_mapping_fn)
    return view


def _window_or_earliest(mapping, window):
    return mapping(window) if window is not None else _EARLIEST_WINDOW


_EARLIEST_WINDOW = IntervalWindow(MIN_TIMESTAMP, MIN_TIMESTAMP + 1)


class _KeepOneFn(beam.DoFn):
    """(shard, batches of light records) -> one list of (copy ref, (tier, kept article_id, 1.0)) by the key at `field`;
    with `then`, the kept records also, tagged 'kept', in batches per shard of the key at `then` (the next tier's)."""

    def __init__(self, tier: str, field: int, then: int | None = None):
        self._tier, self._field, self._then = tier, field, then

    def process(self, keyed):
        kept, copies = keep_firsts(chain.from_iterable(keyed[1]), self._field)
        if self._then is not None:
            for batch in shards(kept, self._then):
                yield beam.pvalue.TaggedOutput("kept", batch)
        if copies:
            yield [(copy[1], (self._tier, first[2], 1.0)) for copy, first in copies]


def near_state_row(record: tuple) -> dict:
    """A new document's near record as its near-state row (stored_near_record reads it back)."""
    return {"article_id": record[2], "published_at": datetime.fromtimestamp(record[3], timezone.utc), "shingles": record[5],
            "full": record[6], "lead": record[7], "sketch": SKETCH_VERSION}


def _near_state(batch, dropped):
    block, part = batch
    homes = unspill(part)[0]
    rows = [near_state_row(r) for r in homes if not r[4] and r[1] not in dropped]
    return _keep_as(part, block, rows)


def _story_state(keyed, dropped):
    """(block, {'records': its story batches, 'stories': its [(ref, story id)] lists}) -> the block's state rows."""
    block, grouped = keyed
    stories = dict(chain.from_iterable(grouped["stories"]))
    rows = []
    for part in grouped["records"]:
        homes = unspill(part)[0]
        for ref, doc_id, when, story_id, *features in homes:
            if story_id is None and ref not in dropped:
                rows.append({"article_id": doc_id, "story_id": stories.get(ref, doc_id),
                             "published_at": datetime.fromtimestamp(when, timezone.utc), **unpack_story(features)})
    return _keep_as(grouped["records"][0], block, rows) if grouped["records"] else []


def _keep_as(part, block: int, rows: list[dict]) -> list[tuple[int, object]]:
    """A block's state rows as the (block, rows) batch WriteState groups; spilled beside the block's records when
    those were spilled, so that the runner holds a path and not a million rows."""
    if not rows:
        return []
    return [(block, beside(part, "state", rows))]


def beside(part, suffix: str, batch):
    """`batch` spilled beside a spilled part (its path with `suffix`), or itself when the part was not spilled."""
    return spill(f"{part}.{suffix}", batch) if isinstance(part, str) else batch


def decided_rows(doc: dict, decision: tuple | None) -> tuple[dict | None, list[dict]]:
    """A document and its decision -> (its article row or None, its duplicates rows); counted.

    A copy yields one duplicates row per feed entry that led to it; an article yields its row
    (with its story id) and a url-tier duplicates row for each further entry that led to it.
    """
    if decision is not None and decision[0] in COPY_TIERS:
        tier, kept_id, similarity = decision
        count(f"duplicates_{tier}", len(doc["entries"]))
        return None, duplicate_rows(doc, kept_id, tier, similarity)
    count("articles_kept")
    story_id = decision[1] if decision is not None else doc["article_id"]
    extra = doc["entries"][1:]
    if extra:
        count("duplicates_url", len(extra))
    return article_row({**doc, "story_id": story_id}), duplicate_rows(doc, doc["article_id"], "url", entries=extra)


# ---------------------------------------------------------------- the stage in a run

# ---------------------------------------------------------------- earlier runs' state a run can meet

def near_queries(record: tuple) -> list[tuple[int, bytes]]:
    """A new near record -> (stored block, its band keys) for each block of stored state it can meet."""
    keys = band_hashes([_near_signature(record)])[0].tobytes()
    return [(block, keys) for block in near_blocks_of(block_of(record[3]))]


class NearPick:
    """Of a block's stored near state, the rows that share a band key with one of the run's documents that can
    meet the block. Exact: a pair needs a shared band key, and a band shared with a new document keeps
    all its stored members, so every crowded band is cut (BUCKET_LIMIT) as if all were read."""

    def chunks(self, block: int) -> list[int]:
        return [block]

    def __call__(self, block: int, tables: dict, queries: list[bytes]) -> list[tuple]:
        table = tables.get(block)
        if table is None:
            return []
        current = pc.fill_null(pc.equal(table.column("sketch"), SKETCH_VERSION), False)
        same = pc.sum(current).as_py() or 0
        if same < len(table):  # sketches of another kind cannot be compared with this run's
            count("stored_near_other_sketch", len(table) - same)
            table = table.filter(current)
        wanted = np.unique(np.frombuffer(b"".join(queries), dtype=np.uint64))
        sigs = [Signature(0, full, lead) for full, lead in zip(table.column("full").to_pylist(), table.column("lead").to_pylist())]
        keep = np.isin(band_hashes(sigs), wanted).any(axis=1)
        rows = table.filter(pa.array(keep)).to_pylist()
        count("stored_near_records", len(rows))
        return [stored_near_record(row) for row in rows]


def story_queries(record: tuple) -> list[tuple[int, tuple]]:
    """A new story record -> (story block, (its time, its names, its IDF keys)) for each block it is a member of."""
    features = _story_features(record)
    names, words, stems = feature_keys(features)
    query = (record[2], tuple(features.names), tuple(names), tuple(words | stems))
    return [(block, query) for block, _ in story_blocks([record])]


class StoryPick:
    """Of the stored story state that is a member of a story block (its own rows and the block before's within
    STORY_REACH), the rows that can be a candidate of one of the run's documents there, as the block's
    records, and the IDF counts of the rest, for the keys that block's articles can ask for.

    Exact, and bounded by the run's documents, not the history: story_links takes a document's candidates
    from the POSTING_LIMIT latest earlier articles of each of its names, among those that share
    MIN_SHARED_NAMES names with it; so per document and name at most that many stored rows are read
    (those of the same time too, for ties); the rest still count in the block's IDF.
    """

    def chunks(self, block: int) -> list[int]:
        return [block - 1, block]

    def __call__(self, block: int, tables: dict, queries: list[tuple]) -> list[tuple]:
        window, reach = NEAR_WINDOW.total_seconds(), STORY_REACH.total_seconds()
        parts: tuple[list, list] = ([], [])
        left = []
        for chunk, home in ((block, True), (block - 1, False)):
            table = tables.get(chunk)
            if table is None:
                continue
            if not home:  # the block before's rows that visit this one (blocked)
                since = datetime.fromtimestamp(block * window - reach, timezone.utc)
                table = table.filter(pc.greater_equal(table.column("published_at"), pa.scalar(since, table.schema.field("published_at").type)))
            shares = _rows_naming(table, queries)
            for row in table.filter(shares).to_pylist():
                parts[0 if home else 1].append(stored_story_record(row))
            left.append(table.filter(pc.invert(shares)))
        count("stored_story_records", len(parts[0]) + len(parts[1]))
        if not any(len(table) for table in left):
            return [(block, parts)] if parts[0] or parts[1] else []
        name_keys = {key for query in queries for key in query[2]}
        term_keys = {key for query in queries for key in query[3]}
        for record in parts[0] + parts[1]:  # the stored articles read as records are scored too
            keys = feature_keys(_story_features(record))
            name_keys.update(keys[0])
            term_keys.update(keys[1] | keys[2])
        rest = pa.concat_tables(left)
        return [(block, (*parts, state_feature_counts(rest, name_keys, term_keys)))]


def _rows_naming(table: pa.Table, queries: list[tuple]) -> pa.Array:
    """A boolean mask of the story-state rows that can be a candidate of one of the run's documents (queries: its
    time and names first): rows among the POSTING_LIMIT latest naming MIN_SHARED_NAMES of its names before it
    (or at its time: ties are kept)."""
    mask = np.zeros(len(table), dtype=bool)
    asked = sorted({name for query in queries for name in query[1]})
    column = table.column("names").combine_chunks()
    hits = pc.is_in(column.flatten(), value_set=pa.array(asked, pa.string()))
    rows = pc.filter(pc.list_parent_indices(column), hits).to_numpy(zero_copy_only=False)
    if not len(rows):
        return pa.array(mask)
    names = pc.filter(column.flatten(), hits).to_numpy(zero_copy_only=False)
    when = pc.cast(pc.cast(table.column("published_at"), pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy() / 1e6
    order = np.lexsort((when[rows], names))
    rows, names = rows[order], names[order]
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    named = {names[start]: rows[start:end] for start, end in zip(starts, np.r_[starts[1:], len(names)])}  # oldest first
    for t, doc_names, *_ in queries:
        windows = []
        for name in doc_names:
            if name in named:
                found = named[name]
                times = when[found]
                windows.append(found[max(0, np.searchsorted(times, t, side="left") - POSTING_LIMIT):
                                     np.searchsorted(times, t, side="right")])
        if len(windows) >= MIN_SHARED_NAMES:
            candidates, shared = np.unique(np.concatenate(windows), return_counts=True)
            mask[candidates[shared >= MIN_SHARED_NAMES]] = True
    return pa.array(mask)


class Dedup(beam.PTransform):
    """A run's normalised documents -> {'articles', 'duplicates', 'near_state', 'story_state', 'unreadable'}.

    Documents already stored by earlier runs (same link or same text, looked up in the key index)
    are duplicates of those; the rest go through the tiers together with earlier runs' near and
    story state of the time blocks they can meet (transforms/stored.py reads both, on the workers).
    'unreadable': (path, reason) of stored files that could not be read.

    Documents move in chunks (write.Batches), spilled to files under `spill` when given: each chunk
    is read once to describe its documents and once, when the tiers have decided, to give its rows;
    in between, a local run holds the chunks' paths and the documents' small records, not their text.
    """

    def __init__(self, stored: StoredView, spill: str | None = None):
        super().__init__()
        self._stored, self._spill = stored, spill

    def expand(self, docs):
        chunks = (docs | "Chunk" >> beam.Map(lambda d: (0, d)) | "Chunks" >> Batches(self._spill)
                  | "ChunkParts" >> beam.Values())
        looked = (chunks | "KeysOf" >> beam.FlatMap(lambda chunk: [key for d in unspill(chunk) for key in stored_keys(d)])
                  | "LookupStored" >> LookupKeys(self._stored))
        found = as_dict(looked["found"])
        new = chunks | "Describe" >> beam.ParDo(_DescribeFn(self._spill), found).with_outputs("duplicates", "near", "story",
                                                                                   "pending", main="light")
        stored_near = (new.near | "NearQueries" >> beam.FlatMap(lambda records: chain.from_iterable(map(near_queries, records)))
                       | "ReadNear" >> ReadStoredBlocks(self._stored, "near", NEAR_LOOKBACK, NearPick()))
        stored_story = (new.story | "StoryQueries" >> beam.FlatMap(lambda records: chain.from_iterable(map(story_queries, records)))
                        | "ReadStory" >> ReadStoredBlocks(self._stored, "story", MAX_STORY_GAP, StoryPick()))
        decided = {
            "light": new.light,
            "near": (new.near | "NearBlocks" >> beam.FlatMap(near_blocks),
                     stored_near.rows | "StoredNearBlocks" >> beam.FlatMap(lambda r: near_blocks([r]))) | "AllNear" >> beam.Flatten(),
            "story": (new.story | "StoryBlocks" >> beam.FlatMap(story_blocks), stored_story.rows) | "AllStory" >> beam.Flatten(),
        } | "Tiers" >> Decisions()
        decisions = as_dict(decided["decisions"] | "EachDecision" >> beam.FlatMap(list))
        # Apply reads the chunks Describe passes on, not `chunks`: where one PCollection fed both the tiers and the
        # reader of their decisions, Beam 2.77's FnApiRunner left every stage after the tiers unrun.
        rows = new.pending | "Apply" >> beam.ParDo(_ApplyFn(), decisions).with_outputs("duplicates", main="articles")
        duplicates = (new.duplicates, rows.duplicates) | "AllDuplicates" >> beam.Flatten()
        unreadable = (looked[UNREADABLE], stored_near[UNREADABLE], stored_story[UNREADABLE]) | "Unreadable" >> beam.Flatten()
        return {"articles": rows.articles, "duplicates": duplicates, "near_state": decided["near_state"],
                "story_state": decided["story_state"], UNREADABLE: unreadable}


def stored_keys(doc: dict) -> list[tuple[str, str]]:
    """The keys under which the key index may hold a document: its link and its text."""
    return [("link", doc["canonical_url"]), ("text", doc["content_hash"])]


def earlier_copy(doc: dict, stored: dict) -> tuple[str, str] | None:
    """(kept article_id, tier) of what an earlier run stored of this document (its link, else its text), or None."""
    for (kind, key), tier in zip(stored_keys(doc), ("url", "exact")):
        earlier = stored.get((kind, key))
        if earlier is not None:
            return earlier, tier
    return None


class _DescribeFn(beam.DoFn):
    """A chunk -> duplicates rows of its documents earlier runs stored ('duplicates'); the others as a chunk for
    `_ApplyFn` ('pending', spilled again under `spill` when given) and their records: one list of light records
    (main), of near records ('near') and of story records ('story')."""

    def __init__(self, spill: str | None = None):
        self._spill = spill

    def process(self, chunk, stored):
        new, docs = [], unspill(chunk)
        for doc in docs:
            earlier = earlier_copy(doc, stored)
            if earlier is None:
                new.append(doc)
                continue
            count(f"duplicates_{earlier[1]}_earlier_run", len(doc["entries"]))
            for row in duplicate_rows(doc, *earlier):
                yield beam.pvalue.TaggedOutput("duplicates", row)
        if len(new) < len(docs):  # this is the chunk's last reader: _ApplyFn gets a chunk of the new ones
            if isinstance(chunk, str):
                FileSystems.delete([chunk])
            if not new:
                return
            chunk = spill_to(self._spill, new) if self._spill else new
        yield beam.pvalue.TaggedOutput("pending", chunk)
        described = describe([(doc["url"], doc) for doc in new])
        yield [records["light"] for records in described]
        yield beam.pvalue.TaggedOutput("near", [records["near"] for records in described if records["near"]])
        yield beam.pvalue.TaggedOutput("story", [records["story"] for records in described])


class _ApplyFn(beam.DoFn):
    """A chunk of new documents -> their articles and duplicates rows, as the tiers decided."""

    def process(self, chunk, decisions):
        for doc in unspill(chunk, consume=True):  # its last reader
            article, duplicates = decided_rows(doc, decisions.get(doc["url"]))
            if article is not None:
                yield article
            for row in duplicates:
                yield beam.pvalue.TaggedOutput("duplicates", row)
