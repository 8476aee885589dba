"""bordin_nightly under a real Airflow scheduler, as deployed: Postgres metadata DB, LocalExecutor,
separate api-server, scheduler and dag-processor processes (tests/real_airflow.py), no Docker.

The run is triggered through the REST API for the tiny consortium's night, and its release must
hold the same Parquet bytes as `bordin nightly` (dag.test on SQLite) made from the same inputs
in another data root: the deployment changes how tasks run, never what they publish.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, TINY_NIGHT
from tests.real_airflow import DUCKDB_POOL, Stack, airflow_stack

pytestmark = pytest.mark.slow

DAG = "bordin_nightly"
RUN_ID = f"tiny-{TINY_NIGHT}"
SITES = {"alpha", "beta"}  # tests/fixtures/tiny/consortium.yml


def _parquet_hashes(home: Path) -> dict[str, str]:
    """SHA-256 of every Parquet file of the latest release, hashed here from the bytes."""
    folder = (home / "releases" / "latest").resolve() / "parquet"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.parquet")}


def _render(content: list) -> str:
    """A task log as the UI shows it: one line per structured record."""
    lines = []
    for record in content:
        if isinstance(record, str):
            lines.append(record)
            continue
        head = " ".join(
            part
            for part in (
                record.get("timestamp", ""),
                f"[{record['level']}]" if record.get("level") else "",
                f"{record['logger']}:" if record.get("logger") else "",
            )
            if part
        )
        lines.append(f"{head} {record.get('event', '')}".strip())
    return "\n".join(lines) + "\n"


def _process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # exited, waiting for its parent to reap it


def _run_state(stack: Stack) -> str | None:
    state = stack.api("GET", f"/dags/{DAG}/dagRuns/{RUN_ID}")["state"]
    return state if state in ("success", "failed") else None


def _failure_detail(stack: Stack) -> str:
    tis = stack.api("GET", f"/dags/{DAG}/dagRuns/{RUN_ID}/taskInstances")["task_instances"]
    lines = [f"{t['task_id']}[{t['map_index']}]: {t['state']}" for t in tis]
    for t in tis:
        if t["state"] == "failed":
            log = stack.api(
                "GET",
                f"/dags/{DAG}/dagRuns/{RUN_ID}/taskInstances/{t['task_id']}/logs/"
                f"{t['try_number']}?map_index={t['map_index']}&full_content=true",
            )
            lines.append(_render(log.get("content", []))[-4000:])
    return "\n".join(lines)


def test_scheduler_run_publishes_the_bytes_bordin_nightly_does(
    home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shutil.copytree(FIXTURES / "tiny", home, dirs_exist_ok=True)
    logs = tmp_path / "airflow-logs"
    started = time.monotonic()
    with airflow_stack(home, logs) as stack:
        assert stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        ready_s = time.monotonic() - started

        # The dag-processor has parsed the DAG and stored it in Postgres.
        stack.wait_for("the DAG in the metadata DB", lambda: _dag_listed(stack), 180)
        assert stack.api("GET", "/importErrors")["total_entries"] == 0
        pool = stack.api("GET", f"/pools/{DUCKDB_POOL[0]}")
        assert pool["slots"] == int(DUCKDB_POOL[1])

        stack.api(
            "POST",
            f"/dags/{DAG}/dagRuns",
            {"dag_run_id": RUN_ID, "logical_date": f"{TINY_NIGHT}T00:00:00Z"},
        )
        state = stack.wait_for("the DAG run to finish", lambda: _run_state(stack), 600, 3.0)
        run_s = time.monotonic() - started - ready_s
        assert state == "success", _failure_detail(stack)

        # One mapped ingest per site, named by its site in the UI; keep each one's log.
        tis = stack.api("GET", f"/dags/{DAG}/dagRuns/{RUN_ID}/taskInstances?task_id=ingest")
        ingests = tis["task_instances"]
        assert {t["rendered_map_index"] for t in ingests} == SITES
        assert {t["state"] for t in ingests} == {"success"}
        for t in ingests:
            log = stack.api(
                "GET",
                f"/dags/{DAG}/dagRuns/{RUN_ID}/taskInstances/ingest/logs/{t['try_number']}"
                f"?map_index={t['map_index']}&full_content=true",
            )
            text = _render(log["content"])
            (logs / f"task-ingest-{t['rendered_map_index']}.log").write_text(text, "utf-8")
            assert text.strip(), f"empty ingest log for {t['rendered_map_index']}"

    # Clean shutdown: every service (and the task processes it forked) and Postgres are gone.
    assert all(p.poll() is not None for p in stack.processes.values())
    assert _process_gone(stack.database.pid), "Postgres still runs"
    assert not stack.database.folder.exists()

    # After the stack stopped: the same inputs through `bordin nightly` in another data root.
    hashes = _parquet_hashes(home)
    assert hashes, "the scheduler's run published no Parquet file"
    # Asked for only now, so that the scheduler's run never waits for another worker's build.
    tiny_nightly_root = request.getfixturevalue("tiny_nightly_root")
    assert hashes == _parquet_hashes(tiny_nightly_root)
    manifest = json.loads(((home / "releases" / "latest") / "manifest.json").read_text("utf-8"))
    assert manifest["logical_date"] == TINY_NIGHT
    (logs / "timing.json").write_text(
        json.dumps({"stack_ready_s": round(ready_s, 1), "dag_run_s": round(run_s, 1)}), "utf-8"
    )


def _dag_listed(stack: Stack) -> bool:
    return any(d["dag_id"] == DAG for d in stack.api("GET", "/dags")["dags"])
