"""The dbt build's DuckDB runs bounded: a memory limit, a temp folder under the data root to
spill into past it, and every thread the build was given (issue 14, items 3 and 4).

The settings are read back from the connection dbt itself opens (`dbt show`), not from the
profile's text, so a typo in profiles.yml or a setting dbt-duckdb drops fails here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ingestion.settings import Paths
from warehouse import build as build_module
from warehouse.pipeline import ingest_step, site_ids

SETTINGS_QUERY = (
    "select current_setting('memory_limit') as memory_limit, "
    "current_setting('temp_directory') as temp_directory, "
    "current_setting('threads') as threads"
)


def _settings_seen_by_dbt(where: Paths, threads: int) -> dict:
    where.build_dir.mkdir(parents=True, exist_ok=True)
    rules = build_module.Rules.current(where)
    env = build_module.dbt_env(where, where.build_db, where.build_dir, 0, threads, rules)
    proc = subprocess.run(
        build_module._dbt_command(
            "show", "--inline", SETTINGS_QUERY, "--output", "json", "--log-format", "text"
        ),
        env=env,
        cwd=where.build_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start : proc.stdout.rindex("}") + 1])["show"][0]


@pytest.mark.slow
def test_dbt_duckdb_gets_the_memory_limit_temp_folder_and_threads(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = Paths(tiny_home)
    monkeypatch.setenv("BORDIN_BUILD_MEMORY", "700MB")
    seen = _settings_seen_by_dbt(where, threads=2)
    # DuckDB reports the limit in its own units: 700 MB = 667.5 MiB.
    assert seen["memory_limit"] == "667.5 MiB"
    assert (
        Path(where.build_dir, seen["temp_directory"]).resolve()
        == (where.build_dir / build_module.SPILL_DIR).resolve()
    )
    assert int(seen["threads"]) == 2


@pytest.mark.slow
def test_default_memory_limit_applies_without_the_variable(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BORDIN_BUILD_MEMORY", raising=False)
    seen = _settings_seen_by_dbt(Paths(tiny_home), threads=1)
    assert seen["memory_limit"] == "1.5 GiB"  # the profile default, 1.5GiB
    assert int(seen["threads"]) == 1


def test_failed_build_removes_spilled_pages(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's spill files are as private as the warehouse: a failed build leaves none."""
    where = Paths(tiny_home)
    for site in site_ids(where):
        ingest_step(site, "2026-11-20", where)

    def failing_dbt(env: dict[str, str], build_dir: Path, threads: int, variables: dict):
        spill = build_dir / build_module.SPILL_DIR
        spill.mkdir()
        (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"\0" * 4096)
        return subprocess.CompletedProcess(["dbt"], 2, "Out of Memory Error", "")

    monkeypatch.setattr(build_module, "_run_dbt", failing_dbt)
    with pytest.raises(build_module.BuildError, match="Out of Memory"):
        build_module.build(where)
    assert not (where.build_dir / build_module.SPILL_DIR).exists()
