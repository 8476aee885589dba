"""Episode ending in every format: a feedback system's long CSV `status` column (open /
closed_planned / closed_unplanned) into the event log and on to fct_episode's dropout columns.

Fixture tests/fixtures/ending (site fbs, long CSV, SRS + ORS lines per session, `status` on
every line). Expected by hand from the file, one line per client:
  K1 s1 open, s2 open, s3 closed_planned      -> planned;   3 sessions
  K2 s1 open, s2 closed_unplanned             -> unplanned; 2 sessions
  K3 s1 " Closed_Unplanned " (case, blanks)   -> unplanned; 1 session
  K4 s1 open, s2 "OPEN"                       -> open;      2 sessions
  K5 s1 blank                                 -> unknown;   1 session
  K6 s1 "transferred" (in no list)            -> unknown;   1 session (never quarantined)
Marts (finished course = 2 sessions, dose = 8): an open episode is neither a completer nor a
dropout (finished / early / below-dose null) and not an unplanned dropout (false).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.settings import Paths
from tests.conftest import TEST_KEY, building

FIXTURE = Path(__file__).parent / "fixtures" / "ending"
DATE = "2026-11-20"
ENDINGS = {
    ("K1", 1): "open",
    ("K1", 2): "open",
    ("K1", 3): "planned",
    ("K2", 1): "open",
    ("K2", 2): "unplanned",
    ("K3", 1): "unplanned",
    ("K4", 1): "open",
    ("K4", 2): "open",
    ("K5", 1): None,
    ("K6", 1): None,
}
# client: (ending_type, n_sessions, finished, dropout_early, dropout_unplanned, below_dose)
EPISODES = {
    "K1": ("planned", 3, True, False, False, True),
    "K2": ("unplanned", 2, True, False, True, True),
    "K3": ("unplanned", 1, False, True, True, True),
    "K4": ("open", 2, None, None, False, None),
    "K5": (None, 1, False, True, None, True),
    "K6": (None, 1, False, True, None, True),
}


@pytest.fixture
def fbs(home: Path) -> Path:
    shutil.copytree(FIXTURE, home, dirs_exist_ok=True)
    return home


def _pid(code: str) -> str:
    return PseudonymKey(TEST_KEY.encode()).pseudonym("fbs", "client", code)


def test_long_csv_status_column_gives_every_administration_its_ending(fbs: Path) -> None:
    (outcome,) = ingest_site("fbs", DATE).files
    assert (outcome.rows_in, outcome.offered, outcome.accepted, outcome.quarantined) == (
        20,
        20,
        20,
        0,
    )
    events = delta_store.read(Paths(fbs).event_log, EVENT_SCHEMA).to_pylist()
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): e["ending_type"] for e in events
    }
    expected = {
        (_pid(code), session, instrument): ending
        for (code, session), ending in ENDINGS.items()
        for instrument in ("srs", "ors")
    }
    assert got == expected


def test_a_configured_ending_column_missing_from_the_export_rejects_the_file(fbs: Path) -> None:
    export = fbs / "inbox" / "fbs" / "fbs_export.csv"
    lines = export.read_text().splitlines()
    export.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    (outcome,) = ingest_site("fbs", DATE).files
    assert outcome.status == "rejected" and outcome.rows_in == 20


def _configure(home: Path, ending: object, fmt_changes: dict | None = None) -> Path:
    doc = yaml.safe_load((FIXTURE / "consortium.yml").read_text())
    doc["sites"][0]["ending"] = ending
    doc["sites"][0].update(fmt_changes or {})
    (home / "consortium.yml").write_text(yaml.safe_dump(doc))
    return home / "consortium.yml"


def test_open_codes_are_optional_and_read_in_every_format(home: Path) -> None:
    file = _configure(home, {"column": "status", "planned": ["a"], "unplanned": ["b"]})
    ending = load_consortium(file).site("fbs").ending
    assert ending is not None and ending.open == ()
    assert [ending.classify(v) for v in ("A ", "b", "open", "")] == [
        "planned",
        "unplanned",
        None,
        None,
    ]
    file = _configure(
        home, {"column": "status", "planned": ["a"], "unplanned": ["b"], "open": [" Open"]}
    )
    assert load_consortium(file).site("fbs").ending.classify("OPEN") == "open"


BASE = {"column": "status", "planned": ["a"], "unplanned": ["b"]}


@pytest.mark.parametrize(
    ("ending", "key", "message"),
    [
        ({**BASE, "open": []}, "ending.open", "non-empty"),
        ({**BASE, "open": "o"}, "ending.open", "list"),
        ({**BASE, "open": ["A"]}, "ending.open", "also listed as planned"),
        ({**BASE, "open": ["B "]}, "ending.open", "also listed as unplanned"),
        ({**BASE, "opne": ["o"]}, "ending.opne", "did you mean `open`"),
        ({"column": "status", "open": ["o"], "unplanned": ["b"]}, "ending.planned", "non-empty"),
    ],
)
def test_ending_config_errors_name_file_site_and_key(
    home: Path, ending: dict, key: str, message: str
) -> None:
    file = _configure(home, ending)
    with pytest.raises(ConfigError, match=message) as raised:
        load_consortium(file)
    assert "consortium.yml" in str(raised.value) and f"sites.fbs.{key}" in str(raised.value)


@pytest.mark.slow
def test_marts_carry_the_long_csv_ending_into_dropout(fbs: Path) -> None:
    from expectations.gate import run_gate
    from warehouse import pipeline

    with building(fbs):
        pipeline.ingest_step("fbs", DATE, None)
        pipeline.build_step(None)  # dbt's tests on fct_episode pass with an open episode
    # The gate's episode checks hold too (a one-site consortium fails only the pooled marts,
    # which need two sites): an open episode is neither finished nor an early dropout.
    outcomes = run_gate(Paths(fbs).build_db).outcomes
    episode = {o.id: o.status for o in outcomes if o.mart == "fct_episode"}
    assert episode["fct_episode_finished_xor_early_dropout"] == "passed"
    assert set(episode.values()) <= {"passed", "not_applicable"}, episode
    con = duckdb.connect(str(fbs / "build" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT client_pid, ending_type, n_sessions_attended, finished_treatment, "
            "dropout_early, dropout_unplanned, dropout_below_dose FROM marts.fct_episode "
            "WHERE site_id = 'fbs'"
        ).fetchall()
    finally:
        con.close()
    assert {pid: tuple(rest) for pid, *rest in rows} == {
        _pid(code): values for code, values in EPISODES.items()
    }


def test_spss_numeric_ending_codes_are_read_as_their_number(home: Path) -> None:
    """An SPSS export codes the ending as numbers (1 planned, 2 unplanned, 3 open): the reader
    renders 3.0 as "3", so the site lists the codes as text. Cases from tests/test_readers_spss
    (C1 session 1 and 2, all valid) plus C4 (a copy of C1's first case, session 1)."""
    from tests.test_readers_spss import SITE, _cases, write_sav

    site = {**SITE, "ending": {"column": "EndStatus", "planned": ["1"], "unplanned": ["2"],
                               "open": ["3"]}}  # fmt: skip
    (home / "consortium.yml").write_text(
        yaml.safe_dump({"consortium_id": "spss_ending", "sites": [site]})
    )
    first, second = _cases()[:2]
    cases = [
        {**first, "EndStatus": 3.0},
        {**second, "EndStatus": 1.0},
        {**first, "ClientID": "C4", "EndStatus": 2.0},
    ]
    write_sav(home / "inbox" / "spss" / "export.sav", cases)
    (outcome,) = ingest_site("spss", DATE).files
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (6, 6, 0)
    events = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    key = PseudonymKey(TEST_KEY.encode())
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): e["ending_type"] for e in events
    }
    assert got == {
        (key.pseudonym("spss", "client", code), session, instrument): ending
        for code, session, ending in (
            ("C1", 1, "open"),
            ("C1", 2, "planned"),
            ("C4", 1, "unplanned"),
        )
        for instrument in ("wai_sr", "phq9")
    }
