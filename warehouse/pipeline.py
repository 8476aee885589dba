"""The nightly pipeline's steps as plain functions: the DAG's tasks and the CLI both call these.

Each takes the run's logical date where business logic needs a date, returns a small
JSON-able dict (it travels through XCom), and never puts a secret in it.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path

from expectations import EXTRA_ENV, gate_code_sha256
from ingestion import audit
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.hashing import sha256_file
from ingestion.ingest import ingest_site
from ingestion.locks import exclusive_lock
from ingestion.logical_date import parse_logical_date
from ingestion.pseudonyms import MissingKeyError
from ingestion.registry import default_registry
from ingestion.settings import Paths, paths
from warehouse.build import BUILD_INPUTS, build, planned_inputs
from warehouse.erasure import erasures_after, publish_lock_path
from warehouse.progress import reported
from warehouse.release import publish
from warehouse.step_errors import GateFailedError

log = logging.getLogger(__name__)


@reported("list sites")
def site_ids(where: Paths | None = None) -> list[str]:
    where = where or paths()
    # A site with a configuration error is still mapped: its ingest fails with that error,
    # the other sites' ingests run (the build then stops on the same error, before publishing).
    consortium = load_consortium(where.consortium_file, default_registry(), per_site=True)
    return sorted([*consortium.sites, *consortium.broken])


@reported("ingest")
def ingest_step(site_id: str, logical_date: str | date, where: Paths | None = None) -> dict:
    return ingest_site(site_id, logical_date, where=where or paths()).as_dict()


def ingest_task(site_id: str, logical_date: str | date, where: Paths | None = None) -> dict:
    """The DAG's ingest: ingest_step, whose `reported` lines (ingestion/site_summary.py) give
    the task log the site's counts.

    Bad configuration or a missing key cannot be cured by a retry, so they fail the task at
    once (AirflowFailException skips the remaining retries); anything else may be transient.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        result = ingest_step(site_id, logical_date, where)
    except (ConfigError, MissingKeyError) as exc:
        raise AirflowFailException(f"site {site_id}: {exc}") from exc
    return result


@reported("build")
def build_step(where: Paths | None = None, threads: int | None = None, force: bool = False) -> dict:
    """Rebuild the marts, unless nothing they are computed from changed since the last build
    that passed the gate: then the build is a recorded no-op and that build stands.

    `force` rebuilds regardless (e.g. to compare thread counts). A build whose inputs equal
    the previous build's, but which had not passed the gate, still runs.
    """
    where = where or paths()
    before = _last_build(where)
    if not force and before and _gated(where, before):
        planned = planned_inputs(where)
        if all(before.get(k) == planned[k] for k in BUILD_INPUTS):
            audit.record(where, "build", {**planned, "no_op": True, "skipped": True})
            return before
    result = build(where, threads=threads).as_dict()
    same = bool(before) and all(before.get(k) == result[k] for k in BUILD_INPUTS)
    audit.record(where, "build", {**{k: result[k] for k in BUILD_INPUTS}, "no_op": same})
    return result


def _last_build(where: Paths) -> dict:
    info_file = where.build_dir / "build_info.json"
    return json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}


def _last_gate(where: Paths) -> dict:
    gate_file = where.build_dir / "gate_result.json"
    return json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.exists() else {}


def _gated(where: Paths, build_info: dict) -> bool:
    """The warehouse on disk is the one `build_info` describes, and it passed the gate."""
    gate_file = where.build_dir / "gate_result.json"
    if not gate_file.exists() or not where.build_db.exists():
        return False
    gate = json.loads(gate_file.read_text(encoding="utf-8"))
    return bool(gate.get("success")) and gate.get("build_db_sha256") == sha256_file(where.build_db)


def _registry_ranges() -> dict[str, dict[str, tuple[float, float]]]:
    """Plausibility ranges for totals, straight from the registry (never literals)."""
    registry = default_registry()
    by_construct: dict[str, dict[str, tuple[float, float]]] = {
        "fct_alliance_session": {},
        "fct_outcome_session": {},
    }
    for inst in registry.instruments.values():
        mart = "fct_alliance_session" if inst.construct == "alliance" else "fct_outcome_session"
        by_construct[mart][inst.instrument_id] = (inst.total_min, inst.total_max)
    return by_construct


def gate_inputs(where: Paths) -> dict:
    """Everything the gate's verdict depends on: the warehouse, the suites and the gate's code,
    a consortium's extra expectations, the registry (range checks) and the build's code."""
    extra = os.environ.get(EXTRA_ENV)
    return {
        "build_db_sha256": sha256_file(where.build_db),
        "gate_code_sha256": gate_code_sha256(),
        "extra_expectations_sha256": sha256_file(Path(extra)) if extra else None,
        "registry_sha256": default_registry().sha256,
        "build_code_sha256": _last_build(where).get("code_sha256"),
    }


