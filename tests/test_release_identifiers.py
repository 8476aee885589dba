"""Release-wide identifier scan: planted identifiers of every format never reach a release.

One consortium holds the hand-scorable tiny sites (alpha, beta: they give the gate its
headline, so the release is published) and the four identifier sites of
tests/test_identifiers.py, whose fixtures plant names, e-mails, phones, IPs, geolocation,
dates of birth and free text in a REDCap export with its data dictionary (`Identifier? = y`),
the same pair inside a zip, a Qualtrics export (IPAddress, Recipient*, Location*) and a long
feedback table (identifier columns and a free-text note). The real nightly DAG runs once
(`bordin nightly`), and then EVERY file of the published release folder (Parquet, marts.duckdb,
manifest.json, report.html, codebook.csv, codebook.html, rules/) is scanned:
  - as bytes, for each planted value and each session date as the sites wrote it;
  - Parquet and DuckDB files also as decoded cell values: planted values, raw client and
    therapist codes (too short to look for in compressed bytes), and any DATE / TIMESTAMP
    value equal to a session date (a date is stored as a number, so no byte scan finds it);
  - text files also with e-mail and IPv4 patterns, and for raw codes as whole tokens.
Without `release: {calendar_dates: true}` (the default here) no released column is a date
except the delivery nights (first / last logical date), which date the data flow, not anyone.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import FIXTURES as ALL_FIXTURES
from tests.conftest import TEST_KEY, SharedRoots, building, install_airflow_db, run_bordin
from tests.test_identifiers import DICTIONARY, FIXTURES, PLANTED, deliver, deliver_zip
from tests.test_release import DELIVERY_NIGHTS, date_typed_columns

DATE = "2026-11-20"
# Session dates exactly as the exports carry them (ISO in REDCap / Qualtrics / tiny, German
# day-first in the long table); none may appear in a release without calendar_dates.
SESSION_DATES_AS_WRITTEN = [
    "2026-03-01",
    "2026-03-02",
    "2026-03-08",
    "2026-03-09",
    "05.03.2026",
    "12.03.2026",
    "2026-03-07",
    "2026-03-14",
    "2026-03-21",
]
SESSION_DATES = {
    date(2026, 3, d) for d in (1, 2, 8, 9, 5, 12, 7, 14, 21)
}  # the same days, as dates
# Raw participant and staff codes: short, so matched as whole cell values or text tokens.
RAW_CODES = [
    "ID-1",
    "ID-2",
    "Q-1",
    "Q-2",
    "L-1",
    "R_id1",
    "R_id2",
    "R_id3",
    *(f"A{n}" for n in range(1, 6)),
    *(f"B{n}" for n in range(1, 5)),
    "A-T1",
    "A-T2",
    "B-T1",
    "B-T2",
]
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.]){OCTET}(?:\.{OCTET}){{3}}(?![\d.])")
TEXT_SUFFIXES = {".json", ".html", ".yml", ".csv"}
DATA_SUFFIXES = {".parquet", ".duckdb"}


def _consortium(home: Path) -> None:
    """The tiny sites and the identifier sites in one consortium file."""
    tiny = yaml.safe_load((ALL_FIXTURES / "tiny" / "consortium.yml").read_text())
    ident = yaml.safe_load((FIXTURES / "consortium.yml").read_text())
    tiny["sites"] += ident["sites"]
    (home / "consortium.yml").write_text(yaml.safe_dump(tiny, sort_keys=False))


def _make_released(shared_roots: SharedRoots) -> Callable[[Path], None]:
    def make(home: Path) -> None:
        home.mkdir(parents=True)
        _consortium(home)
        shutil.copytree(ALL_FIXTURES / "tiny" / "inbox", home / "inbox")
        deliver(home, "rcid", "redcap_identified.csv", DICTIONARY)
        deliver_zip(
            home,
            "zipid",
            {
                "export/redcap_identified.csv": (FIXTURES / "redcap_identified.csv").read_bytes(),
                f"export/{DICTIONARY}": (FIXTURES / DICTIONARY).read_bytes(),
            },
        )
        deliver(home, "qualid", "qualtrics_identified.csv")
        deliver(home, "longid", "long_identified.csv")
        install_airflow_db(shared_roots, home)
        with building(home):
            result = run_bordin("nightly", "--date", DATE)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    return make


@pytest.fixture(scope="session")
def released(shared: SharedRoots) -> Path:
    """The release of one real nightly over every format's planted identifiers (read-only)."""
    home = shared.get("release_identifiers", _make_released(shared))
    return (home / "releases" / "latest").resolve()


def _cells(path: Path) -> Iterator[object]:
    """Every cell value of a Parquet file, or of every table in a DuckDB file."""
    if path.suffix == ".parquet":
        for row in pq.read_table(path).to_pylist():
            yield from row.values()
        return
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
        for schema, table in tables:
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                yield from row
    finally:
        con.close()


