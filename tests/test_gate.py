"""The release gate: every expectation passes on valid marts and fails on its own bad fixture.

The valid frames are built by hand, small enough to read. Each expectation id in the suite file
has a minimal mutation that makes it fail (reliability.md, "Gate wiring"), and a meta-test keeps
the two in step: an expectation added without a bad fixture fails here.
"""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import hashlib  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from expectations.gate import (  # noqa: E402
    DEFAULT_SUITE,
    EXTRA_ENV,
    MART_COLUMNS,
    STATUSES,
    GateResult,
    load_suite,
    registry_range_expectations,
    run_gate,
    validate_frames,
)

Frames = dict[str, pd.DataFrame]
Mutation = Callable[[Frames], None]


def pid(seed: str) -> str:
    """A stand-in pseudonym: 32 lowercase hex chars, like the keyed HMAC the pipeline writes."""
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


C1, C2, C3, T1, T2 = pid("c1"), pid("c2"), pid("c3"), pid("t1"), pid("t2")


def valid_frames() -> Frames:
    """Small marts that satisfy every expectation, each check having rows it applies to."""
    alliance = pd.DataFrame(
        {
            "site_id": ["s1", "s1", "s1", "s2"],
            "client_pid": [C1, C1, C1, C3],
            "therapist_pid": [T1, T1, T1, T2],
            "session_number": [1, 2, 2, 1],
            "instrument": ["wai_sr", "wai_sr", "wai_sr", "wai_sr"],
            "rater_role": ["client", "client", "therapist", "client"],
            "total": [41.0, 45.0, 48.0, None],  # row 3: nothing answered, so no total
            "goal": [14.0, 15.0, 16.0, None],
            "task": [13.0, 15.0, 16.0, None],
            "bond": [14.0, 15.0, 16.0, None],
            "items_answered": [12, 12, 12, 0],
            "pomp_total": [60.4, 68.75, 75.0, None],
            "rupture_k1": [False, True, False, None],
            "rupture_k2": [False, False, False, None],
            "session_day": [0, 7, 7, 0],
        }
    )
    outcome = pd.DataFrame(
        {
            "site_id": ["s1", "s1", "s1", "s2"],
            "client_pid": [C1, C1, C2, C3],
            "session_number": [1, 2, 1, 1],
            "instrument": ["phq9", "phq9", "gad7", "phq9"],
            "total": [15.0, 8.0, 12.0, 20.0],
            "severity_band": ["moderately_severe", "mild", "moderate", "severe"],
            "at_caseness": [True, False, True, True],
            "direction": ["higher_is_worse"] * 4,
        }
    )
    episode = pd.DataFrame(
        {
            "site_id": ["s1", "s1", "s2"],
            "client_pid": [C1, C2, C3],
            "instrument": ["phq9", "gad7", "phq9"],
            "baseline_score": [15.0, 12.0, 20.0],
            "final_score": [8.0, 17.0, None],  # row 3: one score, so no change
            "change": [-7.0, 5.0, None],
            "reliable_improvement": [True, False, None],
            "reliable_deterioration": [False, True, None],
            "n_scored_sessions": [2, 3, 1],
            "jt_rci": [2.5, -1.2, None],
            "jt_category": ["improved", "unchanged", None],
            "n_sudden_gains": [1, 0, None],
            "n_sudden_losses": [0, 0, None],
        }
    )
    episodes = pd.DataFrame(
        {
            "site_id": ["s1", "s1", "s2"],
            "client_pid": [C1, C2, C3],
            "therapist_pid": [T1, T1, None],
            "n_sessions_attended": [8, 1, 3],
            "finished_treatment": [True, False, True],
            "dropout_early": [False, True, False],
            "dropout_below_dose": [False, True, True],
            "early_alliance_mean": [43.0, 41.0, None],
            "early_alliance_session": [45.0, None, None],
            "n_ruptures_k1": [1, None, 0],
            "n_ruptures_k2": [0, None, 0],
            "nhs_caseness_start": [True, True, None],
            "nhs_recovery": [True, None, None],
            "nhs_reliable_improvement": [True, None, False],
            "nhs_reliable_deterioration": [False, None, True],
        }
    )
    sudden = pd.DataFrame(
        {
            "site_id": ["s1", "s1"],
            "client_pid": [C1, C1],
            "instrument": ["phq9", "phq9"],
            "kind": ["gain", "loss"],
            "pregain_session": [3, 6],
            "postgain_session": [4, 7],
            "magnitude": [7.0, 6.0],
            "n_pre": [3, 2],
            "n_post": [3, 3],
        }
    )
    site = pd.DataFrame(
        {
            "site_id": ["s1", "s2", "s3"],
            "alliance_instrument": ["wai_sr", "wai_sr", "wai_sr"],
            "outcome_instrument": ["phq9", "phq9", "phq9"],
            "n": [40, 35, 2],
            "r": [0.30, 0.25, None],  # s3: too few clients for a correlation
            "fisher_z": [0.3095, 0.2554, None],
            "ci_low": [-0.01, -0.09, None],
            "ci_high": [0.56, 0.54, None],
            "rater_role": ["client", "client", "client"],
            "is_primary": [True, True, True],
            "r_residualized": [0.28, 0.2, None],
        }
    )
    pooled = pd.DataFrame(
        {
            "method": ["fixed", "random_dl"],
            "k_sites": [2, 2],
            "n_clients": [75, 75],
            "r": [0.278, 0.278],
            "ci_low": [0.05, 0.05],
            "ci_high": [0.48, 0.48],
            "tau2": [0.0, 0.0],
            "i2": [None, 0.0],
            "q": [0.05, 0.05],
            "scope": ["primary", "primary"],
            "rater_role": ["client", "client"],
            "correlation_type": ["raw", "raw"],
            "pi_low": [None, -0.5],  # a prediction interval only for random effects
            "pi_high": [None, 0.8],
        }
    )
    therapist = pd.DataFrame(
        {
            "site_id": ["s1", "s1"],
            "therapist_pid": [T1, T2],
            "n_clients": [12, 14],
            "mean_early_alliance": [44.0, 47.5],
            "mean_improvement": [5.2, 6.1],
            "site_between_therapist_r": [0.4, 0.4],
        }
    )
    quality = pd.DataFrame(
        {
            "site_id": ["s1", "s2"],
            "small_cell_threshold": [11, 11],
            "n_clients": [40, 25],
            "n_finished_treatment": [35, None],  # s2: hidden (its complement is small)
            "n_nhs_recovered": [12, 0],
            "nhs_recovery_rate": [0.4, 0.0],
            "n_clients_rupture_k1": [11, None],
            "rupture_rate_k1": [0.3, None],
            "n_quarantined": [None, None],
            "suppressed_cells": ["", "n_finished_treatment,n_clients_rupture_k1"],
        }
    )
    intake = pd.DataFrame(
        {
            "site_id": ["s1", "s2"],
            "small_cell_threshold": [11, 11],
            "files_delivered": [3, 2],
            "files_ingested": [2, 2],
            "files_rejected": [1, 0],
            "rows_in": [17, 4],
            "administrations_offered": [16, 8],
            "administrations_accepted": [12, 8],
            "administrations_quarantined": [3, 0],
            "administrations_not_administered": [1, 0],
            "administrations_unaccounted": [0, 0],
            "events_withdrawn": [12, None],  # s2: 3 withdrawals, suppressed
            "first_logical_date": pd.to_datetime(["2026-01-05", "2026-02-01"]),
            "last_logical_date": pd.to_datetime(["2026-01-06", "2026-02-01"]),
            "suppressed_cells": ["", "events_withdrawn"],
        }
    )
    return {
        "fct_alliance_session": alliance,
        "fct_outcome_session": outcome,
        "fct_episode_outcome": episode,
        "fct_episode": episodes,
        "fct_sudden_gain": sudden,
        "mart_alliance_outcome_site": site,
        "mart_alliance_outcome_pooled": pooled,
        "mart_alliance_outcome_therapist": therapist,
        "mart_site_quality": quality,
        "mart_site_intake": intake,
    }


