"""The consortium file: which sites deliver what, in which format, mapped how.

Validated on load against the instrument registry, so a typo in a site's column map stops the
run with the file, site and key named, instead of silently dropping a questionnaire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingestion.config_errors import ConfigError
from ingestion.registry import Registry, default_registry

SITE_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
FORMATS = {"redcap_csv"}
DELIVERY_MODES = {"snapshot", "incremental"}
REQUIRED_COLUMNS = ("client_code", "therapist_code", "session_date", "event")


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
    """Where a site delivers consent withdrawals: a small CSV, one client code per row."""

    file_glob: str
    client_code_column: str
    reason_column: str | None


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
    # treated as a broken export and rejected whole instead.
    max_retraction_fraction: float = 0.5
    withdrawals: WithdrawalFiles | None = None


@dataclass(frozen=True)
class Consortium:
    consortium_id: str
    name: str
    sites: dict[str, SiteConfig]
    file: Path

    def site(self, site_id: str) -> SiteConfig:
        if site_id not in self.sites:
            raise KeyError(f"site {site_id!r} is not configured in {self.file}")
        return self.sites[site_id]


def _str(doc: dict[str, Any], key: str, file: Path, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(file, f"{where}{key}", f"must be a non-empty string, got {value!r}")
    return value


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
    fmt = _str(doc, "format", file, where)
    if fmt not in FORMATS:
        raise ConfigError(file, f"{where}format", f"must be one of {sorted(FORMATS)}, got {fmt!r}")
    columns = doc.get("columns")
    if not isinstance(columns, dict):
        raise ConfigError(file, f"{where}columns", "must map roles to column names")
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
    fraction = doc.get("max_retraction_fraction", 0.5)
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise ConfigError(file, f"{where}max_retraction_fraction", "must be a number in 0..1")
    withdrawals = _parse_withdrawals(doc.get("withdrawals"), file, where)
    return SiteConfig(
        site_id=site_id,
        name=str(doc.get("name", site_id)),
        format=fmt,
        file_glob=str(doc.get("file_glob", "*.csv")),
        columns={str(k): str(v) for k, v in columns.items()},
        session_event_pattern=pattern,
        date_format=str(doc.get("date_format", "%Y-%m-%d")),
        forms=tuple(forms),
        primary_alliance=doc["primary_alliance"],
        primary_outcome=doc["primary_outcome"],
        delivery=delivery,
        max_retraction_fraction=float(fraction),
        withdrawals=withdrawals,
    )


def _parse_withdrawals(doc: Any, file: Path, where: str) -> WithdrawalFiles | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(file, f"{where}withdrawals", "must be a mapping")
    wwhere = f"{where}withdrawals."
    reason = doc.get("reason_column")
    if reason is not None and not isinstance(reason, str):
        raise ConfigError(file, f"{wwhere}reason_column", "must be a column name")
    return WithdrawalFiles(
        file_glob=_str(doc, "file_glob", file, wwhere),
        client_code_column=_str(doc, "client_code_column", file, wwhere),
        reason_column=reason,
    )


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
