"""Build the marts: one `dbt build` over a pinned version of the event log.

One dbt process per night (not one per model) keeps DuckDB's single-writer rule trivially
true and pays dbt's start-up once; see the README for the measurement against Cosmos. The build
writes a fresh DuckDB file and swaps it in only when dbt succeeded, so a failed or killed
build leaves the previous night's warehouse untouched.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.crash_points import crash_point
from ingestion.disk_space import DiskFullError, output_says_disk_full, tree_bytes
from ingestion.hashing import files_sha256, sha256_file
from ingestion.registry import load_registry
from ingestion.settings import DBT_PROJECT_DIR, INSTRUMENTS_DIR, REPO_ROOT, Paths, paths
from warehouse import parse_cache
from warehouse.writer_lock import exclusive_writer

# DuckDB's temp folder for the build (profiles.yml, relative to the build folder dbt runs in):
# past the memory limit ($BORDIN_BUILD_MEMORY) it spills here, on the data root's disk.
SPILL_DIR = "duckdb_tmp"

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """dbt failed; the message carries its failing nodes."""


@dataclass(frozen=True)
class Rules:
    """The rule set a build scores with: the instrument registry and the consortium file."""

    registry_dir: Path
    consortium_file: Path

    @classmethod
    def current(cls, where: Paths) -> Rules:
        registry_dir = Path(os.environ.get("BORDIN_REGISTRY_DIR", INSTRUMENTS_DIR))
        return cls(registry_dir, where.consortium_file)


@dataclass(frozen=True)
class BuildResult:
    event_log_version: int
    quarantine_version: int | None
    build_db: str
    registry_sha256: str
    consortium_sha256: str
    registry_dir: str
    consortium_file: str
    dbt_vars: dict
    dbt: dict
    intake_version: int | None = None
    code_sha256: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# What a build's output depends on besides the data: equal values mean an equal warehouse, so a
# build whose inputs all match the last gated build's is skipped (see build_step).
BUILD_INPUTS = (
    "event_log_version",
    "quarantine_version",
    "intake_version",
    "registry_sha256",
    "consortium_sha256",
    "dbt_vars",
    "code_sha256",
)

# The code a warehouse is computed by: the dbt project and the Python its source plugin runs.
_BUILD_CODE = (
    ("dbt_project", ("*.yml", "*.sql", "*.csv")),
    ("ingestion", ("*.py", "*.yml")),
    ("warehouse", ("build.py", "dbt_sources.py")),
)


def build_code_sha256() -> str:
    """A hash of every file that shapes the marts, so a code change is never a no-op."""
    files = {
        path
        for folder, patterns in _BUILD_CODE
        for pattern in patterns
        for path in (REPO_ROOT / folder).rglob(pattern)
    }
    return files_sha256((f for f in files if not _generated(f.relative_to(REPO_ROOT))), REPO_ROOT)


def _generated(relative: Path) -> bool:
    return bool({"target", "logs", "dbt_packages", "__pycache__"} & set(relative.parts))


def dbt_vars(overrides: dict | None = None) -> dict:
    """The parameters the marts were computed with: dbt_project.yml defaults, then `overrides`
    (what the build passed with --vars)."""
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return dict(sorted({**(project.get("vars") or {}), **(overrides or {})}.items()))


# Prorated and mean scores (answered mean x items, 10 x mean) fall between the response grid's
# points: they are published with this many decimals more than the registry's finest grid.
SCORE_EXTRA_DECIMALS = 2


def score_decimals(registry_dir: Path) -> int:
    """The scale of every score column (DECIMAL(18, s) in the marts): the finest response grid in
    the registry (0 for integer items, 1 for a 0.1-step VAS) plus SCORE_EXTRA_DECIMALS."""
    registry = load_registry(registry_dir)
    return max(i.item_decimals for i in registry.instruments.values()) + SCORE_EXTRA_DECIMALS


def consortium_vars(rules: Rules) -> dict:
    """dbt vars that come from the rule set the build scores with, not from dbt.

    `release_calendar_dates` (the consortium file) enables fct_session_calendar;
    `score_decimals` (the registry) is the scale of every score column. Read from the rule set
    (a rebuild reads the release's own copy), so a rebuild builds the same marts the release had.
    """
    try:
        consortium = load_consortium(rules.consortium_file, load_registry(rules.registry_dir))
    except ConfigError as exc:
        raise BuildError(f"the consortium file does not load: {exc}") from exc
    return {
        "release_calendar_dates": consortium.release.calendar_dates,
        "score_decimals": score_decimals(rules.registry_dir),
    }


def dbt_manifest_path(build_db: Path) -> Path:
    """dbt's manifest.json of the build that wrote `build_db` (dbt_env's DBT_TARGET_PATH): the
    documentation the release codebook is read from."""
    return Path(build_db).parent / "dbt_target" / "manifest.json"


def dbt_env(
    where: Paths,
    build_db: Path,
    build_dir: Path,
    version: int,
    threads: int,
    rules: Rules,
    quarantine_version: int | None = None,
    intake_version: int | None = None,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BORDIN_HOME": str(where.home),
            # Relative to the build folder dbt runs in: dbt hashes the profile's values to decide
            # whether its saved parse still holds, and an absolute path would differ per root.
            "BORDIN_BUILD_DB": os.path.relpath(build_db, build_dir),
            "BORDIN_EVENT_LOG": str(where.event_log),
            "BORDIN_EVENT_LOG_VERSION": str(version),
            "BORDIN_QUARANTINE": str(where.quarantine),
            "BORDIN_QUARANTINE_VERSION": ""
            if quarantine_version is None
            else str(quarantine_version),
            "BORDIN_INTAKE": str(where.intake),
            "BORDIN_INTAKE_VERSION": "" if intake_version is None else str(intake_version),
            "BORDIN_CONSORTIUM": str(Path(rules.consortium_file).resolve()),
            "BORDIN_REGISTRY_DIR": str(Path(rules.registry_dir).resolve()),
            "BORDIN_DBT_THREADS": str(threads),
            "DBT_TARGET_PATH": str(build_dir / "dbt_target"),
            "DBT_LOG_PATH": str(build_dir / "dbt_logs"),
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


def _die_with_parent() -> None:
    """Runs in the dbt child: if the build process is killed, dbt dies too (Linux prctl)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


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


