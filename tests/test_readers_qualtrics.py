"""Qualtrics CSV reader: ImportId mapping, Finished/Progress handling, identifying metadata.

Fixture tests/fixtures/formats/qualtrics_export.csv (three header rows, records 4-8; a question
text holds a comma and a line break). Forms: WAI-SR (12 items, 1-5) and GAD-7 (7 items, 0-3).
  row 4  C1 s1 Finished=1      WAI 4s, GAD 1s            -> both accepted
  row 5  C1 s2 Finished=True   WAI 5s, GAD item 1 = 9    -> WAI accepted, GAD range
  row 6  C2 s1 Finished=0 60 % WAI 3s, GAD blank         -> WAI unfinished, GAD not administered
  row 7  C2 s2 Finished=1      WAI 2s, GAD blank         -> WAI accepted, GAD not administered
  row 8  C3 s1 Finished=False 95 % WAI 4s, GAD 2s        -> both unfinished
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths
from tests.conftest import TEST_KEY

FORMATS = Path(__file__).parent / "fixtures" / "formats"
DATE = "2026-11-20"
PLANTED = [
    "203.0.113.77",
    "Zyxwvutson",
    "Qwertina",
    "qwertina.zyx@example.org",
    "47.376887",
    "8.541694",
    "SECRET-FREE-TEXT-Q9",
]


@pytest.fixture
def fhome(home: Path) -> Path:
    shutil.copy(FORMATS / "consortium.yml", home)
    return home


def deliver(home: Path, site: str, fixture: str, name: str | None = None) -> Path:
    target = home / "inbox" / site / (name or fixture)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FORMATS / fixture, target)
    return target


def events(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()


def quarantine(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()


def counts(outcome) -> tuple[int, int, int, int]:
    assert outcome.offered == outcome.accepted + outcome.quarantined + outcome.not_administered
    return outcome.offered, outcome.accepted, outcome.quarantined, outcome.not_administered


def test_default_only_finished_responses_count(fhome: Path) -> None:
    deliver(fhome, "qual", "qualtrics_export.csv")
    result = ingest_site("qual", DATE)
    (outcome,) = result.files
    assert outcome.status == "ingested" and outcome.rows_in == 5
    # accepted: r4 x2, r5 WAI, r7 WAI; quarantined: r5 GAD, r6 WAI, r8 x2; n/a: r6 GAD, r7 GAD
    assert counts(outcome) == (10, 4, 4, 2)
    rules = sorted((q["source_row"], q["instrument"], q["rule_id"]) for q in quarantine(fhome))
    assert rules == [
        (5, "gad7", "item.out_of_range"),
        (6, "wai_sr", "response.unfinished"),
        (8, "gad7", "response.unfinished"),
        (8, "wai_sr", "response.unfinished"),
    ]
    unfinished = [q for q in quarantine(fhome) if q["rule_id"] == "response.unfinished"]
    assert all("not finished" in q["message"] for q in unfinished)
    key = PseudonymKey(TEST_KEY.encode())
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): e["items"] for e in events(fhome)
    }
    c1, c2 = (key.pseudonym("qual", "client", c) for c in ("C1", "C2"))
    assert got == {
        (c1, 1, "wai_sr"): [4.0] * 12,
        (c1, 1, "gad7"): [1.0] * 7,
        (c1, 2, "wai_sr"): [5.0] * 12,
        (c2, 2, "wai_sr"): [2.0] * 12,
    }
    rows = {(e["client_pid"], e["session_number"]): e["source_row"] for e in events(fhome)}
    assert rows[(c1, 1)] == 4 and rows[(c2, 2)] == 7


def test_unfinished_skipped_and_counted(fhome: Path) -> None:
    deliver(fhome, "qual_skip", "qualtrics_export.csv")
    (outcome,) = ingest_site("qual_skip", DATE).files
    # r6 and r8 are skipped whole: 2 + 2 not administered, plus r7 GAD.
    assert counts(outcome) == (10, 4, 1, 5)
    assert [q["rule_id"] for q in quarantine(fhome)] == ["item.out_of_range"]


def test_min_progress_lets_nearly_finished_responses_count(fhome: Path) -> None:
    deliver(fhome, "qual_progress", "qualtrics_export.csv")
    (outcome,) = ingest_site("qual_progress", DATE).files
    # r8 (95 %) now counts: both accepted; r6 (60 %) WAI still quarantined.
    assert counts(outcome) == (10, 6, 2, 2)


def test_identifying_metadata_never_reaches_the_event_log(fhome: Path) -> None:
    deliver(fhome, "qual", "qualtrics_export.csv")
    ingest_site("qual", DATE)
    parquet = list((fhome / "eventlog").rglob("*.parquet"))
    assert parquet
    for path in parquet:
        data = path.read_bytes()
        for value in PLANTED:
            assert value.encode() not in data, (value, path)
    # The restricted quarantine keeps raw values, but only of configured columns.
    for row in quarantine(fhome):
        assert row["raw_value"] not in PLANTED


def test_items_are_keyed_on_import_id_not_on_column_names(fhome: Path) -> None:
    text = (FORMATS / "qualtrics_export.csv").read_text(encoding="utf-8-sig")
    # An editor renames the WAI questions: the export still maps by ImportId.
    renamed = text.replace("Q1_", "Renamed_", 12)
    target = fhome / "inbox" / "qual" / "renamed.csv"
    target.parent.mkdir(parents=True)
    target.write_text(renamed, encoding="utf-8")
    (outcome,) = ingest_site("qual", DATE).files
    assert counts(outcome) == (10, 4, 4, 2)


def test_missing_import_id_is_a_schema_issue(fhome: Path) -> None:
    text = (FORMATS / "qualtrics_export.csv").read_text(encoding="utf-8-sig")
    target = fhome / "inbox" / "qual" / "recreated.csv"
    target.parent.mkdir(parents=True)
    target.write_text(text.replace('"QID7_3"', '"QID8_3"'), encoding="utf-8")
    (outcome,) = ingest_site("qual", DATE).files
    assert outcome.status == "rejected" and outcome.rows_in == 5
    (issue,) = quarantine(fhome)
    assert issue["category"] == "schema" and "QID7_3" in issue["message"]


def test_two_header_rows_only_is_a_schema_issue(fhome: Path) -> None:
    target = fhome / "inbox" / "qual" / "short.csv"
    target.parent.mkdir(parents=True)
    target.write_text("a,b\nA,B\n", encoding="utf-8")
    (outcome,) = ingest_site("qual", DATE).files
    assert outcome.status == "rejected"
    assert [q["category"] for q in quarantine(fhome)] == ["schema"]


def test_record_numbers_count_a_blank_line_under_a_multiline_header(fhome: Path) -> None:
    """The question-text header row spans several physical lines; a blank line after record 4
    still takes one number, so the records after it are 6-9 (as a spreadsheet shows them)."""
    lines = (FORMATS / "qualtrics_export.csv").read_text(encoding="utf-8-sig").split("\n")
    first_data = next(i for i, line in enumerate(lines) if line.startswith("2026-03-01"))
    lines.insert(first_data + 1, "")
    target = fhome / "inbox" / "qual" / "qualtrics_export.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines), encoding="utf-8")
    (outcome,) = ingest_site("qual", DATE).files
    assert outcome.rows_in == 5
    rules = sorted((q["source_row"], q["instrument"], q["rule_id"]) for q in quarantine(fhome))
    assert rules == [
        (6, "gad7", "item.out_of_range"),
        (7, "wai_sr", "response.unfinished"),
        (9, "gad7", "response.unfinished"),
        (9, "wai_sr", "response.unfinished"),
    ]
