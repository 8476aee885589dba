"""REDCap "CSV raw" exports: one row per record x event, every mapped cell kept as text.

Cells stay text here so validation can tell a blank from a zero and report the raw value of a
bad cell; typing happens in `ingestion.validate`, column-wise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ingestion.quarantine import Issue


@dataclass(frozen=True)
class ReadResult:
    frame: pd.DataFrame | None
    issue: Issue | None
    rows_in: int


def _file_issue(rule_id: str, category: str, message: str) -> ReadResult:
    return ReadResult(None, Issue(None, None, None, rule_id, category, message), 0)


def read_redcap_csv(path: Path, required_columns: list[str]) -> ReadResult:
    """Parse the file; a file that cannot be read at all becomes one file-level issue."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _file_issue(
            "file.encoding",
            "encoding",
            f"not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "export from REDCap as UTF-8 CSV",
        )
    if not text.strip():
        return _file_issue("file.empty", "parse", "the file is empty")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], [r for r in rows[1:] if r]
    header = [h.strip() for h in header]
    missing = [c for c in required_columns if c not in header]
    if missing:
        return ReadResult(
            None,
            Issue(
                None,
                ", ".join(missing),
                None,
                "file.missing_columns",
                "schema",
                f"required columns not in the header: {', '.join(missing)} "
                "(renamed in the export, or the site's column map is out of date)",
            ),
            len(body),
        )
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        return _file_issue("file.duplicate_columns", "schema", f"columns repeated: {dupes}")
    width = len(header)
    ragged = [i for i, r in enumerate(body) if len(r) != width]
    # Only the columns the site maps are passed on: identifier and free-text columns never
    # become part of the frame (nor of a quarantine record or an event).
    keep = list(dict.fromkeys(required_columns))
    at = [header.index(c) for c in keep]
    frame = pd.DataFrame(
        [[r[i] for i in at] if len(r) == width else [""] * len(at) for r in body],
        columns=keep,
        dtype="string",
    )
    frame["__source_row"] = range(2, len(body) + 2)
    frame["__ragged"] = False
    if ragged:
        frame.loc[ragged, "__ragged"] = True
    return ReadResult(frame, None, len(body))
