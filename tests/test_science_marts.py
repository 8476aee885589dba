"""The science marts on the hand-scorable tiny consortium, recomputed here with numpy.

tests/fixtures/tiny: 9 clients at two sites, 3 sessions each, every questionnaire with all
items equal (WAI-SR total = 12 x item, PHQ-9 total = 9 x item). The dbt unit tests cover each
rule's branches; this checks the assembled marts on data that went through ingestion.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TEST_KEY, read_rows
from tests.test_end_to_end import ALPHA, BETA

pytestmark = pytest.mark.slow

PHQ9_RELIABILITY = 0.89  # ingestion/instruments/phq9.yml, jacobson_truax.reliability


def _pid(site: str, code: str, role: str = "client") -> str:
    msg = f"{site}:{role}:{code}".encode()
    return hmac.new(TEST_KEY.encode(), msg, hashlib.sha256).hexdigest()[:32]


@pytest.fixture(scope="module")
def tiny_db(tiny_built_root: Path) -> Path:
    """The tiny consortium's built warehouse, shared by the run; opened read-only here."""
    return tiny_built_root / "build" / "warehouse.duckdb"


def test_residualized_r_is_the_partial_correlation_given_baseline(tiny_db: Path) -> None:
    rows = dict(
        read_rows(
            tiny_db,
            "SELECT site_id, r_residualized FROM marts.mart_alliance_outcome_site WHERE is_primary",
        )
    )
    for site, clients in (("alpha", ALPHA), ("beta", BETA)):
        alliance = np.array([v[0] for v in clients.values()])
        baseline = np.array([v[1] for v in clients.values()])
        improvement = baseline - np.array([v[2] for v in clients.values()])
        design = np.column_stack([np.ones_like(baseline), baseline])
        resid = [
            y - design @ np.linalg.lstsq(design, y, rcond=None)[0] for y in (alliance, improvement)
        ]
        assert rows[site] == pytest.approx(float(np.corrcoef(*resid)[0, 1]), abs=1e-9)


def test_jacobson_truax_uses_the_sample_baseline_sd(tiny_db: Path) -> None:
    clients = {("alpha", c): v for c, v in ALPHA.items()} | {
        ("beta", c): v for c, v in BETA.items()
    }
    baselines = np.array([v[1] for v in clients.values()])
    s_diff = math.sqrt(2) * baselines.std(ddof=1) * math.sqrt(1 - PHQ9_RELIABILITY)
    got = {
        pid: rest
        for pid, *rest in read_rows(
            tiny_db,
            "SELECT client_pid, jt_s_diff, jt_rci, jt_category, caseness_start, caseness_end "
            "FROM marts.fct_episode_outcome WHERE instrument = 'phq9'",
        )
    }
    for (site, code), (_, before, after) in clients.items():
        s, rci, category, case_start, case_end = got[_pid(site, code)]
        change = before - after
        assert s == pytest.approx(s_diff, abs=1e-12)
        assert rci == pytest.approx(change / s_diff, abs=1e-12)
        assert (case_start, case_end) == (before >= 10, after >= 10)
        if rci > 1.96:
            expected = "recovered" if before >= 10 > after else "improved"
        elif rci < -1.96:
            expected = "harmed" if before < 10 <= after else "deteriorated"
        else:
            expected = "unchanged"
        assert category == expected, (site, code)


def test_alliance_session_pomp_day_and_no_ruptures_in_flat_series(tiny_db: Path) -> None:
    rows = read_rows(
        tiny_db,
        "SELECT session_number, total, pomp_total, session_day, rupture_k1, rupture_k2, "
        "repaired_k1, alliance_concern FROM marts.fct_alliance_session "
        "WHERE client_pid = ? ORDER BY session_number",
        [_pid("alpha", "A2")],
    )
    # A2: WAI-SR all 4s -> 48 each session, POMP (48 - 12) / 48 = 75; weekly sessions; a
    # series that never varies has no rupture; WAI-SR has no concern rule.
    assert rows == [
        (1, 48.0, 75.0, 0, False, False, None, None),
        (2, 48.0, 75.0, 7, False, False, None, None),
        (3, 48.0, 75.0, 14, False, False, None, None),
    ]


def test_episodes_dropout_and_both_early_alliance_rules(tiny_db: Path) -> None:
    rows = read_rows(
        tiny_db,
        "SELECT client_pid, n_sessions_attended, finished_treatment, dropout_early, "
        "dropout_below_dose, dropout_unplanned, ending_type, early_alliance_mean, "
        "early_alliance_session, nhs_paired_sessions, nhs_recovery FROM marts.fct_episode",
    )
    assert len(rows) == len(ALPHA) + len(BETA)
    alliance = {_pid("alpha", c): v[0] for c, v in ALPHA.items()}
    alliance |= {_pid("beta", c): v[0] for c, v in BETA.items()}
    for pid, n, finished, early, below, unplanned, ending, mean, session, paired, rec in rows:
        # 3 sessions: a finished course, below the default dose of 8; no ending delivered;
        # constant alliance, so both rules agree; no GAD-7, so no NHS pairing.
        assert (n, finished, early, below) == (3, True, False, True)
        assert (unplanned, ending) == (None, None)
        assert mean == session == alliance[pid]
        assert (paired, rec) == (0, None)


def test_site_quality_hides_the_tiny_sites_counts(tiny_db: Path) -> None:
    rows = read_rows(
        tiny_db,
        "SELECT site_id, n_clients, n_finished_treatment, mean_early_alliance, "
        "n_outcome_administrations, suppressed_cells FROM marts.mart_site_quality "
        "ORDER BY site_id",
    )
    # 5 and 4 clients are below 11: hidden, and so is everything computed from them; the 15
    # and 12 outcome administrations are large enough to show.
    assert [r[:5] for r in rows] == [
        ("alpha", None, None, None, 15),
        ("beta", None, None, None, 12),
    ]
    for row in rows:
        assert {"n_clients", "n_finished_treatment", "n_early_alliance"} <= set(row[5].split(","))


def test_therapists_below_the_minimum_are_left_out(tiny_db: Path) -> None:
    # The tiny therapists have 2 and 3 clients; the default minimum is 5.
    assert read_rows(tiny_db, "SELECT count(*) FROM marts.mart_alliance_outcome_therapist") == [
        (0,)
    ]
