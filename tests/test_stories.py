"""The story tier (transforms/stories.py): one event in other words shares a story; other events do not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from newsbeam.transforms.stories import MAX_STORY_GAP, assign_stories, story_features, story_score

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)

# Fictional reports written for these tests.
FLOOD_A = (
    "Floodwater swept through the lower town of Varnholm on Monday after the River Osk burst its banks, "
    "forcing Mayor Ilse Brandvik to open the sports hall at Kessel Park as an emergency shelter.\n"
    "About 300 households were evacuated overnight, the regional civil protection office said. "
    "Brandvik told reporters the Osk had risen faster than at any time since records began.\n"
    "Rescue boats from the Northmark coastguard took elderly residents from flooded houses near the old mill."
)
FLOOD_B = (
    "Hundreds of people spent the night in a school gym in Varnholm as the Osk spilled over its embankments.\n"
    "Ilse Brandvik, the town's mayor, said the water came up in less than two hours. \"We had no time to lay sandbags,\" "
    "she said at Kessel Park, where volunteers handed out blankets.\n"
    "Northmark coastguard crews used boats to reach stranded pensioners, and the civil protection office warned "
    "that more rain was forecast for the weekend."
)
FLOOD_FOLLOW_UP = (
    "Two days after the River Osk flooded Varnholm, residents began returning to mud-filled homes.\n"
    "Mayor Ilse Brandvik said the shelter at Kessel Park would close on Friday and that the town would ask "
    "Northmark for emergency funds to repair the embankments and the old mill bridge."
)
BUDGET_SAME_ACTORS = (
    "Varnholm's council approved its annual budget on Thursday, with Mayor Ilse Brandvik promising new cycle lanes.\n"
    "The spending plan raises parking fees near Kessel Park and funds a library extension. "
    "Opposition councillors said the tax rise was too steep for families already struggling with energy bills."
)


TITLES = {
    FLOOD_A: "River Osk floods Varnholm; hundreds evacuated",
    FLOOD_B: "Varnholm flood: night in a school gym as the Osk overflows",
    FLOOD_FOLLOW_UP: "Varnholm begins clean-up after Osk flood",
    BUDGET_SAME_ACTORS: "Varnholm budget passes with cycle lanes and higher parking fees",
}


def features(text):
    return story_features(text, TITLES.get(text))


def test_named_things_are_found_with_their_longer_words():
    names = features("Talks resumed in Geneva. Russian President Vladimir Putin met NATO envoys on Monday.").names
    assert {"geneva", "president vladimir putin", "putin", "vladimir", "nato"} <= names
    assert "talks" not in names  # capitalised only because it opens a sentence
    assert "monday" not in names  # a day says when, not what


def test_one_event_in_other_words_and_its_follow_up_share_a_story():
    docs = [("a", T0, features(FLOOD_A)), ("b", T0 + timedelta(hours=5), features(FLOOD_B)),
            ("c", T0 + timedelta(days=2), features(FLOOD_FOLLOW_UP))]
    stories = assign_stories(docs)
    assert stories == {"a": "a", "b": "a", "c": "a"}


def test_another_event_with_the_same_actors_is_another_story():
    docs = [("a", T0, features(FLOOD_A)), ("b", T0 + timedelta(hours=5), features(FLOOD_B)),
            ("budget", T0 + timedelta(days=3), features(BUDGET_SAME_ACTORS))]
    stories = assign_stories(docs)
    assert stories["budget"] == "budget" and stories["b"] == "a"


def test_articles_more_than_the_story_gap_apart_are_never_joined():
    a, b = features(FLOOD_A), features(FLOOD_B)
    assert story_score(a, b, timedelta(hours=5)) > 0
    assert story_score(a, b, MAX_STORY_GAP + timedelta(hours=1)) == 0.0
    assert assign_stories([("a", T0, a), ("b", T0 + timedelta(days=40), b)]) == {"a": "a", "b": "b"}


def test_stored_articles_keep_their_story_and_new_reports_join_it():
    docs = [("old", T0, features(FLOOD_A)), ("new", T0 + timedelta(hours=30), features(FLOOD_FOLLOW_UP))]
    assert assign_stories(docs, known={"old": "story-from-last-week"}) == {"old": "story-from-last-week",
                                                                             "new": "story-from-last-week"}


def test_numbers_in_digits_and_words_are_features_and_survive_the_state_row():
    f = story_features("Fourteen people were hurt and 1,200 lost power; seventy-seven deputies voted. A 6.1 quake.", "Quake")
    assert {"14", "1200", "77", "6.1"} <= f.numbers
    row = {**f.state_fields(), "article_id": "x"}
    assert type(f).from_state(row) == f
    assert type(f).from_state({k: v for k, v in row.items() if k != "numbers"}).numbers == frozenset()  # older rows


def test_a_story_continues_across_time_blocks_and_links_are_followed_to_its_first_article():
    """The Beam tier links each block's articles to earlier ones (the block before visits) and follows the links
    afterwards: reports just either side of a block boundary, and a follow-up two days on, end in one story."""
    from newsbeam.transforms.dedup import (NEAR_WINDOW, _members, _story_state, block_story_candidates, join_blocks, pack_story,
                                           story_blocks)
    from newsbeam.transforms.stories import STORY_REACH

    assert STORY_REACH <= NEAR_WINDOW
    boundary = datetime.fromtimestamp((T0.timestamp() // NEAR_WINDOW.total_seconds() + 1) * NEAR_WINDOW.total_seconds(), timezone.utc)
    docs = {"a": (FLOOD_A, boundary - timedelta(hours=3)), "b": (FLOOD_B, boundary + timedelta(hours=2)),
            "fu": (FLOOD_FOLLOW_UP, boundary + timedelta(days=2)), "budget": (BUDGET_SAME_ACTORS, boundary + timedelta(days=3))}
    records = []
    for ref, (text, when) in docs.items():
        records.append((ref, f"id-{ref}", when.timestamp(), None, *pack_story(features(text).state_fields())))
    batches = story_blocks(records)
    homes_and_visitors = [([r[0] for r in homes], [r[0] for r in visitors]) for _, (homes, visitors) in batches]
    # "a" home in the first block, visiting the second; the third is visited only by those within reach of it
    assert homes_and_visitors == [(["a"], []), (["b", "fu", "budget"], ["a"]), ([], ["fu", "budget"])]
    evidence = [(block, block_story_candidates(_members([part], {}, 0))) for block, part in batches]
    stories = dict(pair for _, joined in join_blocks(evidence[::-1]) for pair in joined)  # blocks in any order
    assert stories == {"b": "id-a", "fu": "id-a"}  # the budget story is its own
    rows = [row for block, part in batches
            for _, rows in _story_state((block, {"records": [part], "stories": [list(stories.items())]}), {}) for row in rows]
    assert {row["article_id"]: row["story_id"] for row in rows} == {"id-a": "id-a", "id-b": "id-a", "id-fu": "id-a",
                                                                     "id-budget": "id-budget"}
    assert rows[0]["terms"] == features(FLOOD_A).state_fields()["terms"]  # packed and unpacked unchanged


# ---------------------------------------------------------------- the batch scoring against its specification

def reference_candidates(docs, scored_ids, background=None):
    """story_candidates as its docstrings say it, one pair at a time in plain Python: the specification the
    array code (StoryBatch) must meet."""
    import math
    from collections import Counter

    from newsbeam.transforms import stories as tier

    ordered = sorted(docs, key=lambda d: (d[1], d[0]))
    n, name_df, term_df = len(ordered), Counter(), Counter()
    if background:
        n, name_df, term_df = n + background[0], Counter(background[1]), Counter(background[2])
    for _, _, f in ordered:
        names, words, stems = tier.feature_keys(f)
        name_df.update(names)
        term_df.update(words)
        term_df.update(stems)
    idf = lambda df: math.log((n + tier.IDF_PRIOR_DOCS + 1) / (df + 1)) + 1.0  # noqa: E731

    def score(a, b, apart):
        wa = {k: idf(name_df[k]) for k in a.names | {"#" + x for x in a.numbers}}
        wb = {k: idf(name_df[k]) for k in b.names | {"#" + x for x in b.numbers}}
        shared = sum(wa[k] for k in wa.keys() & wb.keys())
        union = sum(wa.values()) + sum(wb.values()) - shared
        va, vb = ({w: c * idf(term_df[w]) for w, c in f.terms} for f in (a, b))
        norms = math.sqrt(sum(v * v for v in va.values())) * math.sqrt(sum(v * v for v in vb.values()))
        cosine = sum(va[w] * vb[w] for w in va.keys() & vb.keys()) / norms if norms else 0.0

        def covered(x, y):
            total = sum(idf(term_df[s]) for s in x.lead)
            return sum(idf(term_df[s]) for s in x.lead & y.stems) / total if total else 0.0

        hours, sigma = abs(apart).total_seconds() / 3600, tier.STORY_SIGMA.total_seconds() / 3600
        decay = math.exp(-hours * hours / (2 * sigma * sigma))
        overlap = tier.NAME_WEIGHT * (shared / union if union else 0.0) + (1 - tier.NAME_WEIGHT) * cosine
        return (overlap + (covered(a, b) + covered(b, a)) / 2) / 2 * decay, decay

    found = []
    for i, (doc_id, when, f) in enumerate(ordered):
        if doc_id not in scored_ids:
            continue
        shared = Counter()
        for name in f.names:
            posted = [j for j in range(i) if name in ordered[j][2].names][-tier.POSTING_LIMIT:]
            shared.update(j for j in posted if ordered[j][1] >= when - tier.STORY_REACH)
        chosen = sorted(((count, j) for j, count in shared.items() if count >= tier.MIN_SHARED_NAMES), reverse=True)
        found.append((doc_id, [(ordered[j][0], *score(f, ordered[j][2], when - ordered[j][1]))
                               for _, j in chosen[: tier.MAX_CANDIDATES]]))
    return found


NAMES = ["varnholm", "osk", "brandvik", "kessel park", "northmark", "ilse brandvik", "mill"]
WORDS = ["flood", "floods", "flooded", "river", "shelter", "budget", "council", "boats", "rain", "mayor"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.frozensets(st.sampled_from(NAMES), max_size=5),
                          st.dictionaries(st.sampled_from(WORDS), st.integers(1, 4), max_size=6),
                          st.frozensets(st.sampled_from(["flood", "river", "counci", "varnho"]), max_size=3),
                          st.frozensets(st.sampled_from(["3", "14", "300"]), max_size=2),
                          st.integers(0, 24 * 12), st.booleans()),
                min_size=1, max_size=14),
       st.integers(1, 3), st.integers(1, 3), st.booleans(), st.sampled_from([(4_000_000, 2048), (1, 1), (5, 2)]))
def test_batch_scoring_meets_its_specification(rows, posting_limit, max_candidates, with_background, chunks):
    """StoryBatch's candidates and scores are those of the plain definition, also where the posting limit and
    the candidate limit cut (set low here), in chunks of any size, with ties in time, with a background and
    with unscored docs."""
    from unittest import mock

    from newsbeam.transforms import stories as tier

    docs = [(f"d{i}", T0 + timedelta(hours=hours), tier.StoryFeatures(names, tuple(terms.items()), lead, numbers))
            for i, (names, terms, lead, numbers, hours, _) in enumerate(rows)]
    scored = {doc_id for (doc_id, _, _), row in zip(docs, rows) if row[5]}
    background = (50, {"varnholm": 20, "#3": 5}, {"flood": 30, "river": 2}) if with_background else None
    with (mock.patch.object(tier, "POSTING_LIMIT", posting_limit), mock.patch.object(tier, "MAX_CANDIDATES", max_candidates),
          mock.patch.object(tier.StoryBatch, "budget", chunks[0]), mock.patch.object(tier.StoryBatch, "documents", chunks[1])):
        got = list(tier.unpack_scored(tier.story_candidates(docs, scored, background=background)))
        expected = reference_candidates(docs, scored, background)
    assert [(doc, [c for c, _, _ in entries]) for doc, entries in got] == [(doc, [c for c, _, _ in entries]) for doc, entries in expected]
    for (_, entries), (_, wanted) in zip(got, expected):
        for (_, score, decay), (_, want_score, want_decay) in zip(entries, wanted):
            assert abs(score - want_score) < 1e-9 and abs(decay - want_decay) < 1e-9


def test_a_damaged_story_record_does_not_stop_its_block():
    """Stored story state whose counts do not match its words (a damaged or foreign row) is read with a count
    for each word: the block is still scored, and the other articles' links are what they would be without it."""
    from array import array

    from newsbeam.transforms.dedup import _members, block_story_candidates, join_blocks, pack_story

    records = [(ref, f"id-{ref}", (T0 + timedelta(hours=hours)).timestamp(), None, *pack_story(features(text).state_fields()))
               for ref, text, hours in (("a", FLOOD_A, 0), ("b", FLOOD_B, 5), ("fu", FLOOD_FOLLOW_UP, 48))]
    damaged = ("old", "id-old", (T0 - timedelta(hours=2)).timestamp(), "story-old", "varnholm\x1fosk", "flood\x1fbanks\x1friver",
               array("I", [2]).tobytes() + b"\x05", "", "")
    whole = [(0, block_story_candidates(_members([(records, [])], {}, 0)))]
    with_damaged = [(0, block_story_candidates(_members([([damaged] + records, [])], {}, 0)))]
    links = {ref: story for _, joined in join_blocks(whole) for ref, story in joined}
    assert links == {"b": "id-a", "fu": "id-a"}
    assert {ref: story for _, joined in join_blocks(with_damaged) for ref, story in joined} == links
