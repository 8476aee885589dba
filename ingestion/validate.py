"""Turn a site's raw text rows into valid administrations plus quarantine issues.

The unit of acceptance is one administration: one source row x one configured questionnaire.
A bad PHQ-9 cell quarantines that PHQ-9, not the WAI-SR filled in at the same session, so
nothing valid is lost. Every administration is counted exactly once as accepted, quarantined,
or not administered (all items blank), which is what the conservation check adds up.

A site with an `ending` column gets the row's normalized ending type ('planned', 'unplanned'
or None) on each of the row's accepted administrations. A blank ending, or a value in neither
of the site's lists, is None: an unknown ending value is ignored, never quarantined (the row's
questionnaires are valid whatever its ending cell says), so it changes no count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from ingestion.consortium import FormMap, SiteConfig
from ingestion.quarantine import Issue
from ingestion.registry import Instrument, Registry


@dataclass
class Validated:
    administrations: pd.DataFrame  # one row per accepted administration
    issues: list[Issue] = field(default_factory=list)
    offered: int = 0
    accepted: int = 0
    quarantined: int = 0
    not_administered: int = 0
    # Natural keys (client code, session, instrument, rater) present in the file but held in
    # quarantine: a snapshot must not read them as deleted.
    held_keys: set[tuple[str, int, str, str]] = field(default_factory=set)

    def conserved(self) -> bool:
        return self.offered == self.accepted + self.quarantined + self.not_administered


ADMIN_COLUMNS = [
    "source_row",
    "client_code",
    "therapist_code",
    "session_number",
    "session_date",
    "instrument",
    "rater_role",
    "items",
    "ending_type",
]


def _row_problems(
    frame: pd.DataFrame, site: SiteConfig, logical_date: date
) -> tuple[dict[int, list[Issue]], pd.Series, pd.Series]:
    """Problems that sink every questionnaire of a row: identity, session and date."""
    cols = site.columns
    problems: dict[int, list[Issue]] = {}

    def flag(mask: pd.Series, column: str, rule: str, category: str, message: str) -> None:
        for row, value in zip(
            frame.loc[mask, "__source_row"], frame.loc[mask, column], strict=True
        ):
            problems.setdefault(int(row), []).append(
                Issue(int(row), column, None, rule, category, message, _text(value))
            )

    ragged = frame["__ragged"]
    for row in frame.loc[ragged, "__source_row"]:
        problems.setdefault(int(row), []).append(
            Issue(
                int(row),
                None,
                None,
                "row.field_count",
                "parse",
                "row has a different number of fields than the header (truncated or broken line)",
            )
        )
    client = frame[cols["client_code"]].fillna("").str.strip()
    flag(
        (client == "") & ~ragged,
        cols["client_code"],
        "row.client_code_blank",
        "identity",
        "client code is blank: the administration cannot be attributed to a client",
    )
    session = frame[cols["event"]].fillna("").str.extract(site.session_event_pattern, expand=False)
    session_number = pd.to_numeric(session, errors="coerce")
    flag(
        session_number.isna() & ~ragged,
        cols["event"],
        "row.session_event",
        "schema",
        "event name does not match the site's session pattern "
        f"{site.session_event_pattern.pattern}",
    )
    raw_date = frame[cols["session_date"]].fillna("").str.strip()
    parsed = pd.to_datetime(raw_date, format=site.date_format, errors="coerce")
    flag(
        parsed.isna() & ~ragged,
        cols["session_date"],
        "row.session_date_format",
        "date",
        f"session date is blank or not in the format {site.date_format}",
    )
    future = parsed.notna() & (parsed.dt.date > logical_date) & ~ragged
    flag(
        future,
        cols["session_date"],
        "row.session_date_future",
        "date",
        f"session date is after the delivery's logical date {logical_date.isoformat()}",
    )
    return problems, session_number, parsed


def _text(value: object) -> str | None:
    return None if value is None or value is pd.NA else str(value)


def _form_items(
    frame: pd.DataFrame, form: FormMap, instrument: Instrument
) -> tuple[np.ndarray, dict[int, list[Issue]], np.ndarray]:
    """Item matrix (NaN = blank), item-level issues by row, and which rows have any item."""
    columns = form.item_columns(instrument.items)
    values = np.full((len(frame), instrument.items), np.nan)
    problems: dict[int, list[Issue]] = {}
    any_answered = np.zeros(len(frame), dtype=bool)
    rows = frame["__source_row"].to_numpy()
    for k, column in enumerate(columns):
        raw = frame[column].fillna("").str.strip()
        blank = (raw == "").to_numpy()
        number = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        non_numeric = ~blank & np.isnan(number)
        off_range = (
            ~blank
            & ~np.isnan(number)
            & (
                (number < instrument.item_min)
                | (number > instrument.item_max)
                | ~_on_step(number, instrument.item_min, instrument.item_step)
            )
        )
        for i in np.flatnonzero(non_numeric):
            problems.setdefault(int(rows[i]), []).append(
                Issue(
                    int(rows[i]),
                    column,
                    instrument.instrument_id,
                    "item.non_numeric",
                    "type",
                    f"{instrument.instrument_id} item {k + 1} is not a number",
                    _text(raw.iloc[i]),
                )
            )
        for i in np.flatnonzero(off_range):
            problems.setdefault(int(rows[i]), []).append(
                Issue(
                    int(rows[i]),
                    column,
                    instrument.instrument_id,
                    "item.out_of_range",
                    "range",
                    f"{instrument.instrument_id} item {k + 1} must be "
                    f"{instrument.item_min:g}-{instrument.item_max:g} "
                    f"in steps of {instrument.item_step:g}",
                    _text(raw.iloc[i]),
                )
            )
        any_answered |= ~blank
        ok = ~blank & ~non_numeric & ~off_range
        values[ok, k] = number[ok]
    return values, problems, any_answered


def _on_step(number: np.ndarray, start: float, step: float) -> np.ndarray:
    ratio = (number - start) / step
    return np.isclose(ratio, np.round(ratio))


def validate_site_rows(
    frame: pd.DataFrame, site: SiteConfig, registry: Registry, logical_date: date
) -> Validated:
    """Column-wise checks over the whole file; returns accepted administrations and issues."""
    row_problems, session_number, parsed_dates = _row_problems(frame, site, logical_date)
    cols = site.columns
    out = Validated(administrations=pd.DataFrame(columns=ADMIN_COLUMNS))
    parts: list[pd.DataFrame] = []
    rows = frame["__source_row"].to_numpy()
    # A broken line has no trustworthy cells: each of its questionnaires is quarantined, never
    # mistaken for "not administered".
    unreadable = set(frame.loc[frame["__ragged"], "__source_row"].astype(int))
    client_codes = frame[cols["client_code"]].fillna("").str.strip().to_numpy()
    endings = _ending_types(frame, site)
    sessions = session_number.to_numpy(dtype=float)
    for form in site.forms:
        instrument = registry.get(form.instrument)
        values, item_problems, answered = _form_items(frame, form, instrument)
        out.offered += len(frame)
        keep = np.zeros(len(frame), dtype=bool)
        for i, row in enumerate(rows):
            row = int(row)
            if not answered[i] and row not in item_problems and row not in unreadable:
                out.not_administered += 1
                continue
            issues = row_problems.get(row, []) + item_problems.get(row, [])
            if issues:
                out.quarantined += 1
                if client_codes[i] and not np.isnan(sessions[i]):
                    out.held_keys.add(
                        (
                            client_codes[i],
                            int(sessions[i]),
                            instrument.instrument_id,
                            form.rater_role,
                        )
                    )
                out.issues.extend(
                    Issue(
                        p.source_row,
                        p.column_name,
                        instrument.instrument_id,
                        p.rule_id,
                        p.category,
                        p.message,
                        p.raw_value,
                    )
                    for p in issues
                )
                continue
            keep[i] = True
        part = pd.DataFrame(
            {
                "source_row": rows[keep].astype("int64"),
                "client_code": frame[cols["client_code"]].str.strip().to_numpy()[keep],
                "therapist_code": frame[cols["therapist_code"]]
                .fillna("")
                .str.strip()
                .to_numpy()[keep],
                "session_number": session_number.to_numpy()[keep].astype("int64"),
                "session_date": parsed_dates.dt.date.to_numpy()[keep],
                "instrument": instrument.instrument_id,
                "rater_role": form.rater_role,
                "items": [_items_list(v) for v in values[keep]],
                "ending_type": endings[keep],
            }
        )
        parts.append(part)
    admins = pd.concat(parts, ignore_index=True) if parts else out.administrations
    admins, dup_issues, n_dup, conflicted = _resolve_duplicates(admins)
    out.issues.extend(dup_issues)
    out.held_keys |= conflicted
    out.accepted = len(admins)
    out.quarantined += n_dup
    out.administrations = admins
    return out


def _ending_types(frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
    """Per row: 'planned', 'unplanned' or None. Blank and unknown values are None (ignored)."""
    ending = site.ending
    if ending is None or ending.column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    values = frame[ending.column].fillna("").astype(str)
    return np.array([ending.classify(v) for v in values], dtype=object)


def _items_list(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _resolve_duplicates(
    admins: pd.DataFrame,
) -> tuple[pd.DataFrame, list[Issue], int, set[tuple[str, int, str, str]]]:
    """Exact repeats keep their first copy; conflicting versions of one key are all held back."""
    if admins.empty:
        return admins, [], 0, set()
    key = ["client_code", "session_number", "instrument", "rater_role"]
    content = admins["items"].map(tuple).astype(str) + "|" + admins["session_date"].astype(str)
    content = content + "|" + admins["therapist_code"].astype(str)
    if "ending_type" in admins.columns:
        content = content + "|" + admins["ending_type"].map(lambda e: e or "")
    admins = admins.assign(__content=content)
    groups = admins.groupby(key, sort=False)
    n_versions = groups["__content"].transform("nunique")
    first = ~admins.duplicated(key, keep="first")
    conflict = n_versions > 1
    exact_repeat = ~conflict & ~first
    issues: list[Issue] = []
    for _, row in admins[conflict].iterrows():
        issues.append(
            Issue(
                int(row["source_row"]),
                None,
                row["instrument"],
                "record.conflicting_duplicate",
                "conflict",
                f"the file holds different versions of {row['instrument']} for this client "
                f"and session {row['session_number']}; none is taken until the site resolves it",
            )
        )
    for _, row in admins[exact_repeat].iterrows():
        issues.append(
            Issue(
                int(row["source_row"]),
                None,
                row["instrument"],
                "record.exact_duplicate",
                "duplicate",
                f"exact repeat of {row['instrument']} session {row['session_number']} "
                "for this client; the first copy was taken",
            )
        )
    kept = admins[~conflict & first].drop(columns="__content").reset_index(drop=True)
    conflicted = {
        (r.client_code, int(r.session_number), r.instrument, r.rater_role)
        for r in admins[conflict].itertuples()
    }
    return kept, issues, int(conflict.sum() + exact_repeat.sum()), conflicted


def parse_logical_date(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
