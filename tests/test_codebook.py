"""The release codebook (issue 13, item 1): from dbt's documentation and the instrument
registry to COMMENT ON, Parquet metadata, codebook.csv and codebook.html.

Fast tests build the codebook from a small hand-written dbt manifest and the real registry;
expected registry facts (which instruments, their total ranges, the PHQ-9 bands) are the
published ones from the domain reference, not read back from the code under test.
`tests/test_exports.py` checks a real release.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import pytest
import yaml

from ingestion.registry import load_registry
from ingestion.settings import DBT_PROJECT_DIR
from warehouse.codebook import (
    REGISTRY_FIELDS,
    CodebookError,
    build_codebook,
    comment_statements,
    field_metadata,
)
from warehouse.codebook_files import write_codebook_csv, write_codebook_html

OUTCOME_RANGES = {"core10": 40, "gad7": 21, "oq45": 180, "ors": 40, "phq9": 27}
ALLIANCE = {"haq_ii", "srs", "wai_s", "wai_sr"}
MART_YML = DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml"


def _column(name: str, description: str, registry: dict | None = None) -> dict:
    meta = {"registry": registry} if registry else {}
    return {"name": name, "description": description, "config": {"meta": meta}}


def _manifest(columns: list[dict], accepted: dict[str, list] | None = None) -> dict:
    nodes = {
        "model.bordin.fct_x": {
            "resource_type": "model",
            "name": "fct_x",
            "alias": "fct_x",
            "unique_id": "model.bordin.fct_x",
            "description": "One row per\n  thing.",
            "columns": {c["name"]: c for c in columns},
        }
    }
    for column, values in (accepted or {}).items():
        nodes[f"test.bordin.accepted_values_{column}"] = {
            "resource_type": "test",
            "attached_node": "model.bordin.fct_x",
            "column_name": column,
            "test_metadata": {"name": "accepted_values", "kwargs": {"values": values}},
        }
    return {"nodes": nodes}


def _example():
    columns = [
        _column(
            "instrument", "Outcome instrument id.", {"field": "instrument", "construct": "outcome"}
        ),
        _column("total", "Total score.", {"field": "score", "construct": "outcome"}),
        _column("severity_band", "Band.", {"field": "severity_band", "construct": "outcome"}),
        _column("rater_role", "Whose rating, e.g. 'client'."),
        _column("note", "=cmd|' /C calc'!A0 is text"),
    ]
    types = [
        ("instrument", "VARCHAR"),
        ("total", "DOUBLE"),
        ("severity_band", "VARCHAR"),
        ("rater_role", "VARCHAR"),
        ("note", "VARCHAR"),
    ]
    manifest = _manifest(columns, {"rater_role": ["client", "therapist"]})
    return build_codebook(manifest, {"fct_x": types}, load_registry())


def test_allowed_values_units_and_citations_come_from_tests_and_the_registry() -> None:
    table = _example().table("fct_x")
    assert table.description == "One row per thing."
    assert [c.type for c in table.columns] == ["VARCHAR", "DOUBLE", "VARCHAR", "VARCHAR", "VARCHAR"]
    assert table.column("instrument").allowed_values == tuple(sorted(OUTCOME_RANGES))
    total = table.column("total")
    for instrument, top in OUTCOME_RANGES.items():
        assert f"{instrument} 0-{top}" in total.units
    assert not any(a in total.units for a in ALLIANCE)
    cited = {c.instrument for c in total.provenance}
    assert cited == set(OUTCOME_RANGES)  # every outcome measure has a scoring citation
    assert any("Kroenke" in c.text for c in total.provenance if c.instrument == "phq9")
    # PHQ-9's bands (Kroenke 2001), GAD-7's fit inside them; cited for both measures only.
    band = table.column("severity_band")
    assert band.allowed_values == ("minimal", "mild", "moderate", "moderately_severe", "severe")
    assert {c.instrument for c in band.provenance} == {"phq9", "gad7"}
    assert table.column("rater_role").allowed_values == ("client", "therapist")
    assert table.column("rater_role").provenance == ()


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ({"field": "totals", "construct": "outcome"}, "field 'totals' is not one of"),
        ({"field": "score", "construct": "mood"}, "construct 'mood' is not one of"),
        ({"field": "score"}, "must be {field, construct}"),
    ],
)
def test_a_wrong_registry_declaration_is_refused(registry: dict, message: str) -> None:
    manifest = _manifest([_column("total", "Total.", registry)])
    with pytest.raises(CodebookError, match=message):
        build_codebook(manifest, {"fct_x": [("total", "DOUBLE")]}, load_registry())


def test_an_undocumented_column_or_mart_is_refused() -> None:
    manifest = _manifest([_column("total", "  ")])
    with pytest.raises(CodebookError, match="fct_x.total has no description"):
        build_codebook(manifest, {"fct_x": [("total", "DOUBLE")]}, load_registry())
    with pytest.raises(CodebookError, match="fct_y is not a model"):
        build_codebook(manifest, {"fct_y": [("total", "DOUBLE")]}, load_registry())


def test_every_registry_declaration_in_the_mart_yml_is_valid() -> None:
    """The yml itself, read directly: each declared field and construct is known, and the
    columns that hold instrument ids declare it (so the exports can code them)."""
    doc = yaml.safe_load(MART_YML.read_text(encoding="utf-8"))
    declared = {}
    for model in doc["models"]:
        for column in model["columns"]:
            assert column.get("description", "").strip(), (model["name"], column["name"])
            registry = ((column.get("config") or {}).get("meta") or {}).get("registry")
            if registry:
                assert registry["field"] in REGISTRY_FIELDS
                assert registry["construct"] in ("alliance", "outcome")
                declared[(model["name"], column["name"])] = registry["field"]
    for mart in ("fct_alliance_session", "fct_outcome_session", "fct_sudden_gain"):
        assert declared[(mart, "instrument")] == "instrument"
    assert declared[("fct_outcome_session", "severity_band")] == "severity_band"


def test_comments_and_parquet_metadata_carry_the_descriptions() -> None:
    table = _example().table("fct_x")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE fct_x (instrument VARCHAR, total DOUBLE, severity_band VARCHAR, "
        "rater_role VARCHAR, note VARCHAR)"
    )
    for statement in comment_statements(table):
        con.execute(statement)
    assert con.execute("SELECT comment FROM duckdb_tables()").fetchone() == ("One row per thing.",)
    comments = dict(con.execute("SELECT column_name, comment FROM duckdb_columns()").fetchall())
    assert comments["rater_role"] == "Whose rating, e.g. 'client'."  # quote survives
    meta = field_metadata(table.column("rater_role"))
    assert meta == {
        b"description": b"Whose rating, e.g. 'client'.",
        b"allowed_values": b'["client", "therapist"]',
    }
    assert b"allowed_values" not in field_metadata(table.column("total"))


def test_codebook_files_list_every_column_and_are_deterministic(tmp_path: Path) -> None:
    codebook = _example()
    first = write_codebook_csv(codebook, tmp_path / "a.csv").read_bytes()
    assert write_codebook_csv(_example(), tmp_path / "b.csv").read_bytes() == first
    rows = list(csv.DictReader(io.StringIO(first.decode("utf-8"))))
    assert [(r["table"], r["column"]) for r in rows] == [
        ("fct_x", ""),
        *[("fct_x", c) for c in ("instrument", "total", "severity_band", "rater_role", "note")],
    ]
    by_column = {r["column"]: r for r in rows}
    assert by_column["rater_role"]["allowed_values"] == "client | therapist"
    assert by_column["total"]["type"] == "DOUBLE" and "phq9 0-27" in by_column["total"]["units"]
    assert "phq9 (scoring_and_bands): Kroenke" in by_column["total"]["provenance"]
    assert by_column["note"]["description"].startswith("'=cmd")  # a formula stays text

    page = write_codebook_html(codebook, tmp_path / "a.html").read_text(encoding="utf-8")
    assert write_codebook_html(_example(), tmp_path / "b.html").read_text("utf-8") == page
    for needle in (
        "<code>moderately_severe</code>",
        "Whose rating, e.g. &#x27;client&#x27;.",
        "Patient Health Questionnaire-9",
        "id='fct_x.severity_band'",
    ):
        assert needle in page
    # Self-contained: nothing is loaded from anywhere.
    for external in ("<script", "src=", "http://", "https://", "<link"):
        assert external not in page
