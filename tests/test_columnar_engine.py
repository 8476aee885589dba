"""The columnar engine against the row engine: the same deliveries give the same log.

Three nights of one long-table site (every row rule, a blank line, DuckDB rejects, amend,
retract, a withdrawal, a mass-retraction rejection), ingested once by each engine into its own
data root. Events must agree in every column but the wall-clock `ingested_at`, quarantine
records as a multiset, file outcomes in every count. The row engine's own results are checked
by hand elsewhere (tests/test_readers_long_csv.py, tests/test_event_sourcing.py); here the line
numbers and rules of night 1 are also checked by hand, so both engines agreeing on a wrong
answer would still fail.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ingestion import delta_store
from ingestion.columnar import load
from ingestion.columnar.engine import MIN_BYTES_ENV, MIN_EVENTS_ENV
from ingestion.columnar.load import _blank_lines
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths

SITE = "bigfb"
CONSORTIUM = f"""
consortium_id: columnar
name: Columnar engine test
sites:
  - site_id: {SITE}
    format: long_csv
    columns: {{client_code: Klient, therapist_code: Therapeut, session_date: Datum, event: Sitzung}}
    session_event_pattern: '^(\\d+)$'
    date_format: '%d.%m.%Y'
    long_csv:
      measure_column: "Maß"
      measures: {{WAI-SR: wai_sr, GAD-7: gad7}}
      skip_measures: [ORS]
      item_column_template: "Item{{n}}"
      delimiter: ";"
      decimal: ","
      encoding: utf-8
    identifier_columns: [Name]
    # Night 2 retracts 1 of 6 administrations, above the 10 % default; night 3 still trips it.
    max_retraction_fraction: 0.5
    withdrawals: {{file_glob: "withdraw*.csv", client_code_column: code, reason_column: reason}}
    forms:
      - {{instrument: wai_sr, rater_role: client, item_column_template: "wai_{{n}}"}}
      - {{instrument: gad7, rater_role: client, item_column_template: "gad7_{{n}}"}}
    primary_alliance: wai_sr
    primary_outcome: gad7
