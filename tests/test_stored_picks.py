"""What a run reads of earlier runs' near and story state (dedup.NearPick, dedup.StoryPick) decides as the whole
time block would: the rows it leaves unread could not have changed a decision about the run's documents.

Synthetic stories: a few hundred stored articles about many events, spread over two time blocks, and
new articles of which some copy or continue stored ones. Each test compares the tier's output over
every stored row with its output over what the pick keeps, and checks that the pick left most rows out.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from newsbeam.schemas import NEAR_STATE, STORY_STATE
from newsbeam.transforms.dedup import (NEAR_WINDOW, NearPick, StoryPick, _background, _members, block_copies, block_of,
                                       describe, near_blocks, near_queries, near_state_row, story_blocks, story_queries,
                                       stored_near_record,
                                       stored_story_record, unpack_story)
from newsbeam.transforms.stories import STORY_REACH, StoryFeatures, feature_keys, idf_weights, state_feature_counts

WEEK = NEAR_WINDOW.total_seconds()
BLOCK = 2_900  # a time block of 2025-08 (blocks are NEAR_WINDOW long, counted from the epoch)
FIRST = "Maria Tomas Ana Jonah Keiko Pavel Lena Omar Grace Ivo Nadia Felix Rosa Emil Sofia Karl Mina Otto Vera Hugo".split()
LAST = "Okafor Lind Petrov Reyes Mori Novak Brandt Haddad Whitfield Santos Karim Aurel Duval Marsh Ilves Quint".split()
PEOPLE = [f"{first} {last}" for first in FIRST for last in LAST]
PLACES = [f"{stem}{end}" for stem in ("East", "North", "Cedar", "Lake", "Bright", "Stone", "Ash", "Wolf") for end in
          ("vale", "moor", "ford", "mont", "water", "haven")]
BODIES = [f"the {what} {kind}" for what in ("River", "Transit", "Grain", "Port", "Water", "Harbor") for kind in
          ("Authority", "Board", "Council", "Union", "Office")]
WORDS = ("flood barrier vote budget bridge repair strike wages harvest drought ferry schedule tunnel levy school "
         "clinic storm warning contract audit pension reservoir rail freight tariff festival museum").split()


def article(rng: random.Random, event: int) -> str:
    """A text about one event: its people, place and body fixed by the event, its wording by the rng."""
    r = random.Random(event)
    who, where, body = r.sample(PEOPLE, 2), r.choice(PLACES), r.choice(BODIES)
    topic = r.sample(WORDS, 4)
    sentences = [f"{who[0]} of {body} said in {where} that the {topic[0]} {topic[1]} would go ahead.",
                 f"{who[1]} told reporters the {topic[2]} cost {event % 97 + 3} million and the {topic[3]} would wait."]
    sentences += [f"{rng.choice(who)} said the {rng.choice(topic)} {rng.choice(WORDS)} mattered to {where} "
                  f"after {rng.choice(WORDS)} {rng.choice(WORDS)} there." for _ in range(12)]
    return " ".join(sentences)


def docs(n: int, seed: int, start: float) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    found = []
    for i in range(n):
        event = rng.randrange(n // 3 + 1) + seed * 1_000
        when = datetime.fromtimestamp(start + rng.uniform(0, 2 * WEEK), timezone.utc)
        text = article(rng, event)
        found.append((f"s{seed}-{i}", {"url": f"https://news.example/{seed}/{i}", "canonical_url": f"https://news.example/{seed}/{i}",
                                        "article_id": f"a{seed}-{i}", "content_hash": f"h{seed}-{i}", "text": text,
                                        "title": text.split(".")[0], "published_at": when, "word_count": len(text.split()),
                                        "extraction_method": "trafilatura", "paywalled": False}))
    return found


def stored_tables(records: list[dict], name: str) -> dict[int, pa.Table]:
    """Earlier runs' state rows of the described `records`, as the reader gets them: a table per home block."""
    schema = {"near": NEAR_STATE, "story": STORY_STATE}[name]
    columns = [f for f in schema if f.name not in ("run_id", "schema_version")]
    by_block: dict[int, list[dict]] = {}
    for record in records:
        if name == "near":
            when = record["near"][3]
            row = near_state_row(record["near"])
        else:
            ref, doc_id, when, _, *features = record["story"]
            row = {"article_id": doc_id, "story_id": f"story-of-{doc_id}",
                   "published_at": datetime.fromtimestamp(when, timezone.utc), **unpack_story(features)}
        by_block.setdefault(block_of(when), []).append(row)
    return {block: pa.Table.from_pylist(rows, schema=pa.schema(columns)) for block, rows in by_block.items()}


