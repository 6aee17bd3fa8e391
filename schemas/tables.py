"""Arrow schemas of the articles, duplicates and errors tables.

Each table is Hive-partitioned by ``date=YYYY-MM-DD`` (UTC); the partition column lives
in the directory name only, never inside the files, so readers can merge the two.
Bump SCHEMA_VERSION whenever a column is added, removed or changes meaning.
Version 2 added published_at_source, updated_at, updated_at_source, wire and paywalled; version 3 the
near state's sketch column.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3
PARTITION_COLUMN = "date"

_UTC = pa.timestamp("us", tz="UTC")

ARTICLES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("canonical_url", pa.string(), nullable=False),
        pa.field("feed_url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("title", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("summary", pa.string()),
        pa.field("authors", pa.list_(pa.string())),
        pa.field("published_at", _UTC),
        pa.field("published_at_source", pa.string()),  # jsonld, meta, time, feed or url
        pa.field("updated_at", _UTC),
        pa.field("updated_at_source", pa.string()),
        pa.field("fetched_at", _UTC, nullable=False),
        pa.field("language", pa.string()),
        pa.field("word_count", pa.int32(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("story_id", pa.string(), nullable=False),
        pa.field("extraction_method", pa.string(), nullable=False),
        pa.field("wire", pa.string()),  # the agency a wire credit names: AP, AFP, Reuters, …
        pa.field("paywalled", pa.bool_(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "articles", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)

DUPLICATES = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("canonical_url", pa.string()),
        pa.field("feed_url", pa.string()),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("similarity", pa.float32(), nullable=False),
        pa.field("fetched_at", _UTC, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "duplicates", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)

ERRORS = pa.schema(
    [
        pa.field("url", pa.string()),
        pa.field("feed_url", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("message", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("failed_at", _UTC, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "errors", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)

TABLES: dict[str, pa.Schema] = {"articles": ARTICLES, "duplicates": DUPLICATES, "errors": ERRORS}

# State kept beside the dataset (DIR/_state/NAME/part-RUN_ID-00000.parquet), for later runs.
# chrome: per source, how many pages of a run repeated each short line (line_key null: the
# number of pages of that source in the run). StripChrome learns boilerplate from it.
CHROME_STATE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line_key", pa.string()),
        pa.field("docs", pa.int32(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "_state/chrome", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)
# near: per kept article, the near tier's MinHash sketches (transforms/similarity.py), so later
# runs find copies of it without rereading its text. `sketch` names how they were made
# (features.SKETCH_VERSION; null: 128 hash functions, before version 2); rows of another kind are
# not compared: their articles' copies are still found by the url and exact tiers, and
# `newsbeam dedup` over the dataset sketches them again from their text.
NEAR_STATE = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("published_at", _UTC, nullable=False),
        pa.field("shingles", pa.int32(), nullable=False),
        pa.field("full", pa.binary(), nullable=False),
        pa.field("lead", pa.binary(), nullable=False),
        pa.field("sketch", pa.int16()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "_state/near", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)
# story: per kept article, its story id and the story tier's features (transforms/stories.py), so a
# story that continues into later runs keeps its id.
STORY_STATE = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("story_id", pa.string(), nullable=False),
        pa.field("published_at", _UTC, nullable=False),
        pa.field("names", pa.list_(pa.string()), nullable=False),
        pa.field("terms", pa.list_(pa.string()), nullable=False),
        pa.field("counts", pa.list_(pa.int32()), nullable=False),
        pa.field("lead", pa.list_(pa.string()), nullable=False),
        pa.field("numbers", pa.list_(pa.string())),  # null in files written before numbers were features
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "_state/story", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)
# feeds: per feed and run, what conditional GET and feed health need next time (transforms/feed_state.py);
# the newest row per feed_url is the feed's state.
FEEDS_STATE = pa.schema(
    [
        pa.field("feed_url", pa.string(), nullable=False),
        pa.field("checked_at", _UTC, nullable=False),
        pa.field("last_status", pa.string(), nullable=False),  # ok | not_modified | unchanged | failed | skipped
        pa.field("consecutive_failures", pa.int32(), nullable=False),
        pa.field("last_success_at", _UTC),
        pa.field("next_poll_at", _UTC),  # set while backing off after failures
        pa.field("last_error", pa.string()),
        pa.field("last_http_status", pa.int32()),
        pa.field("etag", pa.string()),
        pa.field("last_modified", pa.string()),
        pa.field("body_sha256", pa.string()),
        pa.field("full_fetch_at", _UTC),  # last response with a body
        pa.field("last_not_modified_at", _UTC),  # last 304 since then
        pa.field("conditional", pa.bool_(), nullable=False),  # false once the server's validators were caught lying
        pa.field("conditional_note", pa.string()),
        pa.field("discovered_url", pa.string()),  # the feed found on a homepage listed as the source
        pa.field("entries", pa.int32()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "_state/feeds", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)
# keys: the index of what the dataset holds, so a run looks up only its own links and texts
# (transforms/stored.py): per stored article its link keys (url, canonical_url) and its content
# hash, per duplicate its link keys, each with the article_id it stands for. A run files its rows
# by a hash of the key (the file's chunk number is the shard) sorted by key, so row-group
# statistics let a lookup skip what its keys cannot be in.
KEYS_STATE = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # link | text
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
    ],
    metadata={"newsbeam.table": "_state/keys", "newsbeam.schema_version": str(SCHEMA_VERSION)},
)
STATE: dict[str, pa.Schema] = {"chrome": CHROME_STATE, "near": NEAR_STATE, "story": STORY_STATE, "feeds": FEEDS_STATE,
                               "keys": KEYS_STATE}


def error_row(
    *,
    stage: str,
    error: str,
    message: str,
    url: str | None = None,
    feed_url: str | None = None,
    http_status: int | None = None,
    failed_at=None,
) -> dict:
    """A dead-letter row; run_id, schema_version and a missing failed_at are filled in at write time."""
    return {
        "url": url,
        "feed_url": feed_url,
        "stage": stage,
        "error": error,
        "message": message[:2000] if message else message,
        "http_status": http_status,
        "failed_at": failed_at,
    }
