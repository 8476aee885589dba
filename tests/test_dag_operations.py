"""How bordin_nightly runs in Airflow: retries, pool, Asset outlet and its example consumer, the
failure callback, per-site log lines, dbt's streamed lines, and what a task imports."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingestion.settings import DAGS_DIR, REPO_ROOT
from warehouse.build import _stream_output
from warehouse.dag_options import (
    DagOptionError,
    failure_callback,
    ingest_retries,
)

CONSUMER = REPO_ROOT / "docs" / "examples" / "bordin_release_consumer.py"


def notify(context: object) -> None:  # named by BORDIN_FAILURE_CALLBACK in a test below
    """A stand-in failure callback."""


def test_dag_retries_pool_asset_and_example_consumer(home: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, os, shutil, tempfile
        from warehouse.airflow_runner import configure
        configure()
        os.environ["BORDIN_FAILURE_CALLBACK"] = "tests.test_dag_operations:notify"
        from airflow.dag_processing.dagbag import DagBag
        folder = tempfile.mkdtemp()
        shutil.copy({str(DAGS_DIR / "bordin_nightly.py")!r}, folder)
        shutil.copy({str(CONSUMER)!r}, folder)
        bag = DagBag(dag_folder=folder)
        nightly, consumer = bag.dags["bordin_nightly"], bag.dags["bordin_release_consumer"]
        tasks = {{t.task_id: t for t in nightly.tasks}}
        ingest = tasks["ingest"]
        print(json.dumps({{
            "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
            "retries": ingest.partial_kwargs.get("retries"),
            "backoff": ingest.partial_kwargs.get("retry_exponential_backoff"),
            "delay_s": ingest.partial_kwargs.get("retry_delay").total_seconds(),
            "pools": {{k: t.pool for k, t in tasks.items()}},
            "outlets": [[a.name, a.uri] for a in tasks["release"].outlets],
            "callback": [c.__name__ for c in (tasks["build"].on_failure_callback or [])],
            "consumer_schedule": [
                [a.name, a.uri] for a in consumer.timetable.asset_condition.objects
            ],
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert (info["retries"], info["backoff"], info["delay_s"]) == (2, 2.0, 30.0)
    assert info["pools"] == {
        "list_sites": "default_pool",
        "ingest": "default_pool",
        "build": "bordin_duckdb",
        "check": "bordin_duckdb",
        "release": "bordin_duckdb",
    }
    asset = ["bordin_release", "bordin://releases/latest"]
    assert info["outlets"] == [asset]
    assert info["consumer_schedule"] == [asset]
    assert info["callback"] == ["notify"]


def test_ingest_retries_from_the_environment() -> None:
    assert ingest_retries({}) == 2
    assert ingest_retries({"BORDIN_INGEST_RETRIES": "0"}) == 0
    for bad in ("-1", "eleven", "11"):
        with pytest.raises(DagOptionError, match="BORDIN_INGEST_RETRIES"):
            ingest_retries({"BORDIN_INGEST_RETRIES": bad})


def test_failure_callback_from_the_environment() -> None:
    assert failure_callback({}) is None
    found = failure_callback({"BORDIN_FAILURE_CALLBACK": "tests.test_dag_operations:notify"})
    assert found is notify
    for bad, why in (
        ("tests.test_dag_operations", "expected 'package.module:function'"),
        ("tests.test_dag_operations:nope", "cannot load it"),
        ("no_such_module_xyz:f", "cannot load it"),
        ("tests.test_dag_operations:CONSUMER", "not callable"),
    ):
        with pytest.raises(DagOptionError, match=why):
            failure_callback({"BORDIN_FAILURE_CALLBACK": bad})


def test_dbt_output_streams_into_the_log_line_by_line(caplog: pytest.LogCaptureFixture) -> None:
    code = "import sys; print('1 of 2 OK model a'); print(''); print('2 of 2 OK model b'); "
    code += "print('oops', file=sys.stderr)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with caplog.at_level(logging.INFO, logger="warehouse.build"):
        stdout, stderr = _stream_output(proc)
    assert stdout == "1 of 2 OK model a\n\n2 of 2 OK model b\n"
    assert stderr == "oops\n"
    assert [r.getMessage() for r in caplog.records] == [
        "dbt: 1 of 2 OK model a",
        "dbt: 2 of 2 OK model b",
    ]


def test_task_modules_do_not_import_great_expectations_or_cosmos() -> None:
    """What the ingest, build and release tasks import stays free of GX (3.5 s, 200 log lines)
    and of Cosmos; only the check task imports GX, inside check_step."""
    code = (
        "import sys, warehouse.pipeline, warehouse.build, warehouse.release, "
        "warehouse.airflow_runner, warehouse.dag_options; "
        "print(sorted(m for m in ('great_expectations', 'cosmos') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == "[]"


def test_cosmos_is_not_in_the_runtime_lock() -> None:
    lock = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = {line.split("==")[0] for line in lock.splitlines() if "==" in line and line[0] != " "}
    assert "astronomer-cosmos" not in pinned
    assert "filelock" in pinned  # the test suite's own need, once pulled in by Cosmos
    bench = (REPO_ROOT / "bench" / "requirements-cosmos.txt").read_text(encoding="utf-8")
    assert "astronomer-cosmos==1.15.1" in bench.splitlines()


@pytest.mark.slow
def test_a_real_nightly_uses_the_pool_emits_the_asset_and_ships_the_gate_summary(
    tiny_nightly_root: Path,
) -> None:
    """On the shared `bordin nightly` of the tiny consortium (dag.test, SQLite metadata DB)."""
    import contextlib
    import hashlib
    import sqlite3

    database = tiny_nightly_root / "airflow" / "airflow.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as con:
        pools = con.execute("SELECT pool, slots FROM slot_pool WHERE pool = 'bordin_duckdb'")
        assert pools.fetchall() == [("bordin_duckdb", 1)]
        task_pools = dict(con.execute("SELECT task_id, pool FROM task_instance").fetchall())
        assert task_pools["build"] == task_pools["release"] == "bordin_duckdb"
        events = con.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = 'bordin_release'"
        ).fetchall()
    release = (tiny_nightly_root / "releases" / "latest").resolve()
    assert [json.loads(extra)["release_id"] for (extra,) in events] == [release.name]
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    summary = release / "gate_summary.json"
    assert listed["gate_summary.json"] == hashlib.sha256(summary.read_bytes()).hexdigest()
    checks = json.loads(summary.read_text(encoding="utf-8"))["checks"]
    assert len(checks) == manifest["gx"]["total"]
    assert {c["status"] for c in checks} <= {"passed", "not_applicable"}
    assert "checks" not in manifest["gx"]
