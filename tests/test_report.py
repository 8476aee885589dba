"""The release report renders offline from a marts database built from the tiny fixture."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from warehouse.report import FLUCKIGER_2018, dbt_vars, render_report

pytestmark = pytest.mark.slow

MANIFEST = {
    "release_id": "2026-11-20_v1_test",
    "logical_date": "2026-11-20",
    "event_log_version": 1,
    "registry_sha256": "ab" * 32,
    "gx": {"gx_version": "1.24.1", "by_status": {"passed": 81, "failed": 0}},
}


@pytest.fixture(scope="module")
def marts_db(tmp_path_factory: pytest.TempPathFactory, tiny_built_root: Path) -> Path:
    """The tiny build, copied the way a release stores it (tables in marts.duckdb's main)."""
    build_db = tiny_built_root / "build" / "warehouse.duckdb"
    release_db = tmp_path_factory.mktemp("report") / "marts.duckdb"
    con = duckdb.connect(str(release_db))
    try:
        con.execute(f"ATTACH '{build_db}' AS build (READ_ONLY)")
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = 'build' AND table_schema = 'marts'"
        ).fetchall()
        for (table,) in tables:
            con.execute(f'CREATE TABLE main."{table}" AS SELECT * FROM build.marts."{table}"')
    finally:
        con.close()
    return release_db


@pytest.fixture(scope="module")
def report(marts_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = render_report(marts_db, MANIFEST, tmp_path_factory.mktemp("out") / "report.html")
    return out.read_text(encoding="utf-8")


def test_report_is_self_contained(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    lowered = report.lower()
    for needle in ("http://", "https://", "<script", "<link", "<img", "<iframe", "@import", "url("):
        assert needle not in lowered, needle
    assert re.search(r"\ssrc\s*=", lowered) is None


def test_every_figure_is_well_formed_svg(report: str) -> None:
    figures = re.findall(r"<svg\b.*?</svg>", report, flags=re.S)
    assert len(figures) >= 3  # forest, ruptures, one pre/post scatter
    for figure in figures:
        ET.fromstring(figure)  # raises on broken markup


def test_forest_plot_has_one_row_per_site_and_the_anchor(report: str, marts_db: Path) -> None:
    sites = re.findall(r'class="forest-row forest-site" data-site="([^"]+)"', report)
    assert sites == ["alpha", "beta"]
    assert report.count('class="forest-row forest-anchor"') == 1
    assert FLUCKIGER_2018.label in report
    assert "r = .278 [.256, .299]" in report
    con = duckdb.connect(str(marts_db), read_only=True)
    try:
        (r,) = con.execute(
            "SELECT r FROM marts.mart_alliance_outcome_pooled "
            "WHERE scope = 'primary' AND correlation_type = 'raw' AND method = 'random_dl'"
        ).fetchone()
    finally:
        con.close()
    assert f"Pooled r = <strong>{f'{r:.3f}'.lstrip('0')}</strong>" in report


def test_small_cells_are_shown_as_hidden(report: str) -> None:
    # 5 and 4 clients per site: below the default threshold of 11.
    kpis = report[report.index('id="kpis"') : report.index('id="therapists"')]
    assert kpis.count('class="hidden"') >= 4
    # Shown as "suppressed", never as a number-like "<11" (a mean is not "less than 11").
    cells = re.findall(r'<td class="hidden"[^>]*>([^<]*)</td>', kpis)
    assert len(cells) >= 4 and set(cells) == {"suppressed"}
    assert "&lt;11" not in kpis
    # Too few ratings per session for a trajectory; no therapist has 5 clients.
    assert "No session has at least 11 alliance ratings" in report
    assert "No therapist has at least 5 clients" in report


def test_pre_post_scatter_per_outcome_measure(report: str) -> None:
    scatter = re.search(
        r'<figure class="scatter" data-instrument="phq9">.*?</figure>', report, re.S
    )
    assert scatter is not None
    assert scatter.group(0).count("<circle") == 9  # every tiny client has two scores
    assert 'class="rc-band"' in scatter.group(0) and 'class="cutoff"' in scatter.group(0)


def test_lower_threshold_draws_trajectories(marts_db: Path, tmp_path: Path) -> None:
    manifest = {**MANIFEST, "parameters": {**dbt_vars(), "small_cell_threshold": 4}}
    text = render_report(marts_db, manifest, tmp_path / "r.html").read_text(encoding="utf-8")
    assert re.findall(r'class="trajectory" data-site="([^"]+)"', text) == ["alpha", "beta"]


def test_rendering_is_deterministic(marts_db: Path, tmp_path: Path) -> None:
    first = render_report(marts_db, MANIFEST, tmp_path / "a.html").read_bytes()
    second = render_report(marts_db, MANIFEST, tmp_path / "b.html").read_bytes()
    assert first == second
