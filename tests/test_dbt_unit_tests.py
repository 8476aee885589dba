"""The dbt unit tests of the scoring SQL, run once per test run (not in every build).

They test static, hand-written inputs, so the nightly build leaves them out
(warehouse.build.NIGHTLY_EXCLUDES); this runs every one of them, against a copy of the tiny
build (dbt needs the parent models' column types).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.settings import DBT_PROJECT_DIR, Paths
from warehouse.build import run_unit_tests

pytestmark = pytest.mark.slow


def _declared_unit_tests() -> set[str]:
    """Every unit test named in the project's yml files, read independently of dbt."""
    names = set()
    for path in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names |= {entry["name"] for entry in doc.get("unit_tests") or []}
    return names


def test_every_dbt_unit_test_passes(tiny_built: Path) -> None:
    declared = _declared_unit_tests()
    assert len(declared) >= 20  # today's 21; a lost yml block shows here
    summary = run_unit_tests(Paths(tiny_built))
    assert summary["failures"] == []
    assert summary["counts"]["pass"] == len(declared)  # every declared unit test ran and passed
    assert set(summary["counts"]) <= {"pass", "success"}  # "success": the on-run-start hooks
