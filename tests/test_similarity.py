"""The near tier's evidence: signatures, band keys, copy checks and the no-chains rule (transforms/similarity.py)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from newsbeam.transforms.similarity import band_keys, copy_similarity, jaccard, pick_copies, signature
from newsweb import body_paragraphs

STORY = "\n".join(body_paragraphs(0) + body_paragraphs(3) + body_paragraphs(6))
OTHER = "\n".join(body_paragraphs(1) + body_paragraphs(4) + body_paragraphs(7))


def edited(text: str, share: float, seed: int = 7) -> str:
    """`text` with `share` of its words replaced, as a copy desk's small edits would."""
    rng = random.Random(seed)
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(share * len(words))):
        words[i] = rng.choice(["also", "reportedly", "local", "new", "said"])
    return " ".join(words)


def test_signatures_are_the_same_in_another_process_with_another_hash_seed():
    # Stored signatures are compared with later runs' and other workers': nothing may depend on
    # Python's per-process string hashing.
    code = "from newsbeam.transforms.similarity import signature; import sys; print(signature(sys.stdin.read()).full.hex())"
    runs = {
        subprocess.run([sys.executable, "-c", code], input=STORY, capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert runs == {signature(STORY).full.hex()}


def test_a_copy_in_other_spacing_and_case_is_identical():
    a, b = signature(STORY), signature(STORY.upper().replace("\n", "  \n "))
    assert a == b and copy_similarity(a, b) == 1.0


def test_a_copy_with_five_percent_of_words_edited_is_a_copy_and_shares_a_band():
    a, b = signature(STORY), signature(edited(STORY, 0.05))
    assert copy_similarity(a, b) is not None
    assert set(band_keys(a)) & set(band_keys(b))


@pytest.mark.parametrize("share", [0.4, 0.5, 0.6])
def test_an_edited_copy_truncated_to_part_of_the_text_is_a_copy_by_containment(share):
    words = STORY.split(" ")
    a, b = signature(STORY), signature(edited(" ".join(words[: int(share * len(words))]), 0.05))
    assert jaccard(a, b) < 0.6  # Jaccard alone would not see it
    assert copy_similarity(a, b) is not None


def test_a_different_article_from_the_same_template_is_not_a_copy():
    # newsweb's articles share sentence templates, places and numbers: the hard case for shingles.
    a, b = signature(STORY), signature(OTHER)
    assert copy_similarity(a, b) is None


def test_numbers_are_kept():
    a = signature("The flood killed 5 people in the valley on Monday, officials in the regional capital said late at night.")
    b = signature("The flood killed 50 people in the valley on Monday, officials in the regional capital said late at night.")
    assert a != b and jaccard(a, b) < 1.0


def test_a_short_passage_shared_with_a_long_text_is_not_a_copy():
    quote = " ".join(STORY.split(" ")[200:240])
    short = signature(" ".join(OTHER.split(" ")[:60]) + " " + quote)
    assert copy_similarity(signature(STORY), short) is None


@pytest.mark.parametrize("text", ["", "Too short to sign."])
def test_texts_too_short_have_no_signature(text):
    assert signature(text) is None


def test_copies_are_picked_against_the_best_ranked_kept_document():
    order = ["original", "aggregator", "truncated"]
    similar = {("aggregator", "original"): 0.95, ("truncated", "original"): 0.8, ("truncated", "aggregator"): 0.9}
    assert pick_copies(order, similar) == {"aggregator": ("original", 0.95), "truncated": ("original", 0.8)}


def test_a_chain_of_small_edits_does_not_snowball():
    # a ~ b and b ~ c, but a is not like c: c stays an article instead of joining a through b.
    assert pick_copies(["a", "b", "c"], {("a", "b"): 0.7, ("b", "c"): 0.7}) == {"b": ("a", 0.7)}


def test_earlier_runs_articles_stay_kept_whatever_their_rank():
    copies = pick_copies(["new", "stored"], {("new", "stored"): 0.9}, kept_already=frozenset({"stored"}))
    assert copies == {"new": ("stored", 0.9)}


def test_shared_bands_pairs_copies_only_and_bounds_a_crowded_band():
    from newsbeam.transforms.similarity import shared_bands

    sigs = [signature(STORY), signature(OTHER), signature(edited(STORY, 0.05))]
    assert shared_bands(sigs) == {(0, 2)}
    crowd = [signature(STORY)] * 300  # one template shared by a whole site: every band is one run of 300
    pairs = shared_bands(crowd, limit=200, head=50)
    assert len(pairs) == sum(300 - 1 - k for k in range(50)) < 300 * 299 // 2
    assert all(i < 50 and i < j for i, j in pairs)
