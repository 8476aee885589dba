"""Append-only Delta tables whose idempotency lives inside the commit.

Each delivered file is a Delta *app transaction*: the marker that a file was ingested is written
in the same atomic log entry as its rows, so a crash can never leave rows without the marker or
the marker without rows. A delivery is identified by site, kind and SHA-256
(`bordin.delivery.<site>.<kind>.<sha256>`): the same bytes delivered by two sites, or as an
export and as a withdrawal list, are different deliveries. Logs written before that carry
only `bordin.file.<sha256>` (no site); `deliveries.Ledger` attributes those to a site. The
events commit still writes the old marker too, for callers that ask by SHA-256 alone.
Data files are written first and committed second; a crash in between leaves unlisted files
that no reader ever sees, because readers list files from the Delta log (never a directory
glob).

delta-rs' own pyarrow reader aborts the interpreter at exit with pyarrow 26 (seen here), so
reads go through DuckDB over the files the log lists.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.exceptions import DeltaError
from deltalake.transaction import AddAction

from ingestion.crash_points import crash_point
from ingestion.disk_space import named_when_full

FILE_APP_PREFIX = "bordin.file."  # before per-site ids: one marker per SHA-256, any site
DELIVERY_APP_PREFIX = "bordin.delivery."


def file_app_id(sha256: str, site_id: str | None = None, kind: str = "export") -> str:
    """The marker of a delivery; without a site, the old marker (by SHA-256 alone)."""
    if site_id is None:
        return f"{FILE_APP_PREFIX}{sha256}"
    return f"{DELIVERY_APP_PREFIX}{site_id}.{kind}.{sha256}"


def exists(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def current_version(path: Path) -> int | None:
    return DeltaTable(str(path)).version() if exists(path) else None


def is_committed(path: Path, sha256: str, site_id: str | None = None, kind: str = "export") -> bool:
    """Whether the table holds this delivery's marker (without a site: the old marker only).

    Exact: an old marker is not attributed to a site here; `deliveries.Ledger` does that."""
    if not exists(path):
        return False
    app_id = file_app_id(sha256, site_id, kind)
    return DeltaTable(str(path)).transaction_version(app_id) is not None


def ensure_table(path: Path, schema: pa.Schema) -> None:
    """Create the table with an empty first commit; a concurrent creator winning is fine."""
    if exists(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_deltalake(str(path), schema.empty_table(), mode="append")
    except DeltaError:
        if not exists(path):
            raise


def append(
    path: Path,
    table: pa.Table,
    file_shas: list[str],
    metadata: dict[str, str],
    written: list[tuple[str, int]] = (),
    *,
    site_id: str | None = None,
    kind: str = "export",
    deliveries: list[tuple[str, str, str]] = (),
) -> int:
    """Write the rows' Parquet file, then commit it with the files' markers; returns the version.

    `file_shas` are marked as `site_id`'s deliveries of `kind` (the old marker when no site is
    given); `deliveries` adds (site_id, kind, sha256) markers of mixed kinds. `written` names
    Parquet files already in the table's folder (name, rows), written by the intake engine
    with the table's schema: they are committed in the same transaction.
    """
    with named_when_full(path, table.nbytes, f"writing {table.num_rows:,} rows to {path.name}"):
        return _append(path, table, file_shas, metadata, written, site_id, kind, deliveries)


def _append(
    path: Path,
    table: pa.Table,
    file_shas: list[str],
    metadata: dict[str, str],
    written: list[tuple[str, int]],
    site_id: str | None,
    kind: str,
    deliveries: list[tuple[str, str, str]],
) -> int:
    app_ids = {file_app_id(sha, site_id, kind) for sha in file_shas}
    app_ids |= {file_app_id(sha, site, k) for site, k, sha in deliveries}
    ensure_table(path, table.schema)
    _add_new_columns(path, table.schema)
    actions = []
    if table.num_rows:
        name = f"part-{uuid.uuid4()}.parquet"
        target = path / name
        pq.write_table(table, target, compression="zstd")
        actions.append(
            AddAction(
                path=name,
                size=target.stat().st_size,
                partition_values={},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": table.num_rows}),
            )
        )
    for name, rows in written:
        actions.append(
            AddAction(
                path=name,
                size=(path / name).stat().st_size,
                partition_values={},
                modification_time=int(time.time() * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": rows}),
            )
        )
    crash_point("ingest.after_data_files_before_commit")
    DeltaTable(str(path)).create_write_transaction(
        actions,
        mode="append",
        schema=table.schema,
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id, 1) for app_id in sorted(app_ids)],
            custom_metadata=metadata,
        ),
    )
    return DeltaTable(str(path)).version()


def _add_new_columns(path: Path, schema: pa.Schema) -> None:
    """Schema evolution: columns new in `schema` are added (nullable) to the table's schema, so
    rewrites (erasure's delete) keep them; rows written before read them as null."""
    have = {f.name for f in DeltaTable(str(path)).schema().fields}
    new = [f for f in schema if f.name not in have]
    if not new:
        return
    try:
        DeltaTable(str(path)).alter.add_columns(list(Schema.from_arrow(pa.schema(new)).fields))
    except DeltaError:
        # Another writer (a different site's ingestion) added them first.
        have = {f.name for f in DeltaTable(str(path)).schema().fields}
        if any(f.name not in have for f in new):
            raise


def data_files(path: Path, version: int | None = None) -> list[str]:
    """The Parquet files the Delta log lists at a version (latest when None)."""
    table = DeltaTable(str(path))
    if version is not None:
        table.load_as_version(version)
    return sorted(table.file_uris())


def read(path: Path, schema: pa.Schema, version: int | None = None, where: str = "") -> pa.Table:
    """Committed rows at a version (optionally filtered by SQL), as Arrow; absent = empty."""
    if not exists(path):
        return schema.empty_table()
    files = data_files(path, version)
    if not files:
        return schema.empty_table()
    con = duckdb.connect()
    try:
        sql = "SELECT * FROM read_parquet(?, union_by_name = true)"
        result = con.execute(f"{sql} {('WHERE ' + where) if where else ''}", [files])
        table = result.fetch_arrow_table()
        # Columns added to the schema after these files were written read as null.
        for field in schema:
            if field.name not in table.column_names:
                table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
        return table.select(schema.names).cast(schema)
    finally:
        con.close()


def delete_rows(path: Path, predicate: str, metadata: dict[str, str]) -> int:
    """Rewrite the files holding matching rows without them; returns the new version."""
    table = DeltaTable(str(path))
    table.delete(predicate, commit_properties=CommitProperties(custom_metadata=metadata))
    return DeltaTable(str(path)).version()


def purge_unreferenced_files(path: Path) -> list[str]:
    """Physically remove files no longer in the current version (erasure reaches history)."""
    table = DeltaTable(str(path))
    return table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def history(path: Path) -> list[dict]:
    return DeltaTable(str(path)).history() if exists(path) else []


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
