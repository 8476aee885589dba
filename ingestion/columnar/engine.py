"""One export through the columnar engine: load, classify, pseudonymize, diff, write events.

Which engine a site's night uses is decided once per site and night (`use_columnar`): a site
whose fresh exports or stored history are large goes columnar for every export of the night, so
the state never has to be held in Python. Both engines give the same log, so a site can move
between them from one night to the next.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingestion import delta_store
from ingestion.columnar.changes import (
    load_state,
    plan_changes,
    pseudonymize,
    quarantine_rows,
    write_events,
)
from ingestion.columnar.classify import (
    ACCEPTED,
    NOT_ADMINISTERED,
    classify,
    collect_issues,
    find_duplicates,
)
from ingestion.columnar.load import finish_lines, open_source, supported
from ingestion.consortium import SiteConfig
from ingestion.events import CLIENT_TYPES
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA, Issue, to_table
from ingestion.readers.base import SiteRead
from ingestion.registry import Registry
from ingestion.site_state import SiteState

log = logging.getLogger(__name__)

MIN_BYTES_ENV = "BORDIN_COLUMNAR_MIN_BYTES"
MIN_EVENTS_ENV = "BORDIN_COLUMNAR_MIN_EVENTS"
MEMORY_ENV = "BORDIN_COLUMNAR_MEMORY"
DEFAULT_MIN_BYTES = 32 << 20
DEFAULT_MIN_EVENTS = 250_000
DEFAULT_MEMORY = "768MB"


def use_columnar(site: SiteConfig, fresh: list[Path], event_log: Path) -> bool:
    """Large fresh exports, or a large stored history, of a site the engine supports."""
    if not supported(site) or site.withdrawals and site.withdrawals.column:
        return False
    if getattr(site, "missing_codes", None):
        return False
    min_bytes = int(os.environ.get(MIN_BYTES_ENV, DEFAULT_MIN_BYTES))
    if any(p.stat().st_size >= min_bytes for p in fresh):
        return True
    min_events = int(os.environ.get(MIN_EVENTS_ENV, DEFAULT_MIN_EVENTS))
    return _site_events(event_log, site.site_id) >= min_events


@dataclass
class FileResult:
    """What `_ingest_export` needs: counts, quarantine rows and the written events file."""

    status: str
    rows_in: int = 0
    offered: int = 0
    accepted: int = 0
    quarantined: int = 0
    not_administered: int = 0
    recorded: int = 0
    amended: int = 0
    retracted: int = 0
    unchanged: int = 0
    events: int = 0
    quarantine: pa.Table = field(default_factory=QUARANTINE_SCHEMA.empty_table)
    event_file: str | None = None


@dataclass
class ColumnarSite:
    """The engine's side of one site's night: scratch space and the event files written."""

    site: SiteConfig
    registry: Registry
    key: PseudonymKey
    event_log: Path
    scratch: Path
    pending: list[tuple[str, int]] = field(default_factory=list)

    def ingest(
        self,
        path: Path,
        sha: str,
        *,
        logical: date,
        batch_id: str,
        actor: str,
        at: datetime,
        first_seq: int,
        closed_clients: dict[str, str],
    ) -> FileResult:
        self.scratch.mkdir(parents=True, exist_ok=True)
        db = self.scratch / f"{uuid.uuid4()}.duckdb"
        con = duckdb.connect(str(db))
        try:
            _configure(con, self.scratch)
            return self._ingest(
                con, path, sha, logical, batch_id, actor, at, first_seq, closed_clients
            )
        finally:
            con.close()
            db.unlink(missing_ok=True)
            shutil.rmtree(self.scratch / "spill", ignore_errors=True)

    def _ingest(self, con, path, sha, logical, batch_id, actor, at, first_seq, closed_clients):
        site, stamp = self.site, dict(source_file=path.name, sha256=sha, batch_id=batch_id)
        clock = _Stopwatch(f"{site.site_id}/{path.name}")
        source = open_source(con, path, site, self.registry)
        if isinstance(source, SiteRead):
            return _rejected(source, site, path, sha, batch_id, logical)
        classify(con, source, site, self.registry, logical)
        clock.lap("scan and classify")
        unreadable = finish_lines(con, path, site.long_csv.encoding)
        if unreadable is not None:
            return _rejected(unreadable, site, path, sha, batch_id, logical)
        find_duplicates(con)
        collect_issues(con, site, self.registry, logical)
        clock.lap("duplicates and issues")
        pseudonymize(con, site.site_id, self.key)
        clock.lap("pseudonyms")
        state_size = load_state(con, self._log_files(), site.site_id)
        plan = plan_changes(
            con,
            closed_clients,
            state_size,
            site.delivery == "snapshot",
            site.max_retraction_fraction,
        )
        clock.lap("state and changes")
        counts = dict(con.execute("SELECT status, count(*) FROM admins GROUP BY ALL").fetchall())
        rejected_lines = con.execute("SELECT count(*) FROM rejected").fetchone()[0]
        rows_in = sum(counts.values()) + rejected_lines
        result = FileResult(
            "ingested",
            rows_in=rows_in,
            offered=rows_in,
            accepted=counts.get(ACCEPTED, 0),
            quarantined=rows_in - counts.get(ACCEPTED, 0) - counts.get(NOT_ADMINISTERED, 0),
            not_administered=counts.get(NOT_ADMINISTERED, 0),
        )
        if plan.rejected_message:
            # As the row engine: the whole file is held back under one record.
            issue = Issue(None, None, None, "snapshot.mass_retraction", "conflict",
                          plan.rejected_message)  # fmt: skip
            result.status = "rejected"
            result.quarantined += result.accepted
            result.accepted = 0
            result.quarantine = to_table([issue], site.site_id, path.name, sha, batch_id, logical)
            return result
        result.quarantine = quarantine_rows(
            con, site_id=site.site_id, logical=logical.isoformat(), **stamp
        )
        result.recorded, result.amended = plan.recorded, plan.amended
        result.retracted, result.unchanged = plan.retracted, plan.unchanged
        name = f"part-{uuid.uuid4()}.parquet"
        result.events = write_events(
            con,
            str(self.event_log / name),
            site_id=site.site_id,
            first_seq=first_seq,
            actor=actor,
            logical=logical.isoformat(),
            ingested_at=at.isoformat(),
            **stamp,
        )
        clock.lap("events written")
        if result.events:
            result.event_file = name
            self.pending.append((name, result.events))
        return result

    def _log_files(self) -> list[str]:
        committed = (
            delta_store.data_files(self.event_log) if delta_store.exists(self.event_log) else []
        )
        return committed + [str(self.event_log / name) for name, _ in self.pending]


def _rejected(
    read: SiteRead, site: SiteConfig, path: Path, sha: str, batch_id: str, logical: date
) -> FileResult:
    assert read.issue is not None
    issues = to_table([read.issue], site.site_id, path.name, sha, batch_id, logical)
    return FileResult("rejected", rows_in=read.rows_in, quarantine=issues)


def client_state(event_log: Path, site_id: str) -> SiteState:
    """The site's order counter and closed clients only: response state stays in SQL."""
    state = SiteState(site_id)
    if not delta_store.exists(event_log) or not (files := delta_store.data_files(event_log)):
        return state
    con = duckdb.connect()
    try:
        source = "read_parquet(?, union_by_name = true)"
        state.seq = con.execute(
            f"SELECT coalesce(max(site_seq), 0) FROM {source} WHERE site_id = ?", [files, site_id]
        ).fetchone()[0]
        types = ", ".join(f"'{t}'" for t in CLIENT_TYPES)
        rows = con.execute(
            f"SELECT client_pid, event_type, event_id FROM {source} "
            f"WHERE site_id = ? AND event_type IN ({types}) ORDER BY site_seq",
            [files, site_id],
        ).fetchall()
    finally:
        con.close()
    for pid, etype, eid in rows:
        state.closed_clients[pid] = etype
        state.last_client_event[pid] = eid
    return state


class _Stopwatch:
    """Stage timings in the task log: where a large night's time went."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        log.info("columnar %s: %s in %.1f s", self.label, stage, now - self.last)
        self.last = now


def _configure(con: duckdb.DuckDBPyConnection, scratch: Path) -> None:
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{os.environ.get(MEMORY_ENV, DEFAULT_MEMORY)}'")
    con.execute(f"SET temp_directory = '{scratch / 'spill'}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")


def _site_events(event_log: Path, site_id: str) -> int:
    if not delta_store.exists(event_log):
        return 0
    files = delta_store.data_files(event_log)
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT count(*) FROM read_parquet(?, union_by_name = true) WHERE site_id = ?",
            [files, site_id],
        ).fetchone()[0]
    finally:
        con.close()
