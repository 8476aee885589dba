"""Feedback-system long tables (PCOMS / OQ-Analyst style): one row per measure per session.

Per site (`long_csv:`): delimiter, decimal comma, encoding (utf-8, utf-8-sig, cp1252), the
measure column, which measure names are which instrument, and where the item scores sit
(`item_column_template`, e.g. `Item{n}`). Client, therapist, session and date columns come from
the site's `columns` map as for every format, and dates from its `date_format`.

The long rows are pivoted on the measure into the wide canonical layout validation expects:
measure M's item cells land in M's form columns (`forms[].item_column_template`). The pivot does
not merge rows: each output row is exactly one line of the file (`__source_row` = that line as a
spreadsheet shows it), so every quarantine record points at the line that holds the value, and
each line offers exactly one administration (the other forms of an output row are taken back
out of "offered", see `SiteRead.not_offered`). Two lines for the same client, session and
measure are thus seen by validation as exact or conflicting duplicates, as in a wide export.

Only the mapped columns are copied out of a line, so the site's `identifier_columns` and any
free-text column (a clinician's note) never reach a frame, a quarantine record or an event.

Held back by the reader: lines with the wrong number of fields (parse), measures the site did not
configure (schema); measures listed in `skip_measures` are counted as not administered.
"""

from __future__ import annotations

import csv
import io

from ingestion.consortium import SiteConfig
from ingestion.readers.base import Holdback, SiteRead, decode, file_issue, text_frame
from ingestion.registry import Registry

ROLES = ("client_code", "therapist_code", "session_date", "event")


def long_required(site: SiteConfig, registry: Registry) -> tuple[list[str], list[str]]:
    """(item columns of the long file, every column the site's map needs in the header)."""
    options = site.long_csv
    assert options is not None
    longest = max(registry.get(i).items for i in set(options.measures.values()))
    item_sources = [options.item_column_template.format(n=n) for n in range(1, longest + 1)]
    return item_sources, [site.columns[r] for r in ROLES] + [options.measure_column, *item_sources]


def header_issue(
    header: list[str], required: list[str], delimiter: str, rows_in: int
) -> SiteRead | None:
    """The file-level issue of a header the site's map cannot use (None: usable)."""
    missing = [c for c in required if c not in header]
    if missing:
        return SiteRead(
            None,
            file_issue(
                "file.missing_columns",
                "schema",
                f"required columns not in the header: {', '.join(missing)} (renamed in the "
                f"export, wrong delimiter {delimiter!r}, or the column map is out of date)",
            ).issue,
            rows_in,
        )
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        return file_issue("file.duplicate_columns", "schema", f"columns repeated: {dupes}", rows_in)
    return None


def read_long_csv(raw: bytes, site: SiteConfig, registry: Registry) -> SiteRead:
    options = site.long_csv
    assert options is not None
    text = decode(raw, options.encoding, f"the site is configured for {options.encoding}")
    if isinstance(text, SiteRead):
        return text
    if not text.strip():
        return file_issue("file.empty", "parse", "the file is empty")
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=options.delimiter))
    except csv.Error as exc:
        return file_issue("file.csv", "parse", f"not a readable delimited file: {exc}")
    header = [h.strip() for h in records[0]]
    body = [(n + 1, r) for n, r in enumerate(records[1:], start=1) if r]
    rows_in = len(body)
    item_sources, required = long_required(site, registry)
    unusable = header_issue(header, required, options.delimiter, rows_in)
    if unusable is not None:
        return unusable
    at = {name: header.index(name) for name in required}
    id_columns = [site.columns[r] for r in ROLES]
    # Every form of the site gets its columns (validation reads them all), filled or not.
    item_columns = {
        f.instrument: f.item_columns(registry.get(f.instrument).items) for f in site.forms
    }
    columns = id_columns + [c for cols in item_columns.values() for c in cols]
    slot = {c: k for k, c in enumerate(columns)}
    holdback = Holdback(site)
    rows: list[list[str]] = []
    lines: list[int] = []
    width = len(header)
    measure_at = at[options.measure_column]
    for line, record in body:
        if len(record) != width:
            # Cannot tell which measure a broken line holds: one administration, quarantined.
            holdback.quarantine(
                line,
                "",
                "",
                [(None, None)],
                None,
                "row.field_count",
                "parse",
                "row has a different number of fields than the header (truncated or broken "
                f"line, or a value holding the delimiter {options.delimiter!r} unquoted)",
            )
            continue
        label = record[measure_at].strip()
        instrument = options.measures.get(label)
        if instrument is None:
            if label in options.skip_measures:
                holdback.not_administered += 1
                continue
            holdback.quarantine(
                line,
                record[at[site.columns["client_code"]]],
                record[at[site.columns["event"]]],
                [(None, None)],
                options.measure_column,
                "row.unknown_measure",
                "schema",
                f"measure {label!r} is not in the site's measure map "
                f"({', '.join(sorted(options.measures))}); add it, or list it in skip_measures",
                label,
            )
            continue
        cells = [""] * len(columns)
        for column in id_columns:
            cells[slot[column]] = record[at[column]]
        for n, column in enumerate(item_columns[instrument]):
            value = record[at[item_sources[n]]]
            if options.decimal == ",":
                value = value.replace(",", ".")
            cells[slot[column]] = value
        rows.append(cells)
        lines.append(line)
    frame = text_frame(rows, columns, lines)
    # Each output row offers its own measure only; validation counts the site's other forms
    # on that row as not administered, which they never were offered to be.
    return holdback.result(frame, rows_in, not_offered=len(rows) * (len(site.forms) - 1))
