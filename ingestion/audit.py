"""The run log: one JSON line per pipeline step, no-ops included, so a re-run leaves a trace.

It records what ran, on which inputs and with what effect; it never holds a secret or a raw
participant code (steps pass only pseudonyms, counts, file names and hashes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ingestion.settings import Paths


def record(where: Paths, step: str, payload: dict) -> None:
    where.audit_log.parent.mkdir(parents=True, exist_ok=True)
    line = {"step": step, "recorded_at": datetime.now(UTC).isoformat(), **payload}
    with where.audit_log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, sort_keys=True, default=str) + "\n")
