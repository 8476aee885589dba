"""Ingest one site's new deliveries into the event log: the body of the DAG's `ingest` task.

Under the site's lock: read each new file, validate it, pseudonymize, and compare it with the
site's current state replayed from the log. A snapshot site's export becomes recorded, amended
and retracted events (change data capture); an incremental site's only adds and amends.
Commits per site and night: quarantine, intake counts, then events. Each is an idempotent Delta
commit keyed by the files' SHA-256, and the events commit is the one that makes a delivery
count as ingested, so a crash anywhere is repaired by running again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

from ingestion import audit, deliveries, delta_store
from ingestion.arrival import still_arriving, truncation
from ingestion.config_errors import ConfigError
from ingestion.consortium import Consortium, SiteConfig, load_consortium
from ingestion.crash_points import crash_point
from ingestion.deliveries import Found, Ledger, list_inbox, refused_digest
from ingestion.disk_space import DiskFullError, named_when_full, tree_bytes
from ingestion.events import (
    CONSENT_WITHDRAWN,
    EVENT_SCHEMA,
    SCHEMA_VERSION,
    event_id,
)
from ingestion.hashing import sha256_file
from ingestion.intake.client_codes import CONTROL
from ingestion.intake.engine import IntakeSite
from ingestion.key_fingerprint import check_key
from ingestion.locks import exclusive_lock
from ingestion.logical_date import parse_logical_date
from ingestion.pseudonyms import PseudonymKey, load_key
from ingestion.quarantine import QUARANTINE_SCHEMA, Issue, to_table
from ingestion.registry import Registry, default_registry
from ingestion.settings import Paths, paths
from ingestion.site_state import SiteState, client_state
from ingestion.site_summary import rule_counts

log = logging.getLogger(__name__)

INTAKE_SCHEMA = pa.schema(
    [
        ("site_id", pa.string()),
        ("source_file", pa.string()),
        ("source_sha256", pa.string()),
        ("batch_id", pa.string()),
        ("logical_date", pa.date32()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("rows_in", pa.int64()),
        ("administrations_offered", pa.int64()),
        ("administrations_accepted", pa.int64()),
        ("administrations_quarantined", pa.int64()),
        ("administrations_not_administered", pa.int64()),
        ("quarantine_records", pa.int64()),
        ("events_recorded", pa.int64()),
        ("events_amended", pa.int64()),
        ("events_retracted", pa.int64()),
        ("events_withdrawn", pa.int64()),
        ("unchanged", pa.int64()),
    ]
)


@dataclass
class FileOutcome:
    source_file: str
    sha256: str
    # ingested | rejected | already_ingested | duplicate_in_batch | waiting (still arriving:
    # not read, nothing recorded, read on a later run; `detail` says why). An ingested file's
    # `detail` notes a delivery date its name did not give (ingestion/delivery_date.py).
    status: str
    kind: str = "export"  # export | withdrawals | data_dictionary
    rows_in: int = 0
    offered: int = 0
    accepted: int = 0
    quarantined: int = 0
    not_administered: int = 0
    quarantine_records: int = 0
    recorded: int = 0
    amended: int = 0
    retracted: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    detail: str | None = None
    quarantine_by_rule: dict[str, int] = field(default_factory=dict)  # rule id -> records


@dataclass
class SiteIngestResult:
    site_id: str
    logical_date: str
    batch_id: str | None
    events_written: int
    event_log_version: int | None
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def no_op(self) -> bool:
        return self.events_written == 0 and all(
            f.status in ("already_ingested", "duplicate_in_batch") for f in self.files
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "no_op": self.no_op}


class IngestFileError(RuntimeError):
    """Reading one export failed unexpectedly: says which site and file, so the night's one
    failure line names them (a bad row or value is quarantined, never raised)."""

    def __init__(self, site_id: str, file: str, cause: BaseException) -> None:
        first = (str(cause).strip().splitlines() or [""])[0]
        super().__init__(f"site {site_id}: file {file}: {type(cause).__name__}: {first}")
        self.site_id, self.file = site_id, file


def _batch_id(site_id: str, logical: date, shas: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(shas)).encode()).hexdigest()[:16]
    return f"{site_id}-{logical:%Y%m%d}-{digest}"


class _Emitter:
    """Builds event rows in order, keeping the site state up to date as it goes."""

    def __init__(self, state: SiteState, batch_id: str, logical: date, actor: str, at: datetime):
        self.state = state
        self.batch_id = batch_id
        self.logical = logical
        self.actor = actor
        self.at = at
        self.rows: list[dict] = []

    def client(self, etype: str, pid: str, source: tuple[str, str, int | None], reason: str | None):
        previous = self.state.last_client_event.get(pid)
        eid = event_id(etype, (self.state.site_id, pid), (reason,), previous)
        self._append(eid, etype, pid, {"supersedes_event_id": previous}, source, reason)
        self.state.closed_clients[pid] = etype
        self.state.last_client_event[pid] = eid

    def _append(self, eid, etype, pid, fields, source, reason) -> None:
        self.state.seq += 1
        source_file, sha, row = source
        self.rows.append(
            {
                "event_id": eid,
                "event_type": etype,
                "schema_version": SCHEMA_VERSION,
                "site_id": self.state.site_id,
                "site_seq": self.state.seq,
                "client_pid": pid,
                "reason": reason,
                "source_file": source_file,
                "source_sha256": sha,
                "source_row": row,
                "batch_id": self.batch_id,
                "actor": self.actor,
                "logical_date": self.logical,
                "ingested_at": self.at,
                **fields,
            }
        )


def ingest_site(
    site_id: str,
    logical_date: str | date,
    *,
    where: Paths | None = None,
    consortium: Consortium | None = None,
    registry: Registry | None = None,
    key: PseudonymKey | None = None,
) -> SiteIngestResult:
    """Ingest the site's new files; files already committed (by content) are recorded no-ops.

    Two ingestions of one site at once serialize on the site's lock; the second then finds
    every file committed and records a no-op.
    """
    where = where or paths()
    registry = registry or default_registry()
    consortium = consortium or load_consortium(where.consortium_file, registry, per_site=True)
    site = consortium.site(site_id)  # this site's own configuration error, if it has one
    key = key or load_key()
    logical = parse_logical_date(logical_date)
    check_key(where, key)  # before anything is written: a changed key would split clients
    inbox = where.inbox_for(site_id)
    with (
        exclusive_lock(where.locks / f"{site_id}.lock", wait=True),
        named_when_full(where.home, tree_bytes(inbox), f"ingesting site {site_id}'s inbox"),
    ):
        # Intake checks missing items by the consortium's scoring policy, as dbt scores them.
        in_force = consortium.scoring_policy.apply(registry)
        result = _ingest_locked(site, logical, where, in_force, key)
    crash_point("ingest.after_commit_before_mark")
    audit.record(where, "ingest", result.as_dict())
    return result


def _ingest_locked(
    site: SiteConfig, logical: date, where: Paths, registry: Registry, key: PseudonymKey
) -> SiteIngestResult:
    outcomes: list[FileOutcome] = []
    fresh: list[tuple[Found, str]] = []
    seen: set[tuple[str, str]] = set()
    ledger = Ledger(where.intake)
    for found in list_inbox(site, where.inbox_for(site.site_id)):
        # A link is never opened, not even to hash it.
        if found.refused == deliveries.SYMLINK:
            sha = refused_digest(site.site_id, found)
        elif waiting := still_arriving(found.path, site.arrival):
            outcomes.append(FileOutcome(found.name, "", "waiting", found.kind, detail=waiting))
            log.info("site %s: %s is still arriving (%s)", site.site_id, found.name, waiting)
            continue
        else:
            sha = sha256_file(found.path)
        if (found.kind, sha) in seen:
            outcomes.append(FileOutcome(found.name, sha, "duplicate_in_batch", found.kind))
        elif ledger.is_ingested(where.event_log, site.site_id, found.kind, sha):
            outcomes.append(FileOutcome(found.name, sha, "already_ingested", found.kind))
        else:
            fresh.append((found, sha))
        seen.add((found.kind, sha))
    if not fresh:
        version = delta_store.current_version(where.event_log)
        return SiteIngestResult(site.site_id, logical.isoformat(), None, 0, version, outcomes)
    shas = [sha for _, sha in fresh]
    batch_id = _batch_id(site.site_id, logical, shas)
    delta_store.ensure_table(where.event_log, EVENT_SCHEMA)
    delta_store.ensure_table(where.quarantine, QUARANTINE_SCHEMA)
    state = client_state(where.event_log, site.site_id)
    engine = IntakeSite(site, registry, key, where.event_log, where.quarantine, where.scratch)
    emitter = _Emitter(state, batch_id, logical, f"site:{site.site_id}", datetime.now(UTC))
    quarantine_parts: list[pa.Table] = []
    # Per file: row records the engine wrote straight into the quarantine table's folder.
    quarantine_files: list[tuple[str, int] | None] = []
    intake_rows: list[dict] = []
    for found, sha in fresh:
        path = found.path
        cut = truncation(path, site) if found.kind == "export" and not found.refused else None
        if found.refused is not None:
            outcome, issues, pids = _refused(found, sha, site), [_refusal_issue(found, site)], {}
        elif cut is not None:
            outcome, issues, pids = _refused(found, sha, site), [cut], {}
        elif found.kind == "withdrawals":
            outcome, issues, pids = _ingest_withdrawals(path, sha, site, key, emitter)
        elif found.kind == "data_dictionary":
            # The site's REDCap data dictionary: read by the REDCap reader next to each export,
            # never ingested as one. Recorded in intake (so a re-delivery is a no-op), no events.
            outcome, issues, pids = FileOutcome(found.name, sha, "ingested", found.kind), [], {}
        else:
            outcome, table, written_records = _ingest_export(path, sha, engine, emitter)
            outcomes.append(outcome)
            quarantine_parts.append(table)
            quarantine_files.append(written_records)
            intake_rows.append(_intake_row(outcome, site.site_id, batch_id, logical))
            continue
        outcomes.append(outcome)
        quarantine_parts.append(
            to_table(issues, site.site_id, found.name, sha, batch_id, logical, pids)
        )
        quarantine_files.append(None)
        intake_rows.append(_intake_row(outcome, site.site_id, batch_id, logical))

    read = zip(outcomes[-len(fresh) :], quarantine_parts, quarantine_files, strict=True)
    for outcome, part, records in read:
        outcome.quarantine_by_rule = rule_counts(part, records and where.quarantine / records[0])
    metadata = {"bordin.batch_id": batch_id, "bordin.site_id": site.site_id}
    # Only files not yet in each table: a run that crashed between these commits and the
    # events commit, rerun with more files delivered since, must not record the first ones twice.
    marks = [(site.site_id, f.kind, sha) for f, sha in fresh]

    def new_in(table: Path) -> list[int]:
        return [i for i, m in enumerate(marks) if not ledger.is_ingested(table, *m)]

    quarantine_new = new_in(where.quarantine)
    for i, written_records in enumerate(quarantine_files):
        if written_records is not None and i not in quarantine_new:  # committed by a crashed run
            (where.quarantine / written_records[0]).unlink(missing_ok=True)
    if quarantine_new:
        parts = pa.concat_tables([quarantine_parts[i] for i in quarantine_new])
        files = [f for i in quarantine_new if (f := quarantine_files[i]) is not None]
        chosen = [marks[i] for i in quarantine_new]
        delta_store.append(where.quarantine, parts, [], metadata, files, deliveries=chosen)
    if intake_new := new_in(where.intake):
        intake = pa.Table.from_pylist([intake_rows[i] for i in intake_new], schema=INTAKE_SCHEMA)
        chosen = [marks[i] for i in intake_new]
        delta_store.append(where.intake, intake, [], metadata, deliveries=chosen)
    events = pa.Table.from_pylist(emitter.rows, schema=EVENT_SCHEMA)
    written = engine.pending
    # The events commit also carries the old by-hash marker, so a caller asking by SHA-256
    # alone (`delta_store.is_committed(event_log, sha)`, erasure today) still learns that some
    # site delivered these bytes; the Ledger never takes it for this site's delivery.
    version = delta_store.append(where.event_log, events, shas, metadata, written, deliveries=marks)
    n_events = events.num_rows + sum(rows for _, rows in written)
    log.info("site %s: %d events, log version %d", site.site_id, n_events, version)
    result = SiteIngestResult(site.site_id, logical.isoformat(), batch_id, n_events, version)
    result.files = sorted(outcomes, key=lambda o: o.source_file)
    return result


def _refused(found: Found, sha: str, site: SiteConfig) -> FileOutcome:
    """A file refused unread: rejected, one file-level quarantine record, no rows."""
    return FileOutcome(found.name, sha, "rejected", found.kind, quarantine_records=1)


def _refusal_issue(found: Found, site: SiteConfig) -> Issue:
    if found.refused == deliveries.SYMLINK:
        return Issue(
            None,
            None,
            None,
            "file.symlink",
            "archive",
            "this is a symbolic link (or lies behind one); links are never followed, so it was "
            "not read. Deliver the file itself into the site's inbox.",
        )
    patterns = [site.file_glob]
    if site.withdrawals and site.withdrawals.file_glob:
        patterns.append(site.withdrawals.file_glob)
    if site.data_dictionary_glob:
        patterns.append(site.data_dictionary_glob)
    return Issue(
        None,
        None,
        None,
        "file.unsupported_type",
        "schema",
        f"no reader takes this file: it matches none of the site's file patterns "
        f"({', '.join(repr(p) for p in patterns)}); it was not read. Deliver an export in "
        f"the site's format ({site.format}), or fix file_glob if this is one.",
    )


def _ingest_export(
    path: Path, sha: str, engine: IntakeSite, emitter: _Emitter
) -> tuple[FileOutcome, pa.Table, tuple[str, int] | None]:
    """One export through the intake engine; its events and row records go to their own files."""
    try:
        done = engine.ingest(path, sha, emitter)
    except (ConfigError, DiskFullError):
        raise  # already say what and where
    except Exception as exc:
        raise IngestFileError(engine.site.site_id, path.name, exc) from exc
    outcome = FileOutcome(
        path.name,
        sha,
        done.status,
        rows_in=done.rows_in,
        offered=done.offered,
        accepted=done.accepted,
        quarantined=done.quarantined,
        not_administered=done.not_administered,
        quarantine_records=done.quarantine_records,
        recorded=done.recorded,
        amended=done.amended,
        retracted=done.retracted,
        unchanged=done.unchanged,
        withdrawn=done.withdrawn,
        detail=done.note,
    )
    if outcome.offered != outcome.accepted + outcome.quarantined + outcome.not_administered:
        raise AssertionError(f"conservation broken for {path.name}: {outcome}")
    return outcome, done.quarantine, done.quarantine_file


def _ingest_withdrawals(
    path: Path, sha: str, site: SiteConfig, key: PseudonymKey, emitter: _Emitter
) -> tuple[FileOutcome, list[Issue], dict[int, str]]:
    """One client code per row; a withdrawal already on record is accepted as unchanged."""
    assert site.withdrawals is not None
    config = site.withdrawals
    outcome = FileOutcome(path.name, sha, "ingested", kind="withdrawals")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        issue = Issue(None, None, None, "file.encoding", "encoding", "withdrawal file is not UTF-8")
        outcome.status, outcome.quarantine_records = "rejected", 1
        return outcome, [issue], {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or config.client_code_column not in reader.fieldnames:
        issue = Issue(
            None,
            config.client_code_column,
            None,
            "file.missing_columns",
            "schema",
            f"withdrawal file has no column {config.client_code_column!r}",
        )
        outcome.status, outcome.quarantine_records = "rejected", 1
        return outcome, [issue], {}
    issues: list[Issue] = []
    for row_number, row in enumerate(reader, start=2):
        outcome.rows_in += 1
        outcome.offered += 1
        code = (row.get(config.client_code_column) or "").strip()
        if not code:
            issues.append(
                Issue(
                    row_number,
                    config.client_code_column,
                    None,
                    "withdrawal.client_code_blank",
                    "identity",
                    "withdrawal row has no client code",
                )
            )
            outcome.quarantined += 1
            continue
        if CONTROL.search(code):
            issues.append(
                Issue(
                    row_number,
                    config.client_code_column,
                    None,
                    "withdrawal.client_code_control",
                    "identity",
                    "withdrawal client code contains a control character (such as NUL): it "
                    "names no client safely; send the code again without it",
                )
            )
            outcome.quarantined += 1
            continue
        outcome.accepted += 1
        pid = key.pseudonym(site.site_id, "client", code)
        if pid in emitter.state.closed_clients:
            outcome.unchanged += 1
            continue
        reason = (row.get(config.reason_column) or "").strip() if config.reason_column else ""
        emitter.client(
            CONSENT_WITHDRAWN, pid, (path.name, sha, row_number), reason or "consent withdrawn"
        )
        outcome.withdrawn += 1
    outcome.quarantine_records = len(issues)
    return outcome, issues, {}


def _intake_row(outcome: FileOutcome, site_id: str, batch_id: str, logical: date) -> dict:
    return {
        "site_id": site_id,
        "source_file": outcome.source_file,
        "source_sha256": outcome.sha256,
        "batch_id": batch_id,
        "logical_date": logical,
        "kind": outcome.kind,
        "status": outcome.status,
        "rows_in": outcome.rows_in,
        "administrations_offered": outcome.offered,
        "administrations_accepted": outcome.accepted,
        "administrations_quarantined": outcome.quarantined,
        "administrations_not_administered": outcome.not_administered,
        "quarantine_records": outcome.quarantine_records,
        "events_recorded": outcome.recorded,
        "events_amended": outcome.amended,
        "events_retracted": outcome.retracted,
        "events_withdrawn": outcome.withdrawn,
        "unchanged": outcome.unchanged,
    }
