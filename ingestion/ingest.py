"""Ingest one site's new deliveries into the event log: the body of the DAG's `ingest` task.

Order of commits per site and night: quarantine, then intake counts, then events. Each is an
idempotent Delta commit keyed by the files' SHA-256, and the events commit is the one that
makes a delivery count as ingested, so a crash anywhere is repaired by simply running again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

from ingestion import delta_store
from ingestion.consortium import Consortium, SiteConfig, load_consortium
from ingestion.events import EVENT_SCHEMA, RESPONSE_RECORDED, SCHEMA_VERSION, event_id
from ingestion.pseudonyms import PseudonymKey, load_key
from ingestion.quarantine import Issue, to_table
from ingestion.readers.redcap_csv import read_redcap_csv
from ingestion.registry import Registry, default_registry
from ingestion.settings import Paths, paths
from ingestion.validate import Validated, parse_logical_date, validate_site_rows

log = logging.getLogger(__name__)

INTAKE_SCHEMA = pa.schema(
    [
        ("site_id", pa.string()),
        ("source_file", pa.string()),
        ("source_sha256", pa.string()),
        ("batch_id", pa.string()),
        ("logical_date", pa.date32()),
        ("status", pa.string()),
        ("rows_in", pa.int64()),
        ("administrations_offered", pa.int64()),
        ("administrations_accepted", pa.int64()),
        ("administrations_quarantined", pa.int64()),
        ("administrations_not_administered", pa.int64()),
        ("quarantine_records", pa.int64()),
    ]
)


@dataclass
class FileOutcome:
    source_file: str
    sha256: str
    status: str  # ingested | rejected | already_ingested | duplicate_in_batch
    rows_in: int = 0
    offered: int = 0
    accepted: int = 0
    quarantined: int = 0
    not_administered: int = 0
    quarantine_records: int = 0


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _deliveries(site: SiteConfig, where: Paths) -> list[Path]:
    folder = where.inbox_for(site.site_id)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(site.file_glob) if p.is_file())


def _batch_id(site_id: str, logical: date, shas: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(shas)).encode()).hexdigest()[:16]
    return f"{site_id}-{logical:%Y%m%d}-{digest}"


def _events_table(
    validated: Validated,
    site: SiteConfig,
    key: PseudonymKey,
    source_file: str,
    sha: str,
    batch_id: str,
    logical: date,
    ingested_at: datetime,
) -> pa.Table:
    admins = validated.administrations
    client_pids = {c: key.pseudonym(site.site_id, "client", c) for c in set(admins.client_code)}
    therapist_pids = {
        t: key.pseudonym(site.site_id, "therapist", t) for t in set(admins.therapist_code) if t
    }
    rows = []
    for rec in admins.itertuples(index=False):
        client_pid = client_pids[rec.client_code]
        session_date = rec.session_date.isoformat()
        rows.append(
            {
                "event_id": event_id(
                    RESPONSE_RECORDED,
                    site.site_id,
                    client_pid,
                    int(rec.session_number),
                    rec.instrument,
                    rec.rater_role,
                    session_date,
                    rec.items,
                ),
                "event_type": RESPONSE_RECORDED,
                "schema_version": SCHEMA_VERSION,
                "site_id": site.site_id,
                "client_pid": client_pid,
                "therapist_pid": therapist_pids.get(rec.therapist_code),
                "session_number": int(rec.session_number),
                "session_date": rec.session_date,
                "instrument": rec.instrument,
                "rater_role": rec.rater_role,
                "items": rec.items,
                "source_file": source_file,
                "source_sha256": sha,
                "source_row": int(rec.source_row),
                "batch_id": batch_id,
                "actor": f"site:{site.site_id}",
                "logical_date": logical,
                "ingested_at": ingested_at,
            }
        )
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def ingest_site(
    site_id: str,
    logical_date: str | date,
    *,
    where: Paths | None = None,
    consortium: Consortium | None = None,
    registry: Registry | None = None,
    key: PseudonymKey | None = None,
) -> SiteIngestResult:
    """Read the site's inbox, validate, pseudonymize, quarantine and append events.

    Files already committed (by content hash, whatever their name) are recorded as no-ops.
    """
    where = where or paths()
    registry = registry or default_registry()
    consortium = consortium or load_consortium(where.consortium_file, registry)
    site = consortium.site(site_id)
    key = key or load_key()
    logical = parse_logical_date(logical_date)
    ingested_at = datetime.now(UTC)  # audit timestamp only; never used in business logic

    outcomes: list[FileOutcome] = []
    fresh: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for path in _deliveries(site, where):
        sha = sha256_file(path)
        if sha in seen:
            outcomes.append(FileOutcome(path.name, sha, "duplicate_in_batch"))
        elif delta_store.is_committed(where.event_log, sha):
            outcomes.append(FileOutcome(path.name, sha, "already_ingested"))
        else:
            fresh.append((path, sha))
        seen.add(sha)

    if not fresh:
        result = SiteIngestResult(site_id, logical.isoformat(), None, 0, _version(where), outcomes)
        _audit(where, "ingest", result.as_dict())
        return result

    batch_id = _batch_id(site_id, logical, [sha for _, sha in fresh])
    event_parts: list[pa.Table] = []
    quarantine_parts: list[pa.Table] = []
    intake_rows: list[dict] = []
    required = [site.columns[c] for c in ("client_code", "therapist_code", "session_date", "event")]
    for form in site.forms:
        required += form.item_columns(registry.get(form.instrument).items)
    for path, sha in fresh:
        outcome, events, issues = _ingest_file(
            path, sha, site, registry, key, required, batch_id, logical, ingested_at
        )
        outcomes.append(outcome)
        event_parts.append(events)
        quarantine_parts.append(to_table(issues, site_id, path.name, sha, batch_id, logical))
        intake_rows.append(_intake_row(outcome, site_id, batch_id, logical))

    shas = [sha for _, sha in fresh]
    metadata = {"bordin.batch_id": batch_id, "bordin.site_id": site_id}
    quarantine = pa.concat_tables(quarantine_parts)
    if not all(delta_store.is_committed(where.quarantine, s) for s in shas):
        delta_store.append(where.quarantine, quarantine, shas, metadata)
    intake_path = where.intake
    if not all(delta_store.is_committed(intake_path, s) for s in shas):
        delta_store.append(
            intake_path, pa.Table.from_pylist(intake_rows, schema=INTAKE_SCHEMA), shas, metadata
        )
    events = pa.concat_tables(event_parts)
    version = delta_store.append(where.event_log, events, shas, metadata)
    result = SiteIngestResult(site_id, logical.isoformat(), batch_id, events.num_rows, version)
    result.files = sorted(outcomes, key=lambda o: o.source_file)
    _audit(where, "ingest", result.as_dict())
    log.info(
        "site %s: %d events from %d new file(s), log version %d",
        site_id,
        events.num_rows,
        len(fresh),
        version,
    )
    return result


def _ingest_file(
    path: Path,
    sha: str,
    site: SiteConfig,
    registry: Registry,
    key: PseudonymKey,
    required: list[str],
    batch_id: str,
    logical: date,
    ingested_at: datetime,
) -> tuple[FileOutcome, pa.Table, list[Issue]]:
    read = read_redcap_csv(path, required)
    if read.frame is None:
        assert read.issue is not None
        outcome = FileOutcome(path.name, sha, "rejected", rows_in=read.rows_in)
        outcome.quarantine_records = 1
        return outcome, EVENT_SCHEMA.empty_table(), [read.issue]
    validated = validate_site_rows(read.frame, site, registry, logical)
    if not validated.conserved():
        raise AssertionError(f"conservation broken for {path.name}: {validated}")
    events = _events_table(validated, site, key, path.name, sha, batch_id, logical, ingested_at)
    outcome = FileOutcome(
        path.name,
        sha,
        "ingested",
        rows_in=read.rows_in,
        offered=validated.offered,
        accepted=validated.accepted,
        quarantined=validated.quarantined,
        not_administered=validated.not_administered,
        quarantine_records=len(validated.issues),
    )
    return outcome, events, validated.issues


def _intake_row(outcome: FileOutcome, site_id: str, batch_id: str, logical: date) -> dict:
    return {
        "site_id": site_id,
        "source_file": outcome.source_file,
        "source_sha256": outcome.sha256,
        "batch_id": batch_id,
        "logical_date": logical,
        "status": outcome.status,
        "rows_in": outcome.rows_in,
        "administrations_offered": outcome.offered,
        "administrations_accepted": outcome.accepted,
        "administrations_quarantined": outcome.quarantined,
        "administrations_not_administered": outcome.not_administered,
        "quarantine_records": outcome.quarantine_records,
    }


def _version(where: Paths) -> int | None:
    return delta_store.current_version(where.event_log)


def _audit(where: Paths, step: str, payload: dict) -> None:
    """Append-only run log: no-ops are recorded too, so a re-run leaves a trace."""
    where.audit_log.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"step": step, **payload}, sort_keys=True, default=str)
    with where.audit_log.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
