"""Scale of `newsbeam dedup` on synthetic ~600-word articles: wall time, peak memory, growth with size.

The issue's target: `newsbeam dedup` over 1,000,000 synthetic 600-word articles on a 2-core, 24 GB
machine in under 10 minutes and under 8 GB of peak memory, with cost growing linearly (100k, 300k,
1M reported), and the near tier's docs/s per core.

The dataset is generated from --seed alone and cached under --work (one folder per size, seed and
GENERATOR version, reused when its `_complete.json` is there): N articles spread evenly over DAYS
days, written as newsbeam's articles table (newsbeam.schemas.ARTICLES, zstd) under
`articles/date=YYYY-MM-DD/part-NNNNN.parquet`, at most FILE_ROWS rows a file (so one file a day up
to 1.2M articles). Each day is generated on its own (numpy, one generator per day seeded by
(--seed, day)), vectorised over all of the day's words:

- words: a vocabulary of VOCAB random lower-case words, shorter the more frequent, drawn with a
  Zipf-Mandelbrot distribution (p ~ 1/(rank + 2.7)), so frequent 4-word shingles recur across
  articles as they do in real text; sentences end after each word with probability 1/17, a quarter
  of sentence ends also end a paragraph (a newline); a sentence's first word is capitalised;
- events: the day's originals belong to events of about 3 articles each; an event has 4 names (from
  NAMES capitalised names, Zipf-distributed: a few names are in many events, as in the news) and 15
  topic words; 12% of an article's words are its event's topic words and 5% its names, so the story
  tier has articles to join and common names to look through;
- originals: normal(600, 60) words (450-750), a title of 8 words, one of SOURCES sources, one author;
  published uniformly over the day, fetched 10 min to 6 h later;
- exact copies (EXACT_SHARE of the documents): an original's text and title at another source
  (wire "AP"), published 1-12 h after it (same day);
- near copies (NEAR_SHARE): likewise, the text truncated to 60% of its words, or with EDIT_SHARE of
  its words replaced by vocabulary draws, or both (a third each);
- every URL is unique (so the url tier has no copies to find: only the exact, near and story tiers
  get work); article_id = normalise.article_id(url), story_id = article_id, content_hash and
  word_count computed from the rendered words (checked against normalise.content_hash and
  normalise.word_count on a few articles of every day), language "en", extraction "trafilatura".

For each size of --sizes (smallest first) `newsbeam dedup DATASET --out FRESH --run-id scale-N
[--beam-args ...]` runs as a subprocess in its own session. Measured: wall time from start to exit;
CPU seconds (user + system of the process and the descendants it waited for, from wait4); the peak
RSS of the whole process tree (every process's RSS from /proc, summed, sampled every 0.2 s: a short
spike between samples can be missed) and the largest single process's peak (wait4's ru_maxrss). A run
is killed (its process group) past --timeout seconds or --rss-limit MiB. From the run's manifest:
the articles block (read, kept, duplicates, balanced), duplicates by tier, the pipeline's own
seconds; from the articles written, how many joined another article's story. Sizes after a failed
run are not run. Linearity: seconds per 1k documents at each size, the ratio largest/smallest, and
the marginal cost between the two largest sizes (start-up cost left out). PASS/FAIL lines for the
targets (under 600 s, under 8 GB = 8e9 bytes) are printed only when 1,000,000 was run.

Near tier per core: signatures(texts) + band_hashes(sigs) over --sample texts of the largest dataset in
batches of BATCH (as the tiers describe a chunk), in this process (one core), median of --repeat passes;
batch_features(texts, titles), describe_texts (both at once, one tokenisation) and content_hash are timed
the same way for comparison (the other per-document work of `dedup`).

    python benchmarks/dedup_scale.py [--sizes 10000,30000,100000] [--seed N] [--work DIR] [--json]
        [--beam-args "--direct_running_mode multi_processing --direct_num_workers 2"] [--timeout S]
        [--rss-limit MIB] [--sample N] [--repeat N] [--keep-output] [--verbose] [--profile] [--generate-only]

The 1M target is opt-in: --sizes 100000,300000,1000000. --profile also runs the smallest size once
in-process under cProfile and prints (to stderr) the top 30 entries by cumulative time outside Beam (the
whole profile is kept as WORK/logs/dedup.prof). Every invocation also writes its JSON to WORK/results-TIME.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from newsbeam.schemas import ARTICLES, SCHEMA_VERSION
from newsbeam.transforms.normalise import article_id, canonical_url, content_hash, word_count

from corpus import parse_sizes

REPO = Path(__file__).resolve().parents[1]
GENERATOR = 2  # bump when the generated data changes: cached datasets of other versions are not reused
DEFAULT_SIZES = "10000,30000,100000"
DEFAULT_WORK = "/tmp/newsbeam-scale"
TARGET_SIZE = 1_000_000
TARGET_SECONDS = 600
TARGET_BYTES = 8_000_000_000

DAYS = 60
START = datetime(2026, 9, 1, tzinfo=timezone.utc)
FILE_ROWS = 20_000
VOCAB = 50_000
NAMES = 20_000
SOURCES = 300
AUTHORS_PER_SOURCE = 8
WORDS_MEAN, WORDS_SD, WORDS_MIN, WORDS_MAX = 600, 60, 450, 750
TITLE_WORDS = 8
SENTENCE_END = 1 / 17
PARAGRAPH_END = 0.25  # share of sentence ends that also end a paragraph
TOPIC_SHARE, NAME_SHARE = 0.12, 0.05
EVENT_SIZE, EVENT_NAMES, EVENT_TOPICS = 3, 4, 15
EXACT_SHARE, NEAR_SHARE = 0.05, 0.05
TRUNCATE_TO, EDIT_SHARE = 0.6, 0.05
COPY_HOURS = (1, 12)
CHECKED_PER_DAY = 3

# A token is a word variant and the separator after it; the separators:
SEPS = (b" ", b". ", b".\n", b".", b"")
SPACE, STOP, PARAGRAPH, END, NOTHING = range(len(SEPS))
WIDTH = 16  # bytes of the widest piece (a word of at most 12 letters and its separator), padded
GATHER_TOKENS = 2_000_000
LOOKUP = 1 << 22  # Zipf draws by table: the rarest word (p ~ 2e-6) still has about 8 slots


# ---------------------------------------------------------------- generation

def _random_words(rng: np.random.Generator, count: int, lengths: np.ndarray, taken: set) -> list[str]:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    out = []
    for i in range(count):
        length = int(lengths[i])
        while True:
            word = letters[rng.integers(0, 26, length)].tobytes().decode()
            if word not in taken:
                break
            length = min(length + 1, 12)
        taken.add(word)
        out.append(word)
    return out


class Vocabulary:
    """Words, names and the byte tables that turn token arrays into text, all from the seed."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 7_000_001])
        ranks = np.arange(VOCAB)
        lengths = np.clip(np.round(0.3 + 0.85 * np.log(ranks + 2) + rng.normal(0, 0.8, VOCAB)), 2, 12).astype(int)
        taken: set = set()
        self.words = _random_words(rng, VOCAB, np.sort(lengths), taken)
        self.names = [w.capitalize() for w in _random_words(rng, NAMES, rng.integers(4, 11, NAMES), taken)]
        self._word_lookup = _zipf_lookup(1.0 / (ranks + 2.7))
        self._name_lookup = _zipf_lookup(1.0 / (np.arange(NAMES) + 1.0))
        # variants: [0, V) lower-case words, [V, 2V) capitalised words, [2V, 2V+M) names
        variants = self.words + [w.capitalize() for w in self.words] + self.names
        self.text_table, self.text_len = _piece_table(variants, SEPS)
        pool = np.arange(SOURCES * AUTHORS_PER_SOURCE)
        self.authors = pa.array([f"{self.names[(7 * a) % NAMES]} {self.names[(13 * a + 5) % NAMES]}" for a in pool])

    def sample_words(self, rng: np.random.Generator, size) -> np.ndarray:
        return self._word_lookup[rng.integers(0, LOOKUP, size)]

    def sample_names(self, rng: np.random.Generator, size) -> np.ndarray:
        """Name tokens: ids VOCAB + name rank."""
        return VOCAB + self._name_lookup[rng.integers(0, LOOKUP, size)]


