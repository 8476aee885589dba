"""What changed between two releases, per mart: rows added, removed and changed.

Rows are matched on a mart's identifying columns (site, client, session, instrument, ...);
where those do not identify rows uniquely, whole rows are compared instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.settings import Paths, paths

KEY_CANDIDATES = (
    "site_id",
    "client_pid",
    "therapist_pid",
    "session_number",
    "instrument",
    "rater_role",
    "alliance_instrument",
    "outcome_instrument",
    "method",
    "scope",
    "gain_type",
    "event_type",
)


@dataclass(frozen=True)
class MartDiff:
    mart: str
    rows_a: int
    rows_b: int
    added: int
    removed: int
    changed: int
    keyed_on: tuple[str, ...]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def diff_releases(release_a: str, release_b: str, where: Paths | None = None) -> list[MartDiff]:
    where = where or paths()
    folders = [where.releases / r / "parquet" for r in (release_a, release_b)]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"no release at {folder.parent}")
    marts = sorted({p.stem for f in folders for p in f.glob("*.parquet")})
    con = duckdb.connect()
    try:
        return [_diff_mart(con, mart, *(f / f"{mart}.parquet" for f in folders)) for mart in marts]
    finally:
        con.close()


def _diff_mart(con: duckdb.DuckDBPyConnection, mart: str, a: Path, b: Path) -> MartDiff:
    src_a = f"read_parquet('{a}')" if a.exists() else None
    src_b = f"read_parquet('{b}')" if b.exists() else None
    if src_a is None or src_b is None:
        present = src_a or src_b
        rows = con.execute(f"SELECT count(*) FROM {present}").fetchone()[0]
        return MartDiff(
            mart,
            0 if src_a is None else rows,
            0 if src_b is None else rows,
            rows if src_a is None else 0,
            rows if src_b is None else 0,
            0,
            (),
        )
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src_b}").fetchall()]
    keys = tuple(c for c in KEY_CANDIDATES if c in columns)
    rows_a = con.execute(f"SELECT count(*) FROM {src_a}").fetchone()[0]
    rows_b = con.execute(f"SELECT count(*) FROM {src_b}").fetchone()[0]
    unique = keys and all(
        con.execute(
            f"SELECT count(*) = count(DISTINCT ({', '.join(map(_quote, keys))})) FROM {src}"
        ).fetchone()[0]
        for src in (src_a, src_b)
    )
    if not unique:
        added = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM {src_b} EXCEPT ALL SELECT * FROM {src_a})"
        ).fetchone()[0]
        removed = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM {src_a} EXCEPT ALL SELECT * FROM {src_b})"
        ).fetchone()[0]
        return MartDiff(mart, rows_a, rows_b, added, removed, 0, ())
    join = " AND ".join(f"a.{_quote(k)} IS NOT DISTINCT FROM b.{_quote(k)}" for k in keys)
    added, removed, changed = con.execute(
        f"""
        SELECT
            count(*) FILTER (WHERE a_row IS NULL),
            count(*) FILTER (WHERE b_row IS NULL),
            count(*) FILTER (WHERE a_row IS NOT NULL AND b_row IS NOT NULL AND a_row <> b_row)
        FROM (SELECT *, md5(CAST(t AS VARCHAR)) AS a_row FROM {src_a} AS t) AS a
        FULL OUTER JOIN (SELECT *, md5(CAST(t AS VARCHAR)) AS b_row FROM {src_b} AS t) AS b
            ON {join}
        """
    ).fetchone()
    return MartDiff(mart, rows_a, rows_b, added, removed, changed, keys)
