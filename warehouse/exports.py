"""`bordin export`: every mart of a release as SPSS .sav, Stata .dta or CSV files.

Labels come from the release itself: each Parquet field's metadata carries its codebook
description (the variable label) and, for a categorical column, its allowed values (written by
warehouse/release.py from warehouse/codebook.py). In .sav and .dta:

- a column with allowed values becomes numeric, coded 1..k in the codebook's order, each code
  labelled with its value; a boolean becomes 0/1 labelled false/true; null stays missing
  (system missing), also for nullable booleans and codes;
- text has no missing value in either format, so a null text cell is written empty;
- dates are SPSS DATE11 / Stata %td dates.

Stata limits are applied, not left to fail: variable names of at most 32 characters (longer
ones are cut and made unique; the result lists them), variable labels of at most 80
characters (cut with "..."; the codebook copied beside the files has the full text), and text
longer than 2045 bytes is written as strL. SPSS labels are cut at 256 bytes. Files are written
as format 118 (Stata 14 or later) and as an uncompressed .sav.

CSV files hold the release's values as they are (see warehouse/spreadsheet_csv.py: text that a
spreadsheet would run as a formula is neutralized with a leading single quote). Every format
comes with the release's codebook.csv and codebook.html. The same release always gives the same
bytes: the .sav and .dta creation stamps are set to the release's logical date.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat

from ingestion.settings import Paths, paths
from warehouse.codebook import ALLOWED_VALUES_KEY, DESCRIPTION_KEY
from warehouse.codebook_files import CSV_NAME, HTML_NAME
from warehouse.export_formats import EXPORT_FORMATS
from warehouse.file_stamps import stamp_dta, stamp_sav
from warehouse.spreadsheet_csv import write_csv
from warehouse.verify import resolve_release, verify_release

STATA_NAME_MAX = 32
STATA_LABEL_MAX_CHARS = 80
STATA_VERSION = 14  # format 118: UTF-8, strL; read by Stata 14 and later
SPSS_NAME_MAX = 64
SPSS_LABEL_MAX_BYTES = 256
SPSS_FILE_LABEL_MAX_BYTES = 64
BOOLEAN_LABELS = {0: "false", 1: "true"}
# Stata's largest non-missing `long`; larger integers are written as doubles.
STATA_LONG_MAX = 2_147_483_620
ELLIPSIS = "..."
T = TypeVar("T")


class ExportError(RuntimeError):
    """The release cannot be exported as asked (it does not verify, or a value has no code)."""


@dataclass(frozen=True)
class Variable:
    """One column as a statistics package gets it."""

    name: str
    label: str
    data: pd.Series
    value_labels: dict[int, str] | None = None
    nominal: bool = False


@dataclass(frozen=True)
class ExportResult:
    release_id: str
    format: str
    folder: Path
    files: list[tuple[str, int | None]]  # (file name, rows); rows None for the codebook
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)  # mart -> {column: name}


# --------------------------------------------------------------------------- labels and names


def fit_label(text: str, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """`text` cut, with "...", to at most `max_chars` characters and `max_bytes` UTF-8 bytes."""

    def fits(candidate: str) -> bool:
        return (max_chars is None or len(candidate) <= max_chars) and (
            max_bytes is None or len(candidate.encode("utf-8")) <= max_bytes
        )

    if fits(text):
        return text
    cut = len(text)
    while cut and not fits(text[:cut].rstrip() + ELLIPSIS):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


def short_names(names: list[str], limit: int) -> dict[str, str]:
    """Each name, cut to `limit` characters and made unique (`_2`, `_3`, ... in column order)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        candidate, n = name[:limit], 1
        while candidate.lower() in taken:  # Stata and SPSS names are case-insensitive
            n += 1
            suffix = f"_{n}"
            candidate = name[: limit - len(suffix)] + suffix
        taken.add(candidate.lower())
        out[name] = candidate
    return out


# --------------------------------------------------------------------------- columns


def _meta(f: pa.Field, key: bytes) -> str | None:
    value = (f.metadata or {}).get(key)
    return value.decode("utf-8") if value is not None else None


def _coded(values: list, allowed: list[str], where: str) -> tuple[pd.Series, dict[int, str]]:
    codes = {value: n for n, value in enumerate(allowed, start=1)}
    unknown = sorted({v for v in values if v is not None and v not in codes})
    if unknown:
        raise ExportError(f"{where}: values {unknown} are not among its allowed values {allowed}")
    series = pd.array([None if v is None else codes[v] for v in values], dtype="Int32")
    return pd.Series(series), {n: value for value, n in codes.items()}


def _integers(values: list) -> pd.Series:
    present = [v for v in values if v is not None]
    if all(-STATA_LONG_MAX <= v <= STATA_LONG_MAX for v in present):
        return pd.Series(pd.array(values, dtype="Int32"))
    return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")


