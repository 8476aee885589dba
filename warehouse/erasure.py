"""`bordin erase`: remove one client's data from the store, history included, with a record.

What is removed: the client's events from the event log and its quarantine records, physically
(the Delta files that held them are rewritten and the old files deleted, so older log versions
no longer carry the payload), the client's rows in the site's inbox exports in every delivered
format (warehouse/redaction.py), the current build, and every scratch and rebuild folder (they
hold whole warehouses or raw codes). What stays: an erasure record in the event log saying what
was erased, when, by whom and why, with the client's keyed pseudonym as a tombstone so that a
re-delivered export cannot bring the data back. Older releases are immutable files; the command
lists the ones that hold the client so the data manager can withdraw them.

Erasure and publishing are serialized: the erasure holds the publish lock and the build writer
lock (waiting for a running build to finish), and `release_step` refuses a build pinned to a
log version older than any erasure (`erasures_after`), so a build that raced the erasure is
never published. A code that matches nothing is refused before anything is written.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion import audit, delta_store
from ingestion.consortium import SiteConfig, load_consortium
from ingestion.deliveries import Ledger
from ingestion.events import CLIENT_ERASED, EVENT_SCHEMA, SCHEMA_VERSION, event_id
from ingestion.ingest import INTAKE_SCHEMA, sha256_file
from ingestion.key_fingerprint import check_key
from ingestion.locks import exclusive_lock
from ingestion.pseudonyms import PseudonymKey, load_key
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths, paths
from ingestion.site_state import client_state
from warehouse.redaction import Unreadable, redact

PID = re.compile(r"^[0-9a-f]{32}$")
# Commit metadata keys an erasure writes into the event log (its deletes and its record).
ERASURE_KEYS = ("bordin.erasure", "bordin.erasure_record")


class UnknownClientError(ValueError):
    """No event, quarantine record or inbox row of this site holds the code: nothing erased."""


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
    # Inbox files of the site that could not be parsed, so could not be checked: names only.
    inbox_files_unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Redaction:
    path: Path
    data: bytes
    rows: int
    kind: str  # the delivery kind intake recorded the file under (export / withdrawals)


def publish_lock_path(where: Paths) -> Path:
    """Held by publishing and by erasure, so neither runs inside the other."""
    return where.locks / "publish.lock"


def erasures_after(where: Paths, version: int | None) -> list[int]:
    """Event-log versions of erasure commits later than `version` (all of them when None)."""
    return sorted(
        int(commit["version"])
        for commit in delta_store.history(where.event_log)
        if any(k in commit for k in ERASURE_KEYS)
        and (version is None or commit["version"] > version)
    )


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
    consortium = load_consortium(where.consortium_file)
    site = consortium.site(site_id)
    key = load_key()
    check_key(where, key)  # a different key would find no client and could erase the wrong one
    # Intake's normalization: the pseudonym strips the code, and so does every match below.
    pid = key.pseudonym(site_id, "client", client_code)
    assert PID.match(pid) and re.match(r"^[a-z][a-z0-9_]{1,31}$", site_id)
    report = ErasureReport(site_id, pid)
    predicate = f"site_id = '{site_id}' AND client_pid = '{pid}'"
    metadata = {"bordin.erasure": f"{site_id}:{pid}", "bordin.operator": operator}
    with _erasure_locks(where, sorted(consortium.sites)):
        report.events_removed = _count(where.event_log, EVENT_SCHEMA, predicate)
        report.quarantine_records_removed = _count(where.quarantine, QUARANTINE_SCHEMA, predicate)
        redactions, report.inbox_files_unreadable = _plan_inbox(site, pid, key, where)
        report.inbox_rows_removed = sum(r.rows for r in redactions)
        if (
            not (report.events_removed or report.quarantine_records_removed or redactions)
            or not client_code.strip()
        ):
            raise UnknownClientError(
                f"no data for client code {client_code.strip()!r} at site {site_id!r} (no events, "
                "quarantine records or inbox rows): nothing was erased; check the code and site"
            )
        for table, n in (
            (where.event_log, report.events_removed),
            (where.quarantine, report.quarantine_records_removed),
        ):
            if n:
                delta_store.delete_rows(table, predicate, metadata)
                report.files_purged += len(delta_store.purge_unreferenced_files(table))
        for redaction in redactions:
            _rewrite(redaction, site_id, where)
        report.record_event_id = _record(site_id, pid, report, reason, operator, on, where)
        _drop_copies(where)
    report.releases_holding_client = _releases_holding(pid, where)
    audit.record(where, "erase", asdict(report))
    return report


@contextmanager
def _erasure_locks(where: Paths, site_ids: list[str]) -> Iterator[None]:
    """Publishing, the build writer (a running build finishes first) and every site's intake.

    Every site's lock, because the intake engine's scratch folder, deleted here, is shared.
    Always taken in this order; other holders take one of them only, so no deadlock.
    """
    with ExitStack() as stack:
        stack.enter_context(exclusive_lock(publish_lock_path(where), wait=True))
        stack.enter_context(exclusive_lock(where.build_dir / ".writer.lock", wait=True))
        for site_id in site_ids:
            stack.enter_context(exclusive_lock(where.locks / f"{site_id}.lock", wait=True))
        yield


def _count(table: Path, schema: pa.Schema, predicate: str) -> int:
    return delta_store.read(table, schema, where=predicate).num_rows


def _plan_inbox(
    site: SiteConfig, pid: str, key: PseudonymKey, where: Paths
) -> tuple[list[_Redaction], list[str]]:
    """Each inbox file of the site that holds the client, redacted in memory (nothing written)."""
    folder = where.inbox_for(site.site_id)
    if not folder.is_dir():
        return [], []
    seen: dict[str, bool] = {}

    def match(cell: str) -> bool:
        if cell not in seen:
            seen[cell] = bool(cell.strip()) and key.pseudonym(site.site_id, "client", cell) == pid
        return seen[cell]

    withdrawals = site.withdrawals.file_glob if site.withdrawals else None
    planned, unreadable = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink()):
        if withdrawals and path.match(withdrawals):
            fmt, column, kind = "redcap_csv", site.withdrawals.client_code_column, "withdrawals"
        else:
            fmt, column, kind = site.format, site.columns["client_code"], "export"
        try:
            data, rows = redact(path.read_bytes(), fmt, site, column, match)
        except Unreadable:
            if path.match(site.file_glob) or (withdrawals and path.match(withdrawals)):
                unreadable.append(path.name)
            continue
        if rows:
            planned.append(_Redaction(path, data, rows, kind))
    return planned, unreadable


def _rewrite(redaction: _Redaction, site_id: str, where: Paths) -> None:
    """Replace the file atomically; an ingested file's redacted bytes count as that site's
    delivery of the same kind too, so tomorrow's run does not take the rewritten file for a new
    delivery."""
    path = redaction.path
    old_sha = sha256_file(path)
    ingested = Ledger(where.intake).is_ingested(where.event_log, site_id, redaction.kind, old_sha)
    delivered = path.stat()
    tmp = path.with_name(f".{path.name}.redacting")
    tmp.write_bytes(redaction.data)
    # The delivery keeps its timestamps: a fresh mtime would make tomorrow's run take the
    # redacted copy for an upload still arriving (ingestion/arrival.py) and leave it waiting.
    os.utime(tmp, ns=(delivered.st_atime_ns, delivered.st_mtime_ns))
    os.replace(tmp, path)
    if ingested:
        new_sha = sha256_file(path)
        meta = {"bordin.redacted_from": old_sha}
        marker = {"site_id": site_id, "kind": redaction.kind}
        for table, schema in (
            (where.quarantine, QUARANTINE_SCHEMA),
            (where.intake, INTAKE_SCHEMA),
            (where.event_log, EVENT_SCHEMA),
        ):
            delta_store.append(table, schema.empty_table(), [new_sha], meta, **marker)


def _drop_copies(where: Paths) -> None:
    """The current build (it predates the erasure) and every scratch or rebuild folder."""
    build = where.build_dir
    for stale in ("warehouse.duckdb", "warehouse.next.duckdb", "warehouse.next.duckdb.wal"):
        (build / stale).unlink(missing_ok=True)
    for stale in ("gate_result.json", "build_info.json"):
        (build / stale).unlink(missing_ok=True)
    rebuilds = where.home / "scratch"
    with ExitStack() as stack:
        # A rebuild running in its scratch folder holds that folder's writer lock: wait for it.
        for lock in sorted(rebuilds.glob("*/build/.writer.lock")):
            stack.enter_context(exclusive_lock(lock, wait=True))
        shutil.rmtree(rebuilds, ignore_errors=True)
    shutil.rmtree(where.scratch, ignore_errors=True)


def _record(
    site_id: str,
    pid: str,
    report: ErasureReport,
    reason: str,
    operator: str,
    on: date | None,
    where: Paths,
) -> str:
    state = client_state(where.event_log, site_id)
    summary = (
        f"{reason.strip()} (erased {report.events_removed} events, "
        f"{report.quarantine_records_removed} quarantine records, "
        f"{report.inbox_rows_removed} inbox rows)"
    )
    previous = state.last_client_event.get(pid)
    eid = event_id(CLIENT_ERASED, (site_id, pid), (summary,), previous)
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
