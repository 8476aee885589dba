"""Turn a site's raw text rows into valid administrations plus quarantine issues.

The unit of acceptance is one administration: one source row x one configured questionnaire.
A bad PHQ-9 cell quarantines that PHQ-9, not the WAI-SR filled in at the same session, so
nothing valid is lost. Every administration is counted exactly once as accepted, quarantined,
or not administered (all items blank), which is what the conservation check adds up.

A site with an `ending` column gets the row's normalized ending type ('planned', 'unplanned'
or None) on each of the row's accepted administrations. A blank ending, or a value in neither
of the site's lists, is None: an unknown ending value is ignored, never quarantined (the row's
questionnaires are valid whatever its ending cell says), so it changes no count.

Missing codes. An item cell equal to one of the site's `missing_codes` (e.g. "99" -> refused),
or carrying the reader's `missing_marker` (an SPSS user-missing value declared in the file), is
a missing item: never a value, never out of range, scored like a blank by the registry's
missing-item rule, but its reason is kept. Each accepted administration gets `item_missing`:
None when no item of it was coded, else one entry per item (the reason label, or None where the
item was answered or blank). A questionnaire whose items are ALL blank or coded still counts as
not administered: a form with no answer cannot be scored, and the marts hold every accepted
alliance administration to `items_answered >= 1`; its codes are therefore not recorded.
"""

from __future__ import annotations

import re
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
    "item_missing",
    "ending_type",
]

# Cell text a reader puts in an item column for a missing code it knows from the file itself
# (SPSS user-missing values), followed by the reason label. Starts with NUL: no data value and
# no whitespace (so stripping keeps it).
MISSING_MARKER = "\x00missing:"
UNLABELLED_MISSING = "user_missing"


# A control character (C0, DEL, C1) inside a client code is a broken export, never a new client.
# Both engines look for it after stripping ASCII whitespace only (as the columnar engine
# strips), so a code that ends in another control character is quarantined by both.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
ASCII_SPACE = " \t\n\r\x0b\x0c"
CLIENT_CONTROL_MESSAGE = (
    "client code contains a control character (such as NUL or ESC): it is not taken as a new "
    "client; the row is held, and the client's stored records stay, until the site fixes it"
)


def has_control(codes: pd.Series) -> pd.Series:
    """Which codes hold a control character inside (surrounding spaces and line ends aside)."""
    return codes.fillna("").str.strip(ASCII_SPACE).str.contains(CONTROL)


def client_keys(codes: pd.Series) -> pd.Series:
    """Client codes as keyed: stripped; a code with a control character without it, so the
    quarantined row holds (is not read as deleting) the client it most likely names."""
    stripped = codes.fillna("").str.strip()
    control = has_control(codes)
    if not control.any():
        return stripped
    cleaned = codes.fillna("").str.strip(ASCII_SPACE).str.replace(CONTROL, "", regex=True)
    return stripped.where(~control, cleaned.str.strip())


def missing_marker(reason: str) -> str:
    """The canonical-frame text of a file-declared missing code with this reason."""
    return MISSING_MARKER + reason


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
    control = has_control(frame[cols["client_code"]])
    flag(
        (client == "") & ~control & ~ragged,
        cols["client_code"],
        "row.client_code_blank",
        "identity",
        "client code is blank: the administration cannot be attributed to a client",
    )
    flag(
        control & ~ragged,
        cols["client_code"],
        "row.client_code_control",
        "identity",
        CLIENT_CONTROL_MESSAGE,
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
    # Compared as timestamps: `.dt.date` of a column with no parsable date at all stays
    # datetime64, which pandas refuses to compare with a date (it crashed the site's ingest).
    after = parsed.dt.normalize() > pd.Timestamp(logical_date)
    future = parsed.notna() & after & ~ragged
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
    client_codes = client_keys(frame[cols["client_code"]]).to_numpy()
    endings = _ending_types(frame, site)
    sessions = session_number.to_numpy(dtype=float)
    for form in site.forms:
        instrument = registry.get(form.instrument)
        reasons = _missing_reasons(frame, form.item_columns(instrument.items), site.missing_codes)
        coded = pd.notna(reasons)
        values, item_problems, answered = _form_items(
            _blank_coded(frame, form.item_columns(instrument.items), coded), form, instrument
        )
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
                "item_missing": [
                    list(r) if any(x is not None for x in r) else None for r in reasons[keep]
                ],
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


def _missing_reasons(frame: pd.DataFrame, columns: list[str], codes: dict[str, str]) -> np.ndarray:
    """Per row and item: the missing code's reason label, or None (answered, blank, invalid)."""
    reasons = np.full((len(frame), len(columns)), None, dtype=object)
    numeric = {n: r for c, r in codes.items() if (n := _number(c)) is not None}
    for k, column in enumerate(columns):
        raw = frame[column].fillna("").str.strip()
        candidates = raw.str.startswith(MISSING_MARKER).to_numpy(dtype=bool)
        if codes:
            candidates |= raw.isin(list(codes)).to_numpy(dtype=bool)
        if numeric:
            number = pd.to_numeric(raw, errors="coerce")
            candidates |= number.isin(list(numeric)).to_numpy(dtype=bool)
        for i in np.flatnonzero(candidates):
            reasons[i, k] = _reason(str(raw.iloc[i]), codes, numeric)
    return reasons


def _reason(text: str, codes: dict[str, str], numeric: dict[float, str]) -> str | None:
    if text.startswith(MISSING_MARKER):
        return text[len(MISSING_MARKER) :] or UNLABELLED_MISSING
    if text in codes:
        return codes[text]
    number = _number(text)
    return None if number is None else numeric.get(number)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None


def _blank_coded(frame: pd.DataFrame, columns: list[str], coded: np.ndarray) -> pd.DataFrame:
    """The frame with coded item cells blanked, so item checks see them as not answered."""
    if not coded.any():
        return frame
    out = frame.copy()
    for k, column in enumerate(columns):
        if coded[:, k].any():
            out[column] = out[column].mask(coded[:, k], "")
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
    if "item_missing" in admins.columns:
        content = (
            content
            + "|"
            + admins["item_missing"].map(
                lambda m: str(list(m)) if isinstance(m, list | tuple) else ""
            )
        )
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