def variable(f: pa.Field, column: pa.ChunkedArray, mart: str) -> Variable:
    """A mart column as a labelled variable (name not yet shortened)."""
    values = column.to_pylist()
    label = _meta(f, DESCRIPTION_KEY) or ""
    allowed = _meta(f, ALLOWED_VALUES_KEY)
    kind = f.type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if allowed is not None and text:
        data, labels = _coded(values, json.loads(allowed), f"{mart}.{f.name}")
        return Variable(f.name, label, data, labels, nominal=True)
    if pa.types.is_boolean(kind):
        data = pd.Series(pd.array([None if v is None else int(v) for v in values], dtype="Int32"))
        return Variable(f.name, label, data, dict(BOOLEAN_LABELS), nominal=True)
    if pa.types.is_integer(kind):
        return Variable(f.name, label, _integers(values))
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # Scores are DECIMAL(18, s): SPSS and Stata hold them as doubles (exact to s decimals).
        data = pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
        return Variable(f.name, label, data)
    if text:
        data = pd.Series(["" if v is None else v for v in values], dtype=object)
        return Variable(f.name, label, data, nominal=True)
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return Variable(f.name, label, pd.Series(values, dtype=object))
    raise ExportError(f"{mart}.{f.name}: type {kind} has no SPSS / Stata equivalent here")


# --------------------------------------------------------------------------- writers


def _frame(variables: list[Variable], names: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({names[v.name]: v.data for v in variables})


def write_sav(table: pa.Table, mart: str, target: Path, when: dt.date) -> dict[str, str]:
    """One mart as an uncompressed .sav stamped `when`; returns the columns it had to rename."""
    variables = [variable(f, table.column(f.name), mart) for f in table.schema]
    names = short_names([v.name for v in variables], SPSS_NAME_MAX)
    pyreadstat.write_sav(
        _frame(variables, names),
        str(target),
        file_label=fit_label(mart, max_bytes=SPSS_FILE_LABEL_MAX_BYTES),
        column_labels={
            names[v.name]: fit_label(v.label, max_bytes=SPSS_LABEL_MAX_BYTES) for v in variables
        },
        variable_value_labels={names[v.name]: v.value_labels for v in variables if v.value_labels},
        variable_measure={names[v.name]: "nominal" if v.nominal else "scale" for v in variables},
    )
    stamp_sav(target, when)
    return {old: new for old, new in names.items() if old != new}


def write_dta(table: pa.Table, mart: str, target: Path, when: dt.date) -> dict[str, str]:
    """One mart as a format-118 .dta stamped `when`; returns the columns it had to rename."""
    variables = [variable(f, table.column(f.name), mart) for f in table.schema]
    names = short_names([v.name for v in variables], STATA_NAME_MAX)
    pyreadstat.write_dta(
        _frame(variables, names),
        str(target),
        file_label=fit_label(mart, max_chars=STATA_LABEL_MAX_CHARS),
        column_labels={
            names[v.name]: fit_label(v.label, max_chars=STATA_LABEL_MAX_CHARS) for v in variables
        },
        version=STATA_VERSION,
        variable_value_labels={names[v.name]: v.value_labels for v in variables if v.value_labels},
    )
    stamp_dta(target, when)
    return {old: new for old, new in names.items() if old != new}


def write_mart_csv(table: pa.Table, mart: str, target: Path, when: dt.date) -> dict[str, str]:
    """One mart as CSV, values as released (no names or labels to fit)."""
    write_csv(target, table.column_names, (r.values() for r in table.to_pylist()))
    return {}


WRITERS: dict[str, Callable[[pa.Table, str, Path, dt.date], dict[str, str]]] = {
    "sav": write_sav,
    "dta": write_dta,
    "csv": write_mart_csv,
}


def _write_atomically(target: Path, write: Callable[[Path], T]) -> T:
    """Write to a hidden file beside `target` and rename it over: no half-written export."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        written = write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def export_release(
    fmt: str, release: str = "latest", out: Path | None = None, where: Paths | None = None
) -> ExportResult:
    """Write every mart of `release` (a release id or `latest`) as `fmt` files into `out`
    (default $BORDIN_HOME/exports/<release_id>/<fmt>/), with the release's codebook. Only a
    release that verifies against its manifest and the release ledger is exported."""
    if fmt not in WRITERS:
        raise ExportError(f"unknown format {fmt!r}: one of {', '.join(EXPORT_FORMATS)}")
    where = where or paths()
    folder = resolve_release(release, where)
    report = verify_release(folder.name, where)
    if not report.ok:
        found = "; ".join(f"{p.path}: {p.kind}" for p in report.problems)
        raise ExportError(f"release {folder.name} does not verify ({found}): not exporting it")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    listed = {entry["path"] for entry in manifest["files"]}
    if not {CSV_NAME, HTML_NAME} <= listed:
        raise ExportError(
            f"release {folder.name} has no codebook (published before releases carried one): "
            "publish a new release to export it"
        )
    when = dt.date.fromisoformat(manifest["logical_date"])
    out = Path(out) if out is not None else where.exports / folder.name / fmt
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(folder.name, fmt, out, [])
    for entry in sorted(manifest["files"], key=lambda e: e["path"]):
        if "mart" not in entry:
            continue
        mart = entry["mart"]
        table = pq.read_table(folder / entry["path"])
        name = f"{mart}.{fmt}"
        renamed = _write_atomically(
            out / name, lambda target, t=table, m=mart: WRITERS[fmt](t, m, target, when)
        )
        if renamed:
            result.renamed[mart] = renamed
        result.files.append((name, table.num_rows))
    for name in (CSV_NAME, HTML_NAME):
        _write_atomically(out / name, lambda target, n=name: shutil.copyfile(folder / n, target))
        result.files.append((name, None))
    return result
