"""Near-copy evidence for the Dedup stage's `near` tier: MinHash sketches, LSH band keys, checks.

A text becomes its word shingles (4 words, case-folded, digits kept: "5 killed" and "50 killed"
are different shingles), each hashed to 64 bits. Its sketch (transforms/features.py, for a whole
batch of texts at once) is a one-permutation MinHash with densification: each shingle falls in one
of PERMUTATIONS bins, each bin keeps its smallest hash, and empty bins borrow a filled one's; the
share of equal bins in two sketches estimates the Jaccard similarity of the two shingle sets. Two
sketches are kept per text: one of the whole text and one of its opening (LEAD_SHINGLES), because a
truncated copy ("read the full story") keeps the start and little else.

Candidate pairs come from LSH: each sketch is cut into bands of BAND_ROWS entries, and two
texts with an equal band are candidates. A candidate is a copy when, within the time window,
its estimated Jaccard similarity or its estimated containment (the share of the shorter text's
shingles found in the longer one, from the Jaccard estimate and the set sizes) is high enough.

Everything here is a pure function of the text or of two sketches, so the same code serves
one run's articles, earlier runs' stored sketches and `newsbeam dedup` over a dataset.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from newsbeam.transforms.features import LEAD_SHINGLES, MIN_SHINGLES, PERMUTATIONS, describe_texts

BAND_ROWS = 4  # 32 bands: a pair at Jaccard 0.6 shares a band with probability 0.99, at 0.2 with 0.05

NEAR_JACCARD = 0.6  # a copy of the whole text, with edits
NEAR_CONTAINMENT = 0.6  # a truncated copy: this share of the shorter text is in the longer one,
NEAR_LEAD = 0.6  # ... this share of the shorter opening is in the other opening,
CONTAINMENT_MIN_JACCARD = 0.15  # ... and a Jaccard estimate above noise (at 0.04, one equal slot moves C by 0.15)

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The text's words for comparison: NFKC, case-folded, digits kept."""
    return _WORD.findall(unicodedata.normalize("NFKC", text or "").casefold())


@dataclass(frozen=True)
class Signature:
    """What the near tier keeps of a text: its shingle count and two MinHash signatures."""

    shingles: int
    full: bytes  # PERMUTATIONS uint32 values
    lead: bytes

    @classmethod
    def from_state(cls, row: dict) -> "Signature":
        """The signature of a near-state row (schemas NEAR_STATE)."""
        return cls(row["shingles"], row["full"], row["lead"])

    def values(self, which: str = "full") -> np.ndarray:
        return np.frombuffer(self.full if which == "full" else self.lead, dtype=np.uint32)


def signature(text: str) -> Signature | None:
    """The text's signature, or None when it is too short to compare this way."""
    return signatures([text])[0]


def signatures(texts: list[str]) -> list[Signature | None]:
    """signature() of many texts at once (transforms/features.py works on the whole batch)."""
    return sketches(describe_texts(texts, story=False))


def sketches(described) -> list[Signature | None]:
    """The Signatures of a described batch (features.Described); None for texts too short to sign."""
    return [Signature(int(shingles), full.tobytes(), lead.tobytes()) if shingles >= MIN_SHINGLES else None
            for shingles, full, lead in zip(described.shingles.tolist(), described.full, described.lead)]


_BAND_MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93,
                      0xA24BAED4963EE407, 0x9FB21C651E98DF25], dtype=np.uint64)


def band_hashes(sigs: list[Signature]) -> np.ndarray:
    """LSH band keys of many signatures at once: an (n, 2 * bands) uint64 array (whole-text bands, then opening bands)."""
    bands = PERMUTATIONS // BAND_ROWS
    if not sigs:
        return np.zeros((0, 2 * bands), dtype=np.uint64)
    values = np.frombuffer(b"".join(sig.full + sig.lead for sig in sigs), dtype=np.uint32).reshape(len(sigs), 2, PERMUTATIONS)
    rows = values[:, :, : bands * BAND_ROWS].astype(np.uint64).reshape(len(sigs), 2 * bands, BAND_ROWS)
    salt = np.arange(1, 2 * bands + 1, dtype=np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)  # band number: no cross-band matches
    with np.errstate(over="ignore"):
        mixed = np.bitwise_xor.reduce(rows * _BAND_MIX[:BAND_ROWS], axis=2) ^ salt
        mixed ^= mixed >> np.uint64(31)
        mixed *= np.uint64(0xFF51AFD7ED558CCD)
        mixed ^= mixed >> np.uint64(33)
    return mixed


