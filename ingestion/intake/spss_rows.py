"""SPSS .sav exports as text rows in DuckDB, read in row chunks with pyreadstat.

Layout as a REDCap export: the site's `columns` map names the client, therapist, date and event
variables, each form's `item_column_template` its item variables; SPSS names are matched
ignoring case. A case's `source_row` is its case number in SPSS's Data View (1 = first case).
Only mapped variables are read (`usecols`): identifier and free-text variables never leave the
file, nor do value labels or variable labels.

Rendering into text (table `sav_rows`, columns c0..c{n-1} in the order of the required list):
- numbers without a spurious ".0" (3.0 -> "3", 2.5 -> "2.5"); system-missing -> blank;
- date and datetime variables -> the site's `date_format`; string variables as they are;
- value labels apply to the event variable only, with `spss: {event_from_labels: true}`;
- a user-defined missing value declared in the file: in an item variable the cell becomes the
  missing marker with its reason (the site's `missing_codes` entry for the code, else the
  value label as a label, else "user_missing"); in a role variable it is blank.

Memory: one chunk of cases (about 32 MB of values) at a time.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyreadstat

from ingestion.consortium import SiteConfig
from ingestion.intake.missing_codes import UNLABELLED_MISSING, missing_marker
from ingestion.quarantine import Issue

ROLES = ("client_code", "therapist_code", "session_date", "event")
READ_ERRORS = (
    pyreadstat.ReadstatError,
    pyreadstat.PyreadstatError,
    OSError,
    ValueError,
    UnicodeDecodeError,
)
UNREADABLE_HINT = (
    "re-export it from SPSS (File > Save As > SPSS Statistics .sav) and deliver it again; "
    "check that the upload was complete"
)
CHUNK_VALUES = 4_000_000  # cells per chunk (x 8 bytes: ~32 MB of values)


def load_spss(con: duckdb.DuckDBPyConnection, path: Path, site: SiteConfig, required: list[str]):
    """Table `sav_rows` (text, one row per case); returns the column order, or `Rejected`."""
    from ingestion.intake.sources import Rejected

    if path.stat().st_size == 0:
        return Rejected(Issue.of("file.empty"))
    try:
        _, head = pyreadstat.read_sav(str(path), metadataonly=True)
    except READ_ERRORS as exc:
        return _unreadable(exc)
    rows_in = max(int(head.number_rows or 0), 0)
    by_lower = {name.lower(): name for name in head.column_names}
    missing = [c for c in required if c.lower() not in by_lower]
    if missing:
        return Rejected(
            Issue.of(
                "file.missing_columns",
                detail=f"required variables not in the file: {', '.join(missing)} (renamed in "
                "the export, or the site's column map is out of date)",
            ),
            rows_in,
        )
    source = {c: by_lower[c.lower()] for c in required}
    con.execute(
        "CREATE OR REPLACE TABLE sav_rows ("
        + ", ".join(f"c{i} VARCHAR" for i in range(len(required)))
        + ")"
    )
    roles = {site.columns[r] for r in ROLES}
    event = site.columns["event"]
    labels_for_event = site.spss is not None and site.spss.event_from_labels
    chunk = max(10_000, CHUNK_VALUES // max(len(source), 1))
    try:
        chunks = pyreadstat.read_file_in_chunks(
            pyreadstat.read_sav,
            str(path),
            chunksize=chunk,
            user_missing=True,
            usecols=list(dict.fromkeys(source.values())),
        )
        for data, meta in chunks:
            columns = {}
            for i, column in enumerate(required):
                name = source[column]
                columns[f"c{i}"] = _render_column(
                    data[name],
                    meta.missing_ranges.get(name, []),
                    meta.variable_value_labels.get(name, {}),
                    site,
                    is_item=column not in roles,
                    use_labels=column == event and labels_for_event,
                )
            batch = pa.table(columns, schema=pa.schema([(c, pa.string()) for c in columns]))
            con.register("sav_chunk", batch)
            con.execute("INSERT INTO sav_rows SELECT * FROM sav_chunk")
            con.unregister("sav_chunk")
    except READ_ERRORS as exc:
        return _unreadable(exc)
    return required


def _unreadable(exc: Exception):
    from ingestion.intake.sources import Rejected

    detail = str(exc).strip() or type(exc).__name__
    return Rejected(
        Issue.of(
            "file.sav_unreadable",
            detail=f"not a readable SPSS .sav file ({detail}); {UNREADABLE_HINT}",
        )
    )


def _render_column(
    values: pd.Series,
    ranges: list[dict[str, Any]],
    labels: dict[Any, str],
    site: SiteConfig,
    *,
    is_item: bool,
    use_labels: bool,
) -> list[str]:
    """One variable of one chunk as text; numeric columns vectorized, the rest per value."""
    if values.dtype.kind == "f" and not use_labels:
        number = values.to_numpy(dtype=float)
        blank = np.isnan(number)
        out = np.full(len(number), "", dtype=object)
        user_missing = np.zeros(len(number), dtype=bool)
        for bounds in ranges:
            lo, hi = bounds.get("lo"), bounds.get("hi")
            if isinstance(lo, int | float) and isinstance(hi, int | float):
                user_missing |= ~blank & (number >= lo) & (number <= hi)
        whole = ~blank & ~user_missing & (number == np.floor(number)) & (np.abs(number) < 2**62)
        out[whole] = number[whole].astype(np.int64).astype(str)
        for i in np.flatnonzero(~blank & ~user_missing & ~whole):
            out[i] = repr(float(number[i]))
        for i in np.flatnonzero(user_missing):
            value = float(number[i])
            out[i] = missing_marker(_reason(value, labels, site)) if is_item else ""
        return out.tolist()
    rendered = []
    for value in values.tolist():
        if _user_missing(value, ranges):
            rendered.append(missing_marker(_reason(value, labels, site)) if is_item else "")
        else:
            rendered.append(_render(value, site.date_format, labels if use_labels else {}))
    return rendered


def _is_blank(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _user_missing(value: Any, ranges: list[dict[str, Any]]) -> bool:
    """Whether the file declares this value missing (discrete values come as lo == hi)."""
    if _is_blank(value) or not ranges:
        return False
    for bounds in ranges:
        lo, hi = bounds.get("lo"), bounds.get("hi")
        try:
            if lo <= value <= hi:
                return True
        except TypeError:  # a string range against a number, or the reverse
            continue
    return False


def _render(value: Any, date_format: str, labels: dict[Any, str]) -> str:
    if _is_blank(value):
        return ""
    if labels and value in labels:
        return str(labels[value])
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime | date):
        return value.strftime(date_format)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _reason(value: Any, labels: dict[Any, str], site: SiteConfig) -> str:
    """The site's reason for the code, else its value label as a label, else user_missing."""
    code = _render(value, "%Y-%m-%d", {}).strip()
    if code in site.missing_codes:
        return site.missing_codes[code]
    for configured, reason in site.missing_codes.items():
        try:
            if float(configured) == float(code):
                return reason
        except ValueError:
            continue
    label = re.sub(r"[^a-z0-9]+", "_", str(labels.get(value, "")).lower()).strip("_")[:40]
    if label and label[0].isalpha():
        return label
    return UNLABELLED_MISSING