# --------------------------------------------------------------------------- mutations


def cells(mart: str, row: int = 0, **values: Any) -> Mutation:
    """Set cells of one row; columns are rebuilt so pandas infers the dtype a null needs."""

    def mutate(frames: Frames) -> None:
        df = frames[mart]
        for column, value in values.items():
            column_values = df[column].tolist()
            column_values[row] = value
            df[column] = pd.Series(column_values, index=df.index)

    return mutate


def duplicate_row(mart: str, row: int = 0) -> Mutation:
    def mutate(frames: Frames) -> None:
        df = frames[mart]
        frames[mart] = pd.concat([df, df.iloc[[row]]], ignore_index=True)

    return mutate


def empty(mart: str) -> Mutation:
    def mutate(frames: Frames) -> None:
        frames[mart] = frames[mart].iloc[0:0]

    return mutate


def drop_column(mart: str, column: str) -> Mutation:
    def mutate(frames: Frames) -> None:
        frames[mart] = frames[mart].drop(columns=column)

    mutate.dropped = column  # type: ignore[attr-defined]  # other checks on it may error
    return mutate


ALLIANCE, OUTCOME, EPISODE = "fct_alliance_session", "fct_outcome_session", "fct_episode_outcome"
SITE, POOLED = "mart_alliance_outcome_site", "mart_alliance_outcome_pooled"
EPISODES, SUDDEN = "fct_episode", "fct_sudden_gain"
THERAPIST, QUALITY = "mart_alliance_outcome_therapist", "mart_site_quality"
INTAKE = "mart_site_intake"