# dbt unit tests check the scoring SQL on static, hand-written inputs: they cannot change with
# the night's data, so the nightly build leaves them out and the test suite runs them once
# (tests/test_dbt_unit_tests.py).
NIGHTLY_EXCLUDES = ("--exclude-resource-type", "unit_test")


def _run_dbt(
    env: dict[str, str], build_dir: Path, threads: int, variables: dict
) -> subprocess.CompletedProcess:
    parse_cache.restore(build_dir / "dbt_target", variables)
    proc = subprocess.Popen(
        _dbt_command(
            "build",
            "--threads",
            str(threads),
            "--vars",
            json.dumps(variables),
            *NIGHTLY_EXCLUDES,
        ),
        env=env,
        cwd=build_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    if os.environ.get("BORDIN_CRASH_AT") == "build.during_dbt":
        time.sleep(3)  # let dbt get going, then die mid-build
        crash_point("build.during_dbt")
    stdout, stderr = _stream_output(proc)
    if proc.returncode == 0:
        parse_cache.keep(build_dir / "dbt_target", variables)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _stream_output(proc: subprocess.Popen) -> tuple[str, str]:
    """Log dbt's stdout line by line as it comes (its per-model lines then appear in the build
    task's log while it runs) and return the whole stdout and stderr, like communicate()."""
    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    out_lines: list[str] = []
    for line in proc.stdout:
        out_lines.append(line)
        if line.strip():
            log.info("dbt: %s", line.rstrip())
    proc.wait()
    reader.join()
    return "".join(out_lines), "".join(err_chunks)


def _remove_unfinished(fresh: Path) -> None:
    for path in (fresh, fresh.with_suffix(".duckdb.wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(fresh.parent / SPILL_DIR, ignore_errors=True)


def default_threads() -> int:
    """dbt runs independent models side by side, and DuckDB each model, on every core
    (profiles.yml). The marts' bytes do not depend on it: every sum that feeds a mart adds
    exact DECIMALs or adds in a fixed order (macros/exact.sql), so no result depends on the
    order threads finish in."""
    configured = os.environ.get("BORDIN_DBT_THREADS", "").strip()
    return int(configured) if configured else max(1, os.cpu_count() or 1)


def planned_inputs(where: Paths) -> dict:
    """The BUILD_INPUTS a nightly build would have now, found without running dbt."""
    rules = Rules.current(where)
    return {
        "event_log_version": delta_store.current_version(where.event_log),
        "quarantine_version": delta_store.current_version(where.quarantine),
        "intake_version": delta_store.current_version(where.intake),
        "registry_sha256": load_registry(rules.registry_dir).sha256,
        "consortium_sha256": sha256_file(rules.consortium_file),
        "dbt_vars": dbt_vars(consortium_vars(rules)),
        "code_sha256": build_code_sha256(),
    }


def run_unit_tests(where: Paths) -> dict:
    """Run the dbt unit tests (scoring logic on hand-written inputs) against a built warehouse.

    They are left out of the nightly build (NIGHTLY_EXCLUDES) and run by the test suite once.
    The warehouse is needed only for the column types of the models' parents.
    """
    rules = Rules.current(where)
    build_dir = where.build_dir
    env = dbt_env(where, where.build_db, build_dir, 0, 1, rules)
    proc = subprocess.run(
        _dbt_command(
            "test", "--select", "test_type:unit", "--vars", json.dumps(consortium_vars(rules))
        ),
        env=env,
        cwd=build_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = summarize_run_results(build_dir / "dbt_target")
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise BuildError(f"dbt unit tests failed (exit {proc.returncode}):\n{tail}")
    return summary


def build(
    where: Paths | None = None,
    *,
    version: int | None = None,
    threads: int | None = None,
    build_dir: Path | None = None,
    rules: Rules | None = None,
    quarantine_version: int | None = None,
    intake_version: int | None = None,
) -> BuildResult:
    """Run dbt over the event log as of `version` (the latest committed one by default).

    `build_dir` and `rules` let a rebuild of an old release use a scratch folder and the rule
    set that release carries, without touching the nightly build. The quarantine and intake
    tables are pinned like the log: at their latest versions for a nightly build, at the
    versions a release recorded for a rebuild.
    """
    where = where or paths()
    build_dir = build_dir or where.build_dir
    rules = rules or Rules.current(where)
    threads = threads or default_threads()
    pinned = delta_store.current_version(where.event_log) if version is None else version
    if version is None:
        quarantine_version = delta_store.current_version(where.quarantine)
        intake_version = delta_store.current_version(where.intake)
    if pinned is None:
        raise BuildError(f"the event log at {where.event_log} is empty: nothing was ingested yet")
    target_db = build_dir / "warehouse.duckdb"
    variables = consortium_vars(rules)
    with exclusive_writer(build_dir):
        fresh = build_dir / "warehouse.next.duckdb"
        _remove_unfinished(fresh)  # a killed build's leftovers
        (build_dir / "dbt_target" / "run_results.json").unlink(missing_ok=True)
        env = dbt_env(
            where, fresh, build_dir, pinned, threads, rules, quarantine_version, intake_version
        )
        try:
            proc = _run_dbt(env, build_dir, threads, variables)
            target = build_dir / "dbt_target"
            summary = (
                summarize_run_results(target)
                if (target / "run_results.json").exists()
                else {"counts": {}, "failures": []}
            )
            if proc.returncode != 0 and output_says_disk_full(proc.stdout + proc.stderr):
                # About the last warehouse's size, or for a first one the event log's (its
                # tables are the log's rows, scored).
                needed = max(tree_bytes(target_db), tree_bytes(where.event_log))
                raise DiskFullError(build_dir, needed, "building the warehouse")
            if proc.returncode != 0:
                tail = "\n".join(proc.stdout.splitlines()[-30:])
                raise BuildError(
                    f"dbt build failed (exit {proc.returncode}):\n{tail}\n{proc.stderr[-2000:]}"
                )
        except BaseException:
            _remove_unfinished(fresh)  # a failed build leaves nothing behind
            raise
        os.replace(fresh, target_db)
        shutil.rmtree(build_dir / SPILL_DIR, ignore_errors=True)  # spilled pages, if any
        result = BuildResult(
            event_log_version=pinned,
            quarantine_version=quarantine_version,
            build_db=where.stored(target_db),
            registry_sha256=load_registry(rules.registry_dir).sha256,
            consortium_sha256=sha256_file(rules.consortium_file),
            registry_dir=where.stored(rules.registry_dir),
            consortium_file=where.stored(rules.consortium_file),
            dbt_vars=dbt_vars(variables),
            dbt=summary,
            intake_version=intake_version,
            code_sha256=build_code_sha256(),
        )
        (build_dir / "build_info.json").write_text(
            json.dumps(result.as_dict(), indent=2, sort_keys=True), encoding="utf-8"
        )
    return result
