"""The long table as DuckDB reads it: header checks, the streaming source, line numbering.

The header is read and checked in Python (missing or repeated columns reject the file with the
row engine's messages); the body is parsed by DuckDB's CSV reader in parallel, in file order.
A line with too few fields reads its last header column as NULL (padding) and one with one
field too many fills the overflow column; lines with more are DuckDB rejects. All of these are
the row engine's `row.field_count`.

Line numbers count every physical line, as a spreadsheet shows them. The scan keeps file order,
so a kept row's ordinal is its table rowid + 1; DuckDB skips blank lines and rejects without
numbering the rows it keeps, so those gaps (a byte scan for blank lines, the reject table for
the rest) are added back: table `gaps` holds, per gap, how many kept rows precede it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.consortium import SiteConfig
from ingestion.readers.base import SiteRead, file_issue
from ingestion.readers.long_csv import ROLES, header_issue, long_required
from ingestion.registry import Registry

NULL_MARK = "\x01bordin-null\x01"
OVERFLOW = "__overflow"
DUCKDB_ENCODINGS = {"utf-8", "utf-8-sig"}
BLOCK = 8 << 20  # bytes per read of the blank-line scan


@dataclass(frozen=True)
class Source:
    """How to read the body: the read_csv expression and where each role's cells are."""

    sql: str
    cells: dict[str, str]  # role / 'measure' / 'item<k>' -> column of the read_csv relation
    ragged: str  # SQL: the line has a different number of fields than the header
    n_items: int


def supported(site: SiteConfig) -> bool:
    """Long tables in an encoding DuckDB reads natively (cp1252 needs an extension)."""
    options = site.long_csv
    return (
        site.format == "long_csv" and options is not None and options.encoding in DUCKDB_ENCODINGS
    )


def open_source(
    con: duckdb.DuckDBPyConnection, path: Path, site: SiteConfig, registry: Registry
) -> Source | SiteRead:
    """The body's source, or the file-level issue the row engine would give."""
    options = site.long_csv
    assert options is not None
    head = _first_line(path)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return file_issue(
            "file.encoding",
            "encoding",
            f"not {options.encoding} (byte {exc.start}: {head[exc.start : exc.start + 1]!r}); "
            f"the site is configured for {options.encoding}",
        )
    if not text.strip() and _is_blank(path):
        return file_issue("file.empty", "parse", "the file is empty")
    header = [h.strip() for h in next(csv.reader(io.StringIO(text), delimiter=options.delimiter))]
    item_sources, required = long_required(site, registry)
    sql = _read_csv(path, options.delimiter, len(header))
    if any(c not in header for c in required) or len(set(header)) != len(header):
        return header_issue(header, required, options.delimiter, _count_rows(con, sql))
    at = {name: f"c{header.index(name)}" for name in required}
    cells = {r: at[site.columns[r]] for r in ROLES}
    cells["measure"] = at[options.measure_column]
    cells |= {f"item{n}": at[s] for n, s in enumerate(item_sources, start=1)}
    ragged = f"(c{len(header) - 1} IS NULL OR {OVERFLOW} IS NOT NULL)"
    return Source(sql, cells, ragged, len(item_sources))


def finish_lines(con: duckdb.DuckDBPyConnection, path: Path, encoding: str) -> SiteRead | None:
    """After the scan: tables `rejected` and `gaps`; an undecodable file is a file issue."""
    _ensure_rejects(con)
    con.execute("CREATE OR REPLACE TABLE rejected AS SELECT DISTINCT line FROM reject_errors")
    bad = con.execute(
        "SELECT min(line) FROM reject_errors "
        "WHERE error_type IN ('INVALID UNICODE', 'INVALID ENCODING')"
    ).fetchone()[0]
    if bad is not None:
        return file_issue(
            "file.encoding",
            "encoding",
            f"not {encoding} (line {bad}); the site is configured for {encoding}",
        )
    rejected = {r[0] for r in con.execute("SELECT line FROM rejected").fetchall()}
    gaps = sorted(set(_blank_lines(path)) | rejected)
    # Gap j (0-based, sorted) at line g_j is preceded by g_j - 2 - j kept rows: a kept row of
    # ordinal o (1-based) has every gap with g_j - 2 - j < o before it.
    con.execute("CREATE OR REPLACE TABLE gaps (after_kept BIGINT, n_before BIGINT)")
    if gaps:
        con.executemany(
            "INSERT INTO gaps VALUES (?, ?)", [(g - 2 - j, j + 1) for j, g in enumerate(gaps)]
        )
    return None


def line_of(con: duckdb.DuckDBPyConnection, rowid: str) -> str:
    """SQL for the physical line of the kept row whose table rowid is `rowid`."""
    if con.execute("SELECT count(*) FROM gaps").fetchone()[0] == 0:
        return f"({rowid} + 2)"
    return (
        f"({rowid} + 2 + coalesce((SELECT max(g.n_before) FROM gaps g "
        f"WHERE g.after_kept < {rowid} + 1), 0))"
    )


def _read_csv(path: Path, delimiter: str, width: int) -> str:
    columns = ", ".join([f"'c{i}': 'VARCHAR'" for i in range(width)] + [f"'{OVERFLOW}': 'VARCHAR'"])
    return (
        f"read_csv({_quote(str(path))}, delim = {_quote(delimiter)}, header = true, "
        f"auto_detect = false, columns = {{{columns}}}, quote = '\"', escape = '\"', "
        f"null_padding = true, nullstr = {_quote(NULL_MARK)}, ignore_errors = true, "
        "store_rejects = true, encoding = 'utf-8')"
    )


def _first_line(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline().rstrip(b"\r\n")


def _is_blank(path: Path) -> bool:
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            if block.strip():
                return False
    return True


def _blank_lines(path: Path) -> list[int]:
    """Line numbers (1-based) of empty lines, scanned block by block (a byte search, no parse)."""
    found: list[int] = []
    newlines_before = 0  # newlines in the file before the current block
    carry = b""
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            joined = carry + block
            matches = sorted(
                at for pattern in (b"\n\n", b"\n\r\n") for at in _find_all(joined, pattern)
            )
            counted, count = 0, newlines_before - carry.count(b"\n")
            for at in matches:
                count += joined.count(b"\n", counted, at + 1)
                counted = at + 1
                found.append(count + 1)
            newlines_before += block.count(b"\n")
            carry = joined[-2:]
    # A match inside the carried bytes is found twice, with the same line number.
    return sorted(set(found))


def _find_all(text: bytes, pattern: bytes) -> list[int]:
    hits, start = [], 0
    while (at := text.find(pattern, start)) != -1:
        hits.append(at)
        start = at + 1
    return hits


def _count_rows(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """Data lines of a rejected file (its `rows_in`), as the row engine counts them."""
    kept = con.execute(f"SELECT count(*) FROM {sql}").fetchone()[0]
    _ensure_rejects(con)
    rejected = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    return kept + rejected


def _ensure_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB creates its reject table only when a scan stores one; an empty stand-in else."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'"
    ).fetchone()[0]
    if not exists:
        con.execute("CREATE TEMP TABLE reject_errors (line BIGINT, error_type VARCHAR)")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