def _zipf_lookup(weights: np.ndarray) -> np.ndarray:
    """rank for each of LOOKUP equal slices of [0, 1): a draw is one table look-up (the rarest rank still gets slices)."""
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, (np.arange(LOOKUP) + 0.5) / LOOKUP, side="right"), len(weights) - 1).astype(np.int32)


def _piece_table(variants: list[str], seps: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(pieces x WIDTH bytes, piece lengths), piece = variant * len(SEPS) + separator."""
    encoded = [v.encode() for v in variants]
    n = len(encoded)
    words = np.array(encoded, dtype=f"S{WIDTH}").view(np.uint8).reshape(n, WIDTH)
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    table = np.zeros((n, len(seps), WIDTH), dtype=np.uint8)
    table[:] = words[:, None, :]
    plen = np.zeros((n, len(seps)), dtype=np.int64)
    rows = np.arange(n)
    for s, sep in enumerate(seps):
        for k, byte in enumerate(sep):
            table[rows, s, lengths + k] = byte
        plen[:, s] = lengths + len(sep)
    return table.reshape(n * len(seps), WIDTH), plen.reshape(-1)


def _pieces(vocab: Vocabulary, w: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Piece ids: a word is capitalised at the start of a text, a title or a sentence."""
    first = np.ones(len(w), dtype=bool)
    first[1:] = sep[:-1] != SPACE
    variant = np.where(w >= VOCAB, w + VOCAB, np.where(first, w + VOCAB, w)).astype(np.int64)
    return variant * len(SEPS) + sep


def _render(table: np.ndarray, plen: np.ndarray, pieces: np.ndarray, doc_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(char offsets per document, n+1 of them; UTF-8 bytes) of documents given as consecutive pieces."""
    lengths = plen[pieces]
    starts = np.concatenate([[0], np.cumsum(doc_tokens)[:-1]])
    offsets = np.concatenate([[0], np.cumsum(np.add.reduceat(lengths, starts))])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    cols = np.arange(WIDTH)
    pos = 0
    for a in range(0, len(pieces), GATHER_TOKENS):
        rows = table[pieces[a : a + GATHER_TOKENS]]
        chunk = rows[cols < lengths[a : a + GATHER_TOKENS, None]]
        out[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    return offsets, out


def _content_hashes(offsets: np.ndarray, data: np.ndarray, doc_dots: np.ndarray) -> list[str]:
    """normalise.content_hash of each rendered text: its words lower-cased, joined by single spaces.

    The texts are ASCII letters, spaces, "." and newlines, so that is: lower-case, newline to space,
    no "." (doc_dots: how many each text has).
    """
    upper = (data >= ord("A")) & (data <= ord("Z"))
    folded = np.where(upper, data + 32, data).astype(np.uint8)
    folded[folded == ord("\n")] = ord(" ")
    words = folded[folded != ord(".")]
    starts = offsets - np.concatenate([[0], np.cumsum(doc_dots)])
    view = memoryview(words)
    return [hashlib.blake2b(view[starts[i] : starts[i + 1]], digest_size=16).hexdigest() for i in range(len(offsets) - 1)]


def _strings(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))


def day_sizes(n: int) -> list[int]:
    return [n // DAYS + (1 if d < n % DAYS else 0) for d in range(DAYS)]


def make_day(vocab: Vocabulary, seed: int, day: int, n: int, first_serial: int) -> tuple[pa.Table, dict]:
    """One day's articles as an Arrow table in the ARTICLES schema, and what was planted."""
    rng = np.random.default_rng([seed, day])
    n_exact = int(round(n * EXACT_SHARE))
    n_near = int(round(n * NEAR_SHARE))
    n_orig = n - n_exact - n_near
    if n_orig < 1:
        n_orig, n_exact, n_near = n, 0, 0

    # originals: words of the vocabulary, their event's topic words and names
    lens = np.clip(np.round(rng.normal(WORDS_MEAN, WORDS_SD, n_orig)), WORDS_MIN, WORDS_MAX).astype(np.int64)
    total = int(lens.sum())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    n_events = max(1, n_orig // EVENT_SIZE)
    event = rng.integers(0, n_events, n_orig)
    event_names = vocab.sample_names(rng, (n_events, EVENT_NAMES))
    event_topics = rng.integers(300, 20_000, (n_events, EVENT_TOPICS)).astype(np.int32)

    def draw(count_per_doc: np.ndarray, topic_share: float, name_share: float) -> np.ndarray:
        doc = np.repeat(np.arange(len(count_per_doc)), count_per_doc)
        w = vocab.sample_words(rng, len(doc))
        kind = rng.random(len(doc))
        topic = kind < topic_share
        name = kind >= 1 - name_share
        ev = event[doc]
        w[topic] = event_topics[ev[topic], rng.integers(0, EVENT_TOPICS, int(topic.sum()))]
        w[name] = event_names[ev[name], rng.integers(0, EVENT_NAMES, int(name.sum()))]
        return w

    w = draw(lens, TOPIC_SHARE, NAME_SHARE)
    sep = np.full(total, SPACE, dtype=np.int64)
    stop = rng.random(total) < SENTENCE_END
    sep[stop] = STOP
    sep[stop & (rng.random(total) < PARAGRAPH_END)] = PARAGRAPH
    sep[starts + lens - 1] = END
    title_w = draw(np.full(n_orig, TITLE_WORDS), 0.25, 0.25).reshape(n_orig, TITLE_WORDS)

    when = rng.random(n_orig) * 86_400  # seconds into the day
    source = rng.integers(0, SOURCES, n_orig)
    eligible = np.flatnonzero(when < 86_400 - 2 * 3600)
    if len(eligible) == 0:
        eligible = np.arange(n_orig)

    def copies(count: int):
        of = rng.choice(eligible, count)
        latest = np.maximum(np.minimum(COPY_HOURS[1] * 3600.0, 86_399.0 - when[of]), 0.0)
        earliest = np.minimum(COPY_HOURS[0] * 3600.0, latest)
        at = when[of] + earliest + rng.random(count) * (latest - earliest)
        src = (source[of] + 1 + rng.integers(0, SOURCES - 1, count)) % SOURCES
        return of, at, src

    exact_of, exact_at, exact_src = copies(n_exact)
    near_of, near_at, near_src = copies(n_near)
    near_kind = rng.integers(0, 3, n_near)  # 0 truncated, 1 edited, 2 both

    doc_w = [w[a : a + k] for a, k in zip(starts, lens)]
    doc_sep = [sep[a : a + k] for a, k in zip(starts, lens)]
    for i in exact_of:
        doc_w.append(doc_w[i])
        doc_sep.append(doc_sep[i])
    for i, kind in zip(near_of, near_kind):
        cw, cs = doc_w[i].copy(), doc_sep[i]
        if kind in (0, 2):
            keep = int(round(len(cw) * TRUNCATE_TO))
            cw, cs = cw[:keep], cs[:keep].copy()
            cs[-1] = END
        if kind in (1, 2):
            edit = rng.random(len(cw)) < EDIT_SHARE
            cw[edit] = vocab.sample_words(rng, int(edit.sum()))
        doc_w.append(cw)
        doc_sep.append(cs)
    origin = np.concatenate([np.arange(n_orig), exact_of, near_of]).astype(np.int64)
    at = np.concatenate([when, exact_at, near_at])
    src = np.concatenate([source, exact_src, near_src])
    wire = np.concatenate([np.zeros(n_orig, bool), np.ones(n_exact, bool), np.zeros(n_near, bool)])
    order = np.argsort(at, kind="stable")

    ws = np.concatenate([doc_w[i] for i in order])
    seps = np.concatenate([doc_sep[i] for i in order])
    doc_tokens = np.array([len(doc_w[i]) for i in order], dtype=np.int64)
    pieces = _pieces(vocab, ws, seps)
    text_off, text_data = _render(vocab.text_table, vocab.text_len, pieces, doc_tokens)
    doc_dots = np.add.reduceat((seps != SPACE).astype(np.int64), np.concatenate([[0], np.cumsum(doc_tokens)[:-1]]))
    del pieces, ws, seps
    hashes = _content_hashes(text_off, text_data, doc_dots)
    tw = title_w[origin[order]].reshape(-1)
    tsep = np.tile(np.array([SPACE] * (TITLE_WORDS - 1) + [NOTHING]), n)
    title_off, title_data = _render(vocab.text_table, vocab.text_len, _pieces(vocab, tw, tsep), np.full(n, TITLE_WORDS))

    date = START + timedelta(days=day)
    day_us = int(date.timestamp() * 1_000_000)
    published = day_us + np.round(at[order] * 1e6).astype(np.int64)
    fetched = published + np.round((600 + rng.random(n) * 6 * 3600) * 1e6).astype(np.int64)
    src = src[order]
    serial = first_serial + np.arange(n)
    prefix = date.strftime("%Y/%m/%d")
    urls = [f"https://www.source{s:03d}.example/news/{prefix}/article-{k:08d}" for s, k in zip(src.tolist(), serial.tolist())]
    ids = [article_id(u) for u in urls]
    author = src * AUTHORS_PER_SOURCE + rng.integers(0, AUTHORS_PER_SOURCE, n)
    utc = pa.timestamp("us", tz="UTC")
    columns = {
        "article_id": pa.array(ids, pa.string()),
        "url": pa.array(urls, pa.string()),
        "canonical_url": pa.array(urls, pa.string()),
        "feed_url": pa.array([f"https://www.source{s:03d}.example/rss.xml" for s in range(SOURCES)]).take(pa.array(src)),
        "source": pa.array([f"Source {s:03d} News" for s in range(SOURCES)]).take(pa.array(src)),
        "title": _strings(title_off, title_data),
        "text": _strings(text_off, text_data),
        "summary": pa.nulls(n, pa.string()),
        "authors": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), vocab.authors.take(pa.array(author))),
        "published_at": pa.array(published, utc),
        "published_at_source": pa.array(["jsonld"] * n, pa.string()),
        "updated_at": pa.nulls(n, utc),
        "updated_at_source": pa.nulls(n, pa.string()),
        "fetched_at": pa.array(fetched, utc),
        "language": pa.array(["en"] * n, pa.string()),
        "word_count": pa.array(doc_tokens.astype(np.int32)),
        "content_hash": pa.array(hashes, pa.string()),
        "story_id": pa.array(ids, pa.string()),
        "extraction_method": pa.array(["trafilatura"] * n, pa.string()),
        "wire": pa.array(np.where(wire[order], "AP", None).tolist(), pa.string()),
        "paywalled": pa.array(np.zeros(n, bool)),
        "run_id": pa.array([f"synthetic-{seed}"] * n, pa.string()),
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int16)),
    }
    table = pa.Table.from_arrays([columns[f.name] for f in ARTICLES], schema=ARTICLES)
    for i in rng.choice(n, min(n, CHECKED_PER_DAY), replace=False).tolist():  # the fast path agrees with newsbeam's own
        text = table["text"][i].as_py()
        assert content_hash(text) == hashes[i], f"content_hash differs on day {day}, row {i}"
        assert word_count(text) == doc_tokens[i], f"word_count differs on day {day}, row {i}"
        assert canonical_url(urls[i]) == urls[i], f"URL not canonical: {urls[i]}"
    planted = {"originals": n_orig, "exact": n_exact, "near": n_near,
               "near_truncated": int((near_kind == 0).sum()), "near_edited": int((near_kind == 1).sum()),
               "near_truncated_edited": int((near_kind == 2).sum()), "words": int(doc_tokens.sum())}
    return table, planted


