"""dbt-duckdb source plugin: hands dbt the event log and the instrument registry.

The event log is read at the exact Delta version the build pinned (so a rebuild of an old
release sees the same events), through the files the Delta log lists. The registry is read
from the same YAML files ingestion validates against, so scoring constants have one source.
dbt-duckdb's own delta plugin is not used: it treats version 0 as "latest" and its pyarrow
reader aborts the interpreter at exit here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig

from ingestion import delta_store
from ingestion.consortium import load_consortium, sites_table
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import INTAKE_SCHEMA
from ingestion.intake.rules import rules_table
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.registry import bands_table, instruments_table, items_table, load_registry
from ingestion.settings import paths

REGISTRY_TABLES = {
    "instruments": instruments_table,
    "items": items_table,
    "severity_bands": bands_table,
}


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._config = plugin_config

    def load(self, source_config: SourceConfig) -> pa.Table:
        kind = source_config.get("kind")
        if kind == "event_log":
            return _event_log(source_config)
        if kind == "registry":
            # The registry in force: the consortium's scoring_policy applied to its defaults,
            # the same rules intake quarantined `too_many_missing` by.
            registry = load_registry()
            policy = load_consortium(paths().consortium_file, registry).scoring_policy
            return REGISTRY_TABLES[source_config.identifier](policy.apply(registry))
        if kind == "quarantine":
            return _quarantine(source_config)
        if kind == "intake":
            return _intake(source_config)
        if kind == "intake_rules":
            return rules_table()
        if kind == "consortium":
            return sites_table(load_consortium(paths().consortium_file, load_registry()))
        raise ValueError(f"source {source_config.table_name()}: unknown kind {kind!r}")

    def default_materialization(self) -> str:
        return "table"


def _pinned(source_config: SourceConfig) -> tuple[Path, int | None]:
    """The Delta table's path and the version the build pinned, from the environment the build
    sets (named in the source's meta, so the dbt project itself stays the same every night)."""
    path = Path(os.environ[source_config["path_env"]])
    pinned = os.environ.get(source_config["version_env"], "").strip()
    return path, int(pinned) if pinned else None


def _event_log(source_config: SourceConfig) -> pa.Table:
    path, version = _pinned(source_config)
    # A fixed row order: floating-point sums depend on the order they add up in, and the
    # Delta files' own order (random names) must not leak into published bits.
    table = delta_store.read(path, EVENT_SCHEMA, version)
    return table.sort_by([("site_id", "ascending"), ("site_seq", "ascending")])


# Never loaded into the warehouse: the offending raw value (may be identifying), the client's
# pseudonym (a quarantine count per client would say who had problems), the delivered file's name
# (sites name files freely) and the data manager's message, which quotes the offending cell and
# so can carry any text a site typed. The marts say what happened from the rule id, the column
# and the position instead (stg_quarantine__records); the full message stays restricted.
QUARANTINE_HIDDEN = ("raw_value", "client_pid", "source_file", "message")


def _quarantine(source_config: SourceConfig) -> pa.Table:
    path, version = _pinned(source_config)
    table = delta_store.read(path, QUARANTINE_SCHEMA, version)
    table = table.drop_columns(list(QUARANTINE_HIDDEN))
    keys = ["site_id", "source_sha256", "source_row", "rule_id", "column_name", "instrument"]
    return table.sort_by([(k, "ascending") for k in keys])


# Never loaded into the warehouse: the delivered file's name (sites name exports freely, and a
# name can carry a participant's name or a date). A file is known by its SHA-256 instead.
INTAKE_HIDDEN = ("source_file",)


def _intake(source_config: SourceConfig) -> pa.Table:
    """Per-file intake counts (restricted/intake) at the pinned version, without file names."""
    path, version = _pinned(source_config)
    table = delta_store.read(path, INTAKE_SCHEMA, version)
    table = table.drop_columns(list(INTAKE_HIDDEN))
    keys = ["site_id", "source_sha256", "batch_id"]
    return table.sort_by([(k, "ascending") for k in keys])
