"""Re-derive one site's state from its retained deliveries, under today's configuration.

A file ingested under a wrong column map stays wrong, and a file rejected under it is never read
again: the ledger marks both as done. Reprocessing replays every delivery the site's inbox still
holds (files stay there; see `ingestion.deliveries`) through the real ingestion, night by night
in the order they were first ingested, into a throwaway data root. So a snapshot site ends at its
last full export, and an incremental site at the sum of its batches, exactly as if the current
configuration had been in force from the start. The replayed state is then compared with the
log's, key by key, and only the differences are appended: `response_recorded`,
`response_amended` and `response_retracted` events with reason `reprocessed`, chained on the
log's own events. A second reprocess with no change finds no difference and records a no-op.

Clients who withdrew or were erased are never touched (an erased client's rows were removed
from the inbox too). A replay that would retract more than the site's `max_retraction_fraction`
of its live administrations is refused whole, as a snapshot export would be: that is a broken
configuration far more often than a real deletion.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion import audit, delta_store
from ingestion.consortium import Consortium, SiteConfig, load_consortium
from ingestion.deliveries import SYMLINK, Found, Ledger, list_inbox
from ingestion.events import (
    CONSENT_WITHDRAWN,
    EVENT_SCHEMA,
    RESPONSE_AMENDED,
    RESPONSE_RECORDED,
    RESPONSE_RETRACTED,
    SCHEMA_VERSION,
    event_id,
)
from ingestion.hashing import sha256_file
from ingestion.ingest import INTAKE_SCHEMA, SiteIngestResult, ingest_site
from ingestion.intake.changes import CONTENT, KEY, load_state
from ingestion.key_fingerprint import check_key
from ingestion.locks import exclusive_lock
from ingestion.logical_date import parse_logical_date
from ingestion.pseudonyms import PseudonymKey, load_key
from ingestion.registry import Registry, default_registry
from ingestion.settings import Paths, paths
from ingestion.site_state import client_state

log = logging.getLogger(__name__)

REASON = "reprocessed"
ACTOR = "bordin:reprocess"


class ReprocessRefusedError(RuntimeError):
    """The replayed state would retract too much of the site: nothing was written."""


@dataclass
class ReprocessResult:
    site_id: str
    logical_date: str
    # (night, file names) replayed, in order; files not yet ingested are left for `ingest`.
    nights: list[tuple[str, list[str]]] = field(default_factory=list)
    not_yet_ingested: list[str] = field(default_factory=list)
    replay: list[dict] = field(default_factory=list)  # each night's SiteIngestResult.as_dict()
    recorded: int = 0
    amended: int = 0
    retracted: int = 0
    withdrawn: int = 0
    batch_id: str | None = None
    event_log_version: int | None = None

    @property
    def no_op(self) -> bool:
        return not (self.recorded or self.amended or self.retracted or self.withdrawn)

    def as_dict(self) -> dict:
        return {**asdict(self), "no_op": self.no_op}


def reprocess_site(
    site_id: str,
    logical_date: str | date,
    *,
    where: Paths | None = None,
    consortium: Consortium | None = None,
    registry: Registry | None = None,
    key: PseudonymKey | None = None,
) -> ReprocessResult:
    """Replay the site's retained deliveries and append the differences; always audited."""
    where = where or paths()
    registry = registry or default_registry()
    consortium = consortium or load_consortium(where.consortium_file, registry)
    site = consortium.site(site_id)
    key = key or load_key()
    logical = parse_logical_date(logical_date)
    check_key(where, key)
    result = ReprocessResult(site_id, logical.isoformat())
    with exclusive_lock(where.locks / f"{site_id}.lock", wait=True):
        nights, result.not_yet_ingested = retained_deliveries(site, where)
        result.nights = [(night.isoformat(), [f.name for f in found]) for night, found in nights]
        where.scratch.mkdir(parents=True, exist_ok=True)
        # The replay's quarantine holds raw values: it lives in the restricted scratch area.
        with tempfile.TemporaryDirectory(prefix="reprocess-", dir=where.scratch) as folder:
            shadow = Paths(Path(folder))
            for night, found in nights:
                deliver(found, site, where.inbox_for(site_id), shadow.inbox_for(site_id))
                replayed = ingest_site(
                    site_id, night, where=shadow, consortium=consortium, registry=registry, key=key
                )
                result.replay.append(_night(replayed))
            _append_differences(site, logical, where, shadow, result)
    audit.record(where, "reprocess", result.as_dict())
    return result