"""
HEADER = "Klient;Therapeut;Sitzung;Datum;Maß;" + ";".join(f"Item{n}" for n in range(1, 13))
HEADER += ";Notiz;Name"


def line(client, therapist, session, day, measure, items, note="", name="Jane Roe") -> str:
    cells = [*items, *[""] * (12 - len(items))]
    return ";".join([client, therapist, session, day, measure, *cells, note, name])


WAI = ["4,0"] * 12
GAD = ["1", "2", "0", "3", "1", "2", "0"]
NIGHT1 = [
    HEADER,
    line("K1", "T1", "1", "05.03.2026", "WAI-SR", WAI),  # 2 accepted
    line("K1", "T1", "1", "05.03.2026", "GAD-7", GAD),  # 3 accepted
    "",  # 4 blank line
    line("K1", "T1", "2", "12.03.2026", "GAD-7", ["2,5", *GAD[1:]]),  # 5 range
    line("K1", "T1", "2", "12.03.2026", "ORS", ["5"] * 4),  # 6 skipped: not administered
    line("K2", "", "1", "2026-03-05", "WAI-SR", WAI),  # 7 date format
    line("K2", "T2", "1", "05.03.2026", "SRS", ["9"] * 4),  # 8 unknown measure
    line("K2", "T2", "2", "12.03.2026", "GAD-7", ["x", *GAD[1:]]),  # 9 non-numeric
    line("", "T2", "3", "19.03.2026", "GAD-7", GAD),  # 10 blank client
    line("K2", "T2", "abc", "19.03.2026", "GAD-7", GAD),  # 11 session pattern
    line("K2", "T2", "4", "19.03.2027", "GAD-7", GAD),  # 12 future date
    line("K3", "T3", "1", "05.03.2026", "GAD-7", ["1"] * 7),  # 13 accepted (first copy)
    line("K3", "T3", "1", "05.03.2026", "GAD-7", ["1"] * 7),  # 14 exact repeat
    line("K3", "T3", "2", "12.03.2026", "GAD-7", ["1"] * 7),  # 15 conflict
    line("K3", "T3", "2", "12.03.2026", "GAD-7", ["2"] * 7),  # 16 conflict
    line("K3", "T3", "3", "19.03.2026", "GAD-7", []),  # 17 all blank: not administered
    line("K4", "T4", "1", "05.03.2026", "WAI-SR", ['"3"'] * 12, '"a; quoted note"'),  # 18 ok
    "K4;T4;2;12.03.2026;WAI-SR;3;3",  # 19 too few fields
    line("K4", "T4", "3", "19.03.2026", "WAI-SR", WAI) + ";extra",  # 20 one field too many
    line("K4", "T4", "4", "26.03.2026", "WAI-SR", WAI) + ";x;y;z",  # 21 three too many
    line("K5", " ", "1", "05.03.2026", "GAD-7", GAD),  # 22 accepted, no therapist
    line("K5", "T5", "2", "12.03.2026", "GAD-7", ["0", "0", "", "0", "0", "0", "0"]),  # 23 ok
    "K7;T7;1;05.03",  # 24 short last line (its line break kept: a cut file is file.truncated)
]
NIGHT1_RULES = [
    (5, "item.out_of_range", "range"),
    (7, "row.session_date_format", "date"),
    (8, "row.unknown_measure", "schema"),
    (9, "item.non_numeric", "type"),
    (10, "row.client_code_blank", "identity"),
    (11, "row.session_event", "schema"),
    (12, "row.session_date_future", "date"),
    (14, "record.exact_duplicate", "duplicate"),
    (15, "record.conflicting_duplicate", "conflict"),
    (16, "record.conflicting_duplicate", "conflict"),
    (19, "row.field_count", "parse"),
    (20, "row.field_count", "parse"),
    (21, "row.field_count", "parse"),
    (24, "row.field_count", "parse"),
]
# Night 2: K1's GAD-7 corrected (amended), K1's WAI-SR gone (retracted), K5 withdrawn (their
# rows are quarantined), a new K6 (recorded); everything else as before.
NIGHT2 = [
    NIGHT1[0],
    line("K1", "T1", "1", "05.03.2026", "GAD-7", ["2", *GAD[1:]]),
    *NIGHT1[4:-1],
    line("K6", "T6", "1", "05.03.2026", "GAD-7", GAD),
]


def write(home: Path, name: str, lines: list[str], newline: bool = True) -> None:
    target = home / "inbox" / SITE / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + ("\n" if newline else ""), encoding="utf-8")


def night(home: Path, date: str, columnar: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BORDIN_HOME", str(home))
    monkeypatch.setenv(MIN_BYTES_ENV, "0" if columnar else str(1 << 40))
    monkeypatch.setenv(MIN_EVENTS_ENV, "0" if columnar else str(1 << 40))
    return ingest_site(SITE, date)


def deliver_all(home: Path, upto: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "consortium.yml").write_text(CONSORTIUM, encoding="utf-8")
    if upto >= 1:
        write(home, "export_1.csv", NIGHT1)
    if upto >= 2:
        (home / "inbox" / SITE / "export_1.csv").unlink()
        write(home, "export_2.csv", NIGHT2)
        (home / "inbox" / SITE / "withdraw_1.csv").write_text("code,reason\nK5,asked\n")
    if upto >= 3:
        (home / "inbox" / SITE / "export_2.csv").unlink()
        write(home, "export_3.csv", [HEADER])


def log_rows(home: Path) -> list[dict]:
    rows = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    for row in rows:
        row.pop("ingested_at")
    return sorted(rows, key=lambda r: r["site_seq"])


def quarantine_rows(home: Path) -> list[tuple]:
    rows = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    return sorted(tuple(str(v) for v in r.values()) for r in rows)


def outcomes(result) -> list[dict]:
    return [vars(f) for f in result.files]


def test_both_engines_write_the_same_log(tmp_path: Path, monkeypatch, key_env) -> None:
    rows_home, col_home, mixed_home = tmp_path / "rows", tmp_path / "col", tmp_path / "mixed"
    for n, date in enumerate(["2026-11-18", "2026-11-19", "2026-11-20"], start=1):
        for home in (rows_home, col_home, mixed_home):
            deliver_all(home, n)
        by_rows = night(rows_home, date, False, monkeypatch)
        by_col = night(col_home, date, True, monkeypatch)
        # The mixed root switches engine each night: the log must not notice.
        by_mixed = night(mixed_home, date, n % 2 == 0, monkeypatch)
        assert outcomes(by_col) == outcomes(by_rows), f"night {n}"
        assert outcomes(by_mixed) == outcomes(by_rows), f"night {n}"
        assert log_rows(col_home) == log_rows(rows_home), f"night {n}"
        assert log_rows(mixed_home) == log_rows(rows_home), f"night {n}"
        assert quarantine_rows(col_home) == quarantine_rows(rows_home), f"night {n}"
        assert quarantine_rows(mixed_home) == quarantine_rows(rows_home), f"night {n}"
        if n == 1:
            (export,) = by_col.files
            # 23 lines after the header, one blank: 22 rows; accepted 2,3,13,18,22,23.
            assert (export.rows_in, export.accepted, export.not_administered) == (22, 6, 2)
            assert export.quarantined == 14
            found = [
                (int(r[3]), r[7], r[8])
                for r in quarantine_rows(col_home)  # columns in QUARANTINE_SCHEMA order
            ]
            assert sorted(found) == NIGHT1_RULES
        if n == 2:
            counts = {f.source_file: (f.recorded, f.amended, f.retracted, f.withdrawn) for f in
                      by_col.files}  # fmt: skip
            # Recorded K6; amended K1 GAD-7; retracted K1 WAI-SR; K5 withdrawn by the file.
            assert counts["export_2.csv"][:3] == (1, 1, 1)
            assert counts["withdraw_1.csv"][3] == 1
        if n == 3:
            (export,) = [f for f in by_col.files if f.status != "already_ingested"]
            assert export.status == "rejected"


def test_rerun_is_a_no_op(tmp_path: Path, monkeypatch, key_env) -> None:
    home = tmp_path / "col"
    deliver_all(home, 1)
    first = night(home, "2026-11-18", True, monkeypatch)
    again = night(home, "2026-11-18", True, monkeypatch)
    assert first.events_written == 6 and again.no_op
    assert not any((Paths(home).scratch).glob("*.duckdb"))


def test_blank_lines_found_across_block_boundaries(tmp_path: Path) -> None:
    data = b"h\n" + b"a\n" * 5 + b"\n" + b"b\r\n\r\n" + b"c\n\n\n"
    path = tmp_path / "blank.csv"
    path.write_bytes(data)
    # Lines: 1 h, 2-6 a, 7 blank, 8 b, 9 blank (CRLF), 10 c, 11 and 12 blank.
    expected = [7, 9, 11, 12]
    assert _blank_lines(path) == expected
    original = load.BLOCK
    try:
        for size in (1, 2, 3, 5):
            load.BLOCK = size
            assert _blank_lines(path) == expected, size
    finally:
        load.BLOCK = original


def test_engine_choice(tmp_path: Path, monkeypatch, key_env) -> None:
    from ingestion.columnar.engine import use_columnar
    from ingestion.consortium import load_consortium

    home = tmp_path / "choice"
    deliver_all(home, 1)
    site = load_consortium(home / "consortium.yml").site(SITE)
    export = home / "inbox" / SITE / "export_1.csv"
    size = export.stat().st_size
    log = Paths(home).event_log
    monkeypatch.setenv(MIN_EVENTS_ENV, "1")
    monkeypatch.setenv(MIN_BYTES_ENV, str(size + 1))
    assert not use_columnar(site, [export], log)  # small file, nothing stored yet
    monkeypatch.setenv(MIN_BYTES_ENV, str(size))
    assert use_columnar(site, [export], log)  # file at the size threshold
    cp1252 = dataclasses.replace(
        site, long_csv=dataclasses.replace(site.long_csv, encoding="cp1252")
    )
    assert not use_columnar(cp1252, [export], log)  # DuckDB reads no cp1252 without extension
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    night(home, "2026-11-18", False, monkeypatch)  # 6 events stored by the row engine
    monkeypatch.setenv(MIN_EVENTS_ENV, "6")
    assert use_columnar(site, [], log)  # a large stored history
    monkeypatch.setenv(MIN_EVENTS_ENV, "7")
    assert not use_columnar(site, [], log)


BAD_FILES = {
    "renamed_column": (HEADER.replace("Item3", "Itm3") + "\n" + NIGHT1[1] + "\n").encode(),
    "repeated_column": (HEADER.replace("Item3", "Item2") + "\n" + NIGHT1[1] + "\n").encode(),
    "empty": b"",
    "header_only": (HEADER + "\n").encode(),
    # A cp1252 byte in the third data line (header and first lines are valid UTF-8).
    "not_utf8": (HEADER + "\n" + NIGHT1[1] + "\n").encode()
    + NIGHT1[2].replace("T1", "T\xd6").encode("cp1252"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_file_level_problems_agree(case: str, tmp_path: Path, monkeypatch, key_env) -> None:
    results = {}
    for engine in ("rows", "columnar"):
        home = tmp_path / engine
        deliver_all(home, 0)
        target = home / "inbox" / SITE / "export.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(BAD_FILES[case])
        (outcome,) = night(home, "2026-11-18", engine == "columnar", monkeypatch).files
        records = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
        results[engine] = (vars(outcome), [(r["rule_id"], r["category"]) for r in records])
        if case != "not_utf8":  # the row engine names the byte, the columnar one the line
            results[engine] += ([r["message"] for r in records],)
    assert results["columnar"] == results["rows"]
    if case == "not_utf8":
        assert results["rows"][1] == [("file.encoding", "encoding")]


def test_control_characters_in_client_codes_agree(tmp_path: Path, monkeypatch, key_env) -> None:
    """Issue 12: a NUL (or any control character) inside a client code is not a new client."""
    gad = ["1"] * 7
    nights = [
        [HEADER, line("K1", "T1", "1", "05.03.2026", "GAD-7", gad),
         line("K2", "T1", "1", "05.03.2026", "GAD-7", gad)],
        [HEADER, line("K1\x00", "T1", "1", "05.03.2026", "GAD-7", gad),  # 2: NUL inside
         line("K2", "T1", "1", "05.03.2026", "GAD-7", gad),  # 3: unchanged
         line("K\x1b3", "T1", "1", "05.03.2026", "GAD-7", gad),  # 4: ESC inside
         line(" K4\x7f ", "T1", "1", "05.03.2026", "GAD-7", gad)],  # 5: DEL inside
    ]  # fmt: skip
    for engine in ("rows", "columnar"):
        home = tmp_path / engine
        deliver_all(home, 0)
        for n, lines in enumerate(nights, start=1):
            write(home, f"export_{n}.csv", lines)
            result = night(home, f"2026-11-1{n}", engine == "columnar", monkeypatch)
        (export,) = [f for f in result.files if f.source_file == "export_2.csv"]
        # K2 accepted unchanged; lines 2, 4, 5 quarantined; K1 held (not retracted).
        assert (export.accepted, export.quarantined, export.unchanged) == (1, 3, 1), engine
        assert (export.recorded, export.retracted) == (0, 0), engine
        records = [(int(r[3]), r[7], r[8], r[10]) for r in quarantine_rows(home)]
        assert sorted(records) == [
            (2, "row.client_code_control", "identity", "K1\x00"),
            (4, "row.client_code_control", "identity", "K\x1b3"),
            (5, "row.client_code_control", "identity", " K4\x7f "),
        ], engine
        assert len(log_rows(home)) == 2, engine
    assert log_rows(tmp_path / "columnar") == log_rows(tmp_path / "rows")
    assert quarantine_rows(tmp_path / "columnar") == quarantine_rows(tmp_path / "rows")