BAD_FIXTURES: dict[str, Mutation] = {
    # fct_alliance_session
    "alliance_row_count": empty(ALLIANCE),
    "alliance_columns": drop_column(ALLIANCE, "rater_role"),
    "alliance_site_id_not_null": cells(ALLIANCE, site_id=None),
    "alliance_client_pid_not_null": cells(ALLIANCE, client_pid=None),
    "alliance_session_number_not_null": cells(ALLIANCE, session_number=None),
    "alliance_instrument_not_null": cells(ALLIANCE, instrument=None),
    "alliance_rater_role_not_null": cells(ALLIANCE, rater_role=None),
    "alliance_client_pid_format": cells(ALLIANCE, client_pid="SITE1-0007"),
    "alliance_therapist_pid_format": cells(ALLIANCE, therapist_pid=T1.upper()),
    "alliance_unique_key": duplicate_row(ALLIANCE),
    "alliance_rater_role_set": cells(ALLIANCE, rater_role="supervisor"),
    "alliance_session_number_min": cells(ALLIANCE, session_number=0),
    "alliance_items_answered_min": cells(ALLIANCE, items_answered=-1),
    "alliance_total_null_without_items": cells(ALLIANCE, row=3, total=36.0),
    "alliance_pomp_range": cells(ALLIANCE, pomp_total=101.0),
    "alliance_session_day_min": cells(ALLIANCE, session_day=-1),
    "alliance_rupture_strict_implies_lenient": cells(ALLIANCE, rupture_k1=False, rupture_k2=True),
    # fct_outcome_session
    "outcome_row_count": empty(OUTCOME),
    "outcome_columns": drop_column(OUTCOME, "at_caseness"),
    "outcome_site_id_not_null": cells(OUTCOME, site_id=None),
    "outcome_client_pid_not_null": cells(OUTCOME, client_pid=None),
    "outcome_session_number_not_null": cells(OUTCOME, session_number=None),
    "outcome_instrument_not_null": cells(OUTCOME, instrument=None),
    "outcome_client_pid_format": cells(OUTCOME, client_pid=C1[:31]),
    "outcome_unique_key": duplicate_row(OUTCOME),
    "outcome_session_number_min": cells(OUTCOME, session_number=0),
    "outcome_direction_set": cells(OUTCOME, direction="up"),
    # fct_episode_outcome
    "episode_row_count": empty(EPISODE),
    "episode_columns": drop_column(EPISODE, "change"),
    "episode_site_id_not_null": cells(EPISODE, site_id=None),
    "episode_client_pid_not_null": cells(EPISODE, client_pid=None),
    "episode_instrument_not_null": cells(EPISODE, instrument=None),
    "episode_client_pid_format": cells(EPISODE, client_pid="g" * 32),
    "episode_unique_key": duplicate_row(EPISODE),
    "episode_reliable_change_exclusive": cells(
        EPISODE, reliable_improvement=True, reliable_deterioration=True
    ),
    "episode_n_scored_sessions_min": cells(EPISODE, n_scored_sessions=0),
    "episode_jt_category_set": cells(EPISODE, jt_category="cured"),
    "episode_jt_rci_needs_change": cells(EPISODE, row=2, jt_rci=0.5),
    "episode_sudden_gains_min": cells(EPISODE, n_sudden_gains=-1),
    "episode_sudden_losses_min": cells(EPISODE, n_sudden_losses=-1),
    # fct_episode
    "fct_episode_row_count": empty(EPISODES),
    "fct_episode_columns": drop_column(EPISODES, "nhs_recovery"),
    "fct_episode_client_pid_format": cells(EPISODES, client_pid="A1"),
    "fct_episode_unique_key": duplicate_row(EPISODES),
    "fct_episode_sessions_min": cells(EPISODES, n_sessions_attended=0),
    "fct_episode_finished_xor_early_dropout": cells(EPISODES, finished_treatment=False),
    "fct_episode_nhs_reliable_change_exclusive": cells(EPISODES, nhs_reliable_deterioration=True),
    # fct_sudden_gain
    "sudden_gain_columns": drop_column(SUDDEN, "postgain_session"),
    "sudden_gain_client_pid_format": cells(SUDDEN, client_pid="B7"),
    "sudden_gain_unique_key": cells(SUDDEN, row=1, pregain_session=3),
    "sudden_gain_kind_set": cells(SUDDEN, kind="plateau"),
    "sudden_gain_magnitude_min": cells(SUDDEN, magnitude=0.0),
    "sudden_gain_windows": cells(SUDDEN, n_pre=1),
    # mart_alliance_outcome_site
    "site_row_count": empty(SITE),
    "site_columns": drop_column(SITE, "fisher_z"),
    "site_site_id_not_null": cells(SITE, site_id=None),
    "site_site_id_unique": cells(SITE, row=1, site_id="s1"),
    "site_unique_key": duplicate_row(SITE),
    "site_is_primary_not_null": cells(SITE, row=2, is_primary=None),
    "site_r_residualized_range": cells(SITE, r_residualized=1.2),
    "site_n_min": cells(SITE, n=-1),
    "site_r_range": cells(SITE, r=1.5, ci_high=1.6),
    "site_ci_low_range": cells(SITE, ci_low=-1.2),
    "site_ci_high_range": cells(SITE, ci_high=1.2),
    "site_ci_high_ge_r": cells(SITE, ci_high=0.29),
    "site_r_ge_ci_low": cells(SITE, ci_low=0.31),
    # mart_alliance_outcome_pooled
    "pooled_row_count": duplicate_row(POOLED),
    "pooled_columns": drop_column(POOLED, "tau2"),
    "pooled_method_not_null": cells(POOLED, row=1, method=None),
    "pooled_method_set": cells(POOLED, row=1, method="random_reml"),
    "pooled_method_unique": cells(POOLED, row=1, method="fixed"),
    "pooled_k_sites_min": cells(POOLED, k_sites=-2),
    "pooled_n_clients_min": cells(POOLED, n_clients=-75),
    "pooled_r_range": cells(POOLED, r=-1.5, ci_low=-1.6),
    "pooled_ci_low_range": cells(POOLED, ci_low=-1.1),
    "pooled_ci_high_range": cells(POOLED, ci_high=1.1),
    "pooled_ci_high_ge_r": cells(POOLED, ci_high=0.2),
    "pooled_r_ge_ci_low": cells(POOLED, row=1, ci_low=0.3),
    "pooled_tau2_min": cells(POOLED, row=1, tau2=-0.01),
    "pooled_i2_range": cells(POOLED, row=1, i2=1.2),
    "pooled_q_min": cells(POOLED, q=-0.5),
    "pooled_unique_key": duplicate_row(POOLED),
    "pooled_scope_set": cells(POOLED, scope="site"),
    "pooled_correlation_type_set": cells(POOLED, correlation_type="spearman"),
    "pooled_pi_contains_ci_low": cells(POOLED, row=1, pi_low=0.1),
    "pooled_pi_contains_ci_high": cells(POOLED, row=1, pi_high=0.4),
    # mart_alliance_outcome_therapist
    "therapist_columns": drop_column(THERAPIST, "mean_improvement"),
    "therapist_pid_format": cells(THERAPIST, therapist_pid="B-T1"),
    "therapist_unique_key": cells(THERAPIST, row=1, therapist_pid=T1),
    "therapist_n_clients_min": cells(THERAPIST, n_clients=0),
    "therapist_between_r_range": cells(THERAPIST, site_between_therapist_r=1.3),
    # mart_site_quality
    "site_quality_row_count": empty(QUALITY),
    "site_quality_columns": drop_column(QUALITY, "n_quarantined"),
    "site_quality_site_id_unique": cells(QUALITY, row=1, site_id="s1"),
    "site_quality_n_clients_not_small": cells(QUALITY, row=1, n_clients=5),
    "site_quality_n_finished_not_small": cells(QUALITY, n_finished_treatment=3),
    "site_quality_n_recovered_not_small": cells(QUALITY, row=1, n_nhs_recovered=4),
    "site_quality_n_rupture_not_small": cells(QUALITY, n_clients_rupture_k1=2),
    "site_quality_recovery_rate_range": cells(QUALITY, nhs_recovery_rate=1.5),
    "site_quality_rupture_rate_range": cells(QUALITY, rupture_rate_k1=-0.1),
    "site_quality_suppressed_cells_not_null": cells(QUALITY, suppressed_cells=None),
    # mart_site_intake
    "site_intake_row_count": empty(INTAKE),
    "site_intake_columns": drop_column(INTAKE, "files_rejected"),
    "site_intake_site_id_not_null": cells(INTAKE, site_id=None),
    "site_intake_site_id_unique": cells(INTAKE, row=1, site_id="s1"),
    # One administration offered that is neither accepted, quarantined nor not administered.
    "site_intake_conservation": cells(
        INTAKE, administrations_offered=17, administrations_unaccounted=1
    ),
    "site_intake_accepted_le_offered": cells(INTAKE, administrations_accepted=20),
    "site_intake_files_ingested_le_delivered": cells(INTAKE, files_ingested=4),
    "site_intake_rows_in_min": cells(INTAKE, rows_in=-1),
    "site_intake_withdrawn_not_small": cells(INTAKE, events_withdrawn=3),
    "site_intake_dates_ordered": cells(INTAKE, last_logical_date=pd.Timestamp("2026-01-04")),
    "site_intake_suppressed_cells_not_null": cells(INTAKE, suppressed_cells=None),
}


