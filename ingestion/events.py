"""The event envelope: the one schema every questionnaire administration is stored in."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

SCHEMA_VERSION = 1
RESPONSE_RECORDED = "response_recorded"

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int16()),
        ("site_id", pa.string()),
        ("client_pid", pa.string()),
        ("therapist_pid", pa.string()),
        ("session_number", pa.int32()),
        ("session_date", pa.date32()),
        ("instrument", pa.string()),
        ("rater_role", pa.string()),
        ("items", pa.list_(pa.float64())),
        ("source_file", pa.string()),
        ("source_sha256", pa.string()),
        ("source_row", pa.int64()),
        ("batch_id", pa.string()),
        ("actor", pa.string()),
        ("logical_date", pa.date32()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def event_id(
    event_type: str,
    site_id: str,
    client_pid: str,
    session_number: int,
    instrument: str,
    rater_role: str,
    session_date: str | None,
    items: list[float | None],
) -> str:
    """Deterministic from content: the same administration always gets the same id."""
    canonical = json.dumps(
        [
            event_type,
            site_id,
            client_pid,
            session_number,
            instrument,
            rater_role,
            session_date,
            items,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
