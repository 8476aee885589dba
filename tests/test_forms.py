"""Forms (instrument x rater role) and carry-down fields, on hand-written exports.

tests/fixtures/forms (consortium.yml says which site reads which file):

redcap_repeating_parent.csv (rep_parent; therapist carried down from the parent row):
  line 2  R1 client-level row, therapist T1, no items   -> 2 not administered
  line 3  R1 instance 1, therapist blank, WAI 4s, PHQ 1s -> both accepted, therapist T1
  line 4  R1 instance 2, therapist blank, WAI 5s, PHQ 2s -> both accepted, therapist T1
  line 5  R2 client-level row, therapist T2              -> 2 not administered
  line 6  R2 instance 1, own therapist T9, WAI 3s, PHQ 0s -> both accepted, therapist T9
  line 7  R2 instance 2, therapist " ", WAI 2s, PHQ 3s   -> both accepted, therapist T2

redcap_two_wai_forms.csv (two_wai; each WAI-SR form has its own <form>_complete):
  line 2  C1 s1  client 4s (2)  therapist 3s (0)  PHQ 1s (2)     -> therapist form held
  line 3  C1 s2  client 5s (0)  therapist 2s (2)  PHQ 2s (2)     -> client form held
  line 4  C2 s1  client 3s (2)  therapist 4s (2)  PHQ blank (0)  -> PHQ not administered

redcap_first_event.csv (first_event; therapist carried down from the record's first row):
  line 2  L1 baseline, therapist T5, no items  -> 2 not administered
  line 3  L1 s1, therapist blank, WAI 4s, PHQ 1s -> accepted, therapist T5
  line 4  L2 s1, therapist T6, WAI 3s, PHQ blank -> WAI accepted, PHQ not administered
  line 5  L2 s2, therapist blank, WAI 2s, PHQ 2s -> accepted, therapist T6

long_two_wai_forms.csv (long_two; measures name forms, items in each form's own columns):
  line 2  K1 s1 WAI-C 4s  line 3  K1 s1 WAI-T 3s  line 4  K1 s1 PHQ-9 1s -> all accepted
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.ingest import ingest_site
from ingestion.intake.carry_down import carried
from ingestion.pseudonyms import PseudonymKey
from tests.conftest import TEST_KEY
from tests.test_readers_qualtrics import counts, events, quarantine

FORMS = Path(__file__).parent / "fixtures" / "forms"
DATE = "2026-11-20"
KEY = PseudonymKey(TEST_KEY.encode())


@pytest.fixture
def forms_home(home: Path) -> Path:
    shutil.copy(FORMS / "consortium.yml", home)
    return home


def _deliver(home: Path, site: str, fixture: str) -> None:
    target = home / "inbox" / site / fixture
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FORMS / fixture, target)


def _pid(site: str, role: str, code: str) -> str:
    return KEY.pseudonym(site, role, code)


def _by_admin(home: Path) -> dict[tuple, tuple]:
    """(client pid, session, instrument, rater role) -> (therapist pid, items)."""
    return {
        (e["client_pid"], e["session_number"], e["instrument"], e["rater_role"]): (
            e["therapist_pid"],
            e["items"],
        )
        for e in events(home)
    }


def test_therapist_on_the_parent_row_is_carried_down(forms_home: Path) -> None:
    _deliver(forms_home, "rep_parent", "redcap_repeating_parent.csv")
    (outcome,) = ingest_site("rep_parent", DATE).files
    assert outcome.rows_in == 6
    assert counts(outcome) == (12, 8, 0, 4)
    r1, r2 = (_pid("rep_parent", "client", c) for c in ("R1", "R2"))
    t1, t2, t9 = (_pid("rep_parent", "therapist", c) for c in ("T1", "T2", "T9"))
    assert _by_admin(forms_home) == {
        (r1, 1, "wai_sr", "client"): (t1, [4.0] * 12),
        (r1, 1, "phq9", "client"): (t1, [1.0] * 9),
        (r1, 2, "wai_sr", "client"): (t1, [5.0] * 12),
        (r1, 2, "phq9", "client"): (t1, [2.0] * 9),
        # The row's own therapist wins over the parent's.
        (r2, 1, "wai_sr", "client"): (t9, [3.0] * 12),
        (r2, 1, "phq9", "client"): (t9, [0.0] * 9),
        (r2, 2, "wai_sr", "client"): (t2, [2.0] * 12),
        (r2, 2, "phq9", "client"): (t2, [3.0] * 9),
    }


def test_therapist_on_the_first_event_is_carried_down(forms_home: Path) -> None:
    _deliver(forms_home, "first_event", "redcap_first_event.csv")
    (outcome,) = ingest_site("first_event", DATE).files
    assert counts(outcome) == (8, 5, 0, 3)
    l1, l2 = (_pid("first_event", "client", c) for c in ("L1", "L2"))
    t5, t6 = (_pid("first_event", "therapist", c) for c in ("T5", "T6"))
    assert _by_admin(forms_home) == {
        (l1, 1, "wai_sr", "client"): (t5, [4.0] * 12),
        (l1, 1, "phq9", "client"): (t5, [1.0] * 9),
        (l2, 1, "wai_sr", "client"): (t6, [3.0] * 12),
        (l2, 2, "wai_sr", "client"): (t6, [2.0] * 12),
        (l2, 2, "phq9", "client"): (t6, [2.0] * 9),
    }


def test_each_form_is_accepted_or_held_by_its_own_status(forms_home: Path) -> None:
    _deliver(forms_home, "two_wai", "redcap_two_wai_forms.csv")
    (outcome,) = ingest_site("two_wai", DATE).files
    assert counts(outcome) == (9, 6, 2, 1)
    held = sorted(
        (q["source_row"], q["instrument"], q["rule_id"], q["column_name"], q["raw_value"])
        for q in quarantine(forms_home)
    )
    assert held == [
        (2, "wai_sr", "form.not_complete", "wai_therapist_complete", "0"),
        (3, "wai_sr", "form.not_complete", "wai_client_complete", "0"),
    ]
    messages = {q["source_row"]: q["message"] for q in quarantine(forms_home)}
    assert messages[2].startswith("wai_therapist has form status 0 (Incomplete)")
    assert messages[3].startswith("wai_client has form status 0 (Incomplete)")
    c1, c2 = (_pid("two_wai", "client", c) for c in ("C1", "C2"))
    t1, t2 = (_pid("two_wai", "therapist", c) for c in ("T1", "T2"))
    assert _by_admin(forms_home) == {
        (c1, 1, "wai_sr", "client"): (t1, [4.0] * 12),
        (c1, 1, "phq9", "client"): (t1, [1.0] * 9),
        (c1, 2, "wai_sr", "therapist"): (t1, [2.0] * 12),
        (c1, 2, "phq9", "client"): (t1, [2.0] * 9),
        (c2, 1, "wai_sr", "client"): (t2, [3.0] * 12),
        (c2, 1, "wai_sr", "therapist"): (t2, [4.0] * 12),
    }


def test_a_long_table_tells_two_forms_of_one_instrument_apart(forms_home: Path) -> None:
    _deliver(forms_home, "long_two", "long_two_wai_forms.csv")
    (outcome,) = ingest_site("long_two", DATE).files
    assert counts(outcome) == (3, 3, 0, 0)
    k1, t1 = _pid("long_two", "client", "K1"), _pid("long_two", "therapist", "T1")
    assert _by_admin(forms_home) == {
        (k1, 1, "wai_sr", "client"): (t1, [4.0] * 12),
        (k1, 1, "wai_sr", "therapist"): (t1, [3.0] * 12),
        (k1, 1, "phq9", "client"): (t1, [1.0] * 9),
    }


def test_a_missing_parent_column_rejects_the_file_naming_it(forms_home: Path) -> None:
    text = (FORMS / "redcap_repeating_parent.csv").read_text()
    inbox = forms_home / "inbox" / "rep_parent"
    inbox.mkdir(parents=True)
    (inbox / "renamed.csv").write_text(text.replace("redcap_repeat_instrument", "instrument"))
    (outcome,) = ingest_site("rep_parent", DATE).files
    assert outcome.status == "rejected"
    (issue,) = quarantine(forms_home)
    assert issue["rule_id"] == "file.missing_columns"
    assert "redcap_repeat_instrument" in issue["message"]


# --- carry-down as SQL, one function -----------------------------------------------------


def _site(tmp_path: Path, carry: str):
    doc = (FORMS / "consortium.yml").read_text()
    path = tmp_path / "consortium.yml"
    path.write_text(
        doc.replace(
            "carry_down: {columns: [therapist_code], from: first_row}", f"carry_down: {carry}"
        )
    )
    return load_consortium(path).site("first_event")


CELLS = """
    SELECT * FROM (VALUES
        (1, 'A', 'T1', NULL), (2, 'A', '', 'x'), (3, ' A ', NULL, 'x'), (4, 'B', NULL, 'x'),
        (5, 'B', 'T7', NULL), (6, 'C', 'T3', 'x'), (7, 'C', '', 'x'), (8, 'A', 'T2', 'x'),
        (9, 'D', NULL, NULL), (10, 'D', 'T4', NULL), (11, 'D', NULL, 'x')
    ) AS t(n, client_raw, therapist_raw, parent_raw)
