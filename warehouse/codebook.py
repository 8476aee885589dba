"""The release codebook: every mart and column with type, description, allowed values, units
and, for columns computed from an instrument, the registry's citations.

Why it is read from dbt's manifest.json: the descriptions and tests live in one place
(`dbt_project/models/marts/_marts__models.yml`) and the manifest holds them as dbt resolved
them. The build writes the manifest next to the warehouse, so a rebuild reads the same text.
Allowed values come from a column's `accepted_values` test or, for a column that declares a
registry field (`config: {meta: {registry: {field, construct}}}` in the yml), from the
instrument registry the build scored with, as do its units and provenance.

One codebook feeds every rendering: `COMMENT ON` in marts.duckdb, Parquet field metadata,
codebook.csv / codebook.html (warehouse/codebook_files.py) and the exports' labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingestion.registry import Instrument, Registry

CONSTRUCTS = ("alliance", "outcome")
# Parquet field / schema metadata keys a release writes (read back by warehouse/exports.py).
DESCRIPTION_KEY = b"description"
ALLOWED_VALUES_KEY = b"allowed_values"


class CodebookError(RuntimeError):
    """A mart or column lacks the documentation a release promises: nothing is published."""


@dataclass(frozen=True)
class Citation:
    instrument: str
    topic: str  # the registry's provenance key, e.g. scoring_and_bands
    text: str


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str  # the DuckDB type in the release
    description: str
    allowed_values: tuple[str, ...] = ()
    units: str = ""
    provenance: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class TableDoc:
    name: str
    description: str
    columns: tuple[ColumnDoc, ...]

    def column(self, name: str) -> ColumnDoc:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Codebook:
    tables: tuple[TableDoc, ...]
    instruments: tuple[Instrument, ...]  # the registry, for the codebook's instrument list

    def table(self, name: str) -> TableDoc:
        return next(t for t in self.tables if t.name == name)


def _ranges(instruments: Sequence[Instrument]) -> str:
    spans = ", ".join(f"{i.instrument_id} {i.total_min:g}-{i.total_max:g}" for i in instruments)
    return f"points on the instrument's total scale: {spans}" if spans else ""


def _ids(instruments: Sequence[Instrument]) -> tuple[str, ...]:
    return tuple(i.instrument_id for i in instruments)


def _bands(instruments: Sequence[Instrument]) -> tuple[str, ...]:
    """Every instrument's band names, each kept after its own lower neighbour (mild before
    moderate before moderately_severe before severe)."""
    merged: list[str] = []
    for instrument in instruments:
        previous = -1
        for band in instrument.severity_bands:
            if band.band not in merged:
                merged.insert(previous + 1, band.band)
            previous = merged.index(band.band)
    return tuple(merged)


@dataclass(frozen=True)
class RegistryField:
    """What a registry field tells the codebook: the provenance topics that cite it (a
    provenance key cites a topic when one of its `_and_` parts equals it) and, where the
    registry defines them, the column's allowed values and units."""

    topics: tuple[str, ...]
    allowed: Callable[[Sequence[Instrument]], tuple[str, ...]] | None = None
    units: Callable[[Sequence[Instrument]], str] | None = None


REGISTRY_FIELDS: dict[str, RegistryField] = {
    "instrument": RegistryField(("scoring", "items"), allowed=_ids),
    "score": RegistryField(("scoring", "items"), units=_ranges),
    "subscale": RegistryField(("subscales",)),
    "severity_band": RegistryField(("bands",), allowed=_bands),
    "caseness": RegistryField(("caseness",)),
    "reliable_change": RegistryField(("reliable_change",)),
    "jacobson_truax": RegistryField(("jacobson_truax",)),
    "alliance_concern": RegistryField(("alliance_concern",)),
    "nhs_talking_therapies": RegistryField(("nhs_talking_therapies",)),
}


def _cites(key: str, topics: Sequence[str]) -> bool:
    return key in topics or any(part in topics for part in key.split("_and_"))


