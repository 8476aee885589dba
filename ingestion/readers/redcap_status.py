"""REDCap per-form status (`<form>_complete`: 0 Incomplete, 1 Unverified, 2 Complete).

With `redcap.status_columns` configured, a form counts only when its status is 2 (or 1 too,
with `accept_unverified: true`). A form that holds answers but does not count is quarantined
with its status as the reason, and its cells are blanked before validation, which then sees it
as not administered; `not_offered` takes that back out so each such form is counted once, as
quarantined. Its key is held, so a snapshot does not retract the version already stored.

Repeating instruments need no code: map `columns.event` to `redcap_repeat_instance` and set
`session_event_pattern: '^(\\d+)$'`; the base row (no repeat instance, no items) counts as not
administered, and a repeating row offers only the form it holds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ingestion.consortium import SiteConfig
from ingestion.quarantine import Issue
from ingestion.readers.base import Holdback
from ingestion.readers.redcap_csv import ReadResult, read_redcap_csv
from ingestion.readers.redcap_dictionary import Dictionary, check_export
from ingestion.registry import Registry

STATUS = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}


def read_redcap(
    path: Path,
    site: SiteConfig,
    registry: Registry,
    required: list[str],
    dictionary: Dictionary | Issue | None = None,
) -> ReadResult:
    """`dictionary`: the site's parsed data dictionary, its parse issue, or None (not sent)."""
    if isinstance(dictionary, Issue):
        return ReadResult(None, dictionary, 0)
    if dictionary is not None:
        mismatch = check_export(dictionary, site, registry)
        if mismatch is not None:
            return ReadResult(None, mismatch, 0)
    options = site.redcap
    if options is None or not options.status_columns:
        return read_redcap_csv(path, required)
    read = read_redcap_csv(path, required + list(options.status_columns.values()))
    if read.frame is None:
        return read
    frame = read.frame.copy()
    counting = {"2", "1"} if options.accept_unverified else {"2"}
    holdback = Holdback(site)
    blanked = 0
    ok_rows = ~frame["__ragged"]
    for form in site.forms:
        column = options.status_columns.get(form.instrument)
        if column is None:
            continue
        items = form.item_columns(registry.get(form.instrument).items)
        status = frame[column].fillna("").str.strip()
        answered = (frame[items].fillna("").apply(lambda c: c.str.strip() != "")).any(axis=1)
        held = ok_rows & answered & ~status.isin(counting)
        for i in held[held].index:
            value = status[i]
            holdback.quarantine(
                int(frame.at[i, "__source_row"]),
                _cell(frame.at[i, site.columns["client_code"]]),
                _cell(frame.at[i, site.columns["event"]]),
                [(form.instrument, form.rater_role)],
                column,
                "form.not_complete",
                "schema",
                f"{form.instrument} has form status {value or 'blank'} "
                f"({STATUS.get(value, 'unknown')}); only "
                + (
                    "Complete (2) or Unverified (1)"
                    if options.accept_unverified
                    else "Complete (2)"
                )
                + " counts: mark the form complete in REDCap",
                value,
            )
        frame.loc[held, items] = ""
        blanked += int(held.sum())
    return holdback.result(frame, read.rows_in, not_offered=blanked)


def _cell(value: object) -> str:
    return "" if value is None or value is pd.NA else str(value)
