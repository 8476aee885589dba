"""Run the nightly DAG once, in-process, on the embedded default (SQLite metadata DB).

`dag.test()` runs the real DAG (real tasks, real XCom, real dynamic mapping) without a
scheduler, which is what `bordin nightly` and the end-to-end tests need. Airflow reads its
configuration at import time, so the environment is set before anything imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from ingestion.locks import LockBusyError, exclusive_lock
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


def ensure_pool(where: Paths) -> None:
    """Create the `bordin_duckdb` pool (one slot) that docker-compose's init creates, so the
    embedded run serialises build, check and release the same way a deployment does."""
    from airflow.models.pool import Pool

    from warehouse.dag_options import DUCKDB_POOL, DUCKDB_POOL_DESCRIPTION

    existing = Pool.get_pool(DUCKDB_POOL)
    if existing is None or existing.slots != 1:
        Pool.create_or_update_pool(
            DUCKDB_POOL, slots=1, description=DUCKDB_POOL_DESCRIPTION, include_deferred=False
        )


class NightlyBusyError(RuntimeError):
    """Another nightly holds this data root: two at once would race on Airflow's metadata."""


@contextmanager
def one_nightly(where: Paths, logical_date: date) -> Iterator[None]:
    """Hold the data root's nightly lock, or refuse at once naming the run that holds it."""
    lock = where.locks / "nightly.lock"
    holder = where.locks / "nightly.holder.json"
    with ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(lock, wait=False))
        except LockBusyError:
            raise NightlyBusyError(
                f"another bordin nightly is running on {where.home} ({_describe(holder)}); "
                "wait for it to finish, then run again"
            ) from None
        holder.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "logical_date": logical_date.isoformat(),
                    "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            ),
            encoding="utf-8",
        )
        try:
            yield
        finally:
            holder.unlink(missing_ok=True)


def _describe(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its details were not recorded"
    return (
        f"pid {info.get('pid')}, logical date {info.get('logical_date')}, "
        f"started {info.get('started_at')}"
    )


def run_nightly(logical_date: date, where: Paths | None = None) -> str:
    """Run bordin_nightly once for `logical_date`; returns the DagRun state.

    One nightly per data root at a time: a second one is refused with the first one's details
    (two `dag.test` runs on one SQLite metadata DB fail deep inside Airflow instead)."""
    where = configure(where)
    with one_nightly(where, logical_date):
        return _run_dag(logical_date, where)


def _run_dag(logical_date: date, where: Paths) -> str:
    ensure_metadata_db(where)
    ensure_pool(where)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(DAG_ID)
    moment = datetime(logical_date.year, logical_date.month, logical_date.day, tzinfo=UTC)
    run = dag.test(logical_date=moment)
    return str(run.state)
