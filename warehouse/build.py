"""Build the marts: one `dbt build` over a pinned version of the event log.

One dbt process per night (not one per model) keeps DuckDB's single-writer rule trivially
true and pays dbt's start-up once; see the README for the measurement against Cosmos. The build
writes a fresh DuckDB file and swaps it in only when dbt succeeded, so a failed or killed
build leaves the previous night's warehouse untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ingestion import delta_store
from ingestion.registry import default_registry
from ingestion.settings import DBT_PROJECT_DIR, Paths, paths
from warehouse.writer_lock import exclusive_writer


class BuildError(RuntimeError):
    """dbt failed; the message carries its failing nodes."""


@dataclass(frozen=True)
class BuildResult:
    event_log_version: int
    build_db: str
    registry_sha256: str
    consortium_sha256: str
    dbt: dict

    def as_dict(self) -> dict:
        return asdict(self)


def dbt_env(where: Paths, build_db: Path, version: int, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BORDIN_HOME": str(where.home),
            "BORDIN_BUILD_DB": str(build_db),
            "BORDIN_EVENT_LOG": str(where.event_log),
            "BORDIN_EVENT_LOG_VERSION": str(version),
            "BORDIN_CONSORTIUM": str(where.consortium_file),
            "BORDIN_DBT_THREADS": str(threads),
            "DBT_TARGET_PATH": str(where.build_dir / "dbt_target"),
            "DBT_LOG_PATH": str(where.build_dir / "dbt_logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def _dbt_command(*args: str) -> list[str]:
    dbt = Path(sys.executable).with_name("dbt")
    return [
        str(dbt),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]


def summarize_run_results(target: Path) -> dict:
    """Counts by status and the failing nodes, for the manifest and the task log."""
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    counts: dict[str, int] = {}
    failures = []
    for node in results["results"]:
        counts[node["status"]] = counts.get(node["status"], 0) + 1
        if node["status"] in ("error", "fail", "runtime error"):
            failures.append({"node": node["unique_id"], "message": node.get("message")})
    return {
        "dbt_version": results["metadata"]["dbt_version"],
        "elapsed_s": round(results["elapsed_time"], 2),
        "counts": dict(sorted(counts.items())),
        "failures": failures,
    }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    where: Paths | None = None, *, version: int | None = None, threads: int | None = None
) -> BuildResult:
    """Run dbt over the event log as of `version` (the latest committed one by default)."""
    where = where or paths()
    threads = threads or int(os.environ.get("BORDIN_DBT_THREADS", "1"))
    pinned = delta_store.current_version(where.event_log) if version is None else version
    if pinned is None:
        raise BuildError(f"the event log at {where.event_log} is empty: nothing was ingested yet")
    with exclusive_writer(where.build_dir):
        fresh = where.build_dir / "warehouse.next.duckdb"
        for stale in (fresh, fresh.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        env = dbt_env(where, fresh, pinned, threads)
        proc = subprocess.run(
            _dbt_command("build", "--threads", str(threads)),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        target = where.build_dir / "dbt_target"
        summary = (
            summarize_run_results(target)
            if (target / "run_results.json").exists()
            else {"counts": {}, "failures": []}
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-30:])
            raise BuildError(
                f"dbt build failed (exit {proc.returncode}):\n{tail}\n{proc.stderr[-2000:]}"
            )
        os.replace(fresh, where.build_db)
    result = BuildResult(
        event_log_version=pinned,
        build_db=str(where.build_db),
        registry_sha256=default_registry().sha256,
        consortium_sha256=file_sha256(where.consortium_file),
        dbt=summary,
    )
    (where.build_dir / "build_info.json").write_text(
        json.dumps(result.as_dict(), indent=2, sort_keys=True), encoding="utf-8"
    )
    return result