def retained_deliveries(
    site: SiteConfig, where: Paths
) -> tuple[list[tuple[date, list[Found]]], list[str]]:
    """The inbox's files grouped by the night they were first ingested (or rejected), oldest
    first; and the names of files no night has taken yet (the next ingest's to read)."""
    first_night: dict[str, date] = {}
    by_name: dict[str, date] = {}
    for row in delta_store.read(
        where.intake, INTAKE_SCHEMA, where=f"site_id = '{_sql_text(site.site_id)}'"
    ).to_pylist():
        night = row["logical_date"]
        sha, name = row["source_sha256"], row["source_file"]
        first_night[sha] = min(night, first_night.get(sha, night))
        by_name[name] = min(night, by_name.get(name, night))
    earliest = min(first_night.values(), default=None)
    ledger = Ledger(where.intake)
    nights: dict[date, list[Found]] = {}
    waiting: list[str] = []
    for found in list_inbox(site, where.inbox_for(site.site_id)):
        if found.refused == SYMLINK:
            continue  # never opened, never replayed
        sha = sha256_file(found.path)
        night = first_night.get(sha) or by_name.get(found.name)
        if (
            night is None
            and earliest is not None
            # Bytes the log knows without an intake row: an erasure's redacted copy.
            and ledger.is_ingested(where.event_log, site.site_id, found.kind, sha)
        ):
            night = earliest
        if night is None:
            waiting.append(found.name)
            continue
        nights.setdefault(night, []).append(found)
    return sorted(nights.items()), waiting


def deliver(found: list[Found], site: SiteConfig, inbox: Path, replay_inbox: Path) -> None:
    """Put the night's files (and their completion markers) into the replay's inbox, keeping
    their bytes and modification times: a hard link where possible, else a copy."""
    marker = site.arrival.completion_marker
    for f in found:
        sources = [f.path]
        if marker and (done := f.path.with_name(f.path.name + marker)).is_file():
            sources.append(done)
        for source in sources:
            target = replay_inbox / source.relative_to(inbox)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def _night(replayed: SiteIngestResult) -> dict:
    """A replayed night's counts by file, without the throwaway log's version."""
    night = replayed.as_dict()
    night.pop("event_log_version", None)
    return night


def _append_differences(
    site: SiteConfig, logical: date, where: Paths, shadow: Paths, result: ReprocessResult
) -> None:
    state = client_state(where.event_log, site.site_id)
    replayed = client_state(shadow.event_log, site.site_id)
    real_files = _files(where.event_log)
    shadow_files = _files(shadow.event_log)
    rows: list[dict] = []
    at = datetime.now(UTC)  # when it was written (an envelope field), not business logic
    # Withdrawals the current configuration finds and the log lacks (e.g. a withdrawal column
    # newly mapped), first: a client's responses are then left alone, as ingestion does.
    for pid, etype in replayed.closed_clients.items():
        if etype != CONSENT_WITHDRAWN or pid in state.closed_clients:
            continue
        reason, *source = _withdrawal(shadow_files, site.site_id, pid)
        previous = state.last_client_event.get(pid)
        eid = event_id(CONSENT_WITHDRAWN, (site.site_id, pid), (reason,), previous)
        provenance = dict(zip(("source_file", "source_sha256", "source_row"), source, strict=True))
        rows.append(_envelope(eid, CONSENT_WITHDRAWN, pid, reason, previous=previous, **provenance))
        state.closed_clients[pid] = etype
        result.withdrawn += 1
    closed = sorted(state.closed_clients)
    con = duckdb.connect()
    try:
        load_state(con, real_files, site.site_id)
        con.execute("ALTER TABLE state RENAME TO log_state")
        load_state(con, shadow_files, site.site_id)
        con.execute("ALTER TABLE state RENAME TO new_state")
        live = con.execute(
            "SELECT count(*) FROM log_state WHERE current AND NOT list_contains($c, client_pid)",
            {"c": closed},
        ).fetchone()[0]
        differences = _differences(con, site.site_id, shadow_files, closed)
    finally:
        con.close()
    retracted = sum(r["event_type"] == RESPONSE_RETRACTED for r in differences)
    if live and retracted > site.max_retraction_fraction * live:
        raise ReprocessRefusedError(
            f"site {site.site_id}: reprocessing would retract {retracted} of its {live} current "
            f"administrations (limit {site.max_retraction_fraction:.0%}); this looks like a "
            "configuration that no longer reads the site's files. Nothing was written: check "
            "the site's configuration (bordin config check), then reprocess again."
        )
    for row in differences:
        rows.append(_envelope(**row))
    result.recorded = sum(r["event_type"] == RESPONSE_RECORDED for r in rows)
    result.amended = sum(r["event_type"] == RESPONSE_AMENDED for r in rows)
    result.retracted = retracted
    if not rows:
        result.event_log_version = delta_store.current_version(where.event_log)
        return
    digest = hashlib.sha256("\n".join(r["event_id"] for r in rows).encode()).hexdigest()[:16]
    result.batch_id = f"{site.site_id}-{logical:%Y%m%d}-reprocess-{digest}"
    for seq, row in enumerate(rows, start=state.seq + 1):
        row.update(
            site_id=site.site_id,
            site_seq=seq,
            batch_id=result.batch_id,
            logical_date=logical,
            ingested_at=at,
        )
    table = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    metadata = {"bordin.batch_id": result.batch_id, "bordin.site_id": site.site_id}
    delta_store.ensure_table(where.event_log, EVENT_SCHEMA)
    result.event_log_version = delta_store.append(where.event_log, table, [], metadata)
    log.info(
        "site %s reprocessed: %d recorded, %d amended, %d retracted, %d withdrawn",
        site.site_id, result.recorded, result.amended, result.retracted, result.withdrawn,
    )  # fmt: skip


