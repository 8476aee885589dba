"""An export as the engine reads it, one row per record, canonical columns as text.

For people and tests checking a site's configuration against a real export: which columns are
read (and that no unmapped one is), what each cell becomes, which record number each row gets.
It runs the same source the engine runs, into a throwaway database, and loads the result into
memory, so it is for sample files, not for a night's exports.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ingestion.consortium import SiteConfig
from ingestion.intake.sources import ROLES, Rejected, open_source, required_columns, serial
from ingestion.intake.text_files import (
    SERIAL_HINT,
    Gaps,
    line_of,
    load_gaps,
    reset_rejects,
    scan_gaps,
)
from ingestion.quarantine import Issue
from ingestion.registry import Registry


@dataclass(frozen=True)
class Preview:
    frame: pd.DataFrame | None  # canonical columns, `__source_row`, `__ragged`
    issue: Issue | None
    rows_in: int


def read_export(path: Path, site: SiteConfig, registry: Registry) -> Preview:
    with tempfile.TemporaryDirectory(prefix="bordin-preview-") as folder:
        con = duckdb.connect()
        try:
            source = open_source(con, path, site, registry, Path(folder))
            if isinstance(source, Rejected):
                return Preview(None, source.issue, source.rows_in)
            try:
                con.execute(f"CREATE TABLE cells AS SELECT * FROM ({source.cells})")
            except duckdb.Error as exc:
                if SERIAL_HINT not in str(exc):
                    raise
                reset_rejects(con)
                source = serial(source)
                con.execute(f"CREATE TABLE cells AS SELECT * FROM ({source.cells})")
            gaps = Gaps([], [])
            if source.text is not None:
                gaps = scan_gaps(
                    con, source.text, source.first_line, source.blank_lines_count, source.line_shift
                )
            load_gaps(con, gaps, source.first_line)
            line = line_of(con, f"(rowid // {source.per_record})", source.first_line)
            rows = con.execute(f"SELECT {line} AS line, * FROM cells ORDER BY rowid").fetchall()
            names = [d[0] for d in con.description]
        finally:
            con.close()
    records: dict[int, dict[str, object]] = {}
    forms = list(site.forms)
    for values in rows:
        cell = dict(zip(names, values, strict=True))
        record = records.setdefault(int(cell["line"]), _record(cell, site))
        if cell["form"] is None or cell["ragged"]:
            continue
        form = forms[int(cell["form"])]
        for k, column in enumerate(form.item_columns(registry.get(form.instrument).items), 1):
            record[column] = cell[f"t{k}"]
    columns = required_columns(site, registry)
    frame = pd.DataFrame(
        [{c: r.get(c) for c in columns} for r in records.values()], columns=columns, dtype="string"
    )
    frame["__source_row"] = list(records)
    frame["__ragged"] = [bool(r["__ragged"]) for r in records.values()]
    return Preview(frame, None, len(records) + len(gaps.rejected))


def _record(cell: dict[str, object], site: SiteConfig) -> dict[str, object]:
    record: dict[str, object] = {"__ragged": cell["ragged"]}
    raw = ("client_raw", "therapist_raw", "date_raw", "event_raw")
    for role, name in zip(ROLES, raw, strict=True):
        record[site.columns[role]] = cell[name]
    if site.ending is not None:
        record[site.ending.column] = cell["ending_raw"]
    if site.withdrawals is not None and site.withdrawals.column:
        record[site.withdrawals.column] = cell["withdraw_raw"]
    return record
