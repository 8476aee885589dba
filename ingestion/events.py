"""The event envelope: the one schema every fact about a participant is stored in.

Event types: a first recording, an amendment (same natural key, new values: the old event stays
in the log), a retraction (the administration disappeared from a site's snapshot), a consent
withdrawal, and an erasure record (what was erased and why, never the payload).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

SCHEMA_VERSION = 1
RESPONSE_RECORDED = "response_recorded"
RESPONSE_AMENDED = "response_amended"
RESPONSE_RETRACTED = "response_retracted"
CONSENT_WITHDRAWN = "consent_withdrawn"
CLIENT_ERASED = "client_erased"
RESPONSE_TYPES = (RESPONSE_RECORDED, RESPONSE_AMENDED, RESPONSE_RETRACTED)
CLIENT_TYPES = (CONSENT_WITHDRAWN, CLIENT_ERASED)

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("schema_version", pa.int16()),
        ("site_id", pa.string()),
        # Order of events within a site; assigned under the site's ingestion lock.
        ("site_seq", pa.int64()),
        ("client_pid", pa.string()),
        ("therapist_pid", pa.string()),
        ("session_number", pa.int32()),
        ("session_date", pa.date32()),
        ("instrument", pa.string()),
        ("rater_role", pa.string()),
        ("items", pa.list_(pa.float64())),
        # Why items are missing: null when no item carried a missing code, else one entry per
        # item, the site's reason label (e.g. 'refused') where a missing code was given and
        # null where the item was answered or blank. Absent from logs written before it.
        ("item_missing", pa.list_(pa.string())),
        # How the client's episode ended, as coded on this administration's row: 'planned',
        # 'unplanned' or null (not delivered / not known). Absent from logs written before it.
        ("ending_type", pa.string()),
        ("supersedes_event_id", pa.string()),
        ("reason", pa.string()),
        ("source_file", pa.string()),
        ("source_sha256", pa.string()),
        ("source_row", pa.int64()),
        ("batch_id", pa.string()),
        ("actor", pa.string()),
        ("logical_date", pa.date32()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def event_id(event_type: str, key: tuple, content: object, previous_event_id: str | None) -> str:
    """Deterministic from content and from the version it follows.

    Chaining on the previous event of the same key keeps ids unique when a value returns to an
    earlier state (recorded, retracted, recorded again), and identical across rebuilds.
    """
    canonical = json.dumps(
        [event_type, list(key), content, previous_event_id], separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
