"""What the near and story tiers see of a batch of texts, worked out for the whole batch at once.

The Dedup stage describes every document by two small records: its near-copy sketch
(transforms/similarity.py) and its story features (transforms/stories.py). Working them out one
text at a time in Python cost about 0.9 ms a document, most of a million-article `newsbeam dedup`.
Here a batch is tokenised once, by compiled regular expressions over the whole batch (polars), and
everything after that is array work over the batch's tokens (numpy, pyarrow):

- words: NFKC, lower-cased runs of letters, marks, digits and underscores, joined by inner
  apostrophes and hyphens ("x-ray", "world's"); marks are part of a word, so Devanagari and Thai
  vowel signs no longer split one;
- the near tier's sketch: every run of SHINGLE_WORDS words is hashed to 64 bits; a one-permutation
  MinHash (Shrivastava 2017) puts each hash in one of PERMUTATIONS bins by its top bits and keeps
  the smallest per bin, and bins no shingle fell in borrow a filled bin's value (optimal
  densification); the same for the opening (the first LEAD_SHINGLES shingles). One hash a shingle
  instead of one per hash function;
- the story tier's features: content words (four letters or more, possessive dropped, not a
  function word) with their counts, stems of the title's and first sentence's content words, the
  numbers given (digits, and English number words), and named things: runs of capitalised words
  within a clause, read by one more regular expression over the original-case text.

Every function is pure: the same texts give the same records in any process, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

SKETCH_VERSION = 2  # 1: 128 hash functions of MinHash (near state written before; null in its files)
SHINGLE_WORDS = 4
PERMUTATIONS = 128
LEAD_SHINGLES = 100  # the opening's sketch: the first 100 shingles, about the first 100 words
MIN_SHINGLES = 10  # shorter texts have too few shingles for an estimate; only exact tiers see them

STEM_LETTERS = 6
TOP_TERMS = 60  # content words kept per article (by count): enough for the cosine, small to store

_W = r"\p{L}\p{M}\p{N}_"  # a word character
WORD = rf"[{_W}]+(?:['’\-][{_W}]+)*"
_CAPITAL = rf"\p{{Lu}}[{_W}’'\-]*"
CONNECTORS = ("of", "de", "del", "der", "van", "von", "la", "le", "du", "bin", "al", "da", "di")
_GAP = r"[^\S\n]+"
# A run of capitalised words within a line, with what comes before it: up to 16 characters that are not
# letters, the last of them not a word character or joiner (so "iPhone" holds no run "Phone").
_RUN = rf"\P{{L}}{{0,15}}[^{_W}’'\-]{_CAPITAL}(?:{_GAP}(?:(?:{'|'.join(CONNECTORS)}){_GAP})*{_CAPITAL})*"
_NUMBER = r"\p{Nd}+(?:[.,]\p{Nd}+)*"
_FIRST_SENTENCE = r"^\s*([^\n]*?(?:[.!?…]\s|\n|$))"

# Capitalised but not names of anything: days and months say when, not what.
CALENDAR = frozenset(
    """monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december montag dienstag mittwoch donnerstag freitag samstag sonntag
    januar februar märz mai juni juli oktober dezember lundi mardi mercredi jeudi vendredi samedi dimanche""".split()
)
# The commonest function words of four letters or more in the languages newsbeam meets most; the
# IDF weighting takes care of the rest once a batch has more than a handful of articles.
STOP = frozenset(
    """that with have this from they will were been their which would there about after also into more
    said says than them then these when what where while over some such only other could should very
    just most many much even like made make being before under since during between through against
    those here your ours year years week told according""".split()
    + """dass sich nicht eine einer eines einem einen oder aber auch noch nach wird wurde werden sind
    sein seine ihre ihrer haben hatte hatten beim über unter gegen durch diese dieser dieses mehr wenn
    dans pour avec sont mais plus leur leurs elle elles nous vous cette être avoir fait comme aussi
    para como pero sobre entre desde hasta donde porque esta este estos estas más""".split()
)
_UNITS = "one two three four five six seven eight nine".split()
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_UNITS + """ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen""".split(), 1)}
for _i, _tens in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2):
    NUMBER_WORDS[_tens] = str(10 * _i)
    NUMBER_WORDS.update({f"{_tens}-{unit}": str(10 * _i + j) for j, unit in enumerate(_UNITS, 1)})

_POSSESSIVE = r"[’']s$"
_EMPTY = np.uint64(1 << 32)  # a bin no shingle fell in (values are 32 bits)


@dataclass(frozen=True)
class Described:
    """A batch's records, one row per text: sketches as arrays, story features as lists (sorted, but terms
    most frequent first, ties in order of first use)."""

    shingles: np.ndarray  # int64: distinct shingles; below MIN_SHINGLES the text has no sketch (similarity.sketches)
    full: np.ndarray  # (n, PERMUTATIONS) uint32
    lead: np.ndarray  # (n, PERMUTATIONS) uint32
    names: list[list[str]]
    terms: list[list[str]]
    counts: list[list[int]]
    lead_stems: list[list[str]]
    numbers: list[list[str]]


def describe_texts(texts: list[str | None], titles: list[str | None] | None = None, story: bool = True) -> Described:
    """The near sketches and (with `story`) story features of a batch of texts, with their titles if any."""
    n = len(texts)
    frame = pl.DataFrame({"text": _nfkc(texts), "title": _nfkc(titles if titles is not None else [None] * n)})
    lowered = frame.get_column("text").str.to_lowercase()
    ids, lengths, vocabulary = _tokens(lowered)
    shingles, full, lead = _sketches(string_hashes(vocabulary)[ids], lengths)
    if not story:
        return Described(shingles, full, lead, *([[] for _ in range(n)] for _ in range(5)))
    terms, counts, number_words = _top_terms(ids, lengths, vocabulary, n)
    whole = frame.select(("\n" + pl.col("title") + "\n" + pl.col("text")).alias("whole")).get_column("whole")
    opening = frame.select((pl.col("title") + " " + pl.col("text").str.extract(_FIRST_SENTENCE, 1).fill_null(""))
                           .str.to_lowercase().alias("opening")).get_column("opening")
    return Described(shingles, full, lead, _names(whole), terms, counts, _lead_stems(opening), _numbers(whole, number_words))


# ---------------------------------------------------------------- words

def _nfkc(texts: list[str | None]) -> pl.Series:
    return pl.from_arrow(pc.utf8_normalize(pa.array(texts, pa.large_string()).fill_null(""), "NFKC"))


def _flat(lists: pl.Series) -> tuple[pa.Array, np.ndarray]:
    """A list column -> (its values in one Arrow array, each row's length)."""
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    values = lists.explode().drop_nulls()  # an empty list is one null row or none, by polars version
    return values.to_arrow(), lengths


def _tokens(lowered: pl.Series) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Lower-cased texts -> (the id of each word in order, words a text, the batch's vocabulary)."""
    values, lengths = _flat(lowered.str.extract_all(WORD))
    if not len(values):
        return np.zeros(0, np.int64), lengths, pa.array([], pa.large_string())
    encoded = pc.dictionary_encode(values)
    return encoded.indices.to_numpy().astype(np.int64), lengths, encoded.dictionary.cast(pa.large_string())


_P = np.uint64(0x100000001B3)  # odd: the polynomial's base


def string_hashes(strings: pa.Array) -> np.ndarray:
    """A stable 64-bit hash of each string (its UTF-8 bytes), for a whole array at once: sum of byte * P**k,
    length mixed in, then a finaliser. The same bytes give the same hash in any process."""
    strings = strings.cast(pa.large_string())
    n = len(strings)
    if not n:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset : strings.offset + n + 1]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8) if strings.buffers()[2] is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    span = data[offsets[0] : offsets[-1]].astype(np.uint64)
    position = np.arange(len(span), dtype=np.int64) - np.repeat(starts - offsets[0], lengths)
    longest = int(lengths.max()) if n else 0
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(max(longest, 1), _P, dtype=np.uint64))
        hashes = np.zeros(n, np.uint64)
        nonempty = lengths > 0
        if len(span):
            summed = np.add.reduceat((span + np.uint64(1)) * powers[position], (starts - offsets[0])[nonempty])
            hashes[nonempty] = summed
        return _finalise(hashes ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))


