"""SPSS .sav exports: one case per client x session (wide), read with pyreadstat.

Layout. Like a REDCap export: the site's `columns` map names the client, therapist, date and
event variables, and each form's `item_column_template` names its item variables. SPSS variable
names are case-insensitive, so they are matched ignoring case. `__source_row` is the case number
as SPSS's Data View shows it (1 = first case). The bytes are read in memory (pyreadstat accepts
a file object), so nothing of the export, or of a zip member, is written to disk.

Only mapped variables are read at all (`usecols`): the site's `identifier_columns` and any string
variable that is not mapped (a clinician's note, a name) never leave the file; value labels and
variable labels are never copied either.

Rendering into the canonical text frame (the frame every reader produces, so validation,
pseudonyms and events are the same for every format):
- numbers as text without a spurious ".0" (3.0 -> "3", 2.5 -> "2.5"); system-missing -> blank;
- SPSS date and datetime variables (converted by pyreadstat) -> the site's `date_format`, which
  validation parses back; string variables as they are;
- value labels are applied to the event variable only, and only with
  `spss: {event_from_labels: true}` (3 -> "Session 3", then `session_event_pattern`); item
  values stay numeric codes, and client and therapist variables stay codes (a label there could
  be a person's name);
- user-defined missing values declared in the file (read with `user_missing=True`; their
  ranges are in `meta.missing_ranges`): in an item variable the cell becomes
  `validate.missing_marker(reason)`, so validation treats it as a missing item with that reason
  (never as a value, never as out of range, and distinct from blank). The reason is the site's
  `missing_codes` entry for the code when there is one, else the code's value label as a
  lower-case label ("Don't know" -> "don_t_know"), else "user_missing". In a client, therapist,
  date or event variable a user-missing value is blank (that variable is unknown for the case).
  A value the file does not declare missing but the site lists in `missing_codes` is passed on
  as its number and recognised by validation, as for every other format.

A file pyreadstat cannot read (corrupt, truncated, not a .sav) is one file-level quarantine
record, category `parse`, rule `file.sav_unreadable`; missing variables are `file.missing_columns`
(schema), as for the CSV readers. The reader holds no row back: every case reaches validation.
"""

from __future__ import annotations

import io
import math
import re
from datetime import date, datetime
from typing import Any

import pandas as pd
import pyreadstat

from ingestion.consortium import SiteConfig
from ingestion.readers.base import SiteRead, file_issue, text_frame
from ingestion.readers.dispatch import required_columns
from ingestion.registry import Registry
from ingestion.validate import UNLABELLED_MISSING, missing_marker

ROLES = ("client_code", "therapist_code", "session_date", "event")
# What pyreadstat raises on a bad file; any other error there is a bug, not a bad delivery.
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


def read_spss_sav(raw: bytes, site: SiteConfig, registry: Registry) -> SiteRead:
    if not raw:
        return file_issue("file.empty", "parse", "the file is empty")
    try:
        _, head = pyreadstat.read_sav(io.BytesIO(raw), metadataonly=True)
    except READ_ERRORS as exc:
        return _unreadable(exc)
    rows_in = max(int(head.number_rows or 0), 0)
    by_lower = {name.lower(): name for name in head.column_names}
    required = list(dict.fromkeys(required_columns(site, registry)))
    missing = [c for c in required if c.lower() not in by_lower]
    if missing:
        return SiteRead(
            None,
            file_issue(
                "file.missing_columns",
                "schema",
                f"required variables not in the file: {', '.join(missing)} (renamed in the "
                "export, or the site's column map is out of date)",
            ).issue,
            rows_in,
        )
    source = {c: by_lower[c.lower()] for c in required}
    try:
        data, meta = pyreadstat.read_sav(
            io.BytesIO(raw),
            user_missing=True,
            usecols=list(dict.fromkeys(source.values())),
        )
    except READ_ERRORS as exc:
        return _unreadable(exc)
    rows_in = len(data)
    roles = {site.columns[r] for r in ROLES}
    event = site.columns["event"]
    labels_for_event = site.spss is not None and site.spss.event_from_labels
    cells: list[list[str]] = [[] for _ in range(rows_in)]
    for column in required:
        name = source[column]
        ranges = meta.missing_ranges.get(name, [])
        labels = meta.variable_value_labels.get(name, {})
        is_item = column not in roles
        use_labels = labels if column == event and labels_for_event else {}
        for i, value in enumerate(data[name].tolist()):
            if _user_missing(value, ranges):
                text = missing_marker(_reason(value, labels, site)) if is_item else ""
            else:
                text = _render(value, site.date_format, use_labels)
            cells[i].append(text)
    return SiteRead(text_frame(cells, required, list(range(1, rows_in + 1))), None, rows_in)


def _unreadable(exc: Exception) -> SiteRead:
    detail = str(exc).strip() or type(exc).__name__
    return file_issue(
        "file.sav_unreadable",
        "parse",
        f"not a readable SPSS .sav file ({detail}); {UNREADABLE_HINT}",
    )


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
