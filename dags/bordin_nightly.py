"""bordin_nightly: inbox -> event log -> dbt marts -> data-quality gate -> release.

Thin by design: each task calls one function of warehouse.pipeline, which tests and the
`bordin` command call directly. Nothing here opens DuckDB or reads data at parse time.
"""

from __future__ import annotations

from datetime import UTC

import pendulum
from airflow.sdk import dag, get_current_context, task


def _logical_date() -> str:
    """The run's logical date (not the wall clock), as YYYY-MM-DD."""
    context = get_current_context()
    run = context["dag_run"]
    moment = run.logical_date or run.run_after
    return moment.astimezone(UTC).date().isoformat()


@dag(
    dag_id="bordin_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    tags=["bordin"],
    doc_md=__doc__,
)
def bordin_nightly() -> None:
    @task
    def list_sites() -> list[str]:
        from warehouse.pipeline import site_ids

        return site_ids()

    # The UI names each mapped ingest by its site, not by [0], [1]...
    @task(map_index_template="{{ site }}")
    def ingest(site_id: str) -> dict:
        from warehouse.pipeline import ingest_step

        get_current_context()["site"] = site_id
        return ingest_step(site_id, _logical_date())

    # One task writes DuckDB; max_active_runs=1 plus the build's OS lock keep it single.
    @task(max_active_tis_per_dag=1)
    def build(ingested: list[dict]) -> dict:
        from warehouse.pipeline import build_step

        return build_step()

    @task(max_active_tis_per_dag=1)
    def check(built: dict) -> dict:
        from warehouse.pipeline import check_step

        return check_step()

    @task(max_active_tis_per_dag=1)
    def release(gate: dict) -> dict:
        from warehouse.pipeline import release_step

        return release_step(_logical_date())

    ingested = ingest.expand(site_id=list_sites())
    release(check(build(ingested)))


bordin_nightly()