def all_rows(tables: dict[int, pa.Table]) -> list[dict]:
    return [row for table in tables.values() for row in table.to_pylist()]


def world(seed: int = 7, stored: int = 240, new: int = 12):
    """Stored articles over blocks BLOCK-1..BLOCK+1 and new ones in BLOCK, a third of them taking a stored one's
    text (a copy for the near tier, the same story for the story tier)."""
    stored_docs = docs(stored, seed, (BLOCK - 1) * WEEK)
    rng = random.Random(seed + 1)
    fresh = docs(new, seed + 100, BLOCK * WEEK)
    for _, doc in fresh[::3]:
        source = rng.choice(stored_docs[len(stored_docs) // 2:])[1]
        doc["text"], doc["title"] = source["text"], source["title"]
        doc["published_at"] = source["published_at"].replace(microsecond=0) + timedelta(hours=5)
    return describe(stored_docs), describe(fresh)


def test_near_pick_finds_the_copies_reading_every_row_finds():
    earlier, fresh = world()
    tables = stored_tables(earlier, "near")
    new = [r["near"] for r in fresh if r["near"]]

    def pairs(stored_records):
        found = set()
        grouped: dict[int, list] = {}
        for block, part in near_blocks(new + stored_records):
            grouped.setdefault(block, []).append(part)
        for block, parts in grouped.items():
            found.update((a[1], b[1]) for a, b, _ in block_copies(_members(parts, {}, 1)))
        return found

    everything = pairs([stored_near_record(row) for row in all_rows(tables)])
    queries: dict[int, list[bytes]] = {}
    for record in new:
        for block, keys in near_queries(record):
            queries.setdefault(block, []).append(keys)
    picked = [record for block, asked in queries.items() for record in NearPick()(block, tables, asked)]
    assert everything, "the new articles copy stored ones: the tier must find pairs"
    assert pairs(picked) == everything
    assert len(picked) < len(all_rows(tables)) / 4  # and it read a small part of the state


def test_near_state_of_another_sketch_is_not_compared(tmp_path):
    # Files written before sketch version 2 hold 128-hash MinHash signatures and no `sketch` column (read as
    # null): compared bin by bin with one-permutation sketches they would only add noise.
    import pyarrow.parquet as pq

    from newsbeam.transforms.write import read_columns, state_columns

    earlier, fresh = world()
    tables = stored_tables(earlier, "near")
    queries: dict[int, list[bytes]] = {}
    for record in (r["near"] for r in fresh if r["near"]):
        for block, keys in near_queries(record):
            queries.setdefault(block, []).append(keys)
    current = [record for block, asked in queries.items() for record in NearPick()(block, tables, asked)]
    older = {}
    for block, table in tables.items():
        path = tmp_path / f"near-{block}.parquet"
        pq.write_table(table.drop_columns(["sketch"]), path)  # as an older newsbeam wrote it
        older[block] = read_columns(str(path), state_columns("near"), None, NEAR_STATE)
        assert older[block].column("sketch").null_count == len(table)
    assert current, "the new articles copy stored ones"
    assert [record for block, asked in queries.items() for record in NearPick()(block, older, asked)] == []


def story_links_of(fresh: list[dict], parts_by_block: dict[int, list]) -> set:
    from newsbeam.transforms.dedup import block_story_candidates, join_blocks

    for record in fresh:
        for block, part in story_blocks([record["story"]]):
            parts_by_block.setdefault(block, []).append(part)
    evidence = [(block, block_story_candidates(_members(parts, {}, 0), _background(parts)))
                for block, parts in parts_by_block.items()]
    return {pair for _, joined in join_blocks(evidence) for pair in joined}


def test_story_pick_joins_the_stories_reading_every_row_joins():
    earlier, fresh = world(seed=11)
    tables = stored_tables(earlier, "story")
    whole: dict[int, list] = {}
    for block, part in story_blocks([stored_story_record(row) for row in all_rows(tables)]):
        whole.setdefault(block, []).append(part)
    everything = story_links_of(fresh, whole)

    queries: dict[int, list] = {}
    for record in fresh:
        for block, query in story_queries(record["story"]):
            queries.setdefault(block, []).append(query)
    picked: dict[int, list] = {}
    read = 0
    for block, asked in queries.items():
        for got_block, part in StoryPick()(block, tables, asked):
            picked.setdefault(got_block, []).append(part)
            read += len(part[0]) + len(part[1])
    assert any(story.startswith("story-of-") for _, story in everything), "new articles join stored stories"
    assert story_links_of(fresh, picked) == everything
    assert read < sum(len(part[0]) + len(part[1]) for parts in whole.values() for part in parts)  # it left rows out


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(PEOPLE + PLACES), max_size=5),
                          st.lists(st.sampled_from(WORDS), max_size=6, unique=True),
                          st.lists(st.sampled_from(["3", "14", "2026", "6.1"]), max_size=3),
                          st.lists(st.sampled_from(["flood", "barrie", "vote", "clinic"]), max_size=3)),
                min_size=1, max_size=12),
       st.data())
