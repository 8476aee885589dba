"""The consortium file: which sites deliver what, in which format, mapped how.

Validated on load against the instrument registry, so a typo in a site's column map stops the
run with the file, site and key named, instead of silently dropping a questionnaire.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingestion.arrival import ArrivalOptions
from ingestion.config_errors import ConfigError
from ingestion.deliveries import glob_problem
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
)
FORM_KEYS = ("instrument", "rater_role", "item_column_template")
QUALTRICS_KEYS = ("import_ids", "unfinished", "min_progress", "encoding", "drop_columns")
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
ENDING_KEYS = ("column", "planned", "unplanned")
RELEASE_KEYS = ("calendar_dates",)
SPSS_KEYS = ("event_from_labels",)
ARRIVAL_KEYS = ("quiet_period_seconds", "completion_marker", "final_newline")
REQUIRED_FIELD_KEYS = ("therapist_code", "session_date")


@dataclass(frozen=True)
class FormMap:
    """Where one questionnaire's items sit in a site's export."""

    instrument: str
    rater_role: str
    item_column_template: str

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
    """How a REDCap export says how an episode ended: a column whose value is one of the site's
    planned or unplanned codes (compared case-insensitively after stripping; stored lowered).
    A blank cell, or a value in neither list, means the ending is not known from that row."""

    column: str
    planned: tuple[str, ...]
    unplanned: tuple[str, ...]

    def classify(self, value: str | None) -> str | None:
        """'planned', 'unplanned', or None (blank or not one of the site's codes)."""
        text = (value or "").strip().lower()
        if not text:
            return None
        if text in self.planned:
            return "planned"
        if text in self.unplanned:
            return "unplanned"
        return None


@dataclass(frozen=True)
class RedcapOptions:
    """REDCap per-form status: `<form>_complete` is 0 Incomplete, 1 Unverified, 2 Complete."""

    # instrument id -> its status column, e.g. {wai_sr: alliance_complete}. Forms not listed
    # are taken whatever their status (the behaviour without this section).
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
    # A response that is not Finished: quarantined with a reason, or skipped and counted as
    # not administered.
    unfinished: str = "quarantine"
    # When set, a response with Progress >= this counts even if not Finished.
    min_progress: float | None = None
    encoding: str = "utf-8-sig"
    # Further columns (by header name or ImportId) dropped like the identifying metadata.
    drop_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class LongCsvOptions:
    """A feedback-system long table: one row per measure per session, pivoted to wide."""

    measure_column: str
    # Value in the measure column -> instrument id (one of the site's forms).
    measures: dict[str, str]
    # Where item scores sit in the long file, e.g. "item_{n}".
    item_column_template: str
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
    # REDCap only: the column coding how the client's episode ended (planned / unplanned).
    ending: EndingOptions | None = None
    spss: SpssOptions | None = None
    # Item cell text -> reason label (e.g. {"99": "refused"}): such a cell is a missing item
    # (never a value, never out of range) whose reason is kept in the event's `item_missing`.
    # Compared on the stripped text and, for numeric codes, on the number ("99.0" is 99).
    missing_codes: dict[str, str] = field(default_factory=dict)
    arrival: ArrivalOptions = field(default_factory=ArrivalOptions)
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

    def site(self, site_id: str) -> SiteConfig:
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
    forms = []
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
        forms.append(FormMap(instrument, role, template))
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
    ending = _parse_ending(doc.get("ending"), file, where, fmt)
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
    if inner == "redcap_csv" and doc.get("redcap") is not None:
        redcap = _parse_redcap(doc["redcap"], file, where, forms)
    elif doc.get("redcap") is not None:
        raise ConfigError(file, f"{where}redcap", f"is not read for format {inner}")
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
        required_fields=_parse_required_fields(doc.get("required_fields"), file, where),
    )


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
            mapped[column.lower()] = f"forms[{form.instrument}]"
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
    doc = _mapping(doc, file, f"{where}qualtrics", "import_ids, unfinished, min_progress")
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
    progress = doc.get("min_progress")
    if progress is not None and (
        isinstance(progress, bool)
        or not isinstance(progress, int | float)
        or not 0 < progress <= 100
    ):
        raise ConfigError(file, f"{qwhere}min_progress", "must be a percentage in 1..100")
    return QualtricsOptions(
        import_ids={str(k): str(v) for k, v in ids.items()},
        unfinished=unfinished,
        min_progress=None if progress is None else float(progress),
        encoding=_choice(doc, "encoding", ENCODINGS, "utf-8-sig", file, qwhere),
        drop_columns=_names(doc, "drop_columns", file, qwhere),
    )


