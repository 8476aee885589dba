"""Long-table reader: cp1252, semicolons, decimal comma, dd.mm.yyyy dates, pivot to wide.

Fixture tests/fixtures/formats/long_cp1252.csv (one row per measure per session; each line
offers one administration):
  line 2  K1 s1 WAI-SR 4,0 x12               -> accepted (4.0 each)
  line 3  K1 s1 GAD-7 1;2,0;0;3;1;2;0        -> accepted
  line 4  K1 s2 GAD-7 item 1 = 2,5           -> range (off the 1-step grid)
  line 5  K1 s2 ORS                          -> skip_measures: not administered
  line 6  K2 s1 WAI-SR, date 2026-03-05      -> date (not dd.mm.yyyy)
  line 7  K2 s1 SRS                          -> unknown measure (schema)
  line 8  K2;TÖ1;2 (truncated)               -> parse
"""

from __future__ import annotations

from pathlib import Path

from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from tests.conftest import TEST_KEY
from tests.test_readers_qualtrics import DATE, FORMATS, counts, deliver, events, quarantine
from tests.test_readers_qualtrics import fhome as fhome  # noqa: F401 (pytest fixture)


def test_cp1252_decimal_comma_long_table(fhome: Path) -> None:
    deliver(fhome, "longde", "long_cp1252.csv")
    (outcome,) = ingest_site("longde", DATE).files
    assert outcome.status == "ingested" and outcome.rows_in == 7
    # One administration per line: 2 accepted, 4 quarantined, 1 not administered.
    assert counts(outcome) == (7, 2, 4, 1)
    rules = sorted((q["source_row"], q["rule_id"], q["category"]) for q in quarantine(fhome))
    assert rules == [
        (4, "item.out_of_range", "range"),
        (6, "row.session_date_format", "date"),
        (7, "row.unknown_measure", "schema"),
        (8, "row.field_count", "parse"),
    ]
    key = PseudonymKey(TEST_KEY.encode())
    k1 = key.pseudonym("longde", "client", "K1")
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): (
            e["items"],
            e["source_row"],
            str(e["session_date"]),
            e["therapist_pid"],
        )
        for e in events(fhome)
    }
    therapist = key.pseudonym("longde", "therapist", "TÖ1")
    assert got == {
        (k1, 1, "wai_sr"): ([4.0] * 12, 2, "2026-03-05", therapist),
        (k1, 1, "gad7"): ([1.0, 2.0, 0.0, 3.0, 1.0, 2.0, 0.0], 3, "2026-03-05", therapist),
    }


def test_wrong_encoding_is_one_file_level_issue(fhome: Path) -> None:
    deliver(fhome, "longutf", "long_cp1252.csv")
    (outcome,) = ingest_site("longutf", DATE).files
    assert outcome.status == "rejected"
    (issue,) = quarantine(fhome)
    assert issue["category"] == "encoding" and issue["source_row"] is None
    assert "utf-8" in issue["message"]


def test_utf8_with_bom_and_same_values(fhome: Path) -> None:
    # The same table re-encoded as UTF-8 with a BOM reads the same under a UTF-8 site.
    text = (FORMATS / "long_cp1252.csv").read_bytes().decode("cp1252")
    target = fhome / "inbox" / "longutf" / "bom.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(text.encode("utf-8-sig"))
    (outcome,) = ingest_site("longutf", DATE).files
    assert counts(outcome) == (7, 2, 4, 1)


def test_wrong_delimiter_names_the_missing_columns(fhome: Path) -> None:
    text = (FORMATS / "long_cp1252.csv").read_bytes().decode("cp1252").replace(";", "\t")
    target = fhome / "inbox" / "longde" / "tabs.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(text.encode("cp1252"))
    (outcome,) = ingest_site("longde", DATE).files
    assert outcome.status == "rejected" and outcome.rows_in == 7
    (issue,) = quarantine(fhome)
    assert issue["category"] == "schema" and "Klient" in issue["message"]


def test_redelivery_changes_nothing(fhome: Path) -> None:
    deliver(fhome, "longde", "long_cp1252.csv")
    ingest_site("longde", DATE)
    deliver(fhome, "longde", "long_cp1252.csv", name="again.csv")
    second = ingest_site("longde", DATE)
    assert second.no_op and len(events(fhome)) == 2
