"""Where the gate's bounded batches come from: a DuckDB file (the nightly) or in-memory frames.

GX 1.24 cannot validate DuckDB through SQL, and pulling a whole mart into pandas grows with the
consortium. So the gate never asks for a whole mart: it asks a source for one of five bounded
views, each of which keeps the verdict of the expectations validated on it (expectations/
views.py says which view serves which expectation):

- shape: zero rows, every column (column names and count);
- count: a frame with no columns whose index has the mart's row count (a RangeIndex: O(1));
- distinct: the distinct combinations of a few columns (category sets);
- rows: the needed columns (and site_id, to name the sites of failures), in chunks of at most
  `chunk_rows` rows;
- keys: a uniqueness key's columns (and site_id), split into hash partitions of about
  `chunk_rows` rows, so that every duplicate lands in the same partition as its twin.

Both sources serve the same views, so unit tests on frames exercise the nightly's code path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

MARTS_SCHEMA = "marts"
SITE_COLUMN = "site_id"
DEFAULT_CHUNK_ROWS = 200_000
_VECTOR_ROWS = 2048  # DuckDB's vector size: fetch_df_chunk counts in vectors


class MartSource(Protocol):
    """The bounded views of one data set of marts (see the module docstring)."""

    def has(self, mart: str) -> bool: ...
    def columns(self, mart: str) -> list[str]: ...
    def shape(self, mart: str) -> pd.DataFrame: ...
    def row_count(self, mart: str) -> int: ...
    def distinct(self, mart: str, columns: Sequence[str]) -> pd.DataFrame: ...
    def rows(self, mart: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]: ...
    def key_partitions(
        self, mart: str, columns: Sequence[str], key: Sequence[str], partitions: int
    ) -> Iterator[pd.DataFrame]: ...


def partitions_for(rows: int, chunk_rows: int) -> int:
    """How many hash partitions keep each one near `chunk_rows` rows (at least one)."""
    return max(1, math.ceil(rows / max(1, chunk_rows)))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DuckDBSource:
    """Bounded views of the marts in a DuckDB file, over one read-only connection.

    Mart names reach SQL only after `has()` found them in the catalogue; column names only
    after `columns()` listed them, and both are quoted.
    """

    def __init__(self, db_path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        db_path = Path(db_path)
        if not db_path.is_file():
            raise FileNotFoundError(f"no DuckDB database at {db_path}")
        self.chunk_rows = chunk_rows
        self.con = duckdb.connect(str(db_path), read_only=True)
        self.con.execute("SET enable_progress_bar = false")  # no bars in the task log
        found = self.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = ? ORDER BY table_name, ordinal_position",
            [MARTS_SCHEMA],
        ).fetchall()
        self._columns: dict[str, list[str]] = {}
        for table, column in found:
            self._columns.setdefault(table, []).append(column)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, mart: str) -> bool:
        return mart in self._columns

    def columns(self, mart: str) -> list[str]:
        return list(self._columns[mart])

    def _table(self, mart: str) -> str:
        if mart not in self._columns:
            raise KeyError(mart)
        return f"{MARTS_SCHEMA}.{_quote(mart)}"

    def _select(self, mart: str, columns: Sequence[str]) -> str:
        known = set(self._columns[mart])
        return ", ".join(_quote(c) for c in columns if c in known) or "NULL AS _none"

    def shape(self, mart: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM {self._table(mart)} LIMIT 0").fetch_df()

    def row_count(self, mart: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {self._table(mart)}").fetchone()[0])

    def distinct(self, mart: str, columns: Sequence[str]) -> pd.DataFrame:
        cols = self._select(mart, columns)
        return self.con.execute(f"SELECT DISTINCT {cols} FROM {self._table(mart)}").fetch_df()

    def _stream(self, sql: str, params: list[Any]) -> Iterator[pd.DataFrame]:
        """Fetch a query's result chunk by chunk: DuckDB streams it, nothing is materialized."""
        result = self.con.execute(sql, params)
        vectors = max(1, self.chunk_rows // _VECTOR_ROWS)  # DuckDB hands out whole vectors
        first = True
        while True:
            frame = result.fetch_df_chunk(vectors)
            if len(frame) == 0:
                if first:  # an empty mart still gets one (empty) batch, with its columns
                    yield frame
                return
            first = False
            for start in range(0, len(frame), self.chunk_rows):
                yield frame.iloc[start : start + self.chunk_rows]

    def rows(self, mart: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        return self._stream(f"SELECT {self._select(mart, columns)} FROM {self._table(mart)}", [])

    def key_partitions(
        self, mart: str, columns: Sequence[str], key: Sequence[str], partitions: int
    ) -> Iterator[pd.DataFrame]:
        known = [c for c in key if c in self._columns[mart]]
        hashed = ", ".join(_quote(c) for c in known) or "NULL"
        select = self._select(mart, columns)
        if partitions <= 1:
            yield self.con.execute(f"SELECT {select} FROM {self._table(mart)}").fetch_df()
            return
        for part in range(partitions):
            yield self.con.execute(
                f"SELECT {select} FROM {self._table(mart)} "
                f"WHERE hash({hashed}) % {int(partitions)} = {part}"
            ).fetch_df()


class FrameSource:
    """The same views over in-memory DataFrames (tests, and marts already in pandas)."""

    def __init__(self, frames: dict[str, pd.DataFrame], chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.frames = frames
        self.chunk_rows = max(1, chunk_rows)

    def has(self, mart: str) -> bool:
        return isinstance(self.frames.get(mart), pd.DataFrame)

    def columns(self, mart: str) -> list[str]:
        return [str(c) for c in self.frames[mart].columns]

    def _cols(self, mart: str, columns: Sequence[str]) -> list[str]:
        known = set(self.frames[mart].columns)
        return [c for c in columns if c in known]

    def shape(self, mart: str) -> pd.DataFrame:
        return self.frames[mart].iloc[0:0]

    def row_count(self, mart: str) -> int:
        return len(self.frames[mart])

    def distinct(self, mart: str, columns: Sequence[str]) -> pd.DataFrame:
        return self.frames[mart][self._cols(mart, columns)].drop_duplicates()

    def rows(self, mart: str, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        frame = self.frames[mart][self._cols(mart, columns)]
        if len(frame) == 0:
            yield frame
            return
        for start in range(0, len(frame), self.chunk_rows):
            yield frame.iloc[start : start + self.chunk_rows]

    def key_partitions(
        self, mart: str, columns: Sequence[str], key: Sequence[str], partitions: int
    ) -> Iterator[pd.DataFrame]:
        frame = self.frames[mart][self._cols(mart, columns)]
        hashed = self._cols(mart, key)
        if partitions <= 1 or not hashed:
            yield frame
            return
        try:
            buckets = pd.util.hash_pandas_object(frame[hashed], index=False) % partitions
        except TypeError:  # unhashable cells (lists...): one partition, still correct
            yield frame
            return
        for part in range(partitions):
            yield frame[(buckets == part).to_numpy()]
