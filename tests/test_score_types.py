"""Scores are DECIMAL at the registry's precision (issue 13, item 3): exact on the response
grid, with no float artefacts such as pomp_total = 80.50000000000001."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.settings import INSTRUMENTS_DIR
from warehouse import pipeline
from warehouse.build import score_decimals

# Every score column of the marts; statistics (means over clients, r, rates) stay DOUBLE.
SCORE_COLUMNS = {
    "fct_alliance_session": ["total", "goal", "task", "bond", "pomp_total"],
    "fct_outcome_session": ["total"],
    "fct_episode_outcome": ["baseline_score", "final_score", "change"],
    "fct_sudden_gain": ["pregain_score", "postgain_score", "magnitude"],
    "fct_episode": ["early_alliance_session", "early_alliance_session_pomp"],
}


def test_score_scale_comes_from_the_registrys_finest_grid(tmp_path: Path) -> None:
    # Shipped registry: integer items, and SRS / ORS on a 0.1 VAS: 1 decimal + 2 = 3.
    assert score_decimals(INSTRUMENTS_DIR) == 3
    registry = shutil.copytree(INSTRUMENTS_DIR, tmp_path / "instruments")
    srs = registry / "srs.yml"
    srs.write_text(
        srs.read_text(encoding="utf-8").replace("item_step: 0.1", "item_step: 0.05"),
        encoding="utf-8",
    )
    assert score_decimals(registry) == 4  # a 0.05 grid has 2 decimals


@pytest.mark.slow
def test_release_scores_are_exact_decimals(tiny_built: Path) -> None:
    folder = Path(pipeline.release_step("2026-11-20")["path"])
    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    try:
        for mart, columns in SCORE_COLUMNS.items():
            types = dict(
                con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = ?",
                    [mart],
                ).fetchall()
            )
            schema = pq.read_schema(folder / "parquet" / f"{mart}.parquet")
            for column in columns:
                assert types[column] == "DECIMAL(18,3)", (mart, column)
                assert schema.field(column).type == pa.decimal128(18, 3), (mart, column)
        # WAI-SR is 12 items of 1..5: a total of 36 is (36 - 12) / (60 - 12) = 50 % POMP, and
        # 12 is 0 %; the tiny fixture has both.
        pomp = dict(
            con.execute(
                "SELECT DISTINCT total, pomp_total FROM marts.fct_alliance_session "
                "WHERE instrument = 'wai_sr' AND total IN (12, 36)"
            ).fetchall()
        )
    finally:
        con.close()
    assert pomp == {Decimal("12.000"): Decimal("0.000"), Decimal("36.000"): Decimal("50.000")}


@pytest.mark.slow
def test_a_renamed_release_file_resolves_marts_tables_through_the_documented_alias(
    tiny_built: Path, tmp_path: Path
) -> None:
    """README: `ATTACH 'copy.duckdb' AS marts (READ_ONLY)`, then `marts.<table>`."""
    folder = Path(pipeline.release_step("2026-11-20")["path"])
    copy = tmp_path / "alliance_study_2026.duckdb"
    shutil.copyfile(folder / "marts.duckdb", copy)
    direct = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    attached = duckdb.connect()
    try:
        attached.execute(f"ATTACH '{copy}' AS marts (READ_ONLY)")
        for table in SCORE_COLUMNS:
            query = f"SELECT * FROM marts.{table} ORDER BY ALL"
            assert attached.execute(query).fetchall() == direct.execute(query).fetchall()
    finally:
        direct.close()
        attached.close()