"""


def test_carry_down_from_the_parent_row(tmp_path: Path) -> None:
    site = _site(tmp_path, "{columns: [therapist_code], parent_column: rpt}")
    con = duckdb.connect()
    rows = con.execute(f"SELECT n, therapist_raw FROM ({carried(con, CELLS, site)})").fetchall()
    # A: parent row 1 (T1); B: parent row 5 comes after row 4 and still applies; C: no parent
    # row, nothing carried; own values (T7 on B's parent, T3, T2) always stay; D: its first
    # parent row is blank, the next parent row's T4 applies.
    assert rows == [
        (1, "T1"), (2, "T1"), (3, "T1"), (4, "T7"), (5, "T7"), (6, "T3"), (7, ""),
        (8, "T2"), (9, "T4"), (10, "T4"), (11, "T4"),
    ]  # fmt: skip


def test_carry_down_from_the_first_row(tmp_path: Path) -> None:
    site = _site(tmp_path, "{columns: [therapist_code], from: first_row}")
    con = duckdb.connect()
    rows = con.execute(f"SELECT n, therapist_raw FROM ({carried(con, CELLS, site)})").fetchall()
    # The value on each record's first row in file order: A T1, B blank (row 4), C T3, D blank.
    assert rows == [
        (1, "T1"), (2, "T1"), (3, "T1"), (4, None), (5, "T7"), (6, "T3"), (7, "T3"),
        (8, "T2"), (9, None), (10, "T4"), (11, None),
    ]  # fmt: skip


# --- configuration -------------------------------------------------------------------------


def _load_with(tmp_path: Path, old: str, new: str):
    doc = (FORMS / "consortium.yml").read_text()
    assert old in doc
    path = tmp_path / "consortium.yml"
    path.write_text(doc.replace(old, new))
    return load_consortium(path)


def test_forms_resolve_ids_and_status_columns(tmp_path: Path) -> None:
    consortium = load_consortium(FORMS / "consortium.yml")
    two = consortium.site("two_wai")
    assert [(f.form_id, f.status_column) for f in two.forms] == [
        ("wai_client", "wai_client_complete"),
        ("wai_therapist", "wai_therapist_complete"),
        ("phq9", "phq9_complete"),
    ]
    assert two.redcap.status_columns == {
        "wai_client": "wai_client_complete",
        "wai_therapist": "wai_therapist_complete",
        "phq9": "phq9_complete",
    }
    long_two = consortium.site("long_two")
    assert [f.form_id for f in long_two.forms] == ["wai_sr_client", "wai_sr_therapist", "phq9"]
    assert long_two.long_csv.measures == {
        "WAI-C": "wai_sr_client",
        "WAI-T": "wai_sr_therapist",
        "PHQ-9": "phq9",
    }
    carry = consortium.site("rep_parent").carry_down
    assert (carry.columns, carry.source, carry.parent_column) == (
        ("therapist_code",),
        "parent_row",
        "redcap_repeat_instrument",
    )


STATUS_BY_INSTRUMENT = "redcap: {status_columns: {phq9: phq9_complete}}"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        # An instrument key is ambiguous once the site has two forms of it: name the forms.
        (
            STATUS_BY_INSTRUMENT,
            "redcap: {status_columns: {phq9: phq9_complete, wai_sr: wai_complete}}",
            "sites.two_wai.redcap.status_columns.wai_sr",
            "'wai_sr' has several forms at this site (wai_client, wai_therapist)",
        ),
        (
            STATUS_BY_INSTRUMENT,
            "redcap: {status_columns: {phq9: phq9_complete, wai_client: other_complete}}",
            "sites.two_wai.redcap.status_columns.wai_client",
            "already has status_column 'wai_client_complete'",
        ),
        (
            STATUS_BY_INSTRUMENT,
            "redcap: {status_columns: {gad7: gad7_complete}}",
            "sites.two_wai.redcap.status_columns.gad7",
            "is not among this site's forms (wai_client, wai_therapist, phq9)",
        ),
        (
            "form: wai_therapist,",
            "form: wai_client,",
            "sites.two_wai.forms[1].form",
            "'wai_client' already names forms[0]",
        ),
        (
            "form: wai_therapist,",
            "form: WAI therapist,",
            "sites.two_wai.forms[1].form",
            "must be a form id",
        ),
        (
            'rater_role: therapist, item_column_template: "wai_t_{n}"',
            'rater_role: client, item_column_template: "wai_t_{n}"',
            "sites.two_wai.forms[1].rater_role",
            "forms[0] is already wai_sr rated by client",
        ),
        (
            "form: wai_therapist,",
            "form: wai_therapist, stauts_column: x,",
            "sites.two_wai.forms[1].stauts_column",
            "did you mean `status_column`?",
        ),
        (
            'item_column_template: "p{n}"}',
            'item_column_template: "p{n}", status_column: phq9_complete}',
            "sites.long_two.forms[2].status_column",
            "read from REDCap exports only, not long_csv",
        ),
        (
            "measures: {WAI-C: wai_sr_client,",
            "measures: {WAI-C: wai_sr,",
            "sites.long_two.long_csv.measures.WAI-C",
            "'wai_sr' has several forms at this site",
        ),
        (
            "carry_down: {columns: [therapist_code], from: first_row}",
            "carry_down: {columns: [session_date], from: first_row}",
            "sites.first_event.carry_down.columns",
            "'session_date' cannot be carried down",
        ),
        (
            "carry_down: {columns: [therapist_code], from: first_row}",
            "carry_down: {columns: [therapist_code], from: last_row}",
            "sites.first_event.carry_down.from",
            "must be one of ['parent_row', 'first_row']",
        ),
        (
            "carry_down: {columns: [therapist_code], from: first_row}",
            "carry_down: {columns: [therapist_code], from: first_row, parent_column: x}",
            "sites.first_event.carry_down.parent_column",
            "only read with from: parent_row",
        ),
        (
            "parent_column: redcap_repeat_instrument}",
            "parent_column: record_id}",
            "sites.rep_parent.carry_down.parent_column",
            "is a mapped column",
        ),
        (
            "carry_down: {columns: [therapist_code], from: first_row}",
            "carry_down: {colums: [therapist_code], from: first_row}",
            "sites.first_event.carry_down.colums",
            "did you mean `columns`?",
        ),
    ],
)
def test_bad_forms_and_carry_down_name_file_site_and_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_with(tmp_path, old, new)
    message = str(caught.value)
    assert str(tmp_path / "consortium.yml") in message
    assert key in message and problem in message, message


def test_carry_down_on_a_file_read_by_one_thread(forms_home: Path) -> None:
    """A quoted line break in an unmapped note plus a short line: the parallel reader gives
    up and the file is read serially, carried values included; records keep their numbers."""
    lines = (FORMS / "redcap_repeating_parent.csv").read_text().splitlines()
    lines[0] += ",notes"
    lines[1:] = [line + "," for line in lines[1:]]
    lines[2] = lines[2][:-1] + ',"first line\nsecond line"'
    lines.append("R2,session,3,,2026-10-16")  # record 8: cut short
    inbox = forms_home / "inbox" / "rep_parent"
    inbox.mkdir(parents=True)
    (inbox / "export.csv").write_text("\n".join(lines) + "\n")
    (outcome,) = ingest_site("rep_parent", DATE).files
    assert outcome.rows_in == 7
    assert counts(outcome) == (14, 8, 2, 4)
    held = sorted((q["source_row"], q["instrument"], q["rule_id"]) for q in quarantine(forms_home))
    assert held == [(8, "phq9", "row.field_count"), (8, "wai_sr", "row.field_count")]
    r1, r2 = (_pid("rep_parent", "client", c) for c in ("R1", "R2"))
    t1, t2, t9 = (_pid("rep_parent", "therapist", c) for c in ("T1", "T2", "T9"))
    got = {key[:3]: therapist for key, (therapist, _) in _by_admin(forms_home).items()}
    assert got == {
        (r1, 1, "wai_sr"): t1, (r1, 1, "phq9"): t1, (r1, 2, "wai_sr"): t1, (r1, 2, "phq9"): t1,
        (r2, 1, "wai_sr"): t9, (r2, 1, "phq9"): t9, (r2, 2, "wai_sr"): t2, (r2, 2, "phq9"): t2,
    }  # fmt: skip
