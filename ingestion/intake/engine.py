"""One export through the intake engine: source, classify, pseudonymize, diff, write events.

Every format takes the same stages in one DuckDB scratch database per file, which spills to disk
under a memory limit (`BORDIN_INTAKE_MEMORY`, default 768MB): so a file of any size ingests in
bounded memory. Only the distinct client and therapist codes cross into Python (to be keyed with
the secret), and the withdrawals an export's own column declares (to be emitted in order).
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
from typing import Protocol

import duckdb
import pyarrow as pa

from ingestion import delta_store
from ingestion.consortium import SiteConfig
from ingestion.delivery_date import future_bound
from ingestion.events import CONSENT_WITHDRAWN
from ingestion.intake.changes import (
    export_withdrawals,
    load_state,
    plan_changes,
    pseudonymize,
    write_events,
    write_quarantine,
)
from ingestion.intake.classify import (
    ACCEPTED,
    NOT_ADMINISTERED,
    classify,
    collect_issues,
    find_duplicates,
)
from ingestion.intake.sources import Rejected, open_source
from ingestion.intake.text_files import Gaps, load_gaps, scan_gaps
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA, Issue, to_table
from ingestion.registry import Registry
from ingestion.site_state import SiteState

log = logging.getLogger(__name__)

MEMORY_ENV = "BORDIN_INTAKE_MEMORY"
# DuckDB threads per file (default: every core). The output does not depend on it.
THREADS_ENV = "BORDIN_INTAKE_THREADS"
DEFAULT_MEMORY = "768MB"


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
    withdrawn: int = 0
    events: int = 0
    # File-level records as a table; row records as a Parquet file written into the
    # quarantine table's folder (committed by the caller with the night's quarantine).
    quarantine: pa.Table = field(default_factory=QUARANTINE_SCHEMA.empty_table)
    quarantine_file: tuple[str, int] | None = None
    event_file: str | None = None
    # Why the delivery date in the file's name was not used (the logical date was instead).
    note: str | None = None

    @property
    def quarantine_records(self) -> int:
        return self.quarantine.num_rows + (self.quarantine_file[1] if self.quarantine_file else 0)


class Emitter(Protocol):
    """What the engine needs of the night's event builder (`ingestion.ingest._Emitter`)."""

    batch_id: str
    logical: date
    actor: str
    at: datetime
    state: SiteState

    def client(self, etype: str, pid: str, source: tuple[str, str, int | None],
               reason: str | None) -> None: ...  # fmt: skip


