"""The bad-input corpus (tests/fixtures/bad_inputs/): every file gives its expected quarantine.

Each file is the first delivery of a REDCap site (WAI-SR 12 items 1-5, PHQ-9 9 items 0-3; a
row offers 2 administrations) or, for the zip, of a zip-of-REDCap site; logical date
2026-11-20. Expected records (line, instrument, rule id, category) are worked out by hand from
the files; lines are as a spreadsheet shows them (header = line 1). For every file: no crash,
the valid rows kept as events, and conservation: administrations offered = rows x 2 =
accepted + quarantined + not administered. A file refused whole keeps nothing and is one
file-level record (line None).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingestion.ingest import ingest_site
from ingestion.quarantine import CATEGORIES
from tests.test_readers_qualtrics import events, quarantine

CORPUS = Path(__file__).parent / "fixtures" / "bad_inputs"
DATE = "2026-11-20"
FORMS = 2


@dataclass(frozen=True)
class Case:
    fixture: str
    status: str
    rows_in: int
    # offered, accepted, quarantined, not administered (administrations)
    counts: tuple[int, int, int, int]
    records: list[tuple[int | None, str | None, str, str]]
    site: str = "rc"


W, P = "wai_sr", "phq9"
CASES = [
    # 0 bytes: nothing to read.
    Case("empty.csv", "rejected", 0, (0, 0, 0, 0), [(None, None, "file.empty", "parse")]),
    # A header and no rows: a site's first delivery may be empty (fine, nothing happens).
    Case("header_only.csv", "ingested", 0, (0, 0, 0, 0), []),
    # Line 4 lost its last 6 PHQ-9 cells and its newline: the export was cut off. The site
    # sends snapshots, where a cut file would retract what it lost: refused whole (issue 12;
    # tests/test_arrival.py has the incremental case, where the complete lines stand).
    Case(
        "truncated_last_line.csv",
        "rejected",
        0,
        (0, 0, 0, 0),
        [(None, None, "file.truncated", "parse")],
    ),
    # Line 3's therapist is "Dr Müller" in cp1252 (byte 0xfc): not UTF-8, refused whole.
    Case(
        "encoding_cp1252.csv",
        "rejected",
        0,
        (0, 0, 0, 0),
        [(None, None, "file.encoding", "encoding")],
    ),
    # phq9_3 renamed to phq9_three: the column map no longer fits, refused whole.
    Case(
        "renamed_column.csv",
        "rejected",
        2,
        (0, 0, 0, 0),
        [(None, None, "file.missing_columns", "schema")],
    ),
    # Line 3's event baseline_arm_1 has no session number.
    Case(
        "unmatched_event.csv",
        "ingested",
        2,
        (4, 2, 2, 0),
        [(3, W, "row.session_event", "schema"), (3, P, "row.session_event", "schema")],
    ),
    # Line 2 wai_3 = 6; line 3 phq9_1 = -1 and phq9_9 = 4 (one administration, two records);
    # line 4 wai_1 = 2.5 (off the 1-point step); line 5 clean.
    Case(
        "out_of_range.csv",
        "ingested",
        4,
        (8, 5, 3, 0),
        [
            (2, W, "item.out_of_range", "range"),
            (3, P, "item.out_of_range", "range"),
            (3, P, "item.out_of_range", "range"),
            (4, W, "item.out_of_range", "range"),
        ],
    ),
    # Line 2 phq9_5 = "n/a", line 3 wai_7 = "four".
    Case(
        "non_numeric.csv",
        "ingested",
        3,
        (6, 4, 2, 0),
        [(2, P, "item.non_numeric", "type"), (3, W, "item.non_numeric", "type")],
    ),
    # Line 3 repeats line 2 exactly: the first copy is taken.
    Case(
        "exact_duplicates.csv",
        "ingested",
        3,
        (6, 4, 2, 0),
        [
            (3, W, "record.exact_duplicate", "duplicate"),
            (3, P, "record.exact_duplicate", "duplicate"),
        ],
    ),
    # Lines 2 and 3: same client and session, WAI item 1 differs (3 vs 5), PHQ-9 identical.
    # Both WAI versions held; the PHQ-9 repeat is an exact duplicate of line 2's.
    Case(
        "conflicting_duplicates.csv",
        "ingested",
        3,
        (6, 3, 3, 0),
        [
            (2, W, "record.conflicting_duplicate", "conflict"),
            (3, P, "record.exact_duplicate", "duplicate"),
            (3, W, "record.conflicting_duplicate", "conflict"),
        ],
    ),
    # Line 2 dated 2027-01-05 (after the logical date), line 3 "31/02/2026" (not %Y-%m-%d).
    Case(
        "future_date.csv",
        "ingested",
        3,
        (6, 2, 4, 0),
        [
            (2, P, "row.session_date_future", "date"),
            (2, W, "row.session_date_future", "date"),
            (3, P, "row.session_date_format", "date"),
            (3, W, "row.session_date_format", "date"),
        ],
    ),
    # Line 2's client code is two spaces; line 4 has every item blank (not administered).
    Case(
        "blank_client_code.csv",
        "ingested",
        3,
        (6, 2, 2, 2),
        [(2, P, "row.client_code_blank", "identity"), (2, W, "row.client_code_blank", "identity")],
    ),
    # Line 2's PHQ-9 has 3 of 9 items blank (the registry allows 2); line 3's WAI-SR 3 of 12
    # (allows 2), its PHQ-9 2 of 9 (kept, prorated); line 4's therapist code is blank; line 5's
    # event session_0_arm_1 matches the pattern but session 0 is below 1; line 6 clean.
    Case(
        "too_many_missing.csv",
        "ingested",
        5,
        (10, 4, 6, 0),
        [
            (2, P, "item.too_many_missing", "completeness"),
            (3, W, "item.too_many_missing", "completeness"),
            (4, P, "row.therapist_code_blank", "identity"),
            (4, W, "row.therapist_code_blank", "identity"),
            (5, P, "row.session_number", "schema"),
            (5, W, "row.session_number", "schema"),
        ],
    ),
    # The only member is ../../outside/evil.csv: refused whole, nothing extracted.
    Case(
        "escaping_member.zip",
        "rejected",
        0,
        (0, 0, 0, 0),
        [(None, None, "archive.unsafe_path", "archive")],
        site="zp",
    ),
]


def test_the_corpus_covers_every_category_and_every_file() -> None:
    covered = {record[3] for case in CASES for record in case.records}
    assert covered == set(CATEGORIES)
    files = {p.name for p in CORPUS.iterdir() if p.name != "consortium.yml"}
    assert files == {case.fixture for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.fixture)
def test_bad_input(case: Case, home: Path, tmp_path: Path) -> None:
    shutil.copy(CORPUS / "consortium.yml", home)
    inbox = home / "inbox" / case.site
    inbox.mkdir(parents=True)
    shutil.copy(CORPUS / case.fixture, inbox / case.fixture)

    (outcome,) = ingest_site(case.site, DATE).files  # no crash
    assert outcome.status == case.status
    assert outcome.rows_in == case.rows_in
    got = (outcome.offered, outcome.accepted, outcome.quarantined, outcome.not_administered)
    assert got == case.counts
    offered, accepted, quarantined, not_administered = got
    assert offered == accepted + quarantined + not_administered
    if case.status == "ingested":
        assert offered == case.rows_in * FORMS

    records = quarantine(home)
    assert outcome.quarantine_records == len(records)
    assert sorted(
        ((q["source_row"], q["instrument"], q["rule_id"], q["category"]) for q in records),
        key=repr,
    ) == sorted(case.records, key=repr)
    assert all(q["source_file"] == case.fixture and q["message"] for q in records)

    # The valid rows are kept: one event per accepted administration.
    stored = events(home)
    assert len(stored) == accepted
    assert {e["event_type"] for e in stored} <= {"response_recorded"}
    # Nothing of an archive lands outside the inbox (the zip is read in memory).
    assert not list(home.parent.rglob("evil.csv")) and not (home / "outside").exists()


def test_header_only_after_a_first_delivery_is_a_mass_retraction(home: Path) -> None:
    """On a snapshot site with state, an empty export would delete everything: refused."""
    shutil.copy(CORPUS / "consortium.yml", home)
    inbox = home / "inbox" / "rc"
    inbox.mkdir(parents=True)
    shutil.copy(CORPUS / "non_numeric.csv", inbox / "night1.csv")
    assert ingest_site("rc", "2026-11-19").files[0].accepted == 4
    shutil.copy(CORPUS / "header_only.csv", inbox / "night2.csv")
    night2 = [f for f in ingest_site("rc", DATE).files if f.source_file == "night2.csv"]
    assert night2[0].status == "rejected" and night2[0].retracted == 0
    (record,) = [q for q in quarantine(home) if q["source_file"] == "night2.csv"]
    assert (record["rule_id"], record["category"]) == ("snapshot.mass_retraction", "conflict")
    assert len(events(home)) == 4
