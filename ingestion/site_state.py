"""A site's current state, replayed from the event log: what a new snapshot is compared with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingestion import delta_store
from ingestion.events import CLIENT_TYPES, RESPONSE_RETRACTED, RESPONSE_TYPES

Key = tuple[str, int, str, str]  # client_pid, session_number, instrument, rater_role


def content_of(
    items: list[float | None],
    session_date: str | None,
    therapist_pid: str | None,
    ending_type: str | None = None,
    item_missing: list[str | None] | None = None,
) -> str:
    """Canonical text of an administration's values: equal text = unchanged.

    The ending type is part of the content only when known, and the items' missing-code
    reasons only when some item has one, so an administration without them has the same text
    (and event ids) as before the fields existed: logs written then replay as unchanged, and a
    site adding an ending or a missing code to a stored row yields one amendment.
    """
    content: dict[str, object] = {
        "items": items,
        "session_date": session_date,
        "therapist_pid": therapist_pid,
    }
    if ending_type is not None:
        content["ending_type"] = ending_type
    if item_missing is not None and any(m is not None for m in item_missing):
        content["item_missing"] = list(item_missing)
    return json.dumps(content, separators=(",", ":"), sort_keys=True)


@dataclass
class SiteState:
    site_id: str
    current: dict[Key, str] = field(default_factory=dict)  # key -> content (not retracted)
    last_event: dict[Key, str] = field(default_factory=dict)  # key -> latest event id
    closed_clients: dict[str, str] = field(default_factory=dict)  # pid -> withdrawn / erased
    last_client_event: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    @classmethod
    def load(cls, event_log: Path, site_id: str) -> SiteState:
        state = cls(site_id)
        if not delta_store.exists(event_log):
            return state
        files = delta_store.data_files(event_log)
        if not files:
            return state
        con = duckdb.connect()
        try:
            source = "read_parquet(?, union_by_name = true)"
            names = {
                d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0", [files]).description
            }
            # Logs written before events carried an ending type have no such column.
            ending = "ending_type" if "ending_type" in names else "CAST(NULL AS VARCHAR)"
            missing = "item_missing" if "item_missing" in names else "CAST(NULL AS VARCHAR[])"
            rows = con.execute(
                f"""
                SELECT event_id, event_type, site_seq, client_pid, session_number, instrument,
                       rater_role, items, CAST(session_date AS VARCHAR), therapist_pid, {ending},
                       {missing}
                FROM {source}
                WHERE site_id = ?
                ORDER BY site_seq
                """,
                [files, site_id],
            ).fetchall()
        finally:
            con.close()
        for (
            eid,
            etype,
            seq,
            pid,
            session,
            instrument,
            role,
            items,
            day,
            therapist,
            end,
            why,
        ) in rows:
            state.seq = max(state.seq, seq)
            if etype in RESPONSE_TYPES:
                key = (pid, session, instrument, role)
                state.last_event[key] = eid
                if etype == RESPONSE_RETRACTED:
                    state.current.pop(key, None)
                else:
                    state.current[key] = content_of(items, day, therapist, end, why)
            elif etype in CLIENT_TYPES:
                state.closed_clients[pid] = etype
                state.last_client_event[pid] = eid
        return state