@reported("check")
def check_step(where: Paths | None = None, force: bool = False) -> dict:
    """Run the GX gate over the built marts; raise (failing the task) unless it passed.

    A gate that passed on exactly these inputs (`gate_inputs`) is not run again: the check is
    a recorded no-op and its stored result stands. A failed gate always runs again.
    """
    where = where or paths()
    inputs = gate_inputs(where)
    before = _last_gate(where)
    if not force and before.get("success") and before.get("gate_inputs") == inputs:
        audit.record(
            where,
            "check",
            {"success": True, "build_db_sha256": inputs["build_db_sha256"], "no_op": True},
        )
        return before
    # Imported here, not at the top: Great Expectations takes seconds to import and fills the
    # log with registration notices, and only this step needs it.
    from expectations.gate import registry_range_expectations, run_gate

    result = run_gate(
        where.build_db,
        range_expectations=registry_range_expectations(_registry_ranges()),
        results_dir=gate_results_dir(where),
    )
    summary = {
        **result.summary(),
        "success": result.success,
        "build_db_sha256": inputs["build_db_sha256"],
        "gate_inputs": inputs,
        "data_docs": where.stored(Path(result.data_docs)) if result.data_docs else None,
    }
    (where.build_dir / "gate_result.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )
    audit.record(
        where, "check", {"success": result.success, "build_db_sha256": summary["build_db_sha256"]}
    )
    if not result.success:
        raise GateFailedError(gate_failure_message(summary))
    return summary


def gate_results_dir(where: Paths) -> Path:
    """Where GX keeps its file context: checkpoints, stored validation results and Data Docs.

    Restricted, never the release: a stored result may quote row values."""
    return where.home / "restricted"


def gate_failure_message(summary: dict, limit: int = 20) -> str:
    """The gate's verdict for a person: one line per failed or erroring check, with the count
    of rows and the sites affected (never row values), then where the Data Docs are."""
    bad = [c for c in summary.get("checks", []) if c["status"] in ("failed", "error")]
    counts = summary.get("by_status", {})
    head = (
        f"data-quality gate failed; nothing published ({counts.get('failed', 0)} failed, "
        f"{counts.get('error', 0)} error, {counts.get('passed', 0)} passed, "
        f"{counts.get('not_applicable', 0)} not applicable):"
    )
    lines = [head]
    for check in bad[:limit]:
        sites = check.get("sites_affected")
        where_ = f"; sites: {', '.join(sites)}" if sites else ""
        detail = check.get("observed") or "-"
        lines.append(
            f"  {check['status'].upper():6} {check['rule']}: {detail}{where_} "
            f"({check.get('message') or ''})"
        )
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    if summary.get("data_docs"):
        lines.append(f"details (restricted): {summary['data_docs']}")
    return "\n".join(lines)


@reported("release")
def release_step(logical_date: str | date, where: Paths | None = None) -> dict:
    """Publish from the build that passed the gate; refuses a build the gate did not pass, and
    a build pinned before an erasure (it may hold the erased client: see warehouse/erasure.py).

    Holds the publish lock, which an erasure holds for its whole run, so the check and the
    publication cannot interleave with one.
    """
    where = where or paths()
    with exclusive_lock(publish_lock_path(where), wait=True):
        info_file = where.build_dir / "build_info.json"
        if not info_file.exists():
            raise GateFailedError("there is no build to publish (removed by an erasure?): build")
        build_info = json.loads(info_file.read_text(encoding="utf-8"))
        pinned = build_info.get("event_log_version")
        erased = erasures_after(where, pinned if isinstance(pinned, int) else None)
        if erased:
            raise GateFailedError(
                f"an erasure was committed after this build's event log version {pinned} (at "
                f"version {erased[-1]}), so the build may hold the erased client: rebuild first "
                "(build, check, then release); nothing was published"
            )
        gate_file = where.build_dir / "gate_result.json"
        gate = json.loads(gate_file.read_text(encoding="utf-8")) if gate_file.exists() else None
        if not gate or not gate.get("success"):
            raise GateFailedError("the last build has not passed the data-quality gate")
        if gate.get("build_db_sha256") != sha256_file(where.build_db):
            raise GateFailedError("the build changed after the gate checked it; run check again")
        result = publish(parse_logical_date(logical_date), build_info, gate, where)
    audit.record(
        where,
        "release",
        {"release_id": result.release_id, "created": result.created, "no_op": not result.created},
    )
    return {
        "release_id": result.release_id,
        "path": result.path,
        "created": result.created,
        "content_sha256": result.content_sha256,
    }