def _leaks(folder: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        data = path.read_bytes()
        for value in [*PLANTED, *SESSION_DATES_AS_WRITTEN, TEST_KEY]:
            if value.encode() in data:
                found.append((rel, value))
        if path.suffix in DATA_SUFFIXES:
            for cell in _cells(path):
                if isinstance(cell, datetime | date):
                    day = cell.date() if isinstance(cell, datetime) else cell
                    if day in SESSION_DATES:
                        found.append((rel, f"session date {day}"))
                elif isinstance(cell, str):
                    found += [(rel, v) for v in PLANTED if v in cell]
                    found += [(rel, c) for c in RAW_CODES if cell == c]
        elif path.suffix in TEXT_SUFFIXES:
            text = data.decode("utf-8")
            found += [(rel, f"e-mail {m}") for m in EMAIL.findall(text)]
            found += [(rel, f"IP {m}") for m in IPV4.findall(text)]
            for code in RAW_CODES:
                if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text):
                    found.append((rel, code))
        else:
            found.append((rel, f"unexpected file type {path.suffix!r}: extend the scan"))
    return found


@pytest.mark.slow
def test_planted_identifiers_never_reach_any_release_file(released: Path) -> None:
    files = {str(p.relative_to(released)) for p in released.rglob("*") if p.is_file()}
    # The scan covers every kind of file a release has, the intake summary among them.
    assert {"manifest.json", "report.html", "marts.duckdb", "rules/consortium.yml"} <= files
    assert {"codebook.csv", "codebook.html"} <= files
    assert "parquet/mart_site_intake.parquet" in files
    assert "parquet/fct_session_calendar.parquet" not in files
    assert _leaks(released) == []
    # No participant's calendar date: the only date-typed columns are delivery nights.
    assert date_typed_columns(released) == DELIVERY_NIGHTS
    manifest = json.loads((released / "manifest.json").read_text())
    assert manifest["parameters"]["release_calendar_dates"] is False


@pytest.mark.slow
def test_intake_summary_counts_every_format(released: Path) -> None:
    """Counts worked out in tests/test_identifiers.py's docstring, per site."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT site_id, files_delivered, files_ingested, files_rejected, rows_in, "
            "administrations_offered, administrations_accepted, administrations_quarantined, "
            "administrations_not_administered, administrations_unaccounted, events_recorded, "
            "events_withdrawn, cast(first_logical_date AS varchar), "
            "cast(last_logical_date AS varchar) "
            f"FROM '{released / 'parquet' / 'mart_site_intake.parquet'}' ORDER BY site_id"
        ).fetchall()
    finally:
        con.close()
    night = (DATE, DATE)
    assert rows == [
        # 15 rows x (WAI-SR, PHQ-9), all new
        ("alpha", 1, 1, 0, 15, 30, 30, 0, 0, 0, 30, 0, *night),
        ("beta", 1, 1, 0, 12, 24, 24, 0, 0, 0, 24, 0, *night),
        # 3 rows of the long table, one administration each; item 1 = "x" quarantined
        ("longid", 1, 1, 0, 3, 3, 2, 1, 0, 0, 2, 0, *night),
        # 3 responses x (WAI-SR, GAD-7): GAD range and the unfinished WAI quarantined,
        # the unfinished response's blank GAD-7 not administered
        ("qualid", 1, 1, 0, 3, 6, 3, 2, 1, 0, 3, 0, *night),
        # the export and its data dictionary (read, not ingested: no rows); PHQ range
        ("rcid", 2, 2, 0, 3, 6, 5, 1, 0, 0, 5, 0, *night),
        # one zip holding both
        ("zipid", 1, 1, 0, 3, 6, 5, 1, 0, 0, 5, 0, *night),
    ]


def test_the_release_scan_would_see_each_kind_of_leak(tmp_path: Path) -> None:
    """Guard against a scan that cannot fail: each channel of _leaks finds its plant."""
    (tmp_path / "parquet").mkdir()
    pq.write_table(
        pa.table({"note": ["Plonkeria rang"], "client": ["Q-2"], "day": [date(2026, 3, 9)]}),
        tmp_path / "parquet" / "planted.parquet",
    )
    con = duckdb.connect(str(tmp_path / "marts.duckdb"))
    try:
        con.execute("CREATE TABLE t AS SELECT TIMESTAMP '2026-03-14 09:00:00' AS at, 'B3' AS c")
    finally:
        con.close()
    (tmp_path / "manifest.json").write_text('{"who": "someone@example.ch", "ip": "10.1.2.3"}')
    (tmp_path / "report.html").write_text("<td>A-T1</td><td>session on 12.03.2026</td>")
    (tmp_path / "notes.txt").write_text("")
    found = set(_leaks(tmp_path))
    assert {
        ("parquet/planted.parquet", "Plonkeria"),
        ("parquet/planted.parquet", "Q-2"),
        ("parquet/planted.parquet", "session date 2026-03-09"),
        ("marts.duckdb", "session date 2026-03-14"),
        ("marts.duckdb", "B3"),
        ("manifest.json", "e-mail someone@example.ch"),
        ("manifest.json", "IP 10.1.2.3"),
        ("report.html", "A-T1"),
        ("report.html", "12.03.2026"),
        ("notes.txt", "unexpected file type '.txt': extend the scan"),
    } <= found