def suite_file_ids() -> list[str]:
    doc = yaml.safe_load(DEFAULT_SUITE.read_text(encoding="utf-8"))
    return [entry["id"] for entries in doc.values() for entry in entries]


@pytest.fixture(scope="module", autouse=True)
def _validate_each_distinct_mart_once() -> Iterator[None]:
    """GX costs about 20 ms per expectation, and most tests here change one mart of the valid
    set. A mart whose frame and expectations equal ones already validated in this module gets
    that earlier (real GX, deterministic) result; the mart a test changes is validated anew,
    and validate_frames still composes the full gate's result from every mart."""
    import expectations.gate as gate_module

    real = gate_module._validate_mart
    seen: dict[tuple, list] = {}

    def validate_mart(datasource: Any, mart: str, frame: Any, entries: list[dict]) -> list:
        key = _fingerprint(mart, frame, entries)
        if key is None:
            return real(datasource, mart, frame, entries)
        if key not in seen:
            seen[key] = real(datasource, mart, frame, entries)
        return seen[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gate_module, "_validate_mart", validate_mart)
        yield


def _fingerprint(mart: str, frame: Any, entries: list[dict]) -> tuple | None:
    if not isinstance(frame, pd.DataFrame):
        return None
    try:
        rows = tuple(pd.util.hash_pandas_object(frame, index=True).tolist())
    except TypeError:
        return None
    shape = tuple((str(c), str(t)) for c, t in frame.dtypes.items())
    return mart, shape, rows, json.dumps(entries, sort_keys=True, default=repr)


