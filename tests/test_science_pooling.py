"""The pooled alliance-outcome estimates against statsmodels' DerSimonian-Laird implementation.

Two consortia are built through the real pipeline (ingest + dbt): a heterogeneous one, where
the DL tau2 is positive and the mart must equal `statsmodels.stats.meta_analysis.
combine_effects(method_re="dl")` to 1e-9, and a nearly homogeneous one with 0 < Q < k - 1.
There statsmodels reports the raw moment estimate, a negative tau2 (and a negative I2), while
DerSimonian & Laird (1986) and the mart truncate both at 0, so the random-effects estimate
falls back to the fixed effect. The expected values are computed here from the designed data
with numpy, independently of the SQL.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from tests.science_helpers import built, write_consortium

# Per client: (WAI-SR item value, PHQ-9 item value at sessions 1-2, at session 3).
Spec = list[tuple[int, int, int]]
HETEROGENEOUS: dict[str, Spec] = {
    "alpha": [(3, 2, 1), (4, 2, 0), (2, 2, 2), (5, 3, 1), (1, 1, 2)],
    "beta": [(2, 2, 1), (3, 2, 2), (4, 1, 1), (5, 1, 2)],
    "gamma": [(1, 3, 3), (2, 3, 2), (3, 2, 1), (4, 3, 1), (5, 2, 0), (3, 3, 3)],
    "delta": [(1, 2, 1), (2, 2, 2), (3, 2, 1), (4, 1, 1), (5, 2, 1), (2, 3, 1), (4, 3, 2)],
}
HOMOGENEOUS: dict[str, Spec] = {
    "h1": [(1, 1, 1), (2, 2, 1), (3, 2, 1), (4, 3, 1), (5, 3, 0), (2, 1, 1)],
    "h2": [(1, 2, 2), (2, 2, 1), (3, 3, 1), (4, 2, 0), (5, 3, 1), (3, 2, 2)],
    "h3": [(1, 1, 1), (2, 2, 2), (3, 3, 1), (4, 3, 1), (5, 2, 0), (2, 2, 1), (4, 3, 2)],
}
pytestmark = pytest.mark.slow

TOL = 1e-9


def _clients(spec: Spec, prefix: str) -> dict[str, list[tuple[int, int]]]:
    return {
        f"{prefix}{i}": [(a, before), (a, before), (a, after)]
        for i, (a, before, after) in enumerate(spec, start=1)
    }


def _build(root: Path, sites: dict[str, Spec]) -> Path:
    root.mkdir(parents=True)
    write_consortium(root, {s: _clients(spec, s[:2].upper()) for s, spec in sites.items()})
    with built(root) as db:
        return db


@pytest.fixture(scope="module")
def heterogeneous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("pool") / "het", HETEROGENEOUS)


@pytest.fixture(scope="module")
def homogeneous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("pool") / "hom", HOMOGENEOUS)


def _arrays(spec: Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Early alliance (mean WAI-SR total of sessions 1-3), PHQ-9 improvement, baseline."""
    alliance = np.array([12.0 * a for a, _, _ in spec])
    baseline = np.array([9.0 * before for _, before, _ in spec])
    improvement = baseline - np.array([9.0 * after for _, _, after in spec])
    return alliance, improvement, baseline


def _r(spec: Spec) -> float:
    alliance, improvement, _ = _arrays(spec)
    return float(np.corrcoef(alliance, improvement)[0, 1])


def _partial_r(spec: Spec) -> float:
    """Correlation of the residuals after regressing alliance and improvement on baseline."""
    alliance, improvement, baseline = _arrays(spec)
    design = np.column_stack([np.ones_like(baseline), baseline])

    def residual(y: np.ndarray) -> np.ndarray:
        return y - design @ np.linalg.lstsq(design, y, rcond=None)[0]

    return float(np.corrcoef(residual(alliance), residual(improvement))[0, 1])


