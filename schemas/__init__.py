"""The one place that says what a row is: explicit Arrow schemas for every table newsbeam writes."""

from newsbeam.schemas.tables import (
    ARTICLES,
    CHROME_STATE,
    FEEDS_STATE,
    KEYS_STATE,
    NEAR_STATE,
    STORY_STATE,
    DUPLICATES,
    ERRORS,
    PARTITION_COLUMN,
    SCHEMA_VERSION,
    STATE,
    TABLES,
    error_row,
)

__all__ = [
    "ARTICLES",
    "CHROME_STATE",
    "FEEDS_STATE",
    "KEYS_STATE",
    "NEAR_STATE",
    "STORY_STATE",
    "DUPLICATES",
    "ERRORS",
    "PARTITION_COLUMN",
    "SCHEMA_VERSION",
    "STATE",
    "TABLES",
    "error_row",
]
