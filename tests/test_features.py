"""A batch's near sketches and story features at once (transforms/features.py): batch-independent, stable,
never failing on odd text, and estimating what the tiers need."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from newsbeam.transforms.features import MIN_SHINGLES, PERMUTATIONS, STOP, TOP_TERMS, describe_texts, string_hashes
from newsbeam.transforms.similarity import jaccard, signature, sketches
from newsweb import body_paragraphs

TEXTS = ["\n".join(body_paragraphs(i) + body_paragraphs(i + 3)) for i in range(6)]
TITLES = [f"Council of Harbridge votes on plan {i}" for i in range(6)]
PROPERTIES = settings(max_examples=200, deadline=None)
ODD_TEXT = st.one_of(st.none(), st.text(max_size=400), st.text(alphabet="aZ .,\n'’-_0123456789ßİǅ\u0301\u200b", max_size=300))


def rows(described, i: int) -> tuple:
    return (int(described.shingles[i]), described.full[i].tobytes(), described.lead[i].tobytes(), described.names[i],
            described.terms[i], described.counts[i], described.lead_stems[i], described.numbers[i])


def test_a_text_is_described_alike_alone_and_in_any_batch():
    # Vocabularies, word ids and ties are per batch: none of them may leak into one text's records.
    batch = describe_texts(TEXTS, TITLES)
    backwards = describe_texts(TEXTS[::-1], TITLES[::-1])
    for i, (text, title) in enumerate(zip(TEXTS, TITLES)):
        alone = describe_texts([text], [title])
        assert rows(batch, i) == rows(alone, 0) == rows(backwards, len(TEXTS) - 1 - i)


def test_sketches_are_the_ones_stored_state_was_written_with():
    # Earlier runs' near state holds these sketches: a change here must come with a new SKETCH_VERSION.
    sig = signature("The harbour board met on Tuesday to approve the new ferry timetable for the winter months ahead. " * 3)
    digest = hashlib.sha256(sig.full + sig.lead).hexdigest()[:16]
    assert (sig.shingles, digest) == (17, "5797ab91c38b3975")


def test_string_hashes_depend_on_the_bytes_only():
    words = pa.array(["flood", "floods", "", "ß", "flood", "x" * 300])
    hashes = string_hashes(words)
    assert hashes[0] == hashes[4] and len(set(hashes.tolist())) == 5
    assert (string_hashes(words.slice(1, 3)) == hashes[1:4]).all()  # an array's offset is honoured


def test_the_one_permutation_estimate_follows_the_overlap():
    base = TEXTS[0].split(" ")
    for keep in (1.0, 0.8, 0.5, 0.2):
        cut = int(len(base) * keep)
        a, b = signature(" ".join(base)), signature(" ".join(base[:cut]))
        shared = len(base) - 3 if keep == 1.0 else cut - 3
        true = shared / (len(base) - 3)  # b's shingles are all in a: Jaccard = |B| / |A|
        assert abs(jaccard(a, b) - true) < 0.12, (keep, jaccard(a, b), true)


def test_story_features_read_names_numbers_and_the_lead():
    d = describe_texts(["Vice president Karin Olsen of Norvalia met the Bank of Kestrava on Monday. It cost 4,200 "
                        "crowns and fourteen trucks. Olsen's aides said the Bank of Kestrava agreed.\nThe talks went on."],
                       ["Olsen meets Bank of Kestrava"])
    names = set(d.names[0])
    assert {"karin olsen of norvalia", "bank of kestrava", "olsen", "kestrava", "norvalia"} <= names
    # A capitalised word opening a sentence is a name only if the text capitalises it elsewhere too: "Vice", "It"
    assert not names & {"monday", "it", "the", "vice", "vice president"}
    assert {"4200", "14"} <= set(d.numbers[0])
    assert "crowns" in d.terms[0] and "said" not in d.terms[0]
    assert {"olsen", "meets", "kestra", "presid"} <= set(d.lead_stems[0])


@PROPERTIES
@given(st.lists(st.tuples(ODD_TEXT, ODD_TEXT), min_size=1, max_size=6))
def test_any_text_gets_valid_records(pairs):
    texts, titles = [p[0] for p in pairs], [p[1] for p in pairs]
    d = describe_texts(texts, titles)
    n = len(texts)
    assert d.full.shape == d.lead.shape == (n, PERMUTATIONS) and d.full.dtype == np.uint32
    assert len(d.shingles) == n and (d.shingles >= 0).all()
    for i in range(n):
        assert (sketches(d)[i] is None) == (d.shingles[i] < MIN_SHINGLES)
        assert len(d.terms[i]) == len(d.counts[i]) <= TOP_TERMS and all(c >= 1 for c in d.counts[i])
        assert d.counts[i] == sorted(d.counts[i], reverse=True)
        assert all(len(t) >= 4 and t not in STOP for t in d.terms[i])
        for values in (d.names[i], d.lead_stems[i], d.numbers[i]):
            assert values == sorted(set(values)) and all(isinstance(v, str) and v for v in values)
        assert all(name == name.lower() for name in d.names[i])
