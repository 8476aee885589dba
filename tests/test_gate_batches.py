"""The gate in bounded batches: same verdicts as on whole marts, sites named, results stored.

The reference verdicts come from the whole-mart run (one batch) or are counted by hand from the
fixtures; the batched runs use batches of one or two rows so every combination path is taken.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from expectations.gate import load_suite, run_gate, validate_frames
from expectations.sources import DuckDBSource, FrameSource, partitions_for
from tests.test_gate import BAD_FIXTURES, by_id, valid_frames, write_db

# One expectation per view and combination rule: row-level (regex, pair), key (compound unique,
# single-column unique), conditional row count, plain row count, table shape, distinct set.
REPRESENTATIVE = (
    "alliance_client_pid_format",
    "alliance_rupture_strict_implies_lenient",
    "alliance_unique_key",
    "pooled_method_unique",
    "pooled_row_count",
    "alliance_row_count",
    "alliance_columns",
    "pooled_method_set",
)


@pytest.fixture(autouse=True)
def _no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BORDIN_EXTRA_EXPECTATIONS", raising=False)
    monkeypatch.delenv("BORDIN_GATE_CHUNK_ROWS", raising=False)


@pytest.fixture(scope="module")
def suite() -> dict:
    return load_suite()


def test_valid_marts_pass_in_batches_of_one_row(suite: dict) -> None:
    result = validate_frames(valid_frames(), suite, chunk_rows=1)
    assert [(o.id, o.status, o.message) for o in result.outcomes if o.status != "passed"] == []
    assert result.batches > len(suite)  # really split: more batches than marts


@pytest.mark.parametrize("expectation_id", REPRESENTATIVE)
def test_one_row_batches_give_the_whole_mart_verdict(suite: dict, expectation_id: str) -> None:
    frames = valid_frames()
    BAD_FIXTURES[expectation_id](frames)
    mart = next(
        m for m, entries in suite.items() if any(e["id"] == expectation_id for e in entries)
    )
    one_mart = {mart: suite[mart]}
    whole = by_id(validate_frames(frames, one_mart, chunk_rows=10_000))[expectation_id]
    batched = by_id(validate_frames(frames, one_mart, chunk_rows=1))[expectation_id]
    assert whole.status == batched.status == "failed"
    assert batched.observed == whole.observed
    assert batched.unexpected == whole.unexpected


def test_counts_add_up_across_batches(suite: dict) -> None:
    """By hand: the alliance fixture has 4 rows; two planted raw codes, at s1 and s2."""
    frames = valid_frames()
    BAD_FIXTURES["alliance_client_pid_format"](frames)  # row 0, site s1
    frames["fct_alliance_session"].loc[3, "client_pid"] = "SITE2-0001"  # row 3, site s2
    outcome = by_id(validate_frames(frames, {"fct_alliance_session": []} | suite, chunk_rows=1))[
        "alliance_client_pid_format"
    ]
    assert outcome.observed == "2 unexpected of 4 applicable rows"
    assert outcome.unexpected == 2
    assert outcome.sites == ("s1", "s2")


def test_sites_affected_name_only_the_failing_site(suite: dict) -> None:
    frames = valid_frames()
    frames["fct_alliance_session"].loc[3, "client_pid"] = "SITE2-0001"  # site s2 only
    BAD_FIXTURES["alliance_unique_key"](frames)  # duplicates row 0: site s1
    outcomes = by_id(
        validate_frames(frames, {"fct_alliance_session": suite["fct_alliance_session"]})
    )
    assert outcomes["alliance_client_pid_format"].sites == ("s2",)
    assert outcomes["alliance_unique_key"].sites == ("s1",)
    assert outcomes["alliance_unique_key"].unexpected == 2  # both copies of the duplicated key
    # A mart without site_id: nothing to name.
    frames = valid_frames()
    BAD_FIXTURES["pooled_method_unique"](frames)
    pooled = suite["mart_alliance_outcome_pooled"]
    outcome = by_id(validate_frames(frames, {"mart_alliance_outcome_pooled": pooled}))[
        "pooled_method_unique"
    ]
    assert outcome.status == "failed" and outcome.sites is None


def test_release_line_carries_counts_and_sites_never_values(suite: dict) -> None:
    frames = valid_frames()
    BAD_FIXTURES["alliance_client_pid_format"](frames)
    result = validate_frames(frames, {"fct_alliance_session": suite["fct_alliance_session"]})
    line = next(c for c in result.summary()["checks"] if c["rule"].endswith("_client_pid_format"))
    assert line == {
        "rule": "fct_alliance_session.alliance_client_pid_format",
        "category": "conformance",
        "status": "failed",
        "observed": "1 unexpected of 4 applicable rows",
        "unexpected_rows": 1,
        "sites_affected": ["s1"],
        "message": "client_pid must be a keyed pseudonym (32 lowercase hex), never a raw "
        "participant code",
    }
    assert "SITE1-0007" not in json.dumps(result.summary())


def test_a_whole_column_aggregate_is_refused_when_the_suite_loads(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "fct_outcome_session": [
                    {
                        "id": "mean_total",
                        "type": "expect_column_mean_to_be_between",
                        "kwargs": {"column": "total", "min_value": 0},
                        "category": "plausibility",
                        "why": "x",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="bounded memory") as caught:
        load_suite(extra=extra)
    assert str(caught.value).startswith(f"{extra}: fct_outcome_session: mean_total: ")


# --------------------------------------------------------------------------- DuckDB source


def _outcomes(db: Path, tmp_path: Path, extra: Path) -> dict:
    """A DuckDB mart of 5000 rows over two sites, checked by two expectations."""
    return by_id(run_gate(db, extra=extra, results_dir=tmp_path / "restricted", chunk_rows=300))


def _big_outcome_frame() -> pd.DataFrame:
    n = 5000
    frame = pd.DataFrame(
        {
            "site_id": ["a" if i < 3000 else "b" for i in range(n)],
            "client_pid": [f"{i:032x}" for i in range(n)],
            "session_number": [1] * n,
            "instrument": ["phq9"] * n,
            "total": [float(i % 28) for i in range(n)],
            "severity_band": ["none"] * n,
            "at_caseness": [False] * n,
            "direction": ["lower_is_better"] * n,
        }
    )
    frame.loc[4999, "total"] = 99.0  # out of range, site b, in the last batch
    frame.loc[4000, "client_pid"] = frame.loc[10, "client_pid"]  # key twin of row 10 ...
    frame.loc[4000, "site_id"] = "a"  # ... at the same site, 3990 rows apart
    return frame


def test_duckdb_batches_are_bounded_and_twins_meet(tmp_path: Path) -> None:
    frame = _big_outcome_frame()
    db = write_db(tmp_path / "w.duckdb", {"fct_outcome_session": frame})
    with DuckDBSource(db, chunk_rows=300) as source:
        sizes = [len(b) for b in source.rows("fct_outcome_session", ("total", "site_id"))]
        assert max(sizes) <= 300 and sum(sizes) == 5000
        key = ("site_id", "client_pid", "session_number", "instrument")
        parts = partitions_for(5000, 300)
        assert parts == 17
        batches = list(source.key_partitions("fct_outcome_session", key, key, parts))
        assert sum(len(b) for b in batches) == 5000
        holding = [b for b in batches if (b["client_pid"] == frame.loc[10, "client_pid"]).any()]
        assert (
            len(holding) == 1
            and len(holding[0][holding[0]["client_pid"] == frame.loc[10, "client_pid"]]) == 2
        )
    # The same views over frames split the same rows.
    frames = FrameSource({"fct_outcome_session": frame}, chunk_rows=300)
    assert sum(len(b) for b in frames.rows("fct_outcome_session", ("total",))) == 5000


def test_run_gate_on_duckdb_in_batches_counts_and_names_sites(tmp_path: Path) -> None:
    db = write_db(tmp_path / "w.duckdb", {"fct_outcome_session": _big_outcome_frame()})
    suite_file = tmp_path / "suite.yml"
    suite_file.write_text(
        yaml.safe_dump(
            {
                "fct_outcome_session": [
                    {
                        "id": "t_unique",
                        "type": "expect_compound_columns_to_be_unique",
                        "kwargs": {
                            "column_list": ["site_id", "client_pid", "session_number", "instrument"]
                        },
                        "category": "conformance",
                        "why": "one score per key",
                    },
                    {
                        "id": "t_range",
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "total", "min_value": 0, "max_value": 27},
                        "category": "plausibility",
                        "why": "phq9 range",
                    },
                    {
                        "id": "t_rows",
                        "type": "expect_table_row_count_to_equal",
                        "kwargs": {"value": 5000},
                        "category": "completeness",
                        "why": "all rows",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    result = run_gate(
        db, suite_path=suite_file, results_dir=tmp_path / "restricted", chunk_rows=300
    )
    out = by_id(result)
    # By hand: one key shared by rows 10 and 4000 (2 rows), one total of 99 (row 4999, site b).
    assert (out["t_unique"].status, out["t_unique"].unexpected, out["t_unique"].sites) == (
        "failed",
        2,
        ("a",),
    )
    assert out["t_range"].observed == "1 unexpected of 5000 applicable rows"
    assert out["t_range"].sites == ("b",)
    assert out["t_rows"].status == "passed"
    # Row batches: DuckDB hands out 2048-row vectors (2048, 2048, 904 rows), each cut into
    # batches of at most 300: 7 + 7 + 4. Then 17 key partitions (ceil 5000/300), 1 row count.
    assert result.batches == (7 + 7 + 4) + 17 + 1
    # GX stored every batch's validation result, and built Data Docs, under the restricted root.
    gx_root = tmp_path / "restricted" / "gx"
    stored = list((gx_root / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == result.batches
    assert result.data_docs == str(
        gx_root / "uncommitted" / "data_docs" / "local_site" / "index.html"
    )
    assert Path(result.data_docs).is_file()
    checkpoints = {p.stem for p in (gx_root / "checkpoints").glob("*.json")}
    assert "bordin_fct_outcome_session__rows" in checkpoints


def test_only_the_last_gate_runs_stored_results_are_kept(tmp_path: Path) -> None:
    from expectations.gate import _prune_stored_runs

    uncommitted = tmp_path / "gx" / "uncommitted"
    times = [f"20261{day:03d}T000000.000000Z" for day in range(1, 11)]
    for base in (uncommitted / "validations", uncommitted / "data_docs/local_site/validations"):
        for suite in ("s_a", "s_b"):
            for run_time in times:
                (base / suite / "run" / run_time).mkdir(parents=True)
    _prune_stored_runs(uncommitted, keep=3)
    left = {p.name for p in uncommitted.rglob("2026*")}
    assert left == set(times[-3:])
    assert len(list((uncommitted / "validations").glob("*/*/*"))) == 2 * 3


def test_batch_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from expectations.gate import gate_chunk_rows
    from ingestion.config_errors import ConfigError

    assert gate_chunk_rows() == 200_000
    monkeypatch.setenv("BORDIN_GATE_CHUNK_ROWS", "5000")
    assert gate_chunk_rows() == 5000
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv("BORDIN_GATE_CHUNK_ROWS", bad)
        with pytest.raises(ConfigError, match="BORDIN_GATE_CHUNK_ROWS"):
            gate_chunk_rows()
