"""The consortium file: which sites deliver what, in which format, mapped how.

Validated on load against the instrument registry, so a typo in a site's column map stops the
run with the file, site and key named, instead of silently dropping a questionnaire.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingestion.arrival import ArrivalOptions
from ingestion.config_errors import ConfigError
from ingestion.deliveries import glob_problem
from ingestion.delivery_date import DeliveryDateOptions, format_problem
from ingestion.registry import Instrument, Registry, default_registry
from ingestion.scoring_policy import ScoringPolicy, parse_scoring_policy

SITE_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
FORMATS = {"redcap_csv", "qualtrics_csv", "long_csv", "spss_sav", "zip"}
INNER_FORMATS = {"redcap_csv", "qualtrics_csv", "long_csv", "spss_sav"}
# Default file patterns per format (site `file_glob`, zip `member_glob`).
DEFAULT_GLOBS = {"spss_sav": "*.sav", "zip": "*.zip"}
ENCODINGS = {"utf-8", "utf-8-sig", "cp1252"}
UNFINISHED_MODES = {"quarantine", "skip"}
# Qualtrics metadata that identifies a respondent: dropped by the reader before anything else
# sees it, and never allowed as a mapped column.
QUALTRICS_IDENTIFYING = (
    "IPAddress",
    "RecipientLastName",
    "RecipientFirstName",
    "RecipientEmail",
    "LocationLatitude",
    "LocationLongitude",
)
DELIVERY_MODES = {"snapshot", "incremental"}
# A snapshot site's nightly export rarely deletes more than a few records; one that would
# retract more than this share of what the site holds is far likelier cut off or filtered by
# mistake, and is rejected whole. A site whose deletions are real raises it in its config.
MAX_RETRACTION_DEFAULT = 0.1
REQUIRED_COLUMNS = ("client_code", "therapist_code", "session_date", "event")
# A missing-code reason label lands in the event log and the warehouse: a short controlled
# word (refused, not_applicable, dont_know), never free text.
REASON_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ROOT_KEYS = ("consortium_id", "name", "sites", "release", "scoring_policy")
SITE_KEYS = (
    "site_id",
    "name",
    "format",
    "file_glob",
    "columns",
    "session_event_pattern",
    "date_format",
    "forms",
    "primary_alliance",
    "primary_outcome",
    "delivery",
    "max_retraction_fraction",
    "delivery_date",
    "arrival",
    "withdrawals",
    "ending",
    "missing_codes",
    "identifier_columns",
    "required_fields",
    "redcap",
    "qualtrics",
    "long_csv",
    "spss",
    "zip",
    "carry_down",
)
FORM_KEYS = ("form", "instrument", "rater_role", "item_column_template", "status_column")
FORM_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CARRY_DOWN_KEYS = ("columns", "from", "parent_column")
# Where a carried-down value lives: the record's parent row (its `parent_column` is blank,
# as REDCap leaves `redcap_repeat_instrument` on a repeating export's client-level row), or
# the record's first row in the file (a longitudinal project's first event).
CARRY_DOWN_FROM = ("parent_row", "first_row")
QUALTRICS_KEYS = (
    "import_ids",
    "unfinished",
    "final_when",
    "min_progress",
    "encoding",
    "drop_columns",
)
# Which responses are final (Finished is Qualtrics' 1/0 flag, Progress its percentage):
# Finished = 1 alone; Finished = 1 AND Progress >= min_progress (default 100); Finished = 1 OR
# Progress >= min_progress (loosens; min_progress required).
FINAL_WHEN = ("finished", "finished_and_progress", "finished_or_progress")
REDCAP_KEYS = ("status_columns", "accept_unverified", "data_dictionary_glob")
LONG_CSV_KEYS = (
    "measure_column",
    "measures",
    "item_column_template",
    "delimiter",
    "decimal",
    "encoding",
    "skip_measures",
)
ZIP_KEYS = ("format", "member_glob", "max_members", "max_total_bytes")
WITHDRAWAL_KEYS = ("file_glob", "client_code_column", "reason_column", "column", "values")
ENDING_KEYS = ("column", "planned", "unplanned", "open")
# The ending types a site's codes map to, in the order the lists are read.
ENDING_TYPES = ("planned", "unplanned", "open")
RELEASE_KEYS = ("calendar_dates",)
SPSS_KEYS = ("event_from_labels",)
ARRIVAL_KEYS = ("quiet_period_seconds", "completion_marker", "final_newline")
DELIVERY_DATE_KEYS = ("pattern", "format")
REQUIRED_FIELD_KEYS = ("therapist_code", "session_date")


@dataclass(frozen=True)
class FormMap:
    """One form: an instrument as one rater fills it in, and where its items sit in the export.

    A site can hold the same instrument twice (a client- and a therapist-rated WAI-SR), each
    with its own items and its own REDCap status column, so the form (not the instrument) is
    what status, role and item template belong to. `form_id` defaults to the instrument id
    when the site has one form of it, else to `<instrument>_<rater_role>`.
    """

    instrument: str
    rater_role: str
    item_column_template: str
    form_id: str = ""
    # REDCap `<form>_complete` column deciding whether this form's answers count (None: taken
    # whatever its status).
    status_column: str | None = None

    def item_columns(self, n_items: int) -> list[str]:
        return [self.item_column_template.format(n=n) for n in range(1, n_items + 1)]


@dataclass(frozen=True)
class WithdrawalFiles:
    """How a site delivers consent withdrawals: a small CSV of client codes (`file_glob`),
    and/or a column of its REDCap export whose value marks the row's client as withdrawn."""

    file_glob: str | None
    client_code_column: str | None
    reason_column: str | None
    column: str | None = None
    values: tuple[str, ...] = ("1", "y", "yes", "true", "withdrawn")