def band_keys(sig: Signature) -> list[str]:
    """LSH keys of one text: one per band of each signature; texts sharing a key are candidate copies."""
    return [f"{value:016x}" for value in band_hashes([sig])[0]]


def shared_bands(sigs: list[Signature], limit: int = 200, head: int = 50) -> set[tuple[int, int]]:
    """Index pairs (i < j) of signatures that share at least one band key.

    Sorting each band's keys finds the runs of equal keys without building a key -> members
    table. A run longer than `limit` (a template shared by a whole site) pairs each member only
    with its first `head` members, so one run cannot cost a quadratic number of pairs.
    """
    keys = band_hashes(sigs)
    pairs: set[tuple[int, int]] = set()
    for column in keys.T:
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(ordered)]
        for start, end in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = sorted(order[start:end].tolist())
            firsts = members if end - start <= limit else members[:head]
            for k, i in enumerate(firsts):
                pairs.update((i, j) for j in members[k + 1 :])
    return pairs


def jaccard(a: Signature, b: Signature, which: str = "full") -> float:
    return float(np.mean(a.values(which) == b.values(which)))


def containment(j: float, a: Signature, b: Signature, which: str = "full") -> float:
    """Estimated share of the shorter text's shingles found in the longer one, from a Jaccard estimate.

    |A∩B| = J(|A|+|B|)/(1+J), so the shorter side's share is that over min(|A|, |B|). The
    openings' sets hold at most LEAD_SHINGLES shingles each.
    """
    size_a, size_b = (a.shingles, b.shingles) if which == "full" else (min(a.shingles, LEAD_SHINGLES), min(b.shingles, LEAD_SHINGLES))
    return min(1.0, j * (size_a + size_b) / ((1 + j) * min(size_a, size_b)))


def copy_similarity(a: Signature, b: Signature) -> float | None:
    """How much of the shorter text is in the longer if one is a copy of the other (edited, truncated), else None.

    A copy of the whole text: estimated Jaccard >= NEAR_JACCARD. A truncated copy: the shorter
    text is mostly inside the longer (containment >= NEAR_CONTAINMENT) and so is the shorter
    opening inside the other opening (>= NEAR_LEAD), which keeps out a short text that merely
    quotes a passage from further down the longer one.
    """
    j = jaccard(a, b)
    c = containment(j, a, b)  # >= j always: one scale for both kinds of copy
    if j >= NEAR_JACCARD:
        return round(c, 4)
    if j >= CONTAINMENT_MIN_JACCARD and c >= NEAR_CONTAINMENT and containment(jaccard(a, b, "lead"), a, b, "lead") >= NEAR_LEAD:
        return round(c, 4)
    return None


def pick_copies(order: list[str], similar: dict[tuple[str, str], float], kept_already: frozenset = frozenset()) -> dict[str, tuple[str, float]]:
    """Which documents are copies of which, without chains: {copy id: (kept id, similarity)}.

    `order` lists ids best-first (the keep order); `similar` holds verified pairs (either
    order). A document is kept when no better-ranked document it resembles is kept; otherwise
    it is a copy of the most similar kept one among them. So a copy of a copy that does not
    itself resemble the kept original stays an article, and one story never snowballs through
    a chain of small edits. Ids in `kept_already` (earlier runs' articles) are kept whatever
    their rank.
    """
    rank = {doc: i for i, doc in enumerate(order)}
    neighbours: dict[str, list[tuple[str, float]]] = {}
    for (a, b), sim in similar.items():
        neighbours.setdefault(a, []).append((b, sim))
        neighbours.setdefault(b, []).append((a, sim))
    kept: set[str] = set(kept_already)
    copies: dict[str, tuple[str, float]] = {}
    for doc in order:
        if doc in kept_already:
            continue
        better = [(other, sim) for other, sim in neighbours.get(doc, ()) if other in kept and (other in kept_already or rank[other] < rank[doc])]
        if better:
            copies[doc] = max(better, key=lambda o: (o[1], -rank.get(o[0], -1)))
        else:
            kept.add(doc)
    return copies
