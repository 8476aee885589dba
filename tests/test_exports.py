"""`bordin export` (issue 13, item 2): SPSS, Stata and CSV files with the release's labels.

Fast tests write small hand-made marts (their metadata as a release writes it) and read the
files back with pyreadstat. The slow tests publish the tiny consortium's release and check
every mart of every format against the Parquet files, with the labels expected from the dbt
yml read directly (not from the codebook code under test).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest
import yaml

from warehouse.exports import (
    ExportError,
    fit_label,
    short_names,
    write_dta,
    write_mart_csv,
    write_sav,
)
from warehouse.spreadsheet_csv import write_csv

WHEN = dt.date(2026, 11, 20)
LONG_TEXT = "ü" * 1500  # 3000 UTF-8 bytes: more than a Stata str2045 holds
LONG_NAME = "administrations_not_administered_by_site"  # 40 characters
LONG_LABEL = "An administration offered but left blank: " + ("every item empty. " * 6).strip()


def _field(name: str, kind: pa.DataType, label: str, allowed: list[str] | None = None):
    meta = {b"description": label.encode("utf-8")}
    if allowed is not None:
        meta[b"allowed_values"] = json.dumps(allowed).encode("utf-8")
    return pa.field(name, kind, metadata=meta)


def _mart() -> pa.Table:
    schema = pa.schema(
        [
            _field("rater_role", pa.string(), "Whose rating.", ["client", "therapist", "observer"]),
            _field("prorated", pa.bool_(), "Prorated?"),
            _field("n", pa.int32(), "Count."),
            _field("r", pa.float64(), "Pearson r."),
            _field("night", pa.date32(), "Delivery night."),
            _field("note", pa.string(), "Free text."),
            _field(LONG_NAME, pa.int32(), LONG_LABEL),
        ]
    )
    return pa.table(
        {
            "rater_role": ["therapist", None, "client"],
            "prorated": [True, None, False],
            "n": [3, None, -7],
            "r": [0.278, None, -0.5],
            "night": [WHEN, None, dt.date(1960, 1, 2)],
            "note": ["=1+2", None, LONG_TEXT],
            LONG_NAME: [0, 1, None],
        },
        schema=schema,
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------- unit


def test_labels_are_cut_to_the_format_limits() -> None:
    assert fit_label("Short.", max_chars=80) == "Short."
    cut = fit_label(LONG_LABEL, max_chars=80)
    assert len(cut) <= 80 and cut.endswith("...") and LONG_LABEL.startswith(cut[:-3])
    wide = fit_label("é" * 200, max_bytes=256)  # SPSS counts bytes
    assert len(wide.encode("utf-8")) <= 256 and wide == "é" * 126 + "..."


def test_long_names_are_cut_and_made_unique() -> None:
    names = short_names(["a" * 40, "a" * 35, "B", "b"], 32)
    assert names == {"a" * 40: "a" * 32, "a" * 35: "a" * 30 + "_2", "B": "B", "b": "b_2"}


def test_formula_text_is_neutralized_and_numbers_are_not(tmp_path: Path) -> None:
    cells = ["=1+2", "+41", "-3", "@SUM(A1)", "\t=x", "\r=x", "plain", "a=b", -0.5, 7, None]
    write_csv(tmp_path / "x.csv", ["c"] * len(cells), [cells, [True, False, WHEN, 0.1] + [""] * 7])
    with (tmp_path / "x.csv").open(encoding="utf-8", newline="") as handle:
        first, second = list(csv.reader(handle))[1:]
    assert first == ["'=1+2", "'+41", "'-3", "'@SUM(A1)", "'\t=x", "'\r=x", "plain", "a=b"] + [
        "-0.5",
        "7",
        "",
    ]
    assert second[:4] == ["true", "false", "2026-11-20", "0.1"]


def test_stata_file_has_labels_coded_categories_booleans_dates_and_strl(tmp_path: Path) -> None:
    renamed = write_dta(_mart(), "fct_x", tmp_path / "x.dta", WHEN)
    assert renamed == {LONG_NAME: LONG_NAME[:32]}
    data, meta = pyreadstat.read_dta(str(tmp_path / "x.dta"))
    labels = meta.column_names_to_labels
    assert labels["rater_role"] == "Whose rating." and labels["prorated"] == "Prorated?"
    assert len(labels[LONG_NAME[:32]]) <= 80 and labels[LONG_NAME[:32]].startswith("An admin")
    value_labels = {v: meta.value_labels[k] for v, k in meta.variable_to_label.items()}
    assert value_labels["rater_role"] == {1: "client", 2: "therapist", 3: "observer"}
    assert value_labels["prorated"] == {0: "false", 1: "true"}
    assert data["rater_role"].tolist()[0::2] == [2, 1] and _missing(data["rater_role"][1])
    assert data["prorated"].tolist()[0::2] == [1, 0] and _missing(data["prorated"][1])
    assert data["n"].tolist()[0::2] == [3, -7] and _missing(data["n"][1])
    assert data["night"][0] == WHEN and data["night"][2] == dt.date(1960, 1, 2)
    assert _missing(data["night"][1]) and meta.original_variable_types["night"] == "%td"
    assert data["note"].tolist() == ["=1+2", "", LONG_TEXT]  # no string missing in Stata
    assert meta.readstat_variable_types["note"] == "string"
    raw = (tmp_path / "x.dta").read_bytes()
    assert b"<release>118</release>" in raw and b"20 Nov 2026 00:00" in raw


def test_spss_file_has_labels_and_measures(tmp_path: Path) -> None:
    assert write_sav(_mart(), "fct_x", tmp_path / "x.sav", WHEN) == {}  # 40 < 64 characters
    data, meta = pyreadstat.read_sav(str(tmp_path / "x.sav"))
    assert meta.column_names_to_labels[LONG_NAME] == LONG_LABEL  # under SPSS's 256 bytes
    assert meta.variable_value_labels["rater_role"] == {1: "client", 2: "therapist", 3: "observer"}
    assert meta.variable_value_labels["prorated"] == {0: "false", 1: "true"}
    assert (
        meta.variable_measure["rater_role"] == "nominal" and meta.variable_measure["r"] == "scale"
    )
    assert data["r"][0] == 0.278 and _missing(data["r"][1])
    assert data["note"][2] == LONG_TEXT and data["night"][0] == WHEN
    assert b"20 Nov 26" in (tmp_path / "x.sav").read_bytes()[:200]


@pytest.mark.parametrize("writer", [write_sav, write_dta, write_mart_csv])
def test_same_mart_same_bytes(writer, tmp_path: Path) -> None:
    writer(_mart(), "fct_x", tmp_path / "a", WHEN)
    writer(_mart(), "fct_x", tmp_path / "b", WHEN)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_a_value_outside_the_allowed_values_is_refused(tmp_path: Path) -> None:
    table = _mart().set_column(
        0, _mart().schema.field("rater_role"), pa.array(["client", "supervisor", None])
    )
    with pytest.raises(ExportError, match=r"fct_x.rater_role: values \['supervisor'\]"):
        write_dta(table, "fct_x", tmp_path / "x.dta", WHEN)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parquet_metadata(path: Path) -> dict[str, str]:
    return {f.name: f.metadata[b"description"].decode() for f in pq.read_schema(path)}


# --------------------------------------------------------------------------- a real release

DATE = "2026-11-20"
MART_YML = Path(__file__).resolve().parent.parent / "dbt_project/models/marts/_marts__models.yml"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return " ".join(value.split())


def _yml() -> tuple[dict[str, str], dict[tuple[str, str], str], dict, set[tuple[str, str]]]:
    """Straight from the dbt yml: table and column descriptions, accepted values, and the
    columns a release codes as categories (accepted values or a registry id / band field)."""
    doc = yaml.safe_load(MART_YML.read_text(encoding="utf-8"))
    tables, columns, accepted, categorical = {}, {}, {}, set()
    for model in doc["models"]:
        tables[model["name"]] = _text(model["description"])
        for column in model["columns"]:
            key = (model["name"], column["name"])
            columns[key] = _text(column["description"])
            for test in column.get("data_tests") or []:
                if isinstance(test, dict) and "accepted_values" in test:
                    values = test["accepted_values"]["arguments"]["values"]
                    accepted[key] = [str(v) for v in values]
            registry = ((column.get("config") or {}).get("meta") or {}).get("registry") or {}
            coded = key in accepted or registry.get("field") in ("instrument", "severity_band")
            if coded and column["data_type"] == "varchar":
                categorical.add(key)
    return tables, columns, accepted, categorical


@pytest.fixture
def released(tiny_built: Path) -> Path:
    from warehouse import pipeline

    return Path(pipeline.release_step(DATE)["path"])


@pytest.mark.slow
def test_release_carries_the_codebook_everywhere_and_a_rebuild_reproduces_it(
    released: Path,
) -> None:
    import duckdb

    from warehouse.rebuild import rebuild

    tables, columns, accepted, _ = _yml()
    manifest = json.loads((released / "manifest.json").read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    for name in ("codebook.csv", "codebook.html"):
        assert listed[name] == _sha(released / name)

    con = duckdb.connect(str(released / "marts.duckdb"), read_only=True)
    try:
        in_db = con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
        column_comments = con.execute(
            "SELECT table_name, column_name, comment, data_type FROM duckdb_columns() "
            "WHERE NOT internal"
        ).fetchall()
    finally:
        con.close()
    assert len(in_db) == 11 and all(comment == tables[t] for t, comment in in_db)
    assert all(comment == columns[(t, c)] for t, c, comment, _ in column_comments)

    for path in sorted((released / "parquet").glob("*.parquet")):
        schema = pq.read_schema(path)
        assert schema.metadata[b"description"].decode() == tables[path.stem]
        for f in schema:
            assert f.metadata[b"description"].decode() == columns[(path.stem, f.name)]
            if (path.stem, f.name) in accepted:
                allowed = json.loads(f.metadata[b"allowed_values"])
                assert allowed == accepted[(path.stem, f.name)]

    with (released / "codebook.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    documented = {(r["table"], r["column"]): r for r in rows if r["column"]}
    assert set(documented) == {(t, c) for t, c, _, _ in column_comments}
    for t, c, _, kind in column_comments:
        assert documented[(t, c)]["description"] == columns[(t, c)]
        assert documented[(t, c)]["type"] == kind
        if (t, c) in accepted:
            assert documented[(t, c)]["allowed_values"] == " | ".join(accepted[(t, c)])
    phq9_total = documented[("fct_outcome_session", "total")]
    assert "phq9 0-27" in phq9_total["units"] and "Kroenke" in phq9_total["provenance"]

    report = rebuild(released.name)
    assert report.reproduced, report
    assert {"codebook.csv", "codebook.html"} <= {c.path for c in report.checks}


def _decoded(got: list, labels: dict | None) -> list:
    if labels is None:
        return got
    return [None if _missing(g) else labels[int(g)] for g in got]


def _check_stat_file(path: Path, table: pa.Table, mart: str, fmt: str) -> None:
    _, columns, accepted, categorical = _yml()
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    data, meta = reader(str(path))
    assert list(data.columns) == table.column_names  # every mart name fits 32 characters
    value_labels = (
        meta.variable_value_labels
        if fmt == "sav"
        else {v: meta.value_labels[k] for v, k in meta.variable_to_label.items()}
    )
    for f in table.schema:
        key = (mart, f.name)
        description, label = columns[key], meta.column_names_to_labels[f.name]
        limit_ok = len(label) <= 80 if fmt == "dta" else len(label.encode()) <= 256
        assert limit_ok and (label == description or description.startswith(label[:-3]))
        values, got = table.column(f.name).to_pylist(), data[f.name].tolist()
        labels = value_labels.get(f.name)
        if pa.types.is_boolean(f.type):
            assert {int(k): v for k, v in labels.items()} == {0: "false", 1: "true"}
            expected = [None if v is None else ("true" if v else "false") for v in values]
            assert _decoded(got, labels) == expected, key
        elif key in categorical:
            assert labels is not None, key
            if key in accepted:
                coded = dict(enumerate(accepted[key], start=1))
                assert {int(k): v for k, v in labels.items()} == coded, key
            assert _decoded(got, labels) == values, key
        elif pa.types.is_string(f.type):
            assert labels is None and got == ["" if v is None else v for v in values], key
        else:
            assert labels is None, key
            assert [_missing(g) for g in got] == [v is None for v in values], key
            # DECIMAL scores are held as doubles in SPSS / Stata: the double nearest the value.
            assert [g for g in got if not _missing(g)] == [
                float(v) if isinstance(v, Decimal) else v for v in values if v is not None
            ]


def _check_csv(path: Path, table: pa.Table) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == table.column_names and len(rows) == table.num_rows
    for n, f in enumerate(table.schema):
        for row, value in zip(rows, table.column(f.name).to_pylist(), strict=True):
            cell = row[n]
            if value is None:
                assert cell == ""
            elif isinstance(value, bool):
                assert cell == ("true" if value else "false")
            elif isinstance(value, float):
                assert float(cell) == value
            elif isinstance(value, int):
                assert int(cell) == value
            elif isinstance(value, Decimal):
                assert Decimal(cell) == value and cell == str(value)  # "12.000": exact
            elif isinstance(value, dt.date):
                assert dt.date.fromisoformat(cell) == value
            else:
                assert cell == ("'" + value if value.startswith(FORMULA_STARTS) else value)


@pytest.mark.slow
def test_every_format_reads_back_with_the_marts_labels_and_values(
    released: Path, tmp_path: Path
) -> None:
    from tests.conftest import TEST_KEY, run_bordin
    from warehouse.exports import export_release

    # As a person runs it: the latest release, the default folder.
    done = run_bordin("export", "--format", "sav")
    assert done.returncode == 0, done.stdout + done.stderr
    default = released.parent.parent / "exports" / released.name / "sav"
    _, meta = pyreadstat.read_sav(str(default / "fct_outcome_session.sav"), metadataonly=True)
    assert meta.column_names_to_labels["severity_band"]
    assert meta.variable_value_labels["at_caseness"] == {0: "false", 1: "true"}

    marts = sorted((released / "parquet").glob("*.parquet"))
    for fmt in ("sav", "dta", "csv"):
        result = export_release(fmt, released.name, tmp_path / fmt)
        names = {name for name, _ in result.files}
        assert names == {f"{p.stem}.{fmt}" for p in marts} | {"codebook.csv", "codebook.html"}
        for parquet in marts:
            table = pq.read_table(parquet)
            target = tmp_path / fmt / f"{parquet.stem}.{fmt}"
            if fmt == "csv":
                _check_csv(target, table)
            else:
                _check_stat_file(target, table, parquet.stem, fmt)
        assert _sha(tmp_path / fmt / "codebook.csv") == _sha(released / "codebook.csv")
        # The same release, exported again: the same bytes, file for file.
        again = export_release(fmt, released.name, tmp_path / f"{fmt}-again")
        for name, _ in again.files:
            assert _sha(tmp_path / f"{fmt}-again" / name) == _sha(tmp_path / fmt / name), name
        for name in names:
            assert TEST_KEY.encode() not in (tmp_path / fmt / name).read_bytes()
    assert _sha(default / "fct_episode.sav") == _sha(tmp_path / "sav" / "fct_episode.sav")


@pytest.mark.slow
def test_a_release_that_does_not_verify_is_not_exported(released: Path, tmp_path: Path) -> None:
    from warehouse.exports import export_release

    target = released / "parquet" / "fct_episode.parquet"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(ExportError, match="parquet/fct_episode.parquet: changed"):
        export_release("csv", "latest", tmp_path / "out")
    assert not (tmp_path / "out").exists()
