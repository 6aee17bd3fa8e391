"""The one place that says what a row is: explicit Arrow schemas for every table newsbeam writes."""

from newsbeam.schemas.tables import (
    ARTICLES,
    DUPLICATES,
    ERRORS,
    PARTITION_COLUMN,
    SCHEMA_VERSION,
    TABLES,
    error_row,
)

__all__ = [
    "ARTICLES",
    "DUPLICATES",
    "ERRORS",
    "PARTITION_COLUMN",
    "SCHEMA_VERSION",
    "TABLES",
    "error_row",
]