def dataset_dir(work: Path, n: int, seed: int) -> Path:
    return work / f"data-n{n}-seed{seed}-g{GENERATOR}"


def ensure_dataset(work: Path, n: int, seed: int, vocab_box: dict) -> dict:
    """The dataset of n articles (generated unless cached); returns its _complete.json contents."""
    folder = dataset_dir(work, n, seed)
    marker = folder / "_complete.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        info["cached"] = True
        return info
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    if "vocab" not in vocab_box:
        vocab_box["vocab"] = Vocabulary(seed)
    vocab = vocab_box["vocab"]
    t_vocab = time.perf_counter() - t0
    t0 = time.perf_counter()
    planted: dict = {}
    files = 0
    serial = 0
    for day, size in enumerate(day_sizes(n)):
        if size == 0:
            continue
        table, counts = make_day(vocab, seed, day, size, serial)
        serial += size
        for k, v in counts.items():
            planted[k] = planted.get(k, 0) + v
        part = tmp / "articles" / f"date={(START + timedelta(days=day)).date().isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        for chunk, a in enumerate(range(0, table.num_rows, FILE_ROWS)):
            pq.write_table(table.slice(a, FILE_ROWS), part / f"part-{chunk:05d}.parquet", compression="zstd")
            files += 1
        if (day + 1) % 10 == 0:
            print(f"  generating {n}: day {day + 1}/{DAYS}, {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    size_bytes = sum(f.stat().st_size for f in tmp.rglob("*.parquet"))
    info = {"n": n, "seed": seed, "generator": GENERATOR, "files": files, "bytes": size_bytes,
            "seconds": round(time.perf_counter() - t0, 2), "vocabulary_seconds": round(t_vocab, 2), "planted": planted,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (tmp / "_complete.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    info["cached"] = False
    return info


# ---------------------------------------------------------------- measuring a run

def _proc_table(cpu: bool = False) -> dict[int, tuple]:
    """pid -> (parent pid, RSS bytes) of every process visible in /proc; with `cpu`, also its CPU seconds and its
    reaped children's (utime + stime + cutime + cstime)."""
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        row = (int(fields[1]), int(fields[21]) * page)
        table[int(entry.name)] = row + (sum(int(x) for x in fields[11:15]) / tick,) if cpu else row
    return table


def tree_cpu(root: int) -> float:
    """CPU seconds of root and all its descendants, the children they have reaped included."""
    table = _proc_table(cpu=True)
    children: dict[int, list[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][2]
        todo.extend(children.get(pid, ()))
    return total


def tree_rss(root: int) -> tuple[int, int]:
    """(summed RSS bytes, process count) of root and all its descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, count, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
            count += 1
        todo.extend(children.get(pid, ()))
    return total, count


class Watch:
    """Samples the process tree's RSS every `interval` s; kills the tree's process group past the limits."""

    def __init__(self, pid: int, timeout: float, rss_limit: int, interval: float = 0.2):
        self.pid, self.timeout, self.rss_limit, self.interval = pid, timeout, rss_limit, interval
        self.peak, self.peak_procs, self.samples, self.killed = 0, 0, 0, None
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            rss, procs = tree_rss(self.pid)
            self.samples += 1
            if rss > self.peak:
                self.peak = rss
            self.peak_procs = max(self.peak_procs, procs)
            elapsed = time.perf_counter() - self._t0
            reason = None
            if self.timeout and elapsed > self.timeout:
                reason = f"timeout: still running after {self.timeout:.0f} s"
            elif self.rss_limit and rss > self.rss_limit:
                reason = f"rss-limit: process tree at {rss / 2**20:.0f} MiB, over {self.rss_limit / 2**20:.0f} MiB"
            if reason and self.killed is None:
                self.killed = reason
                try:
                    os.killpg(self.pid, signal.SIGKILL)  # the run's own session: it was started with start_new_session
                except ProcessLookupError:
                    pass
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()


def newsbeam_command() -> list[str]:
    script = Path(sys.executable).parent / "newsbeam"
    return [str(script)] if script.exists() else [sys.executable, "-m", "newsbeam.pipeline.cli"]


def measured(cmd: list[str], log: Path, timeout: float, rss_limit_mib: float) -> dict:
    """Run `cmd` in its own session, stdout and stderr to LOG.stdout and LOG.stderr, its process tree's RSS sampled
    (Watch: killed past `timeout` s or `rss_limit_mib`); what it cost and printed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{log}.stdout", "wb") as so, open(f"{log}.stderr", "wb") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, start_new_session=True)
        watch = Watch(proc.pid, timeout, int(rss_limit_mib * 2**20))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        watch.stop()
    return {
        "command": shlex.join(cmd), "exit_code": os.waitstatus_to_exitcode(status), "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_mib": round(watch.peak / 2**20),
        "max_process_rss_mib": round(usage.ru_maxrss / 1024), "peak_processes": watch.peak_procs, "rss_samples": watch.samples,
        "killed": watch.killed, "stdout": Path(f"{log}.stdout").read_text(errors="replace").strip(),
        "stderr_tail": Path(f"{log}.stderr").read_text(errors="replace").strip().splitlines()[-15:],
    }


def run_dedup(dataset: Path, out: Path, run_id: str, beam_args: list[str], verbose: bool, timeout: float,
              rss_limit_mib: float, logs: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*newsbeam_command(), "dedup", str(dataset), "--out", str(out), "--run-id", run_id, *(["--verbose"] if verbose else []), *beam_args]
    result = measured(cmd, logs / run_id, timeout, rss_limit_mib)
    manifest_path = out / "runs" / f"{run_id}.json"
    if result["exit_code"] == 0 and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        counts = manifest.get("counts", {})
        result["manifest"] = {
            "articles": manifest.get("articles"),
            "duplicates_by_tier": {tier: counts.get(f"duplicates_{tier}", 0) for tier in ("url", "exact", "near")},
            "counts": counts,
            "pipeline_seconds": manifest.get("timings", {}).get("total_seconds"),
            "input_files": manifest.get("input_files"),
        }
        result["stories"] = story_stats(out)
    return result


def story_stats(out: Path) -> dict:
    """How many kept articles joined a story started by another article."""
    files = sorted((out / "articles").rglob("*.parquet"))
    joined = kept = 0
    seen: set = set()
    for f in files:
        t = pq.read_table(f, columns=["article_id", "story_id"])
        ids, story = t["article_id"].to_pylist(), t["story_id"].to_pylist()
        kept += len(ids)
        joined += sum(1 for a, s in zip(ids, story) if a != s)
        seen.update(story)
    return {"kept": kept, "stories": len(seen), "joined_another": joined}


def profile_run(dataset: Path, out: Path, beam_args: list[str], logs: Path) -> None:
    import pstats

    shutil.rmtree(out, ignore_errors=True)
    prof = logs / "dedup.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "newsbeam.pipeline.cli", "dedup", str(dataset),
           "--out", str(out), "--run-id", "scale-profile", *beam_args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(f"profile: {shlex.join(cmd)}\n  exit {done.returncode} after {time.perf_counter() - t0:.1f} s; {done.stdout.strip()}",
          file=sys.stderr)
    if prof.is_file():
        # Beam's own frames wrap everything; leave them out to see newsbeam's stages and the libraries.
        pstats.Stats(str(prof), stream=sys.stderr).sort_stats("cumulative").print_stats(r"^(?!.*apache_beam)", 30)
    shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------- the near tier in-process

BATCH = 1000  # texts described at once


def per_doc_speed(dataset: Path, sample: int, repeat: int, seed: int) -> dict:
    from newsbeam.transforms.features import describe_texts
    from newsbeam.transforms.similarity import band_hashes, signatures
    from newsbeam.transforms.stories import batch_features

    files = sorted((dataset / "articles").rglob("*.parquet"))
    rng = np.random.default_rng([seed, 99])
    rows = []
    per_file = max(1, sample // len(files) + 1)
    for f in files:
        t = pq.read_table(f, columns=["title", "text"])
        for i in rng.choice(t.num_rows, min(per_file, t.num_rows), replace=False).tolist():
            rows.append((t["text"][i].as_py(), t["title"][i].as_py()))
    rows = rows[:sample]
    texts = [r[0] for r in rows]
    titles = [r[1] for r in rows]
    sigs = signatures(texts)
    # The tiers describe a chunk of documents at once (a row group in `newsbeam dedup`, a batch in a run).
    batches = [(texts[i:i + BATCH], titles[i:i + BATCH]) for i in range(0, len(texts), BATCH)]

    def timed(fn) -> float:
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    results = {}
    parts = {
        "signature": lambda: [signatures(t) for t, _ in batches],
        "band_keys": lambda: band_hashes([s for s in sigs if s is not None]),
        "signature+band_keys": lambda: [band_hashes([s for s in signatures(t) if s is not None]) for t, _ in batches],
        "story_features": lambda: [batch_features(t, h) for t, h in batches],
        "describe (both, one tokenisation)": lambda: [describe_texts(t, h) for t, h in batches],
        "content_hash": lambda: [content_hash(t) for t in texts],
    }
    for name, fn in parts.items():
        seconds = timed(fn)
        results[name] = {"seconds": round(seconds, 3), "docs_per_s": round(len(texts) / seconds, 1),
                         "ms_per_doc": round(seconds / len(texts) * 1000, 3)}
    return {"docs": len(texts), "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
            "no_signature": sum(1 for s in sigs if s is None), "repeat": repeat, "timings": results}


# ---------------------------------------------------------------- report

def linearity(rows: list[dict]) -> dict | None:
    done = [r for r in rows if r.get("exit_code") == 0]
    if len(done) < 2:
        return None
    per_1k = {r["n"]: round(r["wall_seconds"] / r["n"] * 1000, 3) for r in done}
    small, large = done[0], done[-1]
    a, b = done[-2], done[-1]
    marginal = (b["wall_seconds"] - a["wall_seconds"]) / (b["n"] - a["n"]) * 1000
    return {"seconds_per_1k_docs": per_1k, "ratio_largest_smallest": round(per_1k[large["n"]] / per_1k[small["n"]], 3),
            "marginal_seconds_per_1k_docs": round(marginal, 3), "marginal_between": [a["n"], b["n"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated article counts (default {DEFAULT_SIZES}; "
                        "the issue's: 100000,300000,1000000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data (default 1)")
    parser.add_argument("--work", default=DEFAULT_WORK, help=f"folder for cached datasets, outputs and logs (default {DEFAULT_WORK})")
    parser.add_argument("--beam-args", default="", help="extra options for newsbeam dedup, as one string "
                        "(e.g. \"--direct_running_mode multi_processing --direct_num_workers 2\")")
    parser.add_argument("--timeout", type=float, default=0, help="kill a run after this many seconds (default: no limit)")
    parser.add_argument("--rss-limit", type=float, default=16384, help="kill a run whose process tree passes this many MiB (default 16384; 0: none)")
    parser.add_argument("--sample", type=int, default=2000, help="texts for the in-process per-document timings (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="passes of the per-document timings; median reported (default 3)")
    parser.add_argument("--keep-output", action="store_true", help="keep each run's --out folder (default: deleted after reading it)")
    parser.add_argument("--verbose", action="store_true", help="pass --verbose to newsbeam dedup (its log: WORK/logs/scale-N.stderr)")
    parser.add_argument("--profile", action="store_true", help="also profile the smallest size once under cProfile (stderr)")
    parser.add_argument("--generate-only", action="store_true", help="only generate (or find) the datasets")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    sizes = parse_sizes(parser, args.sizes, "article counts")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    beam_args = shlex.split(args.beam_args)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    if commit and changed.strip():
        commit += " + uncommitted changes (" + ", ".join(line[3:] for line in changed.splitlines()) + ")"
    logs = work / "logs"

    vocab_box: dict = {}
    generation = {}
    for n in sizes:
        print(f"dataset {n}: {'generating' if not (dataset_dir(work, n, args.seed) / '_complete.json').is_file() else 'cached'}",
              file=sys.stderr, flush=True)
        generation[n] = ensure_dataset(work, n, args.seed, vocab_box)
    vocab_box.clear()
    if args.generate_only:
        print(json.dumps({str(n): g for n, g in generation.items()}, indent=2))
        return 0

    rows = []
    failed = None
    for n in sizes:
        if failed:
            rows.append({"n": n, "skipped": f"not run: the {failed} run failed"})
            continue
        print(f"dedup {n}: running", file=sys.stderr, flush=True)
        result = run_dedup(dataset_dir(work, n, args.seed), work / f"out-n{n}", f"scale-{n}", beam_args, args.verbose,
                           args.timeout, args.rss_limit, logs)
        result["n"] = n
        result["docs_per_s"] = round(n / result["wall_seconds"], 1) if result["exit_code"] == 0 else None
        result["planted"] = generation[n]["planted"]
        rows.append(result)
        print(f"dedup {n}: exit {result['exit_code']} in {result['wall_seconds']} s, peak RSS {result['peak_rss_mib']} MiB"
              + (f" ({result['killed']})" if result["killed"] else ""), file=sys.stderr, flush=True)
        if result["exit_code"] != 0:
            failed = n
        if not args.keep_output:
            shutil.rmtree(work / f"out-n{n}", ignore_errors=True)

    if args.profile:
        profile_run(dataset_dir(work, sizes[0], args.seed), work / "out-profile", beam_args, logs)
    speed = per_doc_speed(dataset_dir(work, sizes[-1], args.seed), args.sample, args.repeat, args.seed)
    lin = linearity(rows)
    targets = []
    big = next((r for r in rows if r["n"] == TARGET_SIZE and "exit_code" in r), None)
    if big is not None:
        ok = big["exit_code"] == 0
        targets = [
            {"target": f"1M articles in under {TARGET_SECONDS} s", "pass": ok and big["wall_seconds"] < TARGET_SECONDS,
             "value": f"{big['wall_seconds']} s" + ("" if ok else f" (exit {big['exit_code']}: {big['killed'] or 'failed'})")},
            {"target": f"peak memory under 8 GB ({TARGET_BYTES / 2**20:.0f} MiB)", "pass": ok and big["peak_rss_mib"] * 2**20 < TARGET_BYTES,
             "value": f"{big['peak_rss_mib']} MiB (largest process {big['max_process_rss_mib']} MiB)"},
        ]
    machine = {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "python": sys.version.split()[0]}
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")

    report = json.dumps({"commit": commit, "date": date, "seed": args.seed, "beam_args": beam_args, "machine": machine,
                         "generation": {str(n): g for n, g in generation.items()}, "runs": rows, "linearity": lin,
                         "per_document": speed, "targets": targets}, indent=2)
    saved = work / f"results-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    saved.write_text(report + "\n")
    if args.json:
        print(report)
        return 0

    print(f"newsbeam dedup at scale: seed {args.seed}, generator {GENERATOR}, newsbeam commit {commit or 'unknown'} "
          f"(working tree as installed), {date}; beam args: {shlex.join(beam_args) or '(none: in-process runner)'}")
    print(f"machine: {machine['cpus']} CPUs, {machine['memory_gib']} GiB, load average at the end {machine['load_average']}")
    print(f"{'docs':>9} {'gen s':>7} {'files':>5} {'MiB':>6} {'wall s':>8} {'docs/s':>7} {'CPU s':>8} {'cores':>5} "
          f"{'peak RSS':>8} {'max proc':>8} {'read':>9} {'kept':>9} {'dups':>7} {'bal':>4} {'url':>4} {'exact':>6} {'near':>6} "
          f"{'story+':>7} {'s/1k':>6}")
    for r in rows:
        g = generation[r["n"]]
        gen = f"{g['seconds']:>7.1f}" + ("*" if g.get("cached") else " ")
        if "skipped" in r:
            print(f"{r['n']:>9} {gen}{g['files']:>5} {g['bytes'] / 2**20:>6.0f}  {r['skipped']}")
            continue
        m = r.get("manifest")
        cores = r["cpu_seconds"] / r["wall_seconds"] if r["wall_seconds"] else 0
        line = (f"{r['n']:>9} {gen}{g['files']:>5} {g['bytes'] / 2**20:>6.0f} {r['wall_seconds']:>8.1f} {r['docs_per_s'] or '-':>7} "
                f"{r['cpu_seconds']:>8.1f} {cores:>5.2f} {r['peak_rss_mib']:>8} {r['max_process_rss_mib']:>8} ")
        if m:
            a, t, s = m["articles"], m["duplicates_by_tier"], r["stories"]
            line += (f"{a['read']:>9} {a['kept']:>9} {a['duplicates']:>7} {str(a['balanced'])[0]:>4} {t['url']:>4} {t['exact']:>6} "
                     f"{t['near']:>6} {s['joined_another']:>7} {r['wall_seconds'] / r['n'] * 1000:>6.2f}")
        else:
            line += f" FAILED: exit {r['exit_code']}" + (f", killed ({r['killed']})" if r["killed"] else "")
        print(line)
    print("(gen s: generation seconds, the vocabulary (built once) not included, * = cached from an earlier invocation")
    print(" (the time of that generation); MiB: dataset on disk;")
    print(" wall s: newsbeam dedup from start to exit, Python and Beam start-up included; CPU s: user + system of the")
    print(" process and the descendants it waited for; cores = CPU s / wall s; peak RSS: process tree summed, sampled every")
    print(" 0.2 s, MiB; max proc: largest single process's peak RSS, MiB; read/kept/dups/bal: the manifest's articles block;")
    print(" url/exact/near: duplicates by tier; story+: kept articles that joined a story another article started; s/1k:")
    print(" wall seconds per 1,000 articles)")
    for r in rows:
        if "planted" in r:
            p = r["planted"]
            pipeline = (r.get("manifest") or {}).get("pipeline_seconds")
            print(f"{r['n']}: planted {p['exact']} exact and {p['near']} near copies ({p['near_truncated']} truncated, "
                  f"{p['near_edited']} edited, {p['near_truncated_edited']} both), {p['words']} words in all; "
                  f"pipeline's own seconds (manifest) {pipeline}; peak {r['peak_processes']} processes")
        if r.get("exit_code") not in (None, 0):
            print(f"{r['n']}: {r['command']}\n  exit {r['exit_code']}" + (f", killed: {r['killed']}" if r["killed"] else "")
                  + "".join(f"\n  {line}" for line in r["stderr_tail"]))
    if lin:
        per = ", ".join(f"{n}: {s:.3f}" for n, s in lin["seconds_per_1k_docs"].items())
        print(f"linearity: wall seconds per 1k docs {per}; largest/smallest {lin['ratio_largest_smallest']:.2f} "
              f"(1.00 = linear; start-up cost pushes small sizes up); marginal between {lin['marginal_between'][0]} and "
              f"{lin['marginal_between'][1]}: {lin['marginal_seconds_per_1k_docs']:.3f} s per 1k docs")
    print(f"per document, in this process (one core), {speed['docs']} texts of the {sizes[-1]} dataset "
          f"({speed['mean_words']} words on average, {speed['no_signature']} without a signature), median of {speed['repeat']}:")
    for name, t in speed["timings"].items():
        print(f"  {name:<20} {t['docs_per_s']:>9.1f} docs/s  {t['ms_per_doc']:>7.3f} ms/doc")
    near = speed["timings"]["signature+band_keys"]["docs_per_s"]
    print(f"near tier: {near:.0f} docs/s per core; 1M documents need {TARGET_SIZE / near:.0f} core-seconds "
          f"({TARGET_SIZE / near / 2:.0f} s on 2 cores if spread perfectly)")
    for t in targets:
        print(f"{'PASS' if t['pass'] else 'FAIL'} {t['target']}: {t['value']}")
    print(f"(JSON of these results: {saved}; newsbeam's logs: {logs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