def _finalise(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return h


# ---------------------------------------------------------------- the near tier's sketch

_SHINGLE_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5], dtype=np.uint64)
_rng = np.random.default_rng(20261204)  # fixed: sketches must agree across runs, workers and machines
_TRIES = 64
_BORROW = _rng.integers(0, PERMUTATIONS, (PERMUTATIONS, _TRIES), dtype=np.int64)  # optimal densification's bin hash


def _shingle_hashes(word_hashes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each shingle's hash, its text, its place in the text) over a batch's words, shingles not crossing texts."""
    total = len(word_hashes)
    span = total - SHINGLE_WORDS + 1
    if span <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    mixed = np.zeros(span, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(SHINGLE_WORDS):
            mixed = (mixed ^ (word_hashes[k : k + span] * _SHINGLE_MIX[k])) * np.uint64(0xFF51AFD7ED558CCD)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    text = np.repeat(np.arange(len(lengths)), lengths)[:span]
    place = np.arange(span) - starts[text]
    inside = place <= (lengths[text] - SHINGLE_WORDS)
    return _finalise(mixed[inside]), text[inside], place[inside]


def _sketches(word_hashes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct shingles, whole-text sketch, opening sketch) of each text, from its words' hashes."""
    n = len(lengths)
    full = np.full((n, PERMUTATIONS), _EMPTY, np.uint64)
    lead = np.full((n, PERMUTATIONS), _EMPTY, np.uint64)
    shingles = np.zeros(n, np.int64)
    hashes, text, place = _shingle_hashes(word_hashes, lengths)
    if len(hashes):
        keyed = pl.Series((text.astype(np.uint64) << np.uint64(40)) | (hashes >> np.uint64(24))).unique()  # text, 40 bits of hash
        shingles = np.bincount((keyed.to_numpy() >> np.uint64(40)).astype(np.int64), minlength=n)
        bins = (hashes >> np.uint64(57)).astype(np.int64)  # the top 7 bits: PERMUTATIONS bins
        values = hashes & np.uint64(0xFFFFFFFF)
        np.minimum.at(full.reshape(-1), text * PERMUTATIONS + bins, values)
        opening = place < LEAD_SHINGLES
        np.minimum.at(lead.reshape(-1), text[opening] * PERMUTATIONS + bins[opening], values[opening])
    return shingles, _densified(full), _densified(lead)


def _densified(sketch: np.ndarray) -> np.ndarray:
    """Empty bins take the value of a filled bin of the same text, chosen by a fixed hash of (bin, try): two
    texts with the same filled bins fill their empty ones alike (Shrivastava 2017). Texts with no filled bin
    stay empty (they have no shingles, and no sketch)."""
    empty = sketch == _EMPTY
    rows, columns = np.nonzero(empty & ~empty.all(axis=1, keepdims=True))
    for attempt in range(_TRIES):
        if not len(rows):
            break
        source = _BORROW[columns, attempt]
        found = ~empty[rows, source]
        sketch[rows[found], columns[found]] = sketch[rows[found], source[found]]
        rows, columns = rows[~found], columns[~found]
    for row, column in zip(rows.tolist(), columns.tolist()):  # after 64 tries (at most a few bins filled): the next filled bin
        filled = np.flatnonzero(~empty[row])
        sketch[row, column] = sketch[row, filled[np.searchsorted(filled, column) % len(filled)]]
    return np.where(sketch == _EMPTY, 0, sketch).astype(np.uint32)


# ---------------------------------------------------------------- the story tier's features

def _content(words: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Per word: its content form (possessive dropped) and whether that is a content word (four letters or
    more, a letter first, not a function word)."""
    bare = pc.replace_substring_regex(pc.replace_substring_regex(words, _POSSESSIVE, ""), r"^[^\pL]+", "")
    content = pc.and_(pc.and_(pc.greater_equal(pc.utf8_length(bare), 4), pc.match_substring_regex(bare, r"^\pL")),
                      pc.invert(pc.is_in(bare, value_set=_STOP_ARRAY)))
    return bare, content.to_numpy(zero_copy_only=False)


_STOP_ARRAY = pa.array(sorted(STOP), pa.large_string())
_NUMBER_ARRAY = pa.array(sorted(NUMBER_WORDS), pa.large_string())


def _split(values: np.ndarray, owners: np.ndarray, n: int) -> list[np.ndarray]:
    """Values sorted by owner -> one array per owner 0..n-1."""
    return np.split(values, np.searchsorted(owners, np.arange(1, n)))


def _top_terms(ids: np.ndarray, lengths: np.ndarray, vocabulary: pa.Array, n: int):
    """Per text, its TOP_TERMS content words by count (ties by first use) and their counts; and the numbers
    its content words name ("fourteen" as "14")."""
    empty = [[] for _ in range(n)]
    if not len(ids):
        return empty, [[] for _ in range(n)], [[] for _ in range(n)]
    bare, is_content = _content(vocabulary)
    encoded = pc.dictionary_encode(bare)
    forms, form_of = encoded.dictionary, encoded.indices.to_numpy()
    keep = is_content[ids]
    size = max(len(forms), 1)
    used = np.repeat(np.arange(n, dtype=np.int64), lengths)[keep] * size + form_of[ids[keep]]  # (text, word), in order
    order = np.argsort(used, kind="stable")
    used = used[order]
    start = np.flatnonzero(np.r_[True, used[1:] != used[:-1]]) if len(used) else np.zeros(0, np.int64)
    counted, first_use = np.diff(np.r_[start, len(used)]), order[start]
    best = np.lexsort((first_use, -counted, used[start] // size))  # per text: most frequent first, then first used
    owner, word, counted = used[start][best] // size, used[start][best] % size, counted[best]
    rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
    top = rank < TOP_TERMS
    spelled = forms.to_numpy(zero_copy_only=False)
    terms = [spelled[w].tolist() for w in _split(word[top], owner[top], n)]
    counts = [c.tolist() for c in _split(counted[top], owner[top], n)]
    numbered = np.isin(word, np.flatnonzero(pc.is_in(forms, value_set=_NUMBER_ARRAY).to_numpy(zero_copy_only=False)))
    spoken = [[NUMBER_WORDS[w] for w in spelled[ws].tolist()] for ws in _split(word[numbered], owner[numbered], n)]
    return terms, counts, spoken


def _per_text(frame: pl.DataFrame, column: str, n: int) -> list[list[str]]:
    """A (text, value) frame -> each text's distinct values, sorted."""
    grouped = frame.unique().sort(["text", column])
    texts = grouped.get_column("text").to_numpy()
    values = np.asarray(grouped.get_column(column).to_list(), dtype=object)
    return [v.tolist() for v in _split(values, texts, n)]


def _lead_stems(opening: pl.Series) -> list[list[str]]:
    """Stems of the content words of each text's title and first sentence."""
    values, lengths = _flat(opening.str.extract_all(WORD))
    n = len(opening)
    if not len(values):
        return [[] for _ in range(n)]
    bare, is_content = _content(values)
    stems = pc.utf8_slice_codeunits(bare, 0, STEM_LETTERS).filter(pa.array(is_content))
    text = np.repeat(np.arange(n), lengths)[is_content]
    return _per_text(pl.DataFrame({"text": text, "stem": pl.from_arrow(stems)}), "stem", n)


def _numbers(whole: pl.Series, spoken: list[list[str]]) -> list[list[str]]:
    """The numbers of each text: those in digits (thousands separators dropped) and those its content words name."""
    values, lengths = _flat(whole.str.extract_all(_NUMBER))
    n = len(whole)
    text = np.repeat(np.arange(n), lengths)
    digits = pl.from_arrow(values).str.replace_all(",", "", literal=True) if len(values) else pl.Series([], dtype=pl.String)
    words = [(i, x) for i, found in enumerate(spoken) for x in found]
    frame = pl.DataFrame({"text": np.r_[text, [i for i, _ in words]].astype(np.int64),
                          "number": pl.concat([digits, pl.Series([x for _, x in words], dtype=pl.String)])})
    return _per_text(frame, "number", n)


def _names(whole: pl.Series) -> list[list[str]]:
    """The named things of each text ("\n" + title + "\n" + text): runs of capitalised words, maybe joined by
    connectors ("Bank of England"), within a line, and the longer words of each run, case-folded.

    A capitalised word that opens a clause or a sentence (looking back, punctuation or a line break comes
    before any letter) counts only if the text also capitalises it inside a clause, or it is an acronym;
    days and months are not names; a lone initial is not one."""
    n = len(whole)
    matches, per_text = _flat(whole.str.extract_all(_RUN))
    if not len(matches):
        return [[] for _ in range(n)]
    runs = pl.DataFrame({"m": pl.from_arrow(matches)}).select(
        pl.col("m").str.extract(r"^(\P{L}*)", 1).str.contains(r"[^\s\p{N}_’'\-]|\n").alias("opens"),
        pl.col("m").str.replace(r"^\P{L}+", "").str.extract_all(r"\S+").alias("t"))
    words, per_run = _flat(runs.get_column("t"))
    run = np.repeat(np.arange(len(per_run)), per_run)
    text = np.repeat(np.arange(n), per_text)[run]
    opens = runs.get_column("opens").to_numpy()[run]
    tokens = pl.DataFrame({"t": pl.from_arrow(words)}).select(
        pl.col("t").str.replace(_POSSESSIVE, ""), pl.col("t").str.contains(r"^\p{Lu}").alias("cap"))
    tokens = tokens.with_columns(pl.col("t").str.to_lowercase().alias("low"))
    keep = ~(tokens.get_column("cap") & tokens.get_column("low").is_in(list(CALENDAR))).to_numpy()
    tokens, run, text, opens = tokens.filter(pl.Series(keep)), run[keep], text[keep], opens[keep]
    cap = tokens.get_column("cap").to_numpy()
    pos = np.arange(len(run)) - np.searchsorted(run, run)
    spelling = pc.dictionary_encode(tokens.get_column("t").to_arrow())
    key = text.astype(np.int64) * max(len(spelling.dictionary), 1) + spelling.indices.to_numpy()  # (text, spelling)
    inner = key[cap & ((pos > 0) | ~opens)]
    acronym = tokens.get_column("t").str.contains(r"^\p{Lu}{2,}$").to_numpy()
    dropped = (pos == 0) & opens & ~acronym & ~np.isin(key, inner)
    connector = tokens.get_column("t").is_in(list(CONNECTORS)).to_numpy()
    drop = dropped | _ends(run, connector | dropped)
    tokens, run, text, connector = tokens.filter(pl.Series(~drop)), run[~drop], text[~drop], connector[~drop]
    starts = np.searchsorted(run, run)
    size = np.bincount(run, minlength=len(per_run))[run]
    first_len = tokens.get_column("t").str.len_chars().to_numpy()[starts] if len(run) else np.zeros(0, np.int64)
    named = (first_len + size) > 2
    tokens, run, text, connector = tokens.filter(pl.Series(named)), run[named], text[named], connector[named]
    low = tokens.get_column("low")
    first = np.flatnonzero(np.r_[True, run[1:] != run[:-1]]) if len(run) else np.zeros(0, np.int64)  # runs are in order
    phrases = pc.binary_join(pa.LargeListArray.from_arrays(pa.array(np.r_[first, len(run)], pa.int64()),
                                                           low.to_arrow().cast(pa.large_string())),
                             pa.scalar(" ", pa.large_string()))
    single = (low.str.len_chars().to_numpy() >= 4) & ~connector
    frame = pl.DataFrame({"text": np.r_[text[first], text[single]].astype(np.int64),
                          "name": pl.concat([pl.from_arrow(phrases).cast(pl.String), low.filter(pl.Series(single))])})
    return _per_text(frame, "name", n)


def _ends(run: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Flagged tokens at either end of their run (leading or trailing ones, runs in order)."""
    if not len(run):
        return flagged
    plain = (~flagged).astype(np.int64)
    before = np.cumsum(plain) - plain  # plain tokens before each, over the whole batch
    starts = np.searchsorted(run, run)
    ends = np.searchsorted(run, run, side="right")
    total = np.cumsum(plain)
    leading = (before - np.r_[0, total][starts]) == 0
    trailing = (total[ends - 1] - total) == 0
    return flagged & (leading | trailing)