@pytest.fixture(autouse=True)
def _no_extra_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's BORDIN_EXTRA_EXPECTATIONS must not leak into these tests."""
    monkeypatch.delenv(EXTRA_ENV, raising=False)


@pytest.fixture(scope="module")
def suite() -> dict:
    return load_suite()


def by_id(result: GateResult) -> dict[str, Any]:
    return {o.id: o for o in result.outcomes}


def write_yaml(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def write_db(path: Path, frames: Frames) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA marts")
        for mart, frame in frames.items():
            con.register("frame", frame)
            con.execute(f'CREATE TABLE marts."{mart}" AS SELECT * FROM frame')
            con.unregister("frame")
    finally:
        con.close()
    return path


# --------------------------------------------------------------------------- the valid set


def test_valid_frames_pass_every_expectation(suite: dict) -> None:
    result = validate_frames(valid_frames(), suite)
    not_passed = [(o.id, o.status, o.message) for o in result.outcomes if o.status != "passed"]
    assert not_passed == []
    assert result.success
    assert len(result.outcomes) == len(suite_file_ids())


def test_summary_counts_and_provenance(suite: dict) -> None:
    summary = validate_frames(valid_frames(), suite).summary()
    assert summary["success"] is True
    assert summary["by_status"] == {
        "passed": len(suite_file_ids()),
        "failed": 0,
        "error": 0,
        "not_applicable": 0,
    }
    assert set(summary["by_mart"]) == set(MART_COLUMNS)
    assert summary["gx_version"] == "1.24.1"
    assert len(summary["suite_sha256"]) == 64
    assert summary["problems"] == []


def test_suite_columns_match_the_mart_contract(suite: dict) -> None:
    frames = valid_frames()
    for mart, columns in MART_COLUMNS.items():
        assert tuple(frames[mart].columns) == columns
        (check,) = [e for e in suite[mart] if e["type"] == "expect_table_columns_to_match_set"]
        assert check["kwargs"]["column_set"] == list(columns)


def test_extra_mart_columns_are_allowed(suite: dict) -> None:
    """dbt models carry more than the gate's contract (prorated, se_z, ...): not a failure."""
    frames = valid_frames()
    frames[ALLIANCE]["prorated"] = False
    frames[SITE]["se_z"] = 0.16
    result = validate_frames(frames, suite)
    assert [o.id for o in result.outcomes if o.status != "passed"] == []


# --------------------------------------------------------------------------- bad fixtures


def test_every_suite_expectation_has_a_bad_fixture() -> None:
    ids = suite_file_ids()
    assert len(ids) == len(set(ids)), "expectation ids must be unique"
    assert set(ids) == set(BAD_FIXTURES), (
        f"missing fixtures: {sorted(set(ids) - set(BAD_FIXTURES))}; "
        f"stale fixtures: {sorted(set(BAD_FIXTURES) - set(ids))}"
    )


@pytest.mark.parametrize("expectation_id", suite_file_ids())
def test_bad_fixture_fails_its_expectation(suite: dict, expectation_id: str) -> None:
    assert expectation_id in BAD_FIXTURES, f"no bad fixture for {expectation_id}"
    frames = valid_frames()
    BAD_FIXTURES[expectation_id](frames)
    result = validate_frames(frames, suite)
    outcome = by_id(result)[expectation_id]
    assert outcome.status == "failed", (outcome.status, outcome.message)
    assert outcome.message  # the suite's `why`, for the release log
    assert not result.success
    dropped = getattr(BAD_FIXTURES[expectation_id], "dropped", None)
    errors = [
        (o.id, o.message)
        for o in result.outcomes
        if o.status == "error" and not (dropped and f'column "{dropped}"' in (o.message or ""))
    ]
    assert errors == []  # the fixture fails its check, it does not break the others


def test_observed_reports_counts_not_values(suite: dict) -> None:
    frames = valid_frames()
    BAD_FIXTURES["alliance_client_pid_format"](frames)
    outcome = by_id(validate_frames(frames, suite))["alliance_client_pid_format"]
    assert outcome.observed == "1 unexpected of 4 applicable rows"
    assert "SITE1-0007" not in str(outcome)


# --------------------------------------------------------------------------- errors, n/a


def test_missing_mart_is_an_error_and_fails_the_gate(suite: dict) -> None:
    frames = valid_frames()
    del frames["fct_episode_outcome"]
    result = validate_frames(frames, suite)
    statuses = {o.status for o in result.outcomes if o.mart == "fct_episode_outcome"}
    assert statuses == {"error"}
    assert all(o.status == "passed" for o in result.outcomes if o.mart != "fct_episode_outcome")
    assert not result.success
    assert result.summary()["by_status"]["error"] == len(suite["fct_episode_outcome"])


def test_gx_exception_is_an_error(suite: dict) -> None:
    frames = valid_frames()
    frames["mart_alliance_outcome_site"] = frames["mart_alliance_outcome_site"].drop(columns="r")
    outcomes = by_id(validate_frames(frames, suite))
    assert outcomes["site_r_range"].status == "error"
    assert "r" in (outcomes["site_r_range"].message or "")
    assert outcomes["site_columns"].status == "failed"
    assert outcomes["site_n_min"].status == "passed"


def test_unbuildable_expectation_is_an_error_not_a_crash(suite: dict) -> None:
    hand_built = {
        **suite,
        "fct_outcome_session": [
            *suite["fct_outcome_session"],
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "total"},  # GX: min and max cannot both be None
                "id": "planted_unbuildable",
                "category": "plausibility",
                "why": "planted",
            },
        ],
    }
    result = validate_frames(valid_frames(), hand_built)
    outcome = by_id(result)["planted_unbuildable"]
    assert outcome.status == "error"
    assert outcome.message and outcome.message.startswith("cannot build expectation")
    assert not result.success


