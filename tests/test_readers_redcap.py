"""REDCap repeating instruments (session = repeat instance) and per-form `<form>_complete` status.

Fixture tests/fixtures/formats/redcap_repeating.csv, forms WAI-SR and PHQ-9:
  line 2  R1 base row, no items                   -> 2 not administered
  line 3  R1 alliance #1, WAI 3s, status 2        -> WAI accepted, PHQ not administered
  line 4  R1 phq9 #1, PHQ 1s, status 2            -> PHQ accepted, WAI not administered
  line 5  R1 alliance #2, WAI 4s, status 1        -> Unverified: quarantined (accepted by config)
  line 6  R1 phq9 #2, PHQ 2s, status 0            -> Incomplete: quarantined
  line 7  R2 alliance #1, WAI item 1 = 9, status 2 -> range
"""

from __future__ import annotations

from pathlib import Path

from ingestion.events import RESPONSE_RETRACTED
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from tests.conftest import TEST_KEY
from tests.test_readers_qualtrics import DATE, FORMATS, counts, deliver, events, quarantine
from tests.test_readers_qualtrics import fhome as fhome  # noqa: F401 (pytest fixture)


def test_only_complete_forms_count_by_default(fhome: Path) -> None:
    deliver(fhome, "rcrep", "redcap_repeating.csv")
    (outcome,) = ingest_site("rcrep", DATE).files
    assert outcome.rows_in == 6
    assert counts(outcome) == (12, 2, 3, 7)
    rules = sorted((q["source_row"], q["instrument"], q["rule_id"]) for q in quarantine(fhome))
    assert rules == [
        (5, "wai_sr", "form.not_complete"),
        (6, "phq9", "form.not_complete"),
        (7, "wai_sr", "item.out_of_range"),
    ]
    messages = {q["source_row"]: q["message"] for q in quarantine(fhome)}
    assert "Unverified" in messages[5] and "Incomplete" in messages[6]
    r1 = PseudonymKey(TEST_KEY.encode()).pseudonym("rcrep", "client", "R1")
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): e["items"] for e in events(fhome)
    }
    assert got == {(r1, 1, "wai_sr"): [3.0] * 12, (r1, 1, "phq9"): [1.0] * 9}


def test_unverified_counts_when_configured(fhome: Path) -> None:
    deliver(fhome, "rcrep_unverified", "redcap_repeating.csv")
    (outcome,) = ingest_site("rcrep_unverified", DATE).files
    assert counts(outcome) == (12, 3, 2, 7)
    r1 = PseudonymKey(TEST_KEY.encode()).pseudonym("rcrep_unverified", "client", "R1")
    assert {(e["client_pid"], e["session_number"]) for e in events(fhome)} >= {(r1, 2)}


def test_form_reopened_in_redcap_is_held_not_retracted(fhome: Path) -> None:
    text = (FORMATS / "redcap_repeating.csv").read_text()
    inbox = fhome / "inbox" / "rcrep"
    inbox.mkdir(parents=True)
    # Night 1: session 2's WAI is Complete and recorded.
    lines = text.splitlines()
    lines[4] = lines[4].replace(",1,,", ",2,,")
    (inbox / "night1.csv").write_text("\n".join(lines) + "\n")
    assert ingest_site("rcrep", "2026-11-20").files[0].accepted == 3
    # Night 2: the form was reopened (Unverified): held in quarantine, not read as deleted.
    (inbox / "night2.csv").write_text(text)
    result = ingest_site("rcrep", "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "night2.csv"]
    assert outcome.retracted == 0
    assert not [e for e in events(fhome) if e["event_type"] == RESPONSE_RETRACTED]


def test_missing_status_column_is_a_schema_issue(fhome: Path) -> None:
    text = (FORMATS / "redcap_repeating.csv").read_text().replace("phq9_complete", "phq_done")
    inbox = fhome / "inbox" / "rcrep"
    inbox.mkdir(parents=True)
    (inbox / "renamed.csv").write_text(text)
    (outcome,) = ingest_site("rcrep", DATE).files
    assert outcome.status == "rejected"
    (issue,) = quarantine(fhome)
    assert issue["category"] == "schema" and "phq9_complete" in issue["message"]


def test_a_note_with_line_breaks_and_a_short_line_are_read_by_record(fhome: Path) -> None:
    """A free-text column (not mapped) whose quoted value holds a line break makes DuckDB's
    parallel reader give up on padding short lines; the file is then read by one thread. Rows
    are numbered by record, not by physical line, and the note itself is never read."""
    lines = (FORMATS / "redcap_repeating.csv").read_text().splitlines()
    lines[0] += ",notes"
    lines[1:] = [line + "," for line in lines[1:]]
    lines[2] = lines[2][:-1] + ',"Zyxwvut said:\nsee you ""next"" week"'
    lines.append("R3,alliance,1,T1")  # record 8: cut short
    inbox = fhome / "inbox" / "rcrep"
    inbox.mkdir(parents=True)
    (inbox / "export.csv").write_text("\n".join(lines) + "\n")
    (outcome,) = ingest_site("rcrep", DATE).files
    assert outcome.rows_in == 7
    assert counts(outcome) == (14, 2, 5, 7)
    rules = sorted((q["source_row"], q["instrument"], q["rule_id"]) for q in quarantine(fhome))
    assert rules == [
        (5, "wai_sr", "form.not_complete"),
        (6, "phq9", "form.not_complete"),
        (7, "wai_sr", "item.out_of_range"),
        (8, "phq9", "row.field_count"),
        (8, "wai_sr", "row.field_count"),
    ]
    assert not any("Zyxwvut" in str(v) for e in events(fhome) for v in e.values())