@dataclass(frozen=True)
class EndingOptions:
    """How an export says how a client's episode ended, in any format: a column whose value is
    one of the site's planned, unplanned or open codes (compared case-insensitively after
    stripping; stored lowered). Open means the episode is still running: not a dropout, not a
    completer. A blank cell, or a value in no list, means the ending is not known from that row."""

    column: str
    planned: tuple[str, ...]
    unplanned: tuple[str, ...]
    open: tuple[str, ...] = ()

    def codes(self) -> dict[str, tuple[str, ...]]:
        """Ending type -> the site's codes for it (ENDING_TYPES order)."""
        return {"planned": self.planned, "unplanned": self.unplanned, "open": self.open}

    def classify(self, value: str | None) -> str | None:
        """'planned', 'unplanned', 'open', or None (blank or not one of the site's codes)."""
        text = (value or "").strip().lower()
        for ending_type, codes in self.codes().items():
            if text and text in codes:
                return ending_type
        return None


@dataclass(frozen=True)
class RedcapOptions:
    """REDCap per-form status: `<form>_complete` is 0 Incomplete, 1 Unverified, 2 Complete."""

    # form id -> its status column, e.g. {wai_sr: alliance_complete}, resolved from this
    # section (keyed by form id, or by instrument id where the site has one form of it) and
    # the forms' own `status_column`. Forms not listed are taken whatever their status.
    status_columns: dict[str, str]
    # Count 1 = Unverified as well as 2 = Complete.
    accept_unverified: bool = False
    # The site's REDCap data dictionary CSV, delivered into the same inbox folder (or inside a
    # zip): never ingested as an export; its `Identifier? = y` fields are dropped and the
    # configured item fields are checked against it (present, Min/Max = the registry's range).
    data_dictionary_glob: str | None = None


@dataclass(frozen=True)
class QualtricsOptions:
    """Qualtrics CSV (three header rows): items keyed on ImportId, not on editable names."""

    # ImportId (e.g. QID5_1) -> the column name the rest of the site's config uses.
    import_ids: dict[str, str]
    # A response that is not final: quarantined with a reason, or skipped and counted as
    # not administered.
    unfinished: str = "quarantine"
    # What makes a response final (FINAL_WHEN); min_progress is the Progress bound the two
    # progress rules use (None under `finished`).
    final_when: str = "finished"
    min_progress: float | None = None

    def final_rule(self) -> str:
        """The rule in words, for quarantine messages and documentation."""
        if self.final_when == "finished_and_progress":
            return f"Finished = 1 and Progress >= {self.min_progress:g} %"
        if self.final_when == "finished_or_progress":
            return f"Finished = 1, or Progress >= {self.min_progress:g} %"
        return "Finished = 1"

    encoding: str = "utf-8-sig"
    # Further columns (by header name or ImportId) dropped like the identifying metadata.
    drop_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class LongCsvOptions:
    """A feedback-system long table: one row per measure per session, pivoted to wide."""

    measure_column: str
    # Value in the measure column -> form id (resolved on load from a form id, or an instrument
    # the site has one form of).
    measures: dict[str, str]
    # Where item scores sit in the long file, e.g. "item_{n}", shared by every measure. None:
    # each form's own `item_column_template` names its item columns in the long file.
    item_column_template: str | None
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8-sig"
    # Measure values present in the file that are not questionnaires to ingest (totals, ORS
    # when only SRS is configured...): skipped and counted as not administered.
    skip_measures: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequiredFields:
    """Row fields a row is quarantined without (`required_fields`). Both are required by
    default: a blank therapist nests the client under no therapist, a blank date leaves the
    session without relative time. A site whose protocol records neither may turn one off; a
    date that is present but does not parse is quarantined either way."""

    therapist_code: bool = True
    session_date: bool = True


@dataclass(frozen=True)
class SpssOptions:
    """SPSS .sav exports (see ingestion/intake/spss_rows.py)."""

    # Map the event variable's numeric value through its value labels (3 -> "Session 3")
    # before `session_event_pattern` applies; values without a label stay the number.
    event_from_labels: bool = False


@dataclass(frozen=True)
class ZipOptions:
    """A zip holding one export in `format`; extracted in memory, never to disk."""

    format: str
    member_glob: str = "*.csv"
    max_members: int = 100
    max_total_bytes: int = 500_000_000


@dataclass(frozen=True)
class CarryDown:
    """Columns whose value is written once per record (on its parent row) and applies to the
    record's other rows: a row's own non-blank value wins; a blank one takes the parent's."""

    columns: tuple[str, ...]
    source: str  # one of CARRY_DOWN_FROM
    parent_column: str | None = None  # parent_row: blank on the parent row


@dataclass(frozen=True)
class SiteConfig:
    site_id: str
    name: str
    format: str
    file_glob: str
    columns: dict[str, str]
    session_event_pattern: re.Pattern[str]
    date_format: str
    forms: tuple[FormMap, ...]
    primary_alliance: str
    primary_outcome: str
    # snapshot: each export is the site's full current state (changes and deletions become
    # amended and retracted events); incremental: exports only add or correct.
    delivery: str = "snapshot"
    # A snapshot that would retract more than this share of the site's current records is
    # treated as a broken export and rejected whole instead (see MAX_RETRACTION_DEFAULT).
    max_retraction_fraction: float = MAX_RETRACTION_DEFAULT
    withdrawals: WithdrawalFiles | None = None
    qualtrics: QualtricsOptions | None = None
    redcap: RedcapOptions | None = None
    long_csv: LongCsvOptions | None = None
    zip: ZipOptions | None = None
    # Columns holding direct identifiers (names, e-mail, phone, address, date of birth...):
    # dropped by every reader as the header is read, before any cell reaches a frame, a
    # quarantine record or an event. Readers pass on mapped columns only anyway; listing them
    # documents the export and makes it a config error to map one by mistake.
    identifier_columns: tuple[str, ...] = ()
    # The column coding how the client's episode ended (planned / unplanned / open).
    ending: EndingOptions | None = None
    spss: SpssOptions | None = None
    # Item cell text -> reason label (e.g. {"99": "refused"}): such a cell is a missing item
    # (never a value, never out of range) whose reason is kept in the event's `item_missing`.
    # Compared on the stripped text and, for numeric codes, on the number ("99.0" is 99).
    missing_codes: dict[str, str] = field(default_factory=dict)
    arrival: ArrivalOptions = field(default_factory=ArrivalOptions)
    # How the delivery date is read from a file's name; the future-date check uses it (None:
    # the night's logical date). See ingestion/delivery_date.py.
    delivery_date: DeliveryDateOptions | None = None
    carry_down: CarryDown | None = None
    required_fields: RequiredFields = field(default_factory=RequiredFields)

    @property
    def data_dictionary_glob(self) -> str | None:
        return self.redcap.data_dictionary_glob if self.redcap else None


