"""`bordin config check`: the consortium file validated, then each site dry-run on its newest
delivery, so a data manager sees what tonight would do before it is done.

The dry run is the real ingestion (`ingest_site`) into a throwaway data root outside
$BORDIN_HOME, with a throwaway pseudonym key: nothing is written to the data root and no key is
needed. What it prints holds counts, rule ids, row numbers and column names only, never a raw
cell value (a quarantined cell may be identifying).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from ingestion import delta_store
from ingestion.consortium import Consortium, SiteConfig, load_consortium
from ingestion.deliveries import Found, list_inbox
from ingestion.ingest import ingest_site
from ingestion.intake import rules
from ingestion.pseudonyms import PseudonymKey
from ingestion.registry import Registry, default_registry
from ingestion.reprocess import deliver
from ingestion.settings import Paths, paths


@dataclass(frozen=True)
class RuleExample:
    rule_id: str
    records: int
    row: int | None  # the first record's row (None: the whole file)
    column: str | None


@dataclass
class SiteCheck:
    site_id: str
    files: dict[str, int] = field(default_factory=dict)  # kind -> files in the inbox
    newest: str | None = None  # the export dry-run
    status: str | None = None  # ingested | rejected | waiting
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    not_administered: int = 0
    by_rule: list[RuleExample] = field(default_factory=list)
    error: str | None = None  # the dry run itself failed (one line)


def check_consortium(
    logical_date: date, where: Paths | None = None, registry: Registry | None = None
) -> tuple[Consortium, list[SiteCheck]]:
    """Load (and so validate: a ConfigError names file, site, key and problem) the consortium
    file, then dry-run every site; one site's failure is reported and the others still run."""
    where = where or paths()
    registry = registry or default_registry()
    consortium = load_consortium(where.consortium_file, registry)
    checks = []
    for site_id in sorted(consortium.sites):
        site = consortium.site(site_id)
        check = SiteCheck(site_id)
        try:
            _dry_run(check, site, consortium, registry, where, logical_date)
        except Exception as exc:  # noqa: BLE001 - reported per site, never fails the others
            check.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        checks.append(check)
    return consortium, checks


def newest_export(found: list[Found]) -> Found | None:
    """The export delivered last: latest modification time, then name."""
    exports = [f for f in found if f.kind == "export" and f.refused is None]
    return max(exports, key=lambda f: (f.path.stat().st_mtime, f.name), default=None)


def _dry_run(
    check: SiteCheck,
    site: SiteConfig,
    consortium: Consortium,
    registry: Registry,
    where: Paths,
    logical_date: date,
) -> None:
    inbox = where.inbox_for(site.site_id)
    found = list_inbox(site, inbox)
    check.files = dict(Counter("unreadable" if f.refused else f.kind for f in found))
    newest = newest_export(found)
    if newest is None:
        return
    check.newest = newest.name
    with tempfile.TemporaryDirectory(prefix="bordin-config-check-") as folder:
        shadow = Paths(Path(folder))
        dictionaries = [f for f in found if f.kind == "data_dictionary" and f.refused is None]
        deliver([*dictionaries, newest], site, inbox, shadow.inbox_for(site.site_id))
        result = ingest_site(
            site.site_id,
            logical_date,
            where=shadow,
            consortium=consortium,
            registry=registry,
            key=PseudonymKey(os.urandom(32)),  # thrown away with the dry run
        )
        outcome = next(f for f in result.files if f.source_file == newest.name)
        check.status = outcome.status
        check.rows, check.accepted = outcome.rows_in, outcome.accepted
        check.quarantined, check.not_administered = outcome.quarantined, outcome.not_administered
        check.by_rule = _examples(shadow.quarantine, newest.name)


def _examples(table: Path, source_file: str) -> list[RuleExample]:
    """Records per rule with the first one's row and column (never its value)."""
    if not delta_store.exists(table) or not (files := delta_store.data_files(table)):
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(
            """
            SELECT rule_id, count(*) OVER (PARTITION BY rule_id), source_row, column_name
            FROM read_parquet($files, union_by_name = true)
            WHERE source_file = $file
            QUALIFY row_number() OVER (PARTITION BY rule_id
                                       ORDER BY source_row NULLS FIRST, column_name) = 1
            ORDER BY rule_id
            """,
            {"files": files, "file": source_file},
        ).fetchall()
    finally:
        con.close()
    return [RuleExample(rule, int(n), row, column) for rule, n, row, column in rows]


def format_checks(path: Path, checks: list[SiteCheck]) -> list[str]:
    """The report `bordin config check` prints."""
    lines = [f"{path}: valid ({len(checks)} sites)"]
    for c in checks:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(c.files.items())) or "none"
        lines.append(f"site {c.site_id}: files found: {found}")
        if c.error:
            lines.append(f"  dry run FAILED: {c.error}")
            continue
        if c.newest is None:
            lines.append("  no export to dry-run")
            continue
        lines.append(
            f"  newest delivery {c.newest} ({c.status}): {c.rows} rows; administrations "
            f"{c.accepted} accepted, {c.quarantined} quarantined, "
            f"{c.not_administered} not administered"
        )
        for e in c.by_rule:
            where = "whole file" if e.row is None else f"row {e.row}"
            if e.column:
                where += f", column {e.column}"
            lines.append(
                f"    {e.rule_id}: {e.records} (e.g. {where}) - {rules.rule(e.rule_id).summary}"
            )
    return lines