def test_state_feature_counts_count_as_idf_weights_does(rows, data):
    """IDF over kept articles with the rest counted columnar as background == IDF over them all."""
    features = [StoryFeatures(frozenset(names), tuple((w, 1) for w in words), frozenset(lead), frozenset(numbers))
                for names, words, numbers, lead in rows]
    kept = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    table = pa.Table.from_pylist([{**f.state_fields(), "numbers": None if not f.numbers and i % 2 else f.state_fields()["numbers"]}
                                  for i, (f, k) in enumerate(zip(features, kept)) if not k],
                                 schema=pa.schema([STORY_STATE.field(c) for c in ("names", "terms", "counts", "lead", "numbers")]))
    name_keys, term_keys = set(), set()
    for f in features:
        names, words, stems = feature_keys(f)
        name_keys |= names
        term_keys |= words | stems
    whole = idf_weights(features)
    background = state_feature_counts(table, name_keys, term_keys)
    parted = idf_weights([f for f, k in zip(features, kept) if k], background)
    assert parted[2] == whole[2]
    assert {k: parted[0].get(k, parted[2]) for k in name_keys} == {k: whole[0].get(k, whole[2]) for k in name_keys}
    assert {k: parted[1].get(k, parted[2]) for k in term_keys} == {k: whole[1].get(k, whole[2]) for k in term_keys}
    assert background[0] == Counter(kept)[False]


def test_story_pick_reads_at_most_the_posting_limit_of_a_crowded_name():
    """Every stored article names the same place: a new one about it reads POSTING_LIMIT of them, and joins as
    it would have reading all."""
    from newsbeam.transforms.stories import POSTING_LIMIT

    crowded = []
    for ref, doc in docs(3 * POSTING_LIMIT, 5, (BLOCK - 1) * WEEK):
        doc["text"] = doc["text"] + " Residents of Grimsvik were told to wait."
        crowded.append((ref, doc))
    earlier = describe(crowded)
    tables = stored_tables(earlier, "story")
    fresh = describe([(ref, {**doc, "published_at": doc["published_at"] + timedelta(hours=3)})
                      for ref, doc in crowded[-40:-39]])
    fresh = [{**r, "story": (f"new-{r['story'][0]}", f"new-{r['story'][1]}", *r["story"][2:])} for r in fresh]
    whole: dict[int, list] = {}
    for block, part in story_blocks([stored_story_record(row) for row in all_rows(tables)]):
        whole.setdefault(block, []).append(part)
    picked: dict[int, list] = {}
    read = 0
    for record in fresh:
        for block, query in story_queries(record["story"]):
            for got_block, part in StoryPick()(block, tables, [query]):
                picked.setdefault(got_block, []).append(part)
                read += len(part[0]) + len(part[1])
    everything = story_links_of(fresh, whole)
    assert everything  # the copy joins its source's story
    assert story_links_of(fresh, picked) == everything
    names = len(story_queries(fresh[0]["story"])[0][1][1])
    assert read <= names * POSTING_LIMIT and read < len(crowded)


def test_picks_of_documents_that_meet_nothing_stored_read_no_rows():
    earlier, fresh = world(seed=3, stored=30)
    story, near = stored_tables(earlier, "story"), stored_tables(earlier, "near")
    unseen = (BLOCK * WEEK, ("nobody-stored-this",), ("nobody-stored-this",), ("zzz",))
    [(block, part)] = StoryPick()(BLOCK, story, [unseen])
    reach = STORY_REACH.total_seconds()
    members = len(story.get(BLOCK, [])) + sum(row["published_at"].timestamp() >= BLOCK * WEEK - reach
                                              for row in story[BLOCK - 1].to_pylist())
    assert (block, part[0], part[1]) == (BLOCK, [], []) and part[2][0] == members > 0  # all counted, none read
    assert NearPick()(BLOCK, near, [bytes(8 * 64)]) == []
    assert StoryPick()(BLOCK + 5, story, [unseen]) == [] and NearPick()(BLOCK + 5, near, [bytes(8)]) == []
