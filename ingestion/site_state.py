"""A site's state as ingestion needs it in Python: its event order and its closed clients.

The state of its responses (what a new snapshot is compared with) is replayed in SQL by the
intake engine (`ingestion.intake.changes.load_state`), the one place that replays it; here are
only the site's last `site_seq` and the clients who withdrew or were erased, with their last
client event (a new one chains on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ingestion import delta_store
from ingestion.events import CLIENT_TYPES


@dataclass
class SiteState:
    site_id: str
    closed_clients: dict[str, str] = field(default_factory=dict)  # pid -> withdrawn / erased
    last_client_event: dict[str, str] = field(default_factory=dict)
    seq: int = 0


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
