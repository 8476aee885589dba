"""Qualtrics CSV exports: three header rows (name, question text, ImportId JSON).

Columns are found by ImportId (`{"ImportId":"QID5_1"}`), which survives an editor renaming a
question, and renamed to the site's canonical names through `qualtrics.import_ids`. Identifying
metadata (IPAddress, recipient names and e-mail, location) is dropped as the header is read,
before any cell becomes part of a frame, a quarantine record or an event, together with the
site's `identifier_columns` and `qualtrics.drop_columns`; so is every column the site did not
configure (free text is never ingested by accident).

Responses that are not Finished (or below `min_progress`) are held back by the reader: quarantined
with a reason (default) or skipped and counted as not administered (`unfinished: skip`).
"""

from __future__ import annotations

import csv
import io
import json

from ingestion.consortium import QUALTRICS_IDENTIFYING, SiteConfig
from ingestion.readers.base import Holdback, SiteRead, decode, file_issue, text_frame
from ingestion.registry import Registry

HEADER_ROWS = 3
IDENTIFYING = {c.lower() for c in QUALTRICS_IDENTIFYING}
TRUE = {"1", "true"}


def _import_id(cell: str) -> str | None:
    try:
        doc = json.loads(cell)
    except ValueError:
        return None
    value = doc.get("ImportId") if isinstance(doc, dict) else None
    return str(value) if value else None


def read_qualtrics_csv(raw: bytes, site: SiteConfig, registry: Registry) -> SiteRead:
    options = site.qualtrics
    assert options is not None
    text = decode(raw, options.encoding, "export from Qualtrics as CSV (UTF-8)")
    if isinstance(text, SiteRead):
        return text
    if not text.strip():
        return file_issue("file.empty", "parse", "the file is empty")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        return file_issue("file.csv", "parse", f"not a readable CSV: {exc}")
    if len(records) < HEADER_ROWS:
        return file_issue(
            "file.qualtrics_header",
            "schema",
            "fewer than the three Qualtrics header rows (name, question text, ImportId)",
        )
    names, _, id_row = (r for r in records[:HEADER_ROWS])
    names = [n.strip() for n in names]
    ids = [_import_id(c) for c in id_row] + [None] * (len(names) - len(id_row))
    if not any(ids):
        return file_issue(
            "file.qualtrics_import_ids",
            "schema",
            "the third header row holds no ImportIds: export the CSV from Qualtrics with its "
            "three header rows",
        )
    body = [(n + 1, r) for n, r in enumerate(records[HEADER_ROWS:], start=HEADER_ROWS) if r]
    rows_in = len(body)
    dropped = IDENTIFYING | {c.lower() for c in (*options.drop_columns, *site.identifier_columns)}
    # Which file column becomes which canonical column; identifying ones never get a slot.
    wanted: dict[str, int] = {}
    finished_at = progress_at = None
    for index, (name, import_id) in enumerate(zip(names, ids, strict=False)):
        if name.lower() in dropped or (import_id or "").lower() in dropped:
            continue
        if import_id in options.import_ids:
            wanted[options.import_ids[import_id]] = index
        if name == "Finished" or (import_id or "").lower() == "finished":
            finished_at = index
        if name == "Progress" or (import_id or "").lower() == "progress":
            progress_at = index
    for role in ("client_code", "therapist_code", "session_date", "event"):
        column = site.columns[role]
        if column not in wanted and column in names:
            index = names.index(column)
            if names[index].lower() not in dropped and (ids[index] or "").lower() not in dropped:
                wanted[column] = index
    required = [site.columns[c] for c in ("client_code", "therapist_code", "session_date", "event")]
    for form in site.forms:
        required += form.item_columns(registry.get(form.instrument).items)
    by_target = {v: k for k, v in options.import_ids.items()}
    missing = [c for c in required if c not in wanted]
    if finished_at is None:
        missing.append("Finished")
    if missing:
        named = [f"{c} (ImportId {by_target[c]})" if c in by_target else c for c in missing]
        return SiteRead(
            None,
            file_issue(
                "file.missing_columns",
                "schema",
                f"required columns not in the export: {', '.join(named)} (question deleted or "
                "re-created in the survey, or the site's ImportId map is out of date)",
            ).issue,
            rows_in,
        )
    columns = list(wanted)
    width = len(names)
    holdback = Holdback(site)
    forms = [(f.instrument, f.rater_role) for f in site.forms]
    kept_rows: list[list[str]] = []
    kept_lines: list[int] = []
    ragged: list[bool] = []
    for line, record in body:
        if len(record) != width:
            kept_rows.append([""] * len(columns))
            kept_lines.append(line)
            ragged.append(True)
            continue
        finished = record[finished_at].strip().lower() in TRUE
        if not finished and options.min_progress is not None and progress_at is not None:
            try:
                finished = float(record[progress_at]) >= options.min_progress
            except ValueError:
                finished = False
        cells = [record[wanted[c]] for c in columns]
        if finished:
            kept_rows.append(cells)
            kept_lines.append(line)
            ragged.append(False)
            continue
        row = dict(zip(columns, cells, strict=True))
        answered = [
            (f.instrument, f.rater_role)
            for f in site.forms
            if any(row[c].strip() for c in f.item_columns(registry.get(f.instrument).items))
        ]
        if options.unfinished == "skip":
            holdback.not_administered += len(forms)
            continue
        holdback.not_administered += len(forms) - len(answered)
        progress = record[progress_at].strip() if progress_at is not None else "?"
        holdback.quarantine(
            line,
            row[site.columns["client_code"]],
            row[site.columns["event"]],
            answered,
            "Finished",
            "response.unfinished",
            "schema",
            f"response not finished (Progress {progress} %); only finished responses count"
            + (
                f" unless Progress >= {options.min_progress:g} %"
                if options.min_progress is not None
                else ""
            ),
            record[finished_at],
        )
    return holdback.result(text_frame(kept_rows, columns, kept_lines, ragged), rows_in)
