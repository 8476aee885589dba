"""Run the nightly DAG once, in-process, on the embedded default (SQLite metadata DB).

`dag.test()` runs the real DAG (real tasks, real XCom, real dynamic mapping) without a
scheduler, which is what `bordin nightly` and the end-to-end tests need. Airflow reads its
configuration at import time, so the environment is set before anything imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from ingestion.settings import DAGS_DIR, Paths, paths

DAG_ID = "bordin_nightly"


def airflow_env(where: Paths) -> dict[str, str]:
    home = where.airflow_home
    return {
        "BORDIN_HOME": str(where.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get(
            "AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"
        ),
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "SCARF_ANALYTICS": "false",
    }


def configure(where: Paths | None = None) -> Paths:
    """Point this process's Airflow at $BORDIN_HOME/airflow; call before importing airflow."""
    where = where or paths()
    where.airflow_home.mkdir(parents=True, exist_ok=True)
    for key, value in airflow_env(where).items():
        os.environ[key] = value
    return where


def ensure_metadata_db(where: Paths) -> None:
    """`airflow db migrate` once per data root (it is idempotent, but costs seconds)."""
    stamp = where.airflow_home / ".migrated"
    if stamp.exists():
        return
    env = {**os.environ, **airflow_env(where)}
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    stamp.write_text("ok\n", encoding="utf-8")


def run_nightly(logical_date: date, where: Paths | None = None) -> str:
    """Run bordin_nightly once for `logical_date`; returns the DagRun state."""
    where = configure(where)
    ensure_metadata_db(where)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(DAG_ID)
    moment = datetime(logical_date.year, logical_date.month, logical_date.day, tzinfo=UTC)
    run = dag.test(logical_date=moment)
    return str(run.state)
