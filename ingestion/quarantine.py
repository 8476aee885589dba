"""Quarantine records: every rejected file or value with a reason a data manager can act on.

The quarantine table is restricted: it keeps the offending raw value so a site can fix it, and
raw values may be identifying, so only counts and reasons ever reach a release.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

from ingestion.intake import rules

CATEGORIES = (
    "encoding",
    "parse",
    "schema",
    "range",
    "type",
    "duplicate",
    "conflict",
    "date",
    "identity",
    "archive",
    "completeness",
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("site_id", pa.string()),
        ("source_file", pa.string()),
        ("source_sha256", pa.string()),
        ("source_row", pa.int64()),
        ("client_pid", pa.string()),
        ("column_name", pa.string()),
        ("instrument", pa.string()),
        ("rule_id", pa.string()),
        ("category", pa.string()),
        ("message", pa.string()),
        ("raw_value", pa.string()),
        ("batch_id", pa.string()),
        ("logical_date", pa.date32()),
    ]
)


@dataclass(frozen=True)
class Issue:
    """One reason one record (or a whole file, when source_row is None) was not accepted."""

    source_row: int | None
    column_name: str | None
    instrument: str | None
    rule_id: str
    category: str
    message: str
    raw_value: str | None = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown quarantine category {self.category!r}")
        if rules.rule(self.rule_id).category != self.category:
            raise ValueError(f"{self.rule_id} is catalogued under another category")

    @classmethod
    def of(
        cls,
        rule_id: str,
        source_row: int | None = None,
        column: str | None = None,
        instrument: str | None = None,
        raw_value: str | None = None,
        **fields: object,
    ) -> Issue:
        """An issue of a catalogued rule, its message filled from the rule's template."""
        rule = rules.rule(rule_id)
        return cls(
            source_row, column, instrument, rule_id, rule.category,
            rules.message(rule_id, **fields), raw_value,
        )  # fmt: skip


def to_table(
    issues: list[Issue],
    site_id: str,
    source_file: str,
    sha256: str,
    batch_id: str,
    logical_date,
    client_pids: dict[int, str] | None = None,
) -> pa.Table:
    """Rows as stored; `client_pids` (source row -> pseudonym) lets erasure find them later."""
    pids = client_pids or {}
    rows = [
        {
            **asdict(issue),
            "client_pid": pids.get(issue.source_row) if issue.source_row is not None else None,
            "site_id": site_id,
            "source_file": source_file,
            "source_sha256": sha256,
            "batch_id": batch_id,
            "logical_date": logical_date,
        }
        for issue in issues
    ]
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)
