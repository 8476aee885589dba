"""CSV files people open in a spreadsheet: text that a spreadsheet would run as a formula is
neutralized (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets read a cell starting with `=`, `+`, `-` or `@` (OWASP adds
tab and carriage return) as a formula, and a formula can fetch URLs or run commands. Such a
TEXT cell is written with a leading single quote (`'=1+2`): spreadsheets then show it as text,
and code reading the file sees the quote. Numbers are never changed (-0.5 stays a number).
Files are UTF-8 without a byte-order mark, comma-separated, CRLF line ends (RFC 4180), quoted
only where needed; null is an empty cell, booleans are true/false, dates ISO 8601 and floats
the shortest text that reads back as the same double, so the bytes depend on the values only.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(text: str) -> str:
    """The text as a spreadsheet will show it, never as a formula it would evaluate."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return neutralize(value)
    return str(value)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow([cell(h) for h in header])
        writer.writerows([cell(v) for v in row] for row in rows)
    return path