def test_zero_applicable_rows_is_not_applicable_and_does_not_fail(
    tmp_path: Path, suite: dict
) -> None:
    extra = write_yaml(
        tmp_path / "extra.yml",
        {
            "fct_outcome_session": [
                {
                    "id": "srs_total_range",
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {
                        "column": "total",
                        "min_value": 0,
                        "max_value": 40,
                        "row_condition": {
                            "type": "comparison",
                            "column": {"name": "instrument"},
                            "operator": "==",
                            "parameter": "srs",
                        },
                    },
                    "category": "plausibility",
                    "why": "no SRS rows in this fixture",
                }
            ],
            "mart_alliance_outcome_site": [
                {
                    "id": "site_fisher_z_max",
                    "type": "expect_column_max_to_be_between",
                    "kwargs": {"column": "fisher_z", "max_value": 3},
                    "category": "plausibility",
                    "why": "atanh of a plausible r",
                }
            ],
        },
    )
    frames = valid_frames()
    frames["mart_alliance_outcome_site"]["fisher_z"] = float("nan")
    result = validate_frames(frames, load_suite(extra=extra))
    outcomes = by_id(result)
    assert outcomes["srs_total_range"].status == "not_applicable"
    assert outcomes["site_fisher_z_max"].status == "not_applicable"
    assert result.success
    assert result.summary()["by_status"]["not_applicable"] == 2


