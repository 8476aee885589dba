"""Example: a downstream DAG that runs whenever bordin_nightly publishes a release.

Copy this file into your Airflow DAGs folder next to bordin_nightly.py. bordin_nightly's release
task lists the release Asset as an outlet, so each successful release (and each recorded
no-op release) queues one run of this DAG. The Asset event's `extra` carries the release id,
its path, whether it is new (`created`), and its content hash.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

from warehouse.dag_options import RELEASE_ASSET_NAME, RELEASE_ASSET_URI

RELEASE_ASSET = Asset(name=RELEASE_ASSET_NAME, uri=RELEASE_ASSET_URI)


@dag(
    dag_id="bordin_release_consumer",
    schedule=[RELEASE_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bordin", "example"],
    doc_md=__doc__,
)
def bordin_release_consumer() -> None:
    @task
    def refresh_dashboard() -> dict:
        """Read the release that triggered this run, read-only, as an analyst would."""
        events = get_current_context()["triggering_asset_events"][RELEASE_ASSET]
        release = events[-1].extra
        if not release.get("created"):
            return {"release_id": release.get("release_id"), "refreshed": False}
        import duckdb  # imported in the task, never at parse time

        db = f"{release['path']}/marts.duckdb"
        with duckdb.connect(db, read_only=True) as con:
            (k_sites,) = con.execute(
                "SELECT max(k_sites) FROM marts.mart_alliance_outcome_pooled"
            ).fetchone()
        return {"release_id": release["release_id"], "refreshed": True, "k_sites": k_sites}

    refresh_dashboard()


bordin_release_consumer()
