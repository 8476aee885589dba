"""Aggregates that give the same bits whatever order rows arrive in (dbt_project/macros/exact.sql).

DuckDB adds DOUBLEs in the order its threads finish; the build runs on every core, so every sum
that feeds a mart goes through these macros. The macros are rendered with plain Jinja (they use
no dbt context) and run on DuckDB directly; expected values come from Python's exact
arithmetic (fractions, math.fsum), never from the macros' own output.
"""

from __future__ import annotations

import math
from fractions import Fraction

import duckdb
import jinja2
import pytest

from ingestion.settings import DBT_PROJECT_DIR

MACROS = (DBT_PROJECT_DIR / "macros" / "exact.sql").read_text(encoding="utf-8")


def sql(macro: str, *args: str, **kwargs: str) -> str:
    """One macro call rendered to SQL, as dbt would render it; arguments are SQL snippets."""
    call = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    template = MACROS + "{{ " + macro + "(" + call + ") }}"
    return jinja2.Environment().from_string(template).render().strip()


# Two tables with the same rows in different orders: 1e16 + 1 - 1e16 is 0 in binary floating
# point added in that order, and 1 added last.
ROWS = [1e16, 1.0, -1e16, 0.5, 2.25]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads = 1")  # one thread: a table is scanned in insertion order
    for name, rows in (("a", ROWS), ("b", [ROWS[0], ROWS[2], ROWS[1], *ROWS[3:]])):
        con.execute(f"CREATE TABLE {name} (id INTEGER, x DOUBLE, y DOUBLE)")
        con.executemany(
            f"INSERT INTO {name} VALUES (?, ?, ?)",
            [(i, x, float(i * i % 7)) for i, x in enumerate(rows)],
        )
    return con


def test_a_plain_double_sum_depends_on_row_order(con: duckdb.DuckDBPyConnection) -> None:
    """The known-bad case the macros exist for: same rows, different order, different sum."""
    a = con.execute("SELECT sum(x) FROM a").fetchone()[0]
    b = con.execute("SELECT sum(x) FROM b").fetchone()[0]
    assert a != b


def test_exact_sum_and_mean_do_not_depend_on_row_order(con: duckdb.DuckDBPyConnection) -> None:
    exact = math.fsum(ROWS)  # 3.75, correctly rounded
    for table in ("a", "b"):
        total, mean = con.execute(
            f"SELECT {sql('exact_sum', 'x')}, {sql('exact_avg', 'x')} FROM {table}"
        ).fetchone()
        assert total == exact
        assert mean == exact / len(ROWS)


def test_exact_variance_and_sd_match_exact_arithmetic() -> None:
    values = [12.0, 15.5, 9.25, 20.0, 14.75, 11.0]
    n = len(values)
    mean = Fraction(sum(Fraction(v) for v in values), n)
    var = float(sum((Fraction(v) - mean) ** 2 for v in values) / (n - 1))
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS x", [values])
    got_var, got_sd, one = con.execute(
        f"SELECT {sql('exact_var_samp', 'x')}, {sql('exact_stddev_samp', 'x')}, "
        f"{sql('exact_var_samp', 'x', 'x > 19')} FROM t"
    ).fetchone()
    assert got_var == pytest.approx(var, rel=1e-15)
    assert got_sd == pytest.approx(math.sqrt(var), rel=1e-15)
    assert one is None  # one value: undefined, like var_samp


def test_exact_corr_matches_a_hand_computed_r_and_skips_incomplete_pairs() -> None:
    # x = 1..5, y = 2, 4, 5, 4, 5: Sxy - n mx my = 6, Sxx - n mx^2 = 10, Syy - n my^2 = 6,
    # r = 6 / sqrt(60). The sixth row lacks y and must not count.
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 2), (2, 4), (3, 5), (4, 4), (5, 5), "
        "(6, NULL)) v(x, y)"
    )
    r, flat = con.execute(
        f"SELECT {sql('exact_corr', 'x', 'y')}, {sql('exact_corr', 'x', '1')} FROM t"
    ).fetchone()
    assert r == pytest.approx(6 / math.sqrt(60), abs=1e-15)
    assert flat is None  # no variance: undefined, where DuckDB's corr gives NaN


def test_window_form_equals_the_grouped_form() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT i % 3 AS g, i * 1.1 AS x FROM range(12) r(i)")
    grouped = con.execute(
        f"SELECT g, {sql('exact_avg', 'x')}, {sql('exact_stddev_samp', 'x')} "
        "FROM t GROUP BY g ORDER BY g"
    ).fetchall()
    windowed = con.execute(
        f"SELECT DISTINCT g, {sql('exact_avg', 'x', over='over (partition by g)')}, "
        f"{sql('exact_stddev_samp', 'x', over='over (partition by g)')} FROM t ORDER BY g"
    ).fetchall()
    assert windowed == grouped


def test_every_core_gives_the_same_bits_as_one() -> None:
    """Half a million rows in a few groups: DuckDB splits them over threads. The exact macros
    give one answer for 1 and 4 threads, run after run."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT i % 5 AS g, (i * 7919 % 100003) / 997.0 AS x, "
        "(i * 104729 % 100019) / 1009.0 AS y FROM range(500000) r(i)"
    )
    query = (
        f"SELECT g, {sql('exact_avg', 'x')}, {sql('exact_stddev_samp', 'x')}, "
        f"{sql('exact_corr', 'x', 'y')} FROM t GROUP BY g ORDER BY g"
    )
    answers = set()
    for threads in (1, 4, 4, 2):
        con.execute(f"SET threads = {threads}")
        answers.add(tuple(con.execute(query).fetchall()))
    assert len(answers) == 1