def _pooled(db: Path, correlation_type: str = "raw") -> dict[str, dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = con.execute(
            "SELECT * FROM marts.mart_alliance_outcome_pooled "
            "WHERE scope = 'primary' AND correlation_type = ?",
            [correlation_type],
        ).fetch_df()
    finally:
        con.close()
    return {row["method"]: row for row in frame.to_dict("records")}


def _reference(z: np.ndarray, v: np.ndarray):
    return combine_effects(z, v, method_re="dl")


def _check_against_statsmodels(pooled: dict[str, dict], z: np.ndarray, v: np.ndarray) -> None:
    ref = _reference(z, v)
    assert ref.tau2 > 0  # precondition: no truncation involved
    fixed, random = pooled["fixed"], pooled["random_dl"]
    assert fixed["k_sites"] == random["k_sites"] == len(z)
    assert fixed["fisher_z"] == pytest.approx(ref.mean_effect_fe, abs=TOL)
    assert fixed["se_z"] == pytest.approx(ref.sd_eff_w_fe, abs=TOL)
    assert random["fisher_z"] == pytest.approx(ref.mean_effect_re, abs=TOL)
    assert random["se_z"] == pytest.approx(ref.sd_eff_w_re, abs=TOL)
    assert random["r"] == pytest.approx(math.tanh(ref.mean_effect_re), abs=TOL)
    assert random["tau2"] == pytest.approx(ref.tau2, abs=TOL)
    assert fixed["q"] == pytest.approx(ref.q, abs=TOL)
    assert random["q"] == pytest.approx(ref.q, abs=TOL)
    assert random["i2"] == pytest.approx(ref.i2, abs=TOL)
    ci_fe, ci_re = ref.conf_int(use_t=False)[:2]
    assert (fixed["ci_low"], fixed["ci_high"]) == (
        pytest.approx(math.tanh(ci_fe[0]), abs=TOL),
        pytest.approx(math.tanh(ci_fe[1]), abs=TOL),
    )
    assert (random["ci_low"], random["ci_high"]) == (
        pytest.approx(math.tanh(ci_re[0]), abs=TOL),
        pytest.approx(math.tanh(ci_re[1]), abs=TOL),
    )
    # Prediction interval (Higgins, Thompson & Spiegelhalter 2009), not in statsmodels.
    half = stats.t.ppf(0.975, len(z) - 2) * math.sqrt(ref.tau2 + ref.sd_eff_w_re**2)
    assert random["pi_low"] == pytest.approx(math.tanh(ref.mean_effect_re - half), abs=TOL)
    assert random["pi_high"] == pytest.approx(math.tanh(ref.mean_effect_re + half), abs=TOL)
    assert fixed["pi_low"] is None or math.isnan(fixed["pi_low"])


def test_raw_r_pooling_equals_statsmodels_dl(heterogeneous: Path) -> None:
    z = np.array([math.atanh(_r(spec)) for spec in HETEROGENEOUS.values()])
    v = np.array([1 / (len(spec) - 3) for spec in HETEROGENEOUS.values()])
    _check_against_statsmodels(_pooled(heterogeneous), z, v)


def test_residualized_r_per_site_and_pooled(heterogeneous: Path) -> None:
    con = duckdb.connect(str(heterogeneous), read_only=True)
    try:
        rows = con.execute(
            "SELECT site_id, n, r, r_residualized, se_z_residualized "
            "FROM marts.mart_alliance_outcome_site WHERE is_primary"
        ).fetchall()
    finally:
        con.close()
    by_site = {site: rest for site, *rest in rows}
    for site, spec in HETEROGENEOUS.items():
        n, r, r_res, se_res = by_site[site]
        assert n == len(spec)
        assert r == pytest.approx(_r(spec), abs=TOL)
        assert r_res == pytest.approx(_partial_r(spec), abs=TOL)
        assert (se_res is None or math.isnan(se_res)) == (n < 5)
    # Sites with n >= 5 enter the residualized pooling (one more parameter: v = 1 / (n - 4)).
    used = {s: spec for s, spec in HETEROGENEOUS.items() if len(spec) >= 5}
    z = np.array([math.atanh(_partial_r(spec)) for spec in used.values()])
    v = np.array([1 / (len(spec) - 4) for spec in used.values()])
    _check_against_statsmodels(_pooled(heterogeneous, "residualized"), z, v)


def test_negative_dl_tau2_is_truncated_unlike_statsmodels(homogeneous: Path) -> None:
    """statsmodels keeps the raw moment estimate; DerSimonian-Laird truncate at 0.

    With 0 < Q < k - 1, (Q - (k - 1)) / c is negative: combine_effects reports it as tau2 (and
    a negative I2) and weights the sites with it. The mart, as the domain formula says, uses
    max(0, .), so its random-effects row equals the fixed-effect estimate, with I2 = 0.
    """
    z = np.array([math.atanh(_r(spec)) for spec in HOMOGENEOUS.values()])
    v = np.array([1 / (len(spec) - 3) for spec in HOMOGENEOUS.values()])
    ref = _reference(z, v)
    assert 0 < ref.q < len(z) - 1 and ref.tau2 < 0 and ref.i2 < 0
    pooled = _pooled(homogeneous)
    fixed, random = pooled["fixed"], pooled["random_dl"]
    assert random["tau2"] == 0.0 and random["i2"] == 0.0
    assert random["q"] == pytest.approx(ref.q, abs=TOL)
    assert fixed["fisher_z"] == pytest.approx(ref.mean_effect_fe, abs=TOL)
    assert random["fisher_z"] == pytest.approx(ref.mean_effect_fe, abs=TOL)
    assert random["se_z"] == pytest.approx(ref.sd_eff_w_fe, abs=TOL)
    # ... and therefore differs from statsmodels' random-effects mean, by design.
    assert abs(random["fisher_z"] - ref.mean_effect_re) > 1e-6
    # With tau2 = 0 the prediction interval only widens the CI by t_{k-2} / z_{.975}.
    half = stats.t.ppf(0.975, len(z) - 2) * ref.sd_eff_w_fe
    assert random["pi_low"] == pytest.approx(math.tanh(ref.mean_effect_fe - half), abs=TOL)
