"""Append-only Delta tables whose idempotency lives inside the commit.

Each delivered file is a Delta *app transaction* (`bordin.file.<sha256>`): the marker that a
file was ingested is written in the same atomic log entry as its rows, so a crash can never
leave rows without the marker or the marker without rows. Readers list files from the Delta
log (never a directory glob), so stray or half-written Parquet files are invisible.

delta-rs' own pyarrow reader aborts the interpreter at exit with pyarrow 26 (seen here), so
reads go through DuckDB over the files the log lists.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

FILE_APP_PREFIX = "bordin.file."


def file_app_id(sha256: str) -> str:
    return f"{FILE_APP_PREFIX}{sha256}"


def exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def current_version(path: Path) -> int | None:
    return DeltaTable(str(path)).version() if exists(path) else None


def is_committed(path: Path, sha256: str) -> bool:
    if not exists(path):
        return False
    return DeltaTable(str(path)).transaction_version(file_app_id(sha256)) is not None


def append(
    path: Path,
    table: pa.Table,
    file_shas: list[str],
    metadata: dict[str, str],
) -> int:
    """Append rows and mark the files as committed, atomically; returns the new version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        table,
        mode="append",
        commit_properties=CommitProperties(
            app_transactions=[Transaction(file_app_id(sha), 1) for sha in sorted(file_shas)],
            custom_metadata=metadata,
        ),
    )
    return DeltaTable(str(path)).version()


def data_files(path: Path, version: int | None = None) -> list[str]:
    """The Parquet files the Delta log lists at a version (latest when None)."""
    table = DeltaTable(str(path))
    if version is not None:
        table.load_as_version(version)
    return sorted(table.file_uris())


def read(path: Path, schema: pa.Schema, version: int | None = None) -> pa.Table:
    """All committed rows at a version, as Arrow; an absent table reads as empty."""
    if not exists(path):
        return schema.empty_table()
    files = data_files(path, version)
    if not files:
        return schema.empty_table()
    con = duckdb.connect()
    try:
        result = con.execute("SELECT * FROM read_parquet(?, union_by_name = true)", [files])
        return result.fetch_arrow_table().select(schema.names).cast(schema)
    finally:
        con.close()


def history(path: Path) -> list[dict]:
    return DeltaTable(str(path)).history() if exists(path) else []