def _differences(
    con: duckdb.DuckDBPyConnection, site_id: str, shadow_files: list[str], closed: list[str]
) -> list[dict]:
    """Per natural key: recorded (live only in the replay), amended (live in both, other
    content) or retracted (live only in the log); in key order. Provenance (file, row) is the
    replayed event's, where the replay has one."""
    provenance = (
        "SELECT * FROM (SELECT NULL::VARCHAR AS client_pid, NULL::INTEGER AS session_number, "
        "NULL::VARCHAR AS instrument, NULL::VARCHAR AS rater_role, NULL::VARCHAR AS "
        "source_file, NULL::VARCHAR AS source_sha256, NULL::BIGINT AS source_row) WHERE false"
    )
    if shadow_files:
        provenance = f"""
            SELECT {KEY}, source_file, source_sha256, source_row
            FROM read_parquet($files, union_by_name = true)
            WHERE site_id = $site AND event_type IN ('{RESPONSE_RECORDED}',
                  '{RESPONSE_AMENDED}', '{RESPONSE_RETRACTED}')
            QUALIFY row_number() OVER (PARTITION BY {KEY} ORDER BY site_seq DESC) = 1
        """
    new = ", ".join(f"n.{c}" for c in CONTENT.split(", "))
    old = ", ".join(f"o.{c}" for c in CONTENT.split(", "))
    key = ", ".join(f"coalesce(n.{c}, o.{c}) AS {c}" for c in KEY.split(", "))
    sql = f"""
        WITH diff AS (
            SELECT {key},
                   CASE WHEN NOT coalesce(n.current, false) THEN '{RESPONSE_RETRACTED}'
                        WHEN coalesce(o.current, false) THEN '{RESPONSE_AMENDED}'
                        ELSE '{RESPONSE_RECORDED}' END AS event_type,
                   o.event_id AS previous,
                   CASE WHEN n.current THEN n.items END AS items,
                   CASE WHEN n.current THEN n.session_date END AS session_date,
                   CASE WHEN n.current THEN n.therapist_pid END AS therapist_pid,
                   CASE WHEN n.current THEN n.ending_type END AS ending_type,
                   CASE WHEN n.current THEN n.item_missing END AS item_missing
            FROM new_state n FULL JOIN log_state o USING ({KEY})
            WHERE (coalesce(n.current, false)
                   AND (NOT coalesce(o.current, false) OR ({new}) IS DISTINCT FROM ({old})))
               OR (coalesce(o.current, false) AND NOT coalesce(n.current, false))
        )
        SELECT event_id(d.event_type, $site, d.client_pid, d.session_number, d.instrument,
                        d.rater_role, d.items, d.session_date, d.therapist_pid, d.ending_type,
                        d.item_missing, d.previous) AS event_id,
               d.*, p.source_file, p.source_sha256, p.source_row
        FROM diff d LEFT JOIN ({provenance}) p USING ({KEY})
        WHERE NOT list_contains($closed, d.client_pid)
        ORDER BY d.client_pid, d.session_number, d.instrument, d.rater_role
    """
    params: dict = {"site": site_id, "closed": closed}
    if shadow_files:
        params["files"] = shadow_files
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _envelope(
    event_id: str,
    event_type: str,
    client_pid: str,
    reason: str | None = REASON,
    *,
    previous: str | None = None,
    source_file: str | None = None,
    source_sha256: str | None = None,
    source_row: int | None = None,
    **response: object,
) -> dict:
    row = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "client_pid": client_pid,
        "reason": reason,
        "supersedes_event_id": previous,
        "source_file": source_file,
        "source_sha256": source_sha256,
        "source_row": source_row,
        "actor": ACTOR,
        **response,
    }
    return row


def _withdrawal(files: list[str], site_id: str, pid: str) -> tuple:
    """The replayed withdrawal's reason and where it came from (file, SHA-256, row)."""
    con = duckdb.connect()
    try:
        found = con.execute(
            "SELECT reason, source_file, source_sha256, source_row "
            "FROM read_parquet($files, union_by_name = true) "
            "WHERE site_id = $site AND client_pid = $pid AND event_type = $etype "
            "ORDER BY site_seq DESC LIMIT 1",
            {"files": files, "site": site_id, "pid": pid, "etype": CONSENT_WITHDRAWN},
        ).fetchone()
    finally:
        con.close()
    return tuple(found) if found else (None, None, None, None)


def _files(table: Path) -> list[str]:
    return delta_store.data_files(table) if delta_store.exists(table) else []


def _sql_text(text: str) -> str:
    return text.replace("'", "''")