def _parse_redcap(doc: Any, file: Path, where: str, forms: list[FormMap]) -> RedcapOptions:
    doc = _mapping(doc, file, f"{where}redcap", "status_columns, accept_unverified")
    rwhere = f"{where}redcap."
    _known_keys(doc, REDCAP_KEYS, file, rwhere)
    status = doc.get("status_columns", {})
    if not isinstance(status, dict):
        raise ConfigError(file, f"{rwhere}status_columns", "must map instrument ids to columns")
    instruments = {f.instrument for f in forms}
    for instrument, column in status.items():
        if instrument not in instruments:
            raise ConfigError(
                file,
                f"{rwhere}status_columns.{instrument}",
                f"{instrument!r} is not among this site's forms ({', '.join(sorted(instruments))})",
            )
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(
                file, f"{rwhere}status_columns.{instrument}", "must name a <form>_complete column"
            )
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
    return RedcapOptions({str(k): str(v) for k, v in status.items()}, unverified, dictionary)


def _parse_long_csv(doc: Any, file: Path, where: str, forms: list[FormMap]) -> LongCsvOptions:
    doc = _mapping(doc, file, f"{where}long_csv", "measure_column, measures, item_column_template")
    lwhere = f"{where}long_csv."
    _known_keys(doc, LONG_CSV_KEYS, file, lwhere)
    measure_column = _str(doc, "measure_column", file, lwhere)
    template = _str(doc, "item_column_template", file, lwhere)
    if "{n}" not in template:
        raise ConfigError(file, f"{lwhere}item_column_template", "must contain {n}")
    measures = doc.get("measures")
    if not isinstance(measures, dict) or not measures:
        raise ConfigError(
            file, f"{lwhere}measures", "must map measure names in the file to instrument ids"
        )
    by_instrument: dict[str, int] = {}
    for form in forms:
        by_instrument[form.instrument] = by_instrument.get(form.instrument, 0) + 1
    for label, instrument in measures.items():
        if instrument not in by_instrument:
            raise ConfigError(
                file,
                f"{lwhere}measures.{label}",
                f"{instrument!r} is not among this site's forms ({', '.join(by_instrument)})",
            )
        if by_instrument[instrument] > 1:
            raise ConfigError(
                file,
                f"{lwhere}measures.{label}",
                f"{instrument!r} has several forms at this site; "
                "a long table cannot tell them apart",
            )
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
        measures={str(k): str(v) for k, v in measures.items()},
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


def _parse_ending(doc: Any, file: Path, where: str, fmt: str) -> EndingOptions | None:
    """`ending: {column, planned: [...], unplanned: [...]}`; REDCap exports only."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(file, f"{where}ending", "must be a mapping: column, planned, unplanned")
    ewhere = f"{where}ending."
    if fmt != "redcap_csv":
        raise ConfigError(
            file, f"{where}ending", f"an ending column is read from REDCap exports only, not {fmt}"
        )
    _known_keys(doc, ENDING_KEYS, file, ewhere)
    column = _str(doc, "column", file, ewhere)
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("planned", "unplanned"):
        values = doc.get(key)
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
        lists[key] = tuple(dict.fromkeys(v.strip().lower() for v in values))
    overlap = sorted(set(lists["planned"]) & set(lists["unplanned"]))
    if overlap:
        raise ConfigError(
            file,
            f"{ewhere}unplanned",
            f"also listed as planned: {overlap} (compared ignoring case)",
        )
    return EndingOptions(column=column, planned=lists["planned"], unplanned=lists["unplanned"])


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


def load_consortium(file: Path, registry: Registry | None = None) -> Consortium:
    """Read and validate the consortium file."""
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
    for index, site_doc in enumerate(sites_doc):
        site = _parse_site(site_doc, file, registry, index)
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
    )


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
