"""The statistical helpers the marts use, checked against scipy.

DuckDB has no t quantile function, so dbt_project/macros/stats.sql tabulates t_{.975} for
df 1..100 and uses a Cornish-Fisher expansion above; both are evaluated here in DuckDB exactly
as the marts compile them.
"""

from __future__ import annotations

import duckdb
import jinja2
import pytest
from scipy import stats

from ingestion.settings import DBT_PROJECT_DIR


@pytest.fixture(scope="module")
def macros():
    text = (DBT_PROJECT_DIR / "macros" / "stats.sql").read_text(encoding="utf-8")
    return jinja2.Environment().from_string(text).module


def _t_values(macros, dfs: list[int]) -> dict[int, float | None]:
    sql = macros.t_quantile_975("df")
    rows = duckdb.sql(f"SELECT df, {sql} AS t FROM unnest(?::INTEGER[]) AS v(df)", params=[dfs])
    return dict(rows.fetchall())


def test_tabulated_t_quantiles_match_scipy(macros) -> None:
    got = _t_values(macros, list(range(1, 101)))
    for df, t in got.items():
        assert t == pytest.approx(stats.t.ppf(0.975, df), abs=1e-11), df
    # The sudden-gain critical values of Tang & DeRubeis are these quantiles, rounded.
    assert [round(got[df], 3) for df in (4, 3, 2)] == [2.776, 3.182, 4.303]


def test_cornish_fisher_beyond_the_table(macros) -> None:
    dfs = [101, 150, 250, 1000, 100000]
    for df, t in _t_values(macros, dfs).items():
        assert t == pytest.approx(stats.t.ppf(0.975, df), abs=1e-10), df


def test_no_t_quantile_below_one_degree_of_freedom(macros) -> None:
    assert _t_values(macros, [0, -1]) == {0: None, -1: None}
