"""Delimited text before DuckDB reads it: encoding, header records, blank lines, the body scan.

The encoding is checked (and, for a site that is not UTF-8, the file transcoded into the
scratch folder) in one streaming pass, so an undecodable file is rejected with the byte that
broke it before anything is parsed, and DuckDB always reads UTF-8. The header records are read
with Python's csv module (a Qualtrics question-text row may hold line breaks); the body is then
read by DuckDB's CSV reader, every cell as text, in parallel and in file order.

Line numbers: a row's `source_row` is its record number as a spreadsheet shows it (1 = the
first header row). DuckDB skips blank lines and rejected lines without numbering the rows it
keeps, so those gaps are added back (see `Gaps`).
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.quarantine import Issue

NULL_MARK = "\x01bordin-null\x01"
OVERFLOW = "__overflow"
BLOCK = 8 << 20  # bytes per read of the streaming passes
PARALLEL, SERIAL = "parallel = true", "parallel = false"
SERIAL_HINT = "parallel=false"  # in DuckDB's error when only a serial scan can read the file
UTF8 = {"utf-8", "utf-8-sig", "utf8"}


def encoding_issue(
    path: Path, encoding: str, hint: str, target: Path, label: str = ""
) -> Path | Issue:
    """The UTF-8 text to parse (the file itself, or its transcoded copy), or the byte that
    could not be decoded. Memory: one block."""
    utf8 = encoding.lower() in UTF8
    label = label or encoding
    decoder = codecs.getincrementaldecoder("utf-8-sig" if utf8 else encoding)()
    offset = 0
    out = None if utf8 else target.open("w", encoding="utf-8", newline="")
    try:
        with path.open("rb") as handle:
            while True:
                block = handle.read(BLOCK)
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    at = offset - pending + exc.start
                    bad = _byte_at(path, max(at, 0))
                    return Issue.of(
                        "file.encoding", detail=f"not {label} (byte {at}: {bad!r}); {hint}"
                    )
                if out is not None:
                    out.write(text)
                if not block:
                    break
                offset += len(block)
    finally:
        if out is not None:
            out.close()
    return path if utf8 else target


def _byte_at(path: Path, at: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(at)
        return handle.read(1)


def is_blank(path: Path) -> bool:
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            if block.strip().strip(b"\xef\xbb\xbf"):
                return False
    return True


@dataclass(frozen=True)
class Header:
    records: list[list[str]]  # the header records, cells as read
    lines: int  # physical lines they take (more than one each when a cell holds a line break)


def read_header(path: Path, delimiter: str, n_records: int) -> Header | Issue:
    """The first `n_records` records (fewer if the file has fewer), read with the csv module."""
    records: list[list[str]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            for record in reader:
                records.append(record)
                if len(records) == n_records:
                    break
            return Header(records, reader.line_num)
    except csv.Error as exc:
        return Issue.of("file.csv", detail=f"not a readable delimited file: {exc}")


def body_relation(
    path: Path, delimiter: str, width: int, skip: int, *, parallel: bool = True
) -> str:
    """read_csv of the body: columns c0..c{width-1} as text, plus an overflow column.

    A line with too few fields reads its last column as NULL (padding; an empty cell is '' and
    never NULL, as no cell equals NULL_MARK); one with one field too many fills the overflow
    column; lines with more are DuckDB rejects. All of these are `row.field_count`.
    """
    columns = ", ".join([f"'c{i}': 'VARCHAR'" for i in range(width)] + [f"'{OVERFLOW}': 'VARCHAR'"])
    return (
        f"read_csv({quote(str(path))}, delim = {quote(delimiter)}, header = false, "
        f"skip = {skip}, auto_detect = false, columns = {{{columns}}}, quote = '\"', "
        f"escape = '\"', null_padding = true, nullstr = {quote(NULL_MARK)}, "
        f"ignore_errors = true, store_rejects = true, encoding = 'utf-8', "
        f"{PARALLEL if parallel else SERIAL})"
    )


def ragged_sql(width: int) -> str:
    return f"(c{width - 1} IS NULL OR {OVERFLOW} IS NOT NULL)"


@dataclass(frozen=True)
class Gaps:
    """Numbers DuckDB's scan skipped: blank lines and rejected lines, as record numbers."""

    lines: list[int]  # sorted record numbers not among the kept rows
    rejected: list[int]  # record numbers of rejected lines (a subset of `lines`)


def scan_gaps(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    first_line: int,
    blank_lines_count: bool,
    shift: int = 0,
) -> Gaps:
    """After the scan. DuckDB numbers rejects by record, blank lines included; `first_line` is
    the record number of the first data record; `shift` the physical lines the header records
    take beyond one each (a Qualtrics question text with line breaks)."""
    ensure_rejects(con)
    rejected = sorted({r[0] for r in con.execute("SELECT line FROM reject_errors").fetchall()})
    blanks = []
    if blank_lines_count or rejected:
        blanks = [b - shift for b in blank_lines(path) if b - shift >= first_line]
    if blank_lines_count:
        return Gaps(sorted(set(blanks) | set(rejected)), rejected)
    # Blank lines take no number: a rejected line's number counts the blank lines before it out.
    renumbered = [g - sum(1 for b in blanks if b < g) for g in rejected]
    return Gaps(renumbered, renumbered)


def load_gaps(con: duckdb.DuckDBPyConnection, gaps: Gaps, first_line: int) -> None:
    """Table `gaps`: gap j (0-based, sorted) at number g_j is preceded by g_j - first - j kept
    rows, so a kept row of ordinal o (0-based) has every gap with that count <= o before it."""
    con.execute("CREATE OR REPLACE TABLE gaps (after_kept BIGINT, n_before BIGINT)")
    if gaps.lines:
        con.executemany(
            "INSERT INTO gaps VALUES (?, ?)",
            [(g - first_line - j, j + 1) for j, g in enumerate(gaps.lines)],
        )


def line_of(con: duckdb.DuckDBPyConnection, ordinal: str, first_line: int) -> str:
    """SQL for the record number of the kept row of 0-based ordinal `ordinal`."""
    has_gaps = (
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'gaps'").fetchone()[0]
        and con.execute("SELECT count(*) FROM gaps").fetchone()[0]
    )
    if not has_gaps:
        return f"({ordinal} + {first_line})"
    return (
        f"({ordinal} + {first_line} + coalesce((SELECT max(g.n_before) FROM gaps g "
        f"WHERE g.after_kept <= {ordinal}), 0))"
    )


def blank_lines(path: Path) -> list[int]:
    """Line numbers (1-based) of empty lines, scanned block by block (a byte search, no parse)."""
    found: list[int] = []
    newlines_before = 0
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
    return sorted(set(found))


def _find_all(text: bytes, pattern: bytes) -> list[int]:
    hits, start = [], 0
    while (at := text.find(pattern, start)) != -1:
        hits.append(at)
        start = at + 1
    return hits


def count_records(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    """Data records of a file rejected at its header (its `rows_in`): kept plus rejected."""
    kept = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    ensure_rejects(con)
    rejected = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    return kept + rejected


def reset_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """Forget the rejects of a scan that was abandoned (to be run again serially)."""
    for table in ("reject_errors", "reject_scans"):
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]
        ).fetchone()[0]
        if exists:
            con.execute(f"DELETE FROM {table}")


def ensure_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB creates its reject table only when a scan stores one; an empty stand-in else."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'"
    ).fetchone()[0]
    if not exists:
        con.execute("CREATE TEMP TABLE reject_errors (line BIGINT, error_type VARCHAR)")


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
