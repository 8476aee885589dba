"""The event envelope: the one schema every fact about a participant is stored in.

Event types: a first recording, an amendment (same natural key, new values: the old event stays
in the log), a retraction (the administration disappeared from a site's snapshot), a consent
withdrawal, and an erasure record (what was erased and why, never the payload).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pyarrow as pa

# The envelope's version. 2: event ids hash `id_text` (1: a JSON array; see `event_id`).
SCHEMA_VERSION = 2
ID_VERSION_TAG = "bordin-event-v2"
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
        # 'unplanned', 'open' (still running) or null (not delivered / not known). Absent from
        # logs written before it.
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


def event_id(event_type: str, key: tuple, content: tuple, previous_event_id: str | None) -> str:
    """Deterministic from content and from the version it follows: SHA-256 of `id_text`.

    Chaining on the previous event of the same key keeps ids unique when a value returns to an
    earlier state (recorded, retracted, recorded again), and identical across rebuilds. Events
    of `schema_version` 2 on have this id; version 1 ids (SHA-256 of a JSON array, whose JSON
    content text cost most of a large file's intake) stay as they were written: an id is only
    ever read back, never recomputed, so a log holding both kinds works as one.
    """
    return hashlib.sha256(id_text(event_type, key, content, previous_event_id).encode()).hexdigest()


def id_text(event_type: str, key: tuple, content: tuple, previous_event_id: str | None) -> str:
    """The version-2 canonical text: the fields joined by the unit separator (U+001F), NULL as
    the empty text (no field tells the two apart in meaning, and none holds U+001F).

    key: (site_id, client_pid[, session_number, instrument, rater_role]);
    content: a response's (items, session_date, therapist_pid, ending_type, item_missing), as
    `response_content` renders them, or a client event's (reason,).
    """
    fields = (ID_VERSION_TAG, event_type, *key, *content, previous_event_id)
    return "\x1f".join("" if f is None else str(f) for f in fields)


def response_content(
    items: list[float | None] | None,
    session_date: date | None,
    therapist_pid: str | None,
    ending_type: str | None,
    item_missing: list[str | None] | None,
) -> tuple:
    """A response's content fields as their id text renders them: the items as DuckDB casts a
    DOUBLE[] to text ('[4.0, NULL]'), the missing reasons as compact JSON."""
    return (
        None
        if items is None
        else "[" + ", ".join("NULL" if v is None else repr(float(v)) for v in items) + "]",
        None if session_date is None else session_date.isoformat(),
        therapist_pid,
        ending_type,
        None
        if item_missing is None
        else json.dumps(item_missing, separators=(",", ":"), ensure_ascii=False),
    )