def _registry_doc(
    table: str, column: str, declared: object, registry: Registry
) -> tuple[tuple[str, ...], str, tuple[Citation, ...]]:
    where = f"{table}.{column}: config.meta.registry"
    if not isinstance(declared, dict) or set(declared) != {"field", "construct"}:
        raise CodebookError(f"{where} must be {{field, construct}}, got {declared!r}")
    field, construct = declared["field"], declared["construct"]
    if field not in REGISTRY_FIELDS:
        raise CodebookError(f"{where}.field {field!r} is not one of {sorted(REGISTRY_FIELDS)}")
    if construct not in CONSTRUCTS:
        raise CodebookError(f"{where}.construct {construct!r} is not one of {CONSTRUCTS}")
    rule = REGISTRY_FIELDS[field]
    instruments = [
        registry.instruments[i]
        for i in sorted(registry.instruments)
        if registry.instruments[i].construct == construct
    ]
    citations = tuple(
        Citation(i.instrument_id, key, " ".join(str(text).split()))
        for i in instruments
        for key, text in sorted(i.provenance.items())
        if _cites(key, rule.topics)
    )
    allowed = rule.allowed(instruments) if rule.allowed else ()
    units = rule.units(instruments) if rule.units else ""
    return allowed, units, citations


def _accepted_values(manifest: dict) -> dict[tuple[str, str], tuple[str, ...]]:
    """(model unique id, column) -> values of the column's accepted_values test."""
    found = {}
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        if node.get("resource_type") == "test" and test.get("name") == "accepted_values":
            values = tuple(str(v) for v in test["kwargs"]["values"])
            found[(node["attached_node"], node["column_name"])] = values
    return found


def _model(manifest: dict, table: str) -> dict:
    for node in manifest["nodes"].values():
        if node.get("resource_type") == "model" and node.get("alias", node["name"]) == table:
            return node
    raise CodebookError(f"mart {table} is not a model in dbt's manifest")


def build_codebook(
    dbt_manifest: dict, tables: dict[str, list[tuple[str, str]]], registry: Registry
) -> Codebook:
    """The codebook of `tables` (mart -> [(column, DuckDB type)], in release order)."""
    accepted = _accepted_values(dbt_manifest)
    docs = []
    for table, columns in tables.items():
        model = _model(dbt_manifest, table)
        if not model.get("description", "").strip():
            raise CodebookError(f"mart {table} has no description in its dbt yml")
        documented = model.get("columns", {})
        entries = []
        for name, kind in columns:
            doc = documented.get(name) or {}
            description = " ".join(str(doc.get("description", "")).split())
            if not description:
                raise CodebookError(f"column {table}.{name} has no description in its dbt yml")
            meta = (doc.get("config") or {}).get("meta") or doc.get("meta") or {}
            allowed, units, citations = (), "", ()
            if "registry" in meta:
                allowed, units, citations = _registry_doc(table, name, meta["registry"], registry)
            allowed = accepted.get((model["unique_id"], name), allowed)
            entries.append(ColumnDoc(name, kind, description, allowed, units, citations))
        description = " ".join(model["description"].split())
        docs.append(TableDoc(table, description, tuple(entries)))
    instruments = tuple(registry.instruments[i] for i in sorted(registry.instruments))
    return Codebook(tuple(docs), instruments)


def read_dbt_manifest(path: Path) -> dict:
    if not path.is_file():
        raise CodebookError(f"no dbt manifest at {path}: the build's dbt artifacts are missing")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- renderings


def field_metadata(column: ColumnDoc) -> dict[bytes, bytes]:
    """Parquet (Arrow) field metadata: the description, and the allowed values as JSON."""
    meta = {DESCRIPTION_KEY: column.description.encode("utf-8")}
    if column.allowed_values:
        meta[ALLOWED_VALUES_KEY] = json.dumps(list(column.allowed_values)).encode("utf-8")
    return meta


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_statements(table: TableDoc, schema: str = "main") -> list[str]:
    """`COMMENT ON` the table and each column, as DuckDB shows them in duckdb_tables() and
    duckdb_columns()."""
    qualified = f'{schema}."{table.name}"'
    statements = [f"COMMENT ON TABLE {qualified} IS {_literal(table.description)}"]
    statements += [
        f'COMMENT ON COLUMN {qualified}."{c.name}" IS {_literal(c.description)}'
        for c in table.columns
    ]
    return statements
