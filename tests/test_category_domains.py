"""Category columns are checked VARCHAR domains (issue 13, item 3): dbt tests fail the build when
a mart holds a value outside its domain. Known-bad values are written into a built warehouse
and the marts' dbt tests must name the broken column."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from ingestion import delta_store
from ingestion.settings import Paths
from warehouse import build as build_module

pytestmark = pytest.mark.slow  # starts from the shared tiny build and runs dbt test


def test_values_outside_a_category_domain_fail_the_marts_tests(tiny_built: Path) -> None:
    where = Paths(tiny_built)
    con = duckdb.connect(str(where.build_db))
    try:
        con.execute("UPDATE marts.mart_site_quality SET early_alliance_rule = 'median'")
        con.execute(
            "UPDATE marts.fct_outcome_session SET severity_band = 'catastrophic' "
            "WHERE severity_band IS NOT NULL"
        )
        (bands,) = con.execute(
            "SELECT count(*) FROM marts.fct_outcome_session WHERE severity_band = 'catastrophic'"
        ).fetchone()
    finally:
        con.close()
    assert bands > 0  # the tiny fixture has PHQ-9 bands to break
    rules = build_module.Rules.current(where)
    version = delta_store.current_version(where.event_log)
    env = build_module.dbt_env(where, where.build_db, where.build_dir, version, 1, rules)
    proc = subprocess.run(
        build_module._dbt_command(
            "test",
            "--select",
            "mart_site_quality fct_outcome_session",
            "--exclude-resource-type",
            "unit_test",
            "--vars",
            json.dumps(build_module.consortium_vars(rules)),
        ),
        env=env,
        cwd=where.build_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    failed = {
        node["unique_id"]
        for node in json.loads(
            (where.build_dir / "dbt_target" / "run_results.json").read_text(encoding="utf-8")
        )["results"]
        if node["status"] == "fail"
    }
    assert any("accepted_values_mart_site_quality_early_alliance_rule" in f for f in failed)
    assert any("relationships_fct_outcome_session_severity_band" in f for f in failed)
