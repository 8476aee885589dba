"""The site's REDCap data dictionary: which fields identify a person, and do the items fit.

REDCap's "Data Dictionary" CSV has 18 columns; Bordin reads four of them by name:
`Variable / Field Name`, `Field Type`, `Text Validation Min`, `Text Validation Max`, plus
`Choices, Calculations, OR Slider Labels` (for radio / dropdown items without Min/Max) and
`Identifier?` (y = a direct identifier).

With `redcap.data_dictionary_glob` configured, the newest matching dictionary (last in name
order) next to the export, or inside the same zip, is read before the export:
- every `Identifier? = y` field is dropped from the export as its header is read (the REDCap
  reader passes mapped columns on only, so it never reaches validation, quarantine or events);
- a mapped field other than the client and therapist codes (which are pseudonymized) that is
  marked as an identifier, a configured item field missing from the dictionary, or an item
  whose Min/Max (or choice codes) differ from the registry's item range, rejects the export
  with one file-level schema issue naming the fields.
The dictionary file itself is never ingested as an export (see ingest.py::_ingest_export).
"""

from __future__ import annotations

import csv
import fnmatch
import io
from dataclasses import dataclass
from pathlib import Path

from ingestion.consortium import SiteConfig
from ingestion.deliveries import list_inbox
from ingestion.quarantine import Issue
from ingestion.registry import Registry

FIELD = "Variable / Field Name"
FIELD_TYPE = "Field Type"
CHOICES = "Choices, Calculations, OR Slider Labels"
MIN, MAX = "Text Validation Min", "Text Validation Max"
IDENTIFIER = "Identifier?"
NEEDED = (FIELD, FIELD_TYPE, MIN, MAX, IDENTIFIER)


@dataclass(frozen=True)
class DictField:
    name: str
    field_type: str
    minimum: str
    maximum: str
    choices: str
    identifier: bool


@dataclass(frozen=True)
class Dictionary:
    source: str
    fields: dict[str, DictField]

    @property
    def identifiers(self) -> set[str]:
        return {f.name for f in self.fields.values() if f.identifier}


def is_dictionary(name: str, site: SiteConfig) -> bool:
    glob = site.data_dictionary_glob
    return bool(glob) and fnmatch.fnmatch(name, glob)


def find_dictionary(folder: Path, site: SiteConfig) -> Path | None:
    """The newest (last by name) dictionary delivered into the folder, if configured."""
    glob = site.data_dictionary_glob
    if not glob or not folder.is_dir():
        return None
    # Never a link (or a match behind one): ingestion refuses those unread (file.symlink).
    found = [
        f.path for f in list_inbox(site, folder) if f.kind == "data_dictionary" and not f.refused
    ]
    return found[-1] if found else None


def _issue(message: str, column: str | None = None) -> Issue:
    return Issue(None, column, None, "file.data_dictionary", "schema", message)


def parse_dictionary(raw: bytes, source: str) -> Dictionary | Issue:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Issue(
            None,
            None,
            None,
            "file.data_dictionary_encoding",
            "encoding",
            f"data dictionary {source} is not UTF-8 (byte {exc.start}); "
            "download it from REDCap again",
        )
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    except csv.Error as exc:
        return _issue(f"data dictionary {source} is not a readable CSV: {exc}")
    missing = [c for c in NEEDED if c not in header]
    if missing:
        return _issue(
            f"data dictionary {source} lacks the column(s) {', '.join(missing)}: "
            "deliver REDCap's Data Dictionary CSV unchanged",
            ", ".join(missing),
        )
    fields = {}
    for row in rows:
        name = (row.get(FIELD) or "").strip()
        if not name:
            continue
        fields[name] = DictField(
            name=name,
            field_type=(row.get(FIELD_TYPE) or "").strip().lower(),
            minimum=(row.get(MIN) or "").strip(),
            maximum=(row.get(MAX) or "").strip(),
            choices=(row.get(CHOICES) or "").strip(),
            identifier=(row.get(IDENTIFIER) or "").strip().lower() == "y",
        )
    return Dictionary(source, fields)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _range(entry: DictField) -> tuple[float | None, float | None]:
    """The field's declared range: validation Min/Max, else the codes of its choices."""
    low, high = _number(entry.minimum), _number(entry.maximum)
    if (
        (low is None or high is None)
        and entry.choices
        and entry.field_type in ("radio", "dropdown")
    ):
        codes = [_number(c.split(",", 1)[0].strip()) for c in entry.choices.split("|")]
        numbers = [c for c in codes if c is not None]
        if numbers:
            low = min(numbers) if low is None else low
            high = max(numbers) if high is None else high
    return low, high


def check_export(dictionary: Dictionary, site: SiteConfig, registry: Registry) -> Issue | None:
    """One file-level schema issue naming every configured field at odds with the dictionary."""
    problems: list[str] = []
    fields: list[str] = []
    pseudonymized = {site.columns["client_code"], site.columns["therapist_code"]}
    for role in ("session_date", "event"):
        column = site.columns[role]
        if column in dictionary.identifiers and column not in pseudonymized:
            problems.append(f"{column} (mapped as {role}) is marked Identifier? = y")
            fields.append(column)
    for form in site.forms:
        instrument = registry.get(form.instrument)
        for column in form.item_columns(instrument.items):
            entry = dictionary.fields.get(column)
            if entry is None:
                problems.append(f"{column} ({form.instrument}) is not in the data dictionary")
                fields.append(column)
                continue
            if entry.identifier:
                problems.append(f"{column} ({form.instrument}) is marked Identifier? = y")
                fields.append(column)
            low, high = _range(entry)
            if low is None or high is None:
                continue
            if (low, high) != (instrument.item_min, instrument.item_max):
                problems.append(
                    f"{column} ({form.instrument}) has range {low:g}-{high:g} in the data "
                    f"dictionary, the registry says {instrument.item_min:g}-"
                    f"{instrument.item_max:g}"
                )
                fields.append(column)
    if not problems:
        return None
    return _issue(
        f"the export does not match the data dictionary {dictionary.source}: "
        + "; ".join(problems)
        + " (wrong instrument version, a changed REDCap project, or the site's column map "
        "is out of date)",
        ", ".join(fields),
    )