@dataclass
class IntakeSite:
    """The engine's side of one site's night: scratch space and the event files written."""

    site: SiteConfig
    registry: Registry
    key: PseudonymKey
    event_log: Path
    quarantine_table: Path
    scratch: Path
    pending: list[tuple[str, int]] = field(default_factory=list)

    def ingest(self, path: Path, sha: str, emitter: Emitter) -> FileResult:
        folder = self.scratch / uuid.uuid4().hex
        folder.mkdir(parents=True)
        con = duckdb.connect(str(folder / "intake.duckdb"))
        try:
            _configure(con, folder)
            return self._ingest(con, path, sha, emitter, folder)
        finally:
            con.close()
            shutil.rmtree(folder, ignore_errors=True)

    def _ingest(
        self, con: duckdb.DuckDBPyConnection, path: Path, sha: str, emitter: Emitter, folder: Path
    ) -> FileResult:
        site, logical = self.site, emitter.logical
        stamp = dict(source_file=path.name, sha256=sha, batch_id=emitter.batch_id)
        clock = _Stopwatch(f"{site.site_id}/{path.name}")
        source = open_source(con, path, site, self.registry, folder)
        if isinstance(source, Rejected):
            return self._rejected(source.issue, source.rows_in, path, sha, emitter)
        # Future dates are checked against the delivery date in the file's name, if the site
        # configures one, never later than the night's logical date.
        bound = future_bound(site.delivery_date, path.name, logical)
        if bound.note:
            log.warning("site %s: %s: %s", site.site_id, path.name, bound.note)
        source = classify(con, source, site, self.registry, bound.day)
        clock.lap("scan and classify")
        gaps = Gaps([], [])
        if source.text is not None:
            gaps = scan_gaps(
                con, source.text, source.first_line, source.blank_lines_count, source.line_shift
            )
            bad = con.execute(
                "SELECT min(line) FROM reject_errors "
                "WHERE error_type IN ('INVALID UNICODE', 'INVALID ENCODING')"
            ).fetchone()[0]
            if bad is not None:  # the encoding pass let it through: never expected
                issue = Issue.of("file.encoding", detail=f"not UTF-8 (line {bad})")
                return self._rejected(issue, 0, path, sha, emitter)
        load_gaps(con, gaps, source.first_line)
        con.execute("CREATE OR REPLACE TABLE rejected (line BIGINT)")
        if gaps.rejected:
            con.executemany("INSERT INTO rejected VALUES (?)", [(g,) for g in gaps.rejected])
        find_duplicates(con)
        collect_issues(con, source, site, self.registry, bound.day, future_basis=bound.basis)
        clock.lap("duplicates and issues")
        pseudonymize(con, site.site_id, self.key)
        withdrawn = 0
        for line, pid in export_withdrawals(con, source):
            if pid not in emitter.state.closed_clients:
                emitter.client(
                    CONSENT_WITHDRAWN, pid, (path.name, sha, line),
                    "consent withdrawn (export column)",
                )  # fmt: skip
                withdrawn += 1
        clock.lap("pseudonyms")
        state_size = load_state(con, self._log_files(), site.site_id)
        plan = plan_changes(
            con,
            emitter.state.closed_clients,
            state_size,
            site.delivery == "snapshot",
            site.max_retraction_fraction,
        )
        clock.lap("state and changes")
        counts = dict(con.execute("SELECT status, count(*) FROM admins GROUP BY ALL").fetchall())
        per = source.per_record
        offered = sum(counts.values()) + len(gaps.rejected) * per
        result = FileResult(
            "ingested",
            rows_in=sum(counts.values()) // per + len(gaps.rejected),
            offered=offered,
            accepted=counts.get(ACCEPTED, 0),
            quarantined=offered - counts.get(ACCEPTED, 0) - counts.get(NOT_ADMINISTERED, 0),
            not_administered=counts.get(NOT_ADMINISTERED, 0),
            withdrawn=withdrawn,
            note=bound.note,
        )
        if plan.rejected_message:
            # The whole file is held back under one record.
            issue = Issue.of(
                "snapshot.mass_retraction",
                retracted=plan.retracted,
                live=plan.live,
                limit=f"{site.max_retraction_fraction:.0%}",
            )
            result.status = "rejected"
            result.quarantined += result.accepted
            result.accepted = 0
            result.quarantine = to_table(
                [issue], site.site_id, path.name, sha, emitter.batch_id, logical
            )
            return result
        name = f"part-{uuid.uuid4()}.parquet"
        n_records = write_quarantine(
            con,
            str(self.quarantine_table / name),
            source,
            site_id=site.site_id,
            logical=logical.isoformat(),
            **stamp,
        )
        if n_records:
            result.quarantine_file = (name, n_records)
        result.recorded, result.amended = plan.recorded, plan.amended
        result.retracted, result.unchanged = plan.retracted, plan.unchanged
        name = f"part-{uuid.uuid4()}.parquet"
        result.events = write_events(
            con,
            str(self.event_log / name),
            source,
            site_id=site.site_id,
            first_seq=emitter.state.seq + 1,
            actor=emitter.actor,
            logical=logical.isoformat(),
            ingested_at=emitter.at.isoformat(),
            **stamp,
        )
        emitter.state.seq += result.events
        clock.lap("events written")
        if result.events:
            result.event_file = name
            self.pending.append((name, result.events))
        return result

    def _rejected(
        self, issue: Issue, rows_in: int, path: Path, sha: str, emitter: Emitter
    ) -> FileResult:
        table = to_table(
            [issue], self.site.site_id, path.name, sha, emitter.batch_id, emitter.logical
        )
        return FileResult("rejected", rows_in=rows_in, quarantine=table)

    def _log_files(self) -> list[str]:
        committed = (
            delta_store.data_files(self.event_log) if delta_store.exists(self.event_log) else []
        )
        return committed + [str(self.event_log / name) for name, _ in self.pending]


class _Stopwatch:
    """Stage timings in the task log: where a large night's time went."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        log.info("intake %s: %s in %.1f s", self.label, stage, now - self.last)
        self.last = now


def _configure(con: duckdb.DuckDBPyConnection, scratch: Path) -> None:
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{os.environ.get(MEMORY_ENV, DEFAULT_MEMORY)}'")
    con.execute(f"SET temp_directory = '{scratch / 'spill'}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")
    if threads := os.environ.get(THREADS_ENV):
        con.execute(f"SET threads = {int(threads)}")