@dataclass(frozen=True)
class ReleaseOptions:
    """What the consortium's data-sharing agreement lets a release carry (`release:`)."""

    # Calendar dates of participants' sessions. Off by default: releases carry relative time
    # (days since the client's first session), as Safe Harbor asks; on only where the
    # agreement allows dates, and then only in the mart fct_session_calendar.
    calendar_dates: bool = False


@dataclass(frozen=True)
class Consortium:
    consortium_id: str
    name: str
    sites: dict[str, SiteConfig]
    file: Path
    release: ReleaseOptions = ReleaseOptions()
    # Per-instrument overrides of the registry's missing-item rules (ingestion/scoring_policy.py).
    scoring_policy: ScoringPolicy = ScoringPolicy()
    # Sites whose own section is invalid (only when loaded with per_site=True): site id (or
    # `sites[i]` when even that is unreadable) -> the error naming file, site, key and problem.
    broken: dict[str, ConfigError] = field(default_factory=dict)

    def site(self, site_id: str) -> SiteConfig:
        if site_id in self.broken:
            raise self.broken[site_id]
        if site_id not in self.sites:
            raise KeyError(f"site {site_id!r} is not configured in {self.file}")
        return self.sites[site_id]


def _str(doc: dict[str, Any], key: str, file: Path, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(file, f"{where}{key}", f"must be a non-empty string, got {value!r}")
    return value


def _known_keys(doc: dict[Any, Any], known: tuple[str, ...], file: Path, where: str) -> None:
    """A misspelt key would silently drop a setting (a site's guard, its arrival rules...):
    every key at every level must be one the loader reads; the error names the nearest."""
    unknown = sorted((str(k) for k in doc if k not in known), key=str)
    if not unknown:
        return
    key = unknown[0]
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean `{nearest[0]}`? " if nearest else ""
    raise ConfigError(
        file, f"{where}{key}", f"is not a known key; {hint}(known: {', '.join(known)})"
    )


def _parse_site(doc: Any, file: Path, registry: Registry, index: int) -> SiteConfig:
    where = f"sites[{index}]."
    if not isinstance(doc, dict):
        raise ConfigError(file, f"sites[{index}]", "must be a mapping")
    site_id = _str(doc, "site_id", file, where)
    if not SITE_ID.match(site_id):
        raise ConfigError(
            file, f"{where}site_id", f"{site_id!r} must match {SITE_ID.pattern} (safe folder name)"
        )
    where = f"sites.{site_id}."
    _known_keys(doc, SITE_KEYS, file, where)
    fmt = _str(doc, "format", file, where)
    if fmt not in FORMATS:
        raise ConfigError(file, f"{where}format", f"must be one of {sorted(FORMATS)}, got {fmt!r}")
    columns = doc.get("columns")
    if not isinstance(columns, dict):
        raise ConfigError(file, f"{where}columns", "must map roles to column names")
    _known_keys(columns, REQUIRED_COLUMNS, file, f"{where}columns.")
    for role in REQUIRED_COLUMNS:
        _str(columns, role, file, f"{where}columns.")
    pattern_text = _str(doc, "session_event_pattern", file, where)
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise ConfigError(file, f"{where}session_event_pattern", f"is not a regex: {exc}") from exc
    if pattern.groups != 1:
        raise ConfigError(
            file, f"{where}session_event_pattern", "must have exactly one group: the session number"
        )
    forms_doc = doc.get("forms")
    if not isinstance(forms_doc, list) or not forms_doc:
        raise ConfigError(file, f"{where}forms", "must list at least one questionnaire")
    forms = _parse_forms(forms_doc, file, registry, where)
    configured = {f.instrument for f in forms}
    for key, construct in (("primary_alliance", "alliance"), ("primary_outcome", "outcome")):
        value = _str(doc, key, file, where)
        if value not in configured:
            raise ConfigError(file, f"{where}{key}", f"{value!r} is not among this site's forms")
        if registry.get(value).construct != construct:
            raise ConfigError(file, f"{where}{key}", f"{value!r} is not an {construct} measure")
    delivery = str(doc.get("delivery", "snapshot"))
    if delivery not in DELIVERY_MODES:
        raise ConfigError(
            file, f"{where}delivery", f"must be one of {sorted(DELIVERY_MODES)}, got {delivery!r}"
        )
    fraction = doc.get("max_retraction_fraction", MAX_RETRACTION_DEFAULT)
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise ConfigError(file, f"{where}max_retraction_fraction", "must be a number in 0..1")
    withdrawals = _parse_withdrawals(doc.get("withdrawals"), file, where, fmt)
    ending = _parse_ending(doc.get("ending"), file, where)
    inner = fmt
    zip_options = None
    if fmt == "zip":
        zip_options = _parse_zip(doc.get("zip"), file, where)
        inner = zip_options.format
    elif doc.get("zip") is not None:
        raise ConfigError(file, f"{where}zip", "is only read when format is zip")
    qualtrics = None
    if inner == "qualtrics_csv":
        qualtrics = _parse_qualtrics(doc.get("qualtrics"), file, where, columns, forms, registry)
    elif doc.get("qualtrics") is not None:
        raise ConfigError(file, f"{where}qualtrics", f"is not read for format {inner}")
    redcap = None
    if inner == "redcap_csv" and (
        doc.get("redcap") is not None or any(f.status_column for f in forms)
    ):
        redcap, forms = _parse_redcap(doc.get("redcap") or {}, file, where, forms)
    elif doc.get("redcap") is not None:
        raise ConfigError(file, f"{where}redcap", f"is not read for format {inner}")
    else:
        for k, form in enumerate(forms):
            if form.status_column:
                raise ConfigError(
                    file,
                    f"{where}forms[{k}].status_column",
                    f"a form status column is read from REDCap exports only, not {inner}",
                )
    long_csv = None
    if inner == "long_csv":
        long_csv = _parse_long_csv(doc.get("long_csv"), file, where, forms)
    elif doc.get("long_csv") is not None:
        raise ConfigError(file, f"{where}long_csv", f"is not read for format {inner}")
    spss = None
    if inner == "spss_sav":
        spss = _parse_spss(doc.get("spss"), file, where)
    elif doc.get("spss") is not None:
        raise ConfigError(file, f"{where}spss", f"is not read for format {inner}")
    missing_codes = _parse_missing_codes(doc.get("missing_codes"), file, where, forms, registry)
    identifiers = _identifier_columns(doc, file, where, columns, forms, registry, qualtrics)
    if ending is not None and ending.column.lower() in {n.lower() for n in identifiers}:
        raise ConfigError(
            file,
            f"{where}ending.column",
            f"{ending.column!r} is listed in identifier_columns; an identifier is never read",
        )
    carry_down = _parse_carry_down(doc.get("carry_down"), file, where, columns, ending, withdrawals)
    for name, key in [
        *((f.status_column, f"forms[{k}].status_column") for k, f in enumerate(forms)),
        ((carry_down.parent_column if carry_down else None), "carry_down.parent_column"),
    ]:
        if name is not None and name.lower() in {n.lower() for n in identifiers}:
            raise ConfigError(
                file,
                f"{where}{key}",
                f"{name!r} is listed in identifier_columns; an identifier is never read",
            )
    return SiteConfig(
        site_id=site_id,
        name=str(doc.get("name", site_id)),
        format=fmt,
        file_glob=_confined(
            str(doc.get("file_glob", DEFAULT_GLOBS.get(fmt, "*.csv"))), file, f"{where}file_glob"
        ),
        columns={str(k): str(v) for k, v in columns.items()},
        session_event_pattern=pattern,
        date_format=str(doc.get("date_format", "%Y-%m-%d")),
        forms=tuple(forms),
        primary_alliance=doc["primary_alliance"],
        primary_outcome=doc["primary_outcome"],
        delivery=delivery,
        max_retraction_fraction=float(fraction),
        withdrawals=withdrawals,
        qualtrics=qualtrics,
        redcap=redcap,
        long_csv=long_csv,
        zip=zip_options,
        identifier_columns=identifiers,
        ending=ending,
        spss=spss,
        missing_codes=missing_codes,
        arrival=_parse_arrival(doc.get("arrival"), file, where),
        delivery_date=_parse_delivery_date(doc.get("delivery_date"), file, where),
        carry_down=carry_down,
        required_fields=_parse_required_fields(doc.get("required_fields"), file, where),
    )


def _parse_forms(forms_doc: list[Any], file: Path, registry: Registry, where: str) -> list[FormMap]:
    """`forms:` entries, each one instrument x rater role, named by a unique form id."""
    parsed: list[tuple[dict[str, Any], str, str, str]] = []
    for k, form in enumerate(forms_doc):
        fwhere = f"{where}forms[{k}]."
        if not isinstance(form, dict):
            raise ConfigError(file, f"{where}forms[{k}]", "must be a mapping")
        _known_keys(form, FORM_KEYS, file, fwhere)
        instrument = _str(form, "instrument", file, fwhere)
        if instrument not in registry.instruments:
            raise ConfigError(
                file,
                f"{fwhere}instrument",
                f"{instrument!r} is not in the instrument registry "
                f"({', '.join(sorted(registry.instruments))})",
            )
        role = _str(form, "rater_role", file, fwhere)
        if role not in registry.get(instrument).rater_roles:
            raise ConfigError(
                file, f"{fwhere}rater_role", f"{instrument} has no {role!r} form in the registry"
            )
        template = _str(form, "item_column_template", file, fwhere)
        if "{n}" not in template:
            raise ConfigError(file, f"{fwhere}item_column_template", "must contain {n}")
        for earlier, (_, other, other_role, _) in enumerate(parsed):
            if (other, other_role) == (instrument, role):
                raise ConfigError(
                    file,
                    f"{fwhere}rater_role",
                    f"forms[{earlier}] is already {instrument} rated by {role}; a form is one "
                    "instrument x rater role (give the other form its own rater_role)",
                )
        parsed.append((form, instrument, role, template))
    counts: dict[str, int] = {}
    for _, instrument, _, _ in parsed:
        counts[instrument] = counts.get(instrument, 0) + 1
    forms: list[FormMap] = []
    seen: dict[str, int] = {}
    for k, (form, instrument, role, template) in enumerate(parsed):
        fwhere = f"{where}forms[{k}]."
        default = instrument if counts[instrument] == 1 else f"{instrument}_{role}"
        form_id = form.get("form", default)
        if not isinstance(form_id, str) or not FORM_ID.match(form_id):
            raise ConfigError(
                file,
                f"{fwhere}form",
                f"{form_id!r} must be a form id matching {FORM_ID.pattern}, e.g. wai_therapist",
            )
        if form_id in seen:
            raise ConfigError(
                file, f"{fwhere}form", f"{form_id!r} already names forms[{seen[form_id]}]"
            )
        seen[form_id] = k
        status = form.get("status_column")
        if status is not None:
            status = _str(form, "status_column", file, fwhere)
        forms.append(FormMap(instrument, role, template, form_id, status))
    return forms


def _form_of(forms: list[FormMap], key: str) -> FormMap | None:
    """The form a config key names: its form id, or an instrument the site has one form of."""
    for form in forms:
        if form.form_id == key:
            return form
    matching = [f for f in forms if f.instrument == key]
    return matching[0] if len(matching) == 1 else None


def _form_key_problem(forms: list[FormMap], key: str) -> str:
    matching = [f.form_id for f in forms if f.instrument == key]
    if len(matching) > 1:
        return (
            f"{key!r} has several forms at this site ({', '.join(matching)}); "
            "name the form instead (its form id)"
        )
    ids = ", ".join(f.form_id for f in forms)
    return f"{key!r} is not among this site's forms ({ids})"


def _parse_carry_down(
    doc: Any, file: Path, where: str, site_columns: dict[str, Any], ending: Any, withdrawals: Any
) -> CarryDown | None:
    """`carry_down: {columns, from, parent_column}`: record-level values copied to its rows."""
    if doc is None:
        return None
    cwhere = f"{where}carry_down."
    if not isinstance(doc, dict):
        raise ConfigError(
            file, f"{where}carry_down", f"must be a mapping: {', '.join(CARRY_DOWN_KEYS)}"
        )
    _known_keys(doc, CARRY_DOWN_KEYS, file, cwhere)
    allowed = {str(site_columns["therapist_code"]): "columns.therapist_code"}
    if ending is not None:
        allowed[ending.column] = "ending.column"
    if withdrawals is not None and withdrawals.column:
        allowed[withdrawals.column] = "withdrawals.column"
    columns = _names(doc, "columns", file, cwhere)
    if not columns:
        raise ConfigError(file, f"{cwhere}columns", "must list at least one column")
    for name in columns:
        if name not in allowed:
            raise ConfigError(
                file,
                f"{cwhere}columns",
                f"{name!r} cannot be carried down; only a record-level column the site maps "
                f"can: {', '.join(f'{c} ({k})' for c, k in allowed.items())}",
            )
    if len(set(columns)) != len(columns):
        raise ConfigError(file, f"{cwhere}columns", "lists a column twice")
    source = doc.get("from", "parent_row")
    if source not in CARRY_DOWN_FROM:
        raise ConfigError(
            file, f"{cwhere}from", f"must be one of {list(CARRY_DOWN_FROM)}, got {source!r}"
        )
    parent = doc.get("parent_column")
    if source == "parent_row":
        parent = (
            "redcap_repeat_instrument"
            if parent is None
            else _str(doc, "parent_column", file, cwhere)
        )
        mapped = {str(v) for v in site_columns.values()} | set(allowed)
        if parent in mapped:
            raise ConfigError(
                file,
                f"{cwhere}parent_column",
                f"{parent!r} is a mapped column; the parent column is the one left blank on "
                "the record's parent row (REDCap: redcap_repeat_instrument)",
            )
    elif parent is not None:
        raise ConfigError(file, f"{cwhere}parent_column", "is only read with from: parent_row")
    return CarryDown(columns, source, parent)


def _identifier_columns(
    doc: dict[str, Any],
    file: Path,
    where: str,
    columns: dict[str, Any],
    forms: list[FormMap],
    registry: Registry,
    qualtrics: QualtricsOptions | None,
) -> tuple[str, ...]:
    """`identifier_columns`: names never read; none may be a column the site maps."""
    names = _names(doc, "identifier_columns", file, where)
    mapped = {str(v).lower(): f"columns.{k}" for k, v in columns.items()}
    for form in forms:
        for column in form.item_columns(registry.get(form.instrument).items):
            mapped[column.lower()] = f"forms[{form.form_id}]"
    if qualtrics is not None:
        for import_id, target in qualtrics.import_ids.items():
            mapped[import_id.lower()] = f"qualtrics.import_ids.{import_id}"
            mapped[target.lower()] = f"qualtrics.import_ids.{import_id}"
    for name in names:
        if name.lower() in mapped:
            raise ConfigError(
                file,
                f"{where}identifier_columns",
                f"{name!r} is listed as an identifier but is mapped by {mapped[name.lower()]}; "
                "an identifier is never read",
            )
    return names


def _confined(glob: str, file: Path, key: str) -> str:
    """A file pattern that can only select inside the site's inbox (never a parent, never an
    absolute path: the key file or another site's inbox must be out of reach)."""
    problem = glob_problem(glob)
    if problem:
        raise ConfigError(file, key, problem)
    return glob


def _mapping(doc: Any, file: Path, key: str, what: str) -> dict[str, Any]:
    if doc is None:
        raise ConfigError(file, key, f"is required: {what}")
    if not isinstance(doc, dict):
        raise ConfigError(file, key, f"must be a mapping: {what}")
    return doc


def _choice(doc: dict[str, Any], key: str, choices: set[str], default: str, file: Path, where: str):
    value = doc.get(key, default)
    if value not in choices:
        raise ConfigError(file, f"{where}{key}", f"must be one of {sorted(choices)}, got {value!r}")
    return value


def _names(doc: dict[str, Any], key: str, file: Path, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(file, f"{where}{key}", "must be a list of names")
    return tuple(value)


def _parse_qualtrics(
    doc: Any,
    file: Path,
    where: str,
    columns: dict[str, Any],
    forms: list[FormMap],
    registry: Registry,
) -> QualtricsOptions:
    doc = _mapping(
        doc, file, f"{where}qualtrics", "import_ids, unfinished, final_when, min_progress"
    )
    qwhere = f"{where}qualtrics."
    _known_keys(doc, QUALTRICS_KEYS, file, qwhere)
    ids = doc.get("import_ids")
    if not isinstance(ids, dict) or not ids:
        raise ConfigError(
            file, f"{qwhere}import_ids", "must map ImportIds (e.g. QID5_1) to column names"
        )
    for import_id, target in ids.items():
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(
                file, f"{qwhere}import_ids.{import_id}", "must name the column it becomes"
            )
    targets = list(ids.values())
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    if repeated:
        raise ConfigError(file, f"{qwhere}import_ids", f"several ImportIds map to {repeated}")
    identifying = {c.lower() for c in QUALTRICS_IDENTIFYING}
    for role, name in columns.items():
        if str(name).lower() in identifying:
            raise ConfigError(
                file,
                f"{where}columns.{role}",
                f"{name!r} is identifying Qualtrics metadata and is always dropped",
            )
    for import_id, target in ids.items():
        if str(import_id).lower() in identifying or target.lower() in identifying:
            raise ConfigError(
                file,
                f"{qwhere}import_ids.{import_id}",
                "identifying Qualtrics metadata is always dropped and cannot be mapped",
            )
    unfinished = _choice(doc, "unfinished", UNFINISHED_MODES, "quarantine", file, qwhere)
    final_when, progress = _final_rule(doc, file, qwhere)
    return QualtricsOptions(
        import_ids={str(k): str(v) for k, v in ids.items()},
        unfinished=unfinished,
        final_when=final_when,
        min_progress=progress,
        encoding=_choice(doc, "encoding", ENCODINGS, "utf-8-sig", file, qwhere),
        drop_columns=_names(doc, "drop_columns", file, qwhere),
    )


def _final_rule(doc: dict[str, Any], file: Path, qwhere: str) -> tuple[str, float | None]:
    """(`final_when`, `min_progress`). `min_progress` alone keeps its old meaning (Finished OR
    Progress >= it); a bound the chosen rule would not read is an error, not ignored."""
    progress = doc.get("min_progress")
    if progress is not None and (
        isinstance(progress, bool)
        or not isinstance(progress, int | float)
        or not 0 < progress <= 100
    ):
        raise ConfigError(file, f"{qwhere}min_progress", "must be a percentage in 1..100")
    default = "finished" if progress is None else "finished_or_progress"
    final_when = doc.get("final_when", default)
    if final_when not in FINAL_WHEN:
        nearest = difflib.get_close_matches(str(final_when), FINAL_WHEN, n=1, cutoff=0.6)
        hint = f"did you mean `{nearest[0]}`? " if nearest else ""
        raise ConfigError(
            file,
            f"{qwhere}final_when",
            f"{final_when!r} is not a rule; {hint}(one of: {', '.join(FINAL_WHEN)})",
        )
    if final_when == "finished" and progress is not None:
        raise ConfigError(
            file,
            f"{qwhere}min_progress",
            "is not read when final_when is finished; use finished_and_progress (require "
            "both) or finished_or_progress (either), or remove it",
        )
    if final_when == "finished_or_progress" and progress is None:
        raise ConfigError(
            file,
            f"{qwhere}min_progress",
            "is required when final_when is finished_or_progress (the Progress that counts "
            "without Finished)",
        )
    if final_when == "finished_and_progress" and progress is None:
        progress = 100
    return final_when, None if progress is None else float(progress)


def _parse_redcap(
    doc: Any, file: Path, where: str, forms: list[FormMap]
) -> tuple[RedcapOptions, list[FormMap]]:
    """`redcap:` options, and the forms with their status columns resolved (from
    `status_columns`, keyed by form id or by an instrument the site has one form of, and from
    the forms' own `status_column`)."""
    doc = _mapping(doc, file, f"{where}redcap", "status_columns, accept_unverified")
    rwhere = f"{where}redcap."
    _known_keys(doc, REDCAP_KEYS, file, rwhere)
    status = doc.get("status_columns", {})
    if not isinstance(status, dict):
        raise ConfigError(file, f"{rwhere}status_columns", "must map form ids to columns")
    resolved = {f.form_id: f.status_column for f in forms if f.status_column}
    for key, column in status.items():
        form = _form_of(forms, str(key))
        if form is None:
            raise ConfigError(
                file, f"{rwhere}status_columns.{key}", _form_key_problem(forms, str(key))
            )
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(
                file, f"{rwhere}status_columns.{key}", "must name a <form>_complete column"
            )
        if resolved.get(form.form_id, column) != column:
            raise ConfigError(
                file,
                f"{rwhere}status_columns.{key}",
                f"form {form.form_id} already has status_column {resolved[form.form_id]!r}",
            )
        resolved[form.form_id] = column
    forms = [dataclasses.replace(f, status_column=resolved.get(f.form_id)) for f in forms]
    unverified = doc.get("accept_unverified", False)
    if not isinstance(unverified, bool):
        raise ConfigError(file, f"{rwhere}accept_unverified", "must be true or false")
    dictionary = doc.get("data_dictionary_glob")
    if dictionary is not None and (not isinstance(dictionary, str) or not dictionary.strip()):
        raise ConfigError(
            file,
            f"{rwhere}data_dictionary_glob",
            "must be a file name pattern, e.g. *DataDictionary*.csv",
        )
    if dictionary is not None:
        _confined(dictionary, file, f"{rwhere}data_dictionary_glob")
    return RedcapOptions(resolved, unverified, dictionary), forms


def _parse_long_csv(doc: Any, file: Path, where: str, forms: list[FormMap]) -> LongCsvOptions:
    doc = _mapping(doc, file, f"{where}long_csv", "measure_column, measures, item_column_template")
    lwhere = f"{where}long_csv."
    _known_keys(doc, LONG_CSV_KEYS, file, lwhere)
    measure_column = _str(doc, "measure_column", file, lwhere)
    template = None
    if doc.get("item_column_template") is not None:
        template = _str(doc, "item_column_template", file, lwhere)
        if "{n}" not in template:
            raise ConfigError(file, f"{lwhere}item_column_template", "must contain {n}")
    measures = doc.get("measures")
    if not isinstance(measures, dict) or not measures:
        raise ConfigError(
            file, f"{lwhere}measures", "must map measure names in the file to form ids"
        )
    resolved: dict[str, str] = {}
    for label, key in measures.items():
        form = _form_of(forms, str(key))
        if form is None:
            raise ConfigError(file, f"{lwhere}measures.{label}", _form_key_problem(forms, str(key)))
        resolved[str(label)] = form.form_id
    delimiter = doc.get("delimiter", ",")
    if delimiter == "\\t":
        delimiter = "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(
            file, f"{lwhere}delimiter", "must be one character (e.g. ',', ';', '\\t')"
        )
    decimal = _choice(doc, "decimal", {".", ","}, ".", file, lwhere)
    if decimal == delimiter:
        raise ConfigError(file, f"{lwhere}decimal", "cannot be the same as the delimiter")
    skip = _names(doc, "skip_measures", file, lwhere)
    overlap = sorted(set(skip) & {str(k) for k in measures})
    if overlap:
        raise ConfigError(file, f"{lwhere}skip_measures", f"also listed in measures: {overlap}")
    return LongCsvOptions(
        measure_column=measure_column,
        measures=resolved,
        item_column_template=template,
        delimiter=delimiter,
        decimal=decimal,
        encoding=_choice(doc, "encoding", ENCODINGS, "utf-8-sig", file, lwhere),
        skip_measures=skip,
    )


def _positive_int(doc: dict[str, Any], key: str, default: int, file: Path, where: str) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(file, f"{where}{key}", f"must be a positive whole number, got {value!r}")
    return value


def _parse_zip(doc: Any, file: Path, where: str) -> ZipOptions:
    doc = _mapping(doc, file, f"{where}zip", "the format of the export inside")
    zwhere = f"{where}zip."
    _known_keys(doc, ZIP_KEYS, file, zwhere)
    inner = _str(doc, "format", file, zwhere)
    if inner not in INNER_FORMATS:
        raise ConfigError(
            file, f"{zwhere}format", f"must be one of {sorted(INNER_FORMATS)}, got {inner!r}"
        )
    glob = doc.get("member_glob", DEFAULT_GLOBS.get(inner, "*.csv"))
    if not isinstance(glob, str) or not glob:
        raise ConfigError(file, f"{zwhere}member_glob", "must be a file name pattern")
    return ZipOptions(
        format=inner,
        member_glob=glob,
        max_members=_positive_int(doc, "max_members", 100, file, zwhere),
        max_total_bytes=_positive_int(doc, "max_total_bytes", 500_000_000, file, zwhere),
    )


def _parse_spss(doc: Any, file: Path, where: str) -> SpssOptions:
    """`spss: {event_from_labels}`; optional, every key has a default."""
    if doc is None:
        return SpssOptions()
    if not isinstance(doc, dict):
        raise ConfigError(file, f"{where}spss", "must be a mapping: event_from_labels")
    swhere = f"{where}spss."
    _known_keys(doc, SPSS_KEYS, file, swhere)
    labels = doc.get("event_from_labels", False)
    if not isinstance(labels, bool):
        raise ConfigError(file, f"{swhere}event_from_labels", "must be true or false")
    return SpssOptions(event_from_labels=labels)


def _parse_required_fields(doc: Any, file: Path, where: str) -> RequiredFields:
    """`required_fields: {therapist_code: true, session_date: true}`; both default to true."""
    if doc is None:
        return RequiredFields()
    if not isinstance(doc, dict):
        raise ConfigError(
            file, f"{where}required_fields", "must be a mapping: therapist_code, session_date"
        )
    rwhere = f"{where}required_fields."
    _known_keys(doc, REQUIRED_FIELD_KEYS, file, rwhere)
    for key, value in doc.items():
        if not isinstance(value, bool):
            raise ConfigError(file, f"{rwhere}{key}", f"must be true or false, got {value!r}")
    return RequiredFields(**{str(k): v for k, v in doc.items()})


def _parse_arrival(doc: Any, file: Path, where: str) -> ArrivalOptions:
    """`arrival: {quiet_period_seconds, completion_marker, final_newline}`; all optional."""
    if doc is None:
        return ArrivalOptions()
    awhere = f"{where}arrival."
    if not isinstance(doc, dict):
        raise ConfigError(file, f"{where}arrival", f"must be a mapping: {', '.join(ARRIVAL_KEYS)}")
    _known_keys(doc, ARRIVAL_KEYS, file, awhere)
    defaults = ArrivalOptions()
    quiet = doc.get("quiet_period_seconds", defaults.quiet_period_seconds)
    if isinstance(quiet, bool) or not isinstance(quiet, int) or quiet < 0:
        raise ConfigError(file, f"{awhere}quiet_period_seconds", "must be a whole number >= 0")
    marker = doc.get("completion_marker")
    if marker is not None and (
        not isinstance(marker, str) or not marker.strip() or "/" in marker or "\\" in marker
    ):
        raise ConfigError(
            file,
            f"{awhere}completion_marker",
            "must be the suffix the site appends to a finished export's name, e.g. '.done'",
        )
    newline = doc.get("final_newline", defaults.final_newline)
    if not isinstance(newline, bool):
        raise ConfigError(file, f"{awhere}final_newline", "must be true or false")
    return ArrivalOptions(quiet, marker, newline)


def _parse_delivery_date(doc: Any, file: Path, where: str) -> DeliveryDateOptions | None:
    """`delivery_date: {pattern, format}`: both required, checked here, not on the night."""
    if doc is None:
        return None
    dwhere = f"{where}delivery_date."
    if not isinstance(doc, dict):
        raise ConfigError(
            file,
            f"{where}delivery_date",
            "must be a mapping: pattern (a regex with a group named date), format (e.g. %Y%m%d)",
        )
    _known_keys(doc, DELIVERY_DATE_KEYS, file, dwhere)
    text = _str(doc, "pattern", file, dwhere)
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(file, f"{dwhere}pattern", f"is not a regex: {exc}") from exc
    if "date" not in pattern.groupindex:
        raise ConfigError(
            file,
            f"{dwhere}pattern",
            "must name the date's group (?P<date>...), e.g. '_(?P<date>\\d{8})\\.csv$'",
        )
    fmt = _str(doc, "format", file, dwhere)
    problem = format_problem(fmt)
    if problem:
        raise ConfigError(file, f"{dwhere}format", problem)
    return DeliveryDateOptions(pattern, fmt)


def _parse_missing_codes(
    doc: Any, file: Path, where: str, forms: list[FormMap], registry: Registry
) -> dict[str, str]:
    """`missing_codes: {"99": refused, ...}`. A code that is a valid answer to one of the site's
    questionnaires is refused: it would silently turn real answers into missing items."""
    if doc is None:
        return {}
    mwhere = f"{where}missing_codes"
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(
            file, mwhere, 'must map codes to reason labels, e.g. {"99": refused, "98": dont_know}'
        )
    codes: dict[str, str] = {}
    for raw_code, reason in doc.items():
        if isinstance(raw_code, bool) or not isinstance(raw_code, int | str):
            raise ConfigError(file, mwhere, f"code {raw_code!r} must be a number or a text")
        code = str(raw_code).strip()
        if not code:
            raise ConfigError(file, mwhere, "a code cannot be blank (blank is always missing)")
        if code in codes:
            raise ConfigError(file, f"{mwhere}.{code}", "is listed twice")
        if not isinstance(reason, str) or not REASON_LABEL.match(reason):
            raise ConfigError(
                file,
                f"{mwhere}.{code}",
                f"reason {reason!r} must be a lower-case label such as refused or "
                "not_applicable (letters, digits, _; at most 40 characters)",
            )
        number = _number(code)
        for form in forms:
            instrument = registry.get(form.instrument)
            if number is not None and _valid_answer(number, instrument):
                raise ConfigError(
                    file,
                    f"{mwhere}.{code}",
                    f"{code} is a valid answer to {instrument.instrument_id} "
                    f"({instrument.item_min:g}-{instrument.item_max:g}); a missing code must "
                    "lie outside every form's item range",
                )
        codes[code] = reason
    return codes


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is no number to compare with


def _valid_answer(number: float, instrument: Instrument) -> bool:
    if not instrument.item_min <= number <= instrument.item_max:
        return False
    steps = (number - instrument.item_min) / instrument.item_step
    return abs(steps - round(steps)) < 1e-9


def _parse_withdrawals(doc: Any, file: Path, where: str, fmt: str) -> WithdrawalFiles | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(file, f"{where}withdrawals", "must be a mapping")
    wwhere = f"{where}withdrawals."
    _known_keys(doc, WITHDRAWAL_KEYS, file, wwhere)
    reason = doc.get("reason_column")
    if reason is not None and not isinstance(reason, str):
        raise ConfigError(file, f"{wwhere}reason_column", "must be a column name")
    column = doc.get("column")
    if column is not None:
        column = _str(doc, "column", file, wwhere)
        if fmt != "redcap_csv":
            raise ConfigError(
                file, f"{wwhere}column", "a withdrawal column is read from REDCap exports only"
            )
    if doc.get("file_glob") is None and column is None:
        raise ConfigError(file, f"{where}withdrawals", "needs file_glob, column, or both")
    values = doc.get("values", list(WithdrawalFiles.values))
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(file, f"{wwhere}values", "must be a list of text values")
    has_files = doc.get("file_glob") is not None
    return WithdrawalFiles(
        file_glob=_confined(_str(doc, "file_glob", file, wwhere), file, f"{wwhere}file_glob")
        if has_files
        else None,
        client_code_column=_str(doc, "client_code_column", file, wwhere) if has_files else None,
        reason_column=reason,
        column=column,
        values=tuple(v.strip().lower() for v in values),
    )


def _parse_ending(doc: Any, file: Path, where: str) -> EndingOptions | None:
    """`ending: {column, planned: [...], unplanned: [...], open: [...]}`, in every format.

    planned and unplanned are required (an ending column that cannot say dropout is no use to
    the marts); open is optional. A code may sit in one list only."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(
            file, f"{where}ending", "must be a mapping: column, planned, unplanned, open"
        )
    ewhere = f"{where}ending."
    _known_keys(doc, ENDING_KEYS, file, ewhere)
    column = _str(doc, "column", file, ewhere)
    lists: dict[str, tuple[str, ...]] = {}
    for key in ENDING_TYPES:
        values = doc.get(key)
        if key == "open" and values is None:
            lists[key] = ()
            continue
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v.strip() for v in values)
        ):
            raise ConfigError(
                file,
                f"{ewhere}{key}",
                "must be a non-empty list of text values (the export's codes)",
            )
        codes = tuple(dict.fromkeys(v.strip().lower() for v in values))
        for earlier, listed in lists.items():
            overlap = sorted(set(codes) & set(listed))
            if overlap:
                raise ConfigError(
                    file,
                    f"{ewhere}{key}",
                    f"also listed as {earlier}: {overlap} (compared ignoring case)",
                )
        lists[key] = codes
    return EndingOptions(column=column, **lists)


def _parse_release(doc: Any, file: Path) -> ReleaseOptions:
    """`release: {calendar_dates: false}`: what releases may carry; every key optional."""
    if doc is None:
        return ReleaseOptions()
    if not isinstance(doc, dict):
        raise ConfigError(file, "release", "must be a mapping, e.g. {calendar_dates: false}")
    _known_keys(doc, RELEASE_KEYS, file, "release.")
    dates = doc.get("calendar_dates", False)
    if not isinstance(dates, bool):
        raise ConfigError(file, "release.calendar_dates", f"must be true or false, got {dates!r}")
    return ReleaseOptions(calendar_dates=dates)


def load_consortium(
    file: Path, registry: Registry | None = None, *, per_site: bool = False
) -> Consortium:
    """Read and validate the consortium file.

    With `per_site`, an error inside one site's section does not stop the others: that site
    lands in `broken` and fails on its own (ingest names the error), so one site's bad
    configuration never keeps the other sites' deliveries from being ingested. Errors outside
    the sites (the file itself, the scoring policy, the release options) stop everything."""
    registry = registry or default_registry()
    if not file.exists():
        raise ConfigError(file, "<file>", "does not exist (run `bordin demo` or write one)")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(file, "<yaml>", f"is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(file, "<root>", "must be a mapping")
    _known_keys(doc, ROOT_KEYS, file, "")
    sites_doc = doc.get("sites")
    if not isinstance(sites_doc, list) or not sites_doc:
        raise ConfigError(file, "sites", "must list at least one site")
    sites: dict[str, SiteConfig] = {}
    broken: dict[str, ConfigError] = {}
    for index, site_doc in enumerate(sites_doc):
        try:
            site = _parse_site(site_doc, file, registry, index)
        except ConfigError as exc:
            if not per_site:
                raise
            broken[_site_label(site_doc, index)] = exc
            continue
        if site.site_id in sites:
            raise ConfigError(file, f"sites.{site.site_id}", "is listed twice")
        sites[site.site_id] = site
    return Consortium(
        consortium_id=_str(doc, "consortium_id", file, ""),
        name=str(doc.get("name", doc["consortium_id"])),
        sites=sites,
        file=file,
        release=_parse_release(doc.get("release"), file),
        scoring_policy=parse_scoring_policy(doc.get("scoring_policy"), file, registry),
        broken=broken,
    )


def _site_label(site_doc: Any, index: int) -> str:
    """A broken site's id as the DAG maps it: its `site_id` if that much is readable."""
    site_id = site_doc.get("site_id") if isinstance(site_doc, dict) else None
    return site_id if isinstance(site_id, str) and SITE_ID.match(site_id) else f"sites[{index}]"


def sites_table(consortium: Consortium):
    """Per-site settings the marts need, as Arrow for dbt's consortium source."""
    import pyarrow as pa

    rows = [
        {
            "site_id": s.site_id,
            "site_name": s.name,
            "primary_alliance": s.primary_alliance,
            "primary_outcome": s.primary_outcome,
        }
        for s in consortium.sites.values()
    ]
    schema = pa.schema(
        [
            ("site_id", pa.string()),
            ("site_name", pa.string()),
            ("primary_alliance", pa.string()),
            ("primary_outcome", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)
