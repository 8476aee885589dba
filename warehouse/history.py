"""Every version of a client's administrations: what changed, when, from which file and why."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ingestion import delta_store
from ingestion.consortium import load_consortium
from ingestion.pseudonyms import load_key
from ingestion.settings import Paths, paths


@dataclass(frozen=True)
class Version:
    site_seq: int
    event_type: str
    session_number: int | None
    instrument: str | None
    rater_role: str | None
    items: list[float | None] | None
    changed_items: dict[int, tuple[float | None, float | None]]
    session_date: str | None
    logical_date: str
    ingested_at: str
    source_file: str | None
    source_row: int | None
    actor: str
    reason: str | None


def client_history(
    site_id: str,
    client_code: str,
    *,
    session: int | None = None,
    instrument: str | None = None,
    where: Paths | None = None,
) -> list[Version]:
    """Versions in the site's event order; `changed_items` maps item number to (old, new)."""
    where = where or paths()
    load_consortium(where.consortium_file).site(site_id)  # validates the site id
    pid = load_key().pseudonym(site_id, "client", client_code)
    if not delta_store.exists(where.event_log):
        return []
    files = delta_store.data_files(where.event_log)
    con = duckdb.connect()
    try:
        rows = con.execute(
            """
            SELECT site_seq, event_type, session_number, instrument, rater_role, items,
                   CAST(session_date AS VARCHAR), CAST(logical_date AS VARCHAR),
                   strftime(ingested_at, '%Y-%m-%dT%H:%M:%SZ'), source_file, source_row,
                   actor, reason
            FROM read_parquet(?, union_by_name = true)
            WHERE site_id = ? AND client_pid = ?
              AND (? IS NULL OR session_number = ?) AND (? IS NULL OR instrument = ?)
            ORDER BY site_seq
            """,
            [files, site_id, pid, session, session, instrument, instrument],
        ).fetchall()
    finally:
        con.close()
    previous: dict[tuple, list[float | None] | None] = {}
    versions = []
    for row in rows:
        seq, etype, sess, inst, role, items = row[:6]
        key = (sess, inst, role)
        old = previous.get(key)
        changed = {}
        if old is not None and items is not None:
            changed = {
                n: (a, b) for n, (a, b) in enumerate(zip(old, items, strict=False), 1) if a != b
            }
        if inst is not None:
            previous[key] = items
        versions.append(Version(seq, etype, sess, inst, role, items, changed, *row[6:]))
    return versions


def format_history(versions: list[Version]) -> str:
    if not versions:
        return "no events for this client"
    lines = []
    for v in versions:
        what = f"session {v.session_number} {v.instrument} ({v.rater_role})" if v.instrument else ""
        lines.append(f"#{v.site_seq:<5} {v.logical_date} {v.event_type:<19} {what}".rstrip())
        lines.append(
            f"       from {v.source_file} row {v.source_row}, by {v.actor}, at {v.ingested_at}"
        )
        if v.reason:
            lines.append(f"       why: {v.reason}")
        if v.changed_items:
            for n, (old, new) in sorted(v.changed_items.items()):
                lines.append(f"       item {n}: {old} -> {new}")
        elif v.items is not None:
            lines.append(f"       items: {v.items}")
    return "\n".join(lines)
