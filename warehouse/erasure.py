"""`bordin erase`: remove one client's data from the store, history included, with a record.

What is removed: the client's events from the event log and its quarantine records, physically
(the Delta files that held them are rewritten and the old files deleted, so older log versions
no longer carry the payload), the client's rows in the site's inbox exports, and the current
build. What stays: an erasure record in the event log saying what was erased, when, by whom
and why, with the client's keyed pseudonym as a tombstone so that a re-delivered export cannot
bring the data back. Older releases are immutable files; the command lists the ones that hold
the client so the data manager can withdraw them.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion import audit, delta_store
from ingestion.consortium import SiteConfig, load_consortium
from ingestion.events import CLIENT_ERASED, EVENT_SCHEMA, SCHEMA_VERSION, event_id
from ingestion.ingest import INTAKE_SCHEMA, sha256_file
from ingestion.locks import exclusive_lock
from ingestion.pseudonyms import load_key
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths, paths
from ingestion.site_state import SiteState

PID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ErasureReport:
    site_id: str
    client_pid: str
    events_removed: int = 0
    quarantine_records_removed: int = 0
    inbox_rows_removed: int = 0
    files_purged: int = 0
    releases_holding_client: list[str] = field(default_factory=list)
    record_event_id: str | None = None


def erase_client(
    site_id: str,
    client_code: str,
    *,
    reason: str,
    operator: str,
    on: date | None = None,
    where: Paths | None = None,
) -> ErasureReport:
    where = where or paths()
    if not reason.strip() or not operator.strip():
        raise ValueError("an erasure needs a reason and the operator's name")
    site = load_consortium(where.consortium_file).site(site_id)
    pid = load_key().pseudonym(site_id, "client", client_code)
    assert PID.match(pid) and re.match(r"^[a-z][a-z0-9_]{1,31}$", site_id)
    report = ErasureReport(site_id, pid)
    predicate = f"site_id = '{site_id}' AND client_pid = '{pid}'"
    metadata = {"bordin.erasure": f"{site_id}:{pid}", "bordin.operator": operator}
    with exclusive_lock(where.locks / f"{site_id}.lock", wait=True):
        report.events_removed = _count(where.event_log, EVENT_SCHEMA, predicate)
        report.quarantine_records_removed = _count(where.quarantine, QUARANTINE_SCHEMA, predicate)
        for table, n in (
            (where.event_log, report.events_removed),
            (where.quarantine, report.quarantine_records_removed),
        ):
            if n:
                delta_store.delete_rows(table, predicate, metadata)
                report.files_purged += len(delta_store.purge_unreferenced_files(table))
        report.inbox_rows_removed = _redact_inbox(site, client_code, where)
        report.record_event_id = _record(site_id, pid, report, reason, operator, on, where)
    for stale in (where.build_db, where.build_dir / "gate_result.json"):
        stale.unlink(missing_ok=True)
    report.releases_holding_client = _releases_holding(pid, where)
    audit.record(where, "erase", asdict(report))
    return report


def _count(table: Path, schema: pa.Schema, predicate: str) -> int:
    return delta_store.read(table, schema, where=predicate).num_rows


def _redact_inbox(site: SiteConfig, client_code: str, where: Paths) -> int:
    """Rewrite the site's delivered files without the client's rows.

    A file that was already ingested keeps counting as ingested: its redacted bytes are marked
    committed too, so tomorrow's run does not take the rewritten file for a new delivery.
    """
    folder = where.inbox_for(site.site_id)
    removed = 0
    if not folder.is_dir():
        return 0
    columns = [site.columns["client_code"]]
    if site.withdrawals:
        columns.append(site.withdrawals.client_code_column)
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            continue
        header = [h.strip() for h in rows[0]]
        index = next((header.index(c) for c in columns if c in header), None)
        if index is None:
            continue
        kept = [r for r in rows[1:] if not (len(r) > index and r[index].strip() == client_code)]
        if len(kept) == len(rows) - 1:
            continue
        removed += len(rows) - 1 - len(kept)
        old_sha = sha256_file(path)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([rows[0], *kept])
        tmp = path.with_name(f".{path.name}.redacting")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(tmp, path)
        if delta_store.is_committed(where.event_log, old_sha):
            new_sha = sha256_file(path)
            meta = {"bordin.redacted_from": old_sha}
            delta_store.append(where.quarantine, QUARANTINE_SCHEMA.empty_table(), [new_sha], meta)
            delta_store.append(where.intake, INTAKE_SCHEMA.empty_table(), [new_sha], meta)
            delta_store.append(where.event_log, EVENT_SCHEMA.empty_table(), [new_sha], meta)
    return removed


def _record(
    site_id: str,
    pid: str,
    report: ErasureReport,
    reason: str,
    operator: str,
    on: date | None,
    where: Paths,
) -> str:
    state = SiteState.load(where.event_log, site_id)
    summary = (
        f"{reason.strip()} (erased {report.events_removed} events, "
        f"{report.quarantine_records_removed} quarantine records, "
        f"{report.inbox_rows_removed} inbox rows)"
    )
    previous = state.last_client_event.get(pid)
    eid = event_id(CLIENT_ERASED, (site_id, pid), summary, previous)
    now = datetime.now(UTC)
    row = {name: None for name in EVENT_SCHEMA.names}
    row.update(
        {
            "event_id": eid,
            "event_type": CLIENT_ERASED,
            "schema_version": SCHEMA_VERSION,
            "site_id": site_id,
            "site_seq": state.seq + 1,
            "client_pid": pid,
            "supersedes_event_id": previous,
            "reason": summary,
            "batch_id": f"erasure-{site_id}-{state.seq + 1}",
            "actor": f"operator:{operator.strip()}",
            "logical_date": on or now.date(),
            "ingested_at": now,
        }
    )
    table = pa.Table.from_pylist([row], schema=EVENT_SCHEMA)
    delta_store.append(where.event_log, table, [], {"bordin.erasure_record": eid})
    return eid


def _releases_holding(pid: str, where: Paths) -> list[str]:
    if not where.releases.is_dir():
        return []
    holding = []
    con = duckdb.connect()
    try:
        for folder in sorted(
            p for p in where.releases.iterdir() if p.is_dir() and not p.is_symlink()
        ):
            if folder.name.startswith("."):
                continue
            for parquet in sorted((folder / "parquet").glob("*.parquet")):
                names = [
                    r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{parquet}'").fetchall()
                ]
                if "client_pid" not in names:
                    continue
                hit = con.execute(
                    f"SELECT count(*) FROM '{parquet}' WHERE client_pid = ?", [pid]
                ).fetchone()[0]
                if hit:
                    holding.append(folder.name)
                    break
    finally:
        con.close()
    return holding
