"""bordin_nightly: inbox -> event log -> dbt marts -> data-quality gate -> release.

Thin by design: each task calls one function of warehouse.pipeline, which tests and the
`bordin` command call directly. Nothing here opens DuckDB, imports Great Expectations or reads
data at parse time: task modules are imported inside the tasks, so a task's log holds only its
own lines. Operational settings (retries, pool, failure callback, the release Asset) live in
warehouse/dag_options.py.
"""

from __future__ import annotations

from datetime import UTC

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

from warehouse.dag_options import (
    DUCKDB_POOL,
    INGEST_MAX_RETRY_DELAY,
    INGEST_RETRY_DELAY,
    RELEASE_ASSET_NAME,
    RELEASE_ASSET_URI,
    failure_callback,
    ingest_retries,
)

RELEASE_ASSET = Asset(name=RELEASE_ASSET_NAME, uri=RELEASE_ASSET_URI)


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
    default_args={"retries": 0, "on_failure_callback": failure_callback()},
    tags=["bordin"],
    doc_md=__doc__,
)
def bordin_nightly() -> None:
    @task
    def list_sites() -> list[str]:
        from warehouse.pipeline import site_ids

        return site_ids()

    # The UI names each mapped ingest by its site, not by [0], [1]... Transient failures (a
    # busy lock, a network share) are retried with backoff; bad configuration fails at once.
    @task(
        map_index_template="{{ site }}",
        retries=ingest_retries(),
        retry_delay=INGEST_RETRY_DELAY,
        retry_exponential_backoff=2.0,
        max_retry_delay=INGEST_MAX_RETRY_DELAY,
    )
    def ingest(site_id: str) -> dict:
        from warehouse.pipeline import ingest_task

        get_current_context()["site"] = site_id
        return ingest_task(site_id, _logical_date())

    # build, check and release share one slot of the bordin_duckdb pool: one DuckDB writer.
    @task(pool=DUCKDB_POOL, max_active_tis_per_dag=1)
    def build(ingested: list[dict]) -> dict:
        from warehouse.pipeline import build_step

        return build_step()

    @task(pool=DUCKDB_POOL, max_active_tis_per_dag=1)
    def check(built: dict) -> dict:
        from warehouse.pipeline import check_step

        return check_step()

    @task(pool=DUCKDB_POOL, max_active_tis_per_dag=1, outlets=[RELEASE_ASSET])
    def release(gate: dict) -> dict:
        from warehouse.pipeline import release_step

        published = release_step(_logical_date())
        # Downstream DAGs scheduled on the Asset read which release triggered them.
        events = get_current_context()["outlet_events"]
        events[RELEASE_ASSET].extra = {
            "release_id": published["release_id"],
            "path": published["path"],
            "created": published["created"],
            "content_sha256": published["content_sha256"],
        }
        return published

    ingested = ingest.expand(site_id=list_sites())
    release(check(build(ingested)))


bordin_nightly()