def test_empty_outcomes_do_not_pass() -> None:
    assert not GateResult(outcomes=[]).success
    assert set(GateResult(outcomes=[]).summary()["by_status"]) == set(STATUSES)


# --------------------------------------------------------------------------- suite loading


def _entry(eid: str, **overrides: Any) -> dict[str, Any]:
    entry = {
        "id": eid,
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "total", "min_value": 0},
        "category": "plausibility",
        "why": "test",
    }
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("doc", "named", "problem"),
    [
        (
            {"fct_outcome_session": [_entry("no_column", kwargs={"min_value": 0})]},
            "no_column",
            "missing required kwargs ['column']",
        ),
        (
            {"fct_outcome_session": [_entry("typo_type", type="expect_column_to_be_nice")]},
            "typo_type",
            "unknown expectation type",
        ),
        (
            {"fct_outcome_session": [_entry("typo_kwarg", kwargs={"column": "t", "min_val": 0})]},
            "typo_kwarg",
            "has no kwargs ['min_val']",
        ),
        (
            {"fct_outcome_session": [_entry("bad_category", category="accuracy")]},
            "bad_category",
            "category must be one of",
        ),
        (
            {"fct_outcome_session": [_entry("bad_bounds", kwargs={"column": "t"})]},
            "bad_bounds",
            "invalid kwargs",
        ),
        (
            {"fct_outcome_session": [_entry("gate_owned", kwargs={"column": "t", "meta": {}})]},
            "gate_owned",
            "set by the gate",
        ),
        ({"fct_outcome_session": [_entry("no_why", why="")]}, "no_why", "why must be"),
        ({"fct_outcome_session": [_entry("dup"), _entry("dup")]}, "dup", "duplicate"),
        ({"fct_session": [_entry("anything")]}, "fct_session", "unknown mart"),
    ],
)
def test_invalid_suite_names_file_and_expectation(
    tmp_path: Path, doc: dict, named: str, problem: str
) -> None:
    path = write_yaml(tmp_path / "broken_suite.yml", doc)
    with pytest.raises(ValueError) as raised:
        load_suite(path)
    message = str(raised.value)
    assert str(path) in message
    assert named in message
    assert problem in message


def test_invalid_extra_file_is_named(tmp_path: Path) -> None:
    extra = write_yaml(
        tmp_path / "consortium.yml", {"fct_outcome_session": [_entry("x", kwargs={})]}
    )
    with pytest.raises(ValueError, match=r"consortium\.yml: fct_outcome_session: x: "):
        load_suite(extra=extra)


def test_extra_suite_is_merged_and_can_plant_a_failure(tmp_path: Path, suite: dict) -> None:
    planted = _entry("planted_outcome_total_max", kwargs={"column": "total", "max_value": 1})
    extra = write_yaml(tmp_path / "extra.yml", {"fct_outcome_session": [planted]})
    merged = load_suite(extra=extra)
    assert [e["id"] for e in merged["fct_outcome_session"]][-1] == "planted_outcome_total_max"
    assert sum(map(len, merged.values())) == sum(map(len, suite.values())) + 1
    result = validate_frames(valid_frames(), merged)
    assert by_id(result)["planted_outcome_total_max"].status == "failed"
    assert not result.success
    assert result.suite_sha256 != validate_frames(valid_frames(), suite).suite_sha256


