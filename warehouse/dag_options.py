"""Operational settings of the bordin_nightly DAG, read once at parse time, in one place.

Kept free of heavy imports (no GX, DuckDB or dbt): the DAG file and the embedded runner import
it, and a DAG file must parse in well under a second.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

# Serialises the tasks that write or read the build DuckDB file (build, check, release).
# docker-compose creates it; the embedded runner creates it too (airflow_runner.ensure_pool).
DUCKDB_POOL = "bordin_duckdb"
DUCKDB_POOL_DESCRIPTION = "Serialises writers of the DuckDB build database"

# The published release as an Airflow Asset: downstream DAGs schedule on it.
RELEASE_ASSET_NAME = "bordin_release"
RELEASE_ASSET_URI = "bordin://releases/latest"

INGEST_RETRIES_ENV = "BORDIN_INGEST_RETRIES"
FAILURE_CALLBACK_ENV = "BORDIN_FAILURE_CALLBACK"
DEFAULT_INGEST_RETRIES = 2
# First retry after 30 s, then doubling (Airflow's exponential backoff), never above 10 min.
INGEST_RETRY_DELAY = timedelta(seconds=30)
INGEST_MAX_RETRY_DELAY = timedelta(minutes=10)


class DagOptionError(ValueError):
    """An environment variable the DAG reads is set to something unusable."""


def ingest_retries(environ: dict[str, str] | None = None) -> int:
    """How often a failed per-site ingest is retried ($BORDIN_INGEST_RETRIES, default 2)."""
    raw = (environ if environ is not None else os.environ).get(INGEST_RETRIES_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_INGEST_RETRIES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 10:
        raise DagOptionError(f"{INGEST_RETRIES_ENV}={raw!r}: must be a whole number from 0 to 10")
    return value


def failure_callback(
    environ: dict[str, str] | None = None,
) -> Callable[[Any], None] | None:
    """The task failure callback named by $BORDIN_FAILURE_CALLBACK ('package.module:function').

    Unset means no callback. A name that does not resolve is an error at parse time, so a
    misconfigured notification shows as a DAG import error instead of silently never firing.
    """
    spec = (
        (environ if environ is not None else os.environ).get(FAILURE_CALLBACK_ENV) or ""
    ).strip()
    if not spec:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise DagOptionError(f"{FAILURE_CALLBACK_ENV}={spec!r}: expected 'package.module:function'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DagOptionError(f"{FAILURE_CALLBACK_ENV}={spec!r}: cannot load it: {exc}") from exc
    if not callable(target):
        raise DagOptionError(f"{FAILURE_CALLBACK_ENV}={spec!r}: not callable")
    return target