def test_extra_suite_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = write_yaml(
        tmp_path / "env_extra.yml",
        {
            "fct_episode_outcome": [
                _entry("env_one", kwargs={"column": "n_scored_sessions", "min_value": 1})
            ]
        },
    )
    monkeypatch.setenv(EXTRA_ENV, str(extra))
    assert load_suite()["fct_episode_outcome"][-1]["id"] == "env_one"


def test_extra_may_not_reuse_an_id(tmp_path: Path) -> None:
    extra = write_yaml(
        tmp_path / "extra.yml", {"fct_outcome_session": [_entry("outcome_row_count")]}
    )
    with pytest.raises(ValueError, match="outcome_row_count: duplicate expectation id"):
        load_suite(extra=extra)


# --------------------------------------------------------------------------- registry ranges


def test_registry_ranges_catch_a_total_above_one_instruments_max(suite: dict) -> None:
    ranges = registry_range_expectations(
        {"fct_outcome_session": {"phq9": (0, 27), "gad7": (0, 21)}}
    )
    ids = [e["id"] for e in ranges["fct_outcome_session"]]
    assert ids == ["range_total_fct_outcome_session_gad7", "range_total_fct_outcome_session_phq9"]
    frames = valid_frames()
    cells(OUTCOME, row=2, total=25.0)(frames)  # a GAD-7 total of 25: fine for PHQ-9, not for GAD-7
    merged = {**suite, "fct_outcome_session": suite["fct_outcome_session"] + ranges[OUTCOME]}
    outcomes = by_id(validate_frames(frames, merged))
    assert outcomes["range_total_fct_outcome_session_gad7"].status == "failed"
    assert outcomes["range_total_fct_outcome_session_phq9"].status == "passed"
    assert outcomes["range_total_fct_outcome_session_gad7"].observed == (
        "1 unexpected of 1 applicable rows"
    )


def test_registry_ranges_reject_marts_without_total_and_bad_bounds() -> None:
    with pytest.raises(ValueError, match="mart_alliance_outcome_site"):
        registry_range_expectations({"mart_alliance_outcome_site": {"phq9": (0, 27)}})
    with pytest.raises(ValueError, match="min > max"):
        registry_range_expectations({"fct_outcome_session": {"phq9": (27, 0)}})
    with pytest.raises(ValueError, match="bad instrument id"):
        registry_range_expectations({"fct_outcome_session": {"phq9' or '1": (0, 27)}})


# --------------------------------------------------------------------------- run_gate on DuckDB


def test_run_gate_on_duckdb_passes_and_releases_the_file(tmp_path: Path) -> None:
    db = write_db(tmp_path / "warehouse.duckdb", valid_frames())
    ranges = registry_range_expectations(
        {
            "fct_outcome_session": {"phq9": (0, 27), "gad7": (0, 21)},
            "fct_alliance_session": {"wai_sr": (12, 60)},
        }
    )
    result = run_gate(db, range_expectations=ranges)
    assert [(o.id, o.status) for o in result.outcomes if o.status != "passed"] == []
    assert len(result.outcomes) == len(suite_file_ids()) + 3
    # The gate closed its read-only connection: the nightly writer can take the file at once.
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TABLE marts.after_gate AS SELECT 1 AS x")
    finally:
        con.close()


def test_run_gate_reports_a_mart_missing_from_the_database(tmp_path: Path) -> None:
    frames = valid_frames()
    del frames["mart_alliance_outcome_pooled"]
    result = run_gate(write_db(tmp_path / "partial.duckdb", frames))
    assert {o.status for o in result.outcomes if o.mart == "mart_alliance_outcome_pooled"} == {
        "error"
    }
    assert not result.success


def test_run_gate_catches_bad_rows_in_the_database(tmp_path: Path) -> None:
    frames = valid_frames()
    BAD_FIXTURES["episode_reliable_change_exclusive"](frames)
    result = run_gate(write_db(tmp_path / "bad.duckdb", frames))
    assert by_id(result)["episode_reliable_change_exclusive"].status == "failed"
    assert not result.success


def test_run_gate_without_a_database_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_gate(tmp_path / "absent.duckdb")
