"""Snapshots become events: amend, retract, unchanged, re-ordered rows, withdrawal, concurrency."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths
from tests.conftest import TEST_KEY

HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
PID = PseudonymKey(TEST_KEY.encode()).pseudonym


def _row(code: str, session: int, wai: int, phq: int) -> list[str]:
    return (
        [code, f"session_{session}_arm_1", "T1", f"2026-03-{session:02d}"]
        + [str(wai)] * 12
        + [str(phq)] * 9
    )


def _export(home: Path, name: str, rows: list[list[str]]) -> None:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


def _configure(home: Path, **site_changes) -> None:
    doc = yaml.safe_load(
        (Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml").read_text()
    )
    doc["sites"][0].update(site_changes)
    (home / "consortium.yml").write_text(yaml.safe_dump(doc))


def _events(home: Path) -> list[dict]:
    rows = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    return sorted(rows, key=lambda e: e["site_seq"])


def _night(home: Path, day: str = "2026-11-20"):
    return ingest_site("alpha", day)


@pytest.fixture
def alpha(home: Path) -> Path:
    _configure(home)
    return home


def test_snapshot_changes_become_amend_and_retract_events(alpha: Path) -> None:
    _configure(alpha, max_retraction_fraction=0.5)  # 2 of 6 retracted: above the 10 % default
    base = [_row("C1", 1, 3, 1), _row("C1", 2, 3, 1), _row("C2", 1, 4, 2)]
    _export(alpha, "night1.csv", base)
    first = _night(alpha)
    assert first.events_written == 6
    # Night 2: full export again, C1 s2 PHQ-9 corrected, C2 s1 gone entirely, rows re-ordered.
    night2 = [_row("C1", 2, 3, 2), _row("C1", 1, 3, 1)]
    _export(alpha, "night2.csv", night2)
    second = _night(alpha, "2026-11-21")
    (outcome,) = [f for f in second.files if f.source_file == "night2.csv"]
    # C1 s2: WAI unchanged, PHQ amended; C1 s1 both unchanged; C2 s1 WAI + PHQ retracted.
    assert (outcome.recorded, outcome.amended, outcome.retracted, outcome.unchanged) == (0, 1, 2, 3)
    events = _events(alpha)
    amended = [e for e in events if e["event_type"] == "response_amended"]
    assert len(amended) == 1
    (original,) = [e for e in events if e["event_id"] == amended[0]["supersedes_event_id"]]
    assert original["items"] == [1.0] * 9 and amended[0]["items"] == [2.0] * 9  # old kept
    retracted = [e for e in events if e["event_type"] == "response_retracted"]
    assert {(e["client_pid"], e["instrument"]) for e in retracted} == {
        (PID("alpha", "client", "C2"), "wai_sr"),
        (PID("alpha", "client", "C2"), "phq9"),
    }
    assert all(e["items"] is None and e["reason"] for e in retracted)
    assert [e["site_seq"] for e in events] == list(range(1, len(events) + 1))


def test_unchanged_and_reordered_snapshot_emits_nothing(alpha: Path) -> None:
    rows = [_row("C1", 1, 3, 1), _row("C1", 2, 3, 1), _row("C2", 1, 4, 2)]
    _export(alpha, "a.csv", rows)
    _night(alpha)
    _export(alpha, "b.csv", list(reversed(rows)))  # new bytes, same content
    result = _night(alpha, "2026-11-21")
    assert result.events_written == 0
    (outcome,) = [f for f in result.files if f.source_file == "b.csv"]
    assert (outcome.status, outcome.unchanged) == ("ingested", 6)


def test_quarantined_row_is_not_read_as_deleted(alpha: Path) -> None:
    _export(alpha, "a.csv", [_row("C1", 1, 3, 1), _row("C1", 2, 3, 1)])
    _night(alpha)
    bad = _row("C1", 2, 3, 1)
    bad[4] = "9"  # WAI item 1 out of range this time
    _export(alpha, "b.csv", [_row("C1", 1, 3, 1), bad])
    result = _night(alpha, "2026-11-21")
    assert result.events_written == 0  # the held WAI is neither retracted nor amended


def test_mass_retraction_is_rejected_not_applied(alpha: Path) -> None:
    _export(alpha, "a.csv", [_row(f"C{i}", 1, 3, 1) for i in range(10)])
    _night(alpha)
    _export(alpha, "b.csv", [])  # header only
    result = _night(alpha, "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "b.csv"]
    assert outcome.status == "rejected" and result.events_written == 0
    rules = {
        q["rule_id"]
        for q in delta_store.read(Paths(alpha).quarantine, QUARANTINE_SCHEMA).to_pylist()
    }
    assert "snapshot.mass_retraction" in rules


def test_incremental_site_never_retracts(home: Path) -> None:
    _configure(home, delivery="incremental")
    _export(home, "a.csv", [_row("C1", 1, 3, 1)])
    _night(home)
    _export(home, "b.csv", [_row("C2", 1, 3, 1)])
    result = _night(home, "2026-11-21")
    assert result.events_written == 2
    assert not [e for e in _events(home) if e["event_type"] == "response_retracted"]


def test_withdrawal_file_closes_the_client(home: Path) -> None:
    _configure(
        home,
        withdrawals={
            "file_glob": "withdrawals*.csv",
            "client_code_column": "record_id",
            "reason_column": "reason",
        },
    )
    _export(home, "export1.csv", [_row("C1", 1, 3, 1), _row("C2", 1, 3, 1)])
    _night(home)
    (home / "inbox" / "alpha" / "withdrawals_1.csv").write_text(
        "record_id,reason\nC1,participant request\n,\n"
    )
    _export(home, "export2.csv", [_row("C1", 1, 3, 1), _row("C1", 2, 3, 1), _row("C2", 1, 3, 1)])
    result = _night(home, "2026-11-21")
    by_name = {f.source_file: f for f in result.files}
    assert (by_name["withdrawals_1.csv"].withdrawn, by_name["withdrawals_1.csv"].quarantined) == (
        1,
        1,
    )
    # C1's 2 rows x 2 forms are held back (withdrawn), C1 s1 is not retracted, C2 unchanged.
    export2 = by_name["export2.csv"]
    assert (export2.recorded, export2.retracted, export2.quarantined) == (0, 0, 4)
    withdrawn = [e for e in _events(home) if e["event_type"] == "consent_withdrawn"]
    assert [(e["client_pid"], e["reason"]) for e in withdrawn] == [
        (PID("alpha", "client", "C1"), "participant request")
    ]
    # The cumulative list re-sent tomorrow changes nothing.
    shutil.copy(
        home / "inbox" / "alpha" / "withdrawals_1.csv",
        home / "inbox" / "alpha" / "withdrawals_2.csv",
    )
    (home / "inbox" / "alpha" / "withdrawals_2.csv").write_text("record_id,reason\nC1,again\n")
    assert _night(home, "2026-11-22").events_written == 0


def test_two_ingestions_of_one_site_at_once_give_one_set_of_events(alpha: Path) -> None:
    _export(alpha, "a.csv", [_row(f"C{i}", s, 3, 1) for i in range(30) for s in (1, 2, 3)])
    script = (
        "from ingestion.ingest import ingest_site\n"
        "r = ingest_site('alpha', '2026-11-20')\n"
        "print(r.events_written)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    written = sorted(int(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs)
    assert written == [0, 0, 180]
    events = _events(alpha)
    assert len(events) == 180 == len({e["event_id"] for e in events})


def test_withdrawal_column_in_the_export(home: Path) -> None:
    _configure(home, withdrawals={"column": "consent_withdrawn"})
    header = [*HEADER, "consent_withdrawn"]
    path = home / "inbox" / "alpha" / "e.csv"
    path.parent.mkdir(parents=True)
    rows = [_row("C1", 1, 3, 1) + [""], _row("C2", 1, 3, 1) + [""]]
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    assert _night(home).events_written == 4
    rows[1][-1] = "Yes"  # the site ticks C2's withdrawal box
    rows.append(_row("C2", 2, 3, 1) + ["yes"])
    with (home / "inbox" / "alpha" / "e2.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    result = _night(home, "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "e2.csv"]
    # One withdrawal event; C2's rows (2 x 2 administrations) held back, nothing retracted.
    assert (outcome.withdrawn, outcome.quarantined, outcome.retracted) == (1, 4, 0)
    kinds = [e["event_type"] for e in _events(home)]
    assert kinds.count("consent_withdrawn") == 1 and "response_retracted" not in kinds


def test_withdrawal_config_is_validated(home: Path) -> None:
    from ingestion.config_errors import ConfigError
    from ingestion.consortium import load_consortium

    _configure(home, withdrawals={"reason_column": "r"})
    with pytest.raises(ConfigError, match="needs file_glob, column, or both"):
        load_consortium(home / "consortium.yml")


ENDING = {"column": "ending_status", "planned": ["Completed "], "unplanned": ["dropped_out"]}


def _export_ending(home: Path, name: str, rows: list[tuple[list[str], str]]) -> None:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerows([[*HEADER, "ending_status"], *[row + [end] for row, end in rows]])


def test_ending_values_are_normalized_into_events(home: Path) -> None:
    _configure(home, ending=ENDING)
    rows = [
        (_row("C1", 1, 3, 1), ""),
        (_row("C1", 2, 3, 1), "  COMPLETED"),  # case and blanks ignored
        (_row("C2", 1, 3, 1), "Dropped_Out "),
        (_row("C3", 1, 3, 1), "moved away"),  # in neither list: unknown, not quarantined
    ]
    _export_ending(home, "e.csv", rows)
    (outcome,) = _night(home).files
    assert (outcome.accepted, outcome.quarantined, outcome.recorded) == (8, 0, 8)
    endings = {
        (e["client_pid"], e["session_number"], e["instrument"]): e["ending_type"]
        for e in _events(home)
    }
    for instrument in ("wai_sr", "phq9"):
        assert endings[(PID("alpha", "client", "C1"), 1, instrument)] is None
        assert endings[(PID("alpha", "client", "C1"), 2, instrument)] == "planned"
        assert endings[(PID("alpha", "client", "C2"), 1, instrument)] == "unplanned"
        assert endings[(PID("alpha", "client", "C3"), 1, instrument)] is None


def test_site_adding_an_ending_later_is_one_amendment(home: Path) -> None:
    _configure(home, ending=ENDING)
    last = _row("C1", 2, 3, 1)[:-9] + [""] * 9  # WAI only: the PHQ-9 was not administered
    _export_ending(home, "a.csv", [(_row("C1", 1, 3, 1), ""), (last, "")])
    assert _night(home).events_written == 3
    _export_ending(home, "b.csv", [(last, "completed"), (_row("C1", 1, 3, 1), "")])
    result = _night(home, "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "b.csv"]
    assert (outcome.recorded, outcome.amended, outcome.retracted, outcome.unchanged) == (0, 1, 0, 2)
    (amended,) = [e for e in _events(home) if e["event_type"] == "response_amended"]
    assert (amended["session_number"], amended["ending_type"]) == (2, "planned")
    # The same export again (new bytes): nothing changed.
    _export_ending(home, "c.csv", [(_row("C1", 1, 3, 1), ""), (last, "Completed")])
    assert _night(home, "2026-11-22").events_written == 0


def test_log_written_before_ending_type_still_replays(home: Path) -> None:
    """A log without the ending_type column reads, replays as unchanged, and takes the column."""
    from deltalake import DeltaTable

    _configure(home)
    _export(home, "a.csv", [_row("C1", 1, 3, 1)])
    _night(home)
    log = Paths(home).event_log
    old = delta_store.read(log, EVENT_SCHEMA).drop_columns(["ending_type"])
    sha = old.column("source_sha256")[0].as_py()
    shutil.rmtree(log)
    delta_store.append(log, old, [sha], {})  # as written before the column existed
    assert all(e["ending_type"] is None for e in _events(home))
    _configure(home, ending=ENDING)
    _export_ending(home, "b.csv", [(_row("C1", 1, 3, 1), "")])
    assert _night(home, "2026-11-21").events_written == 0
    _export_ending(home, "c.csv", [(_row("C1", 1, 3, 1), "dropped_out")])
    assert _night(home, "2026-11-22").events_written == 2
    assert "ending_type" in {f.name for f in DeltaTable(str(log)).schema().fields}
    kinds = [(e["event_type"], e["ending_type"]) for e in _events(home)]
    assert kinds[-2:] == [("response_amended", "unplanned")] * 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ending": "ending_status"}, "must be a mapping"),
        ({"ending": {"planned": ["a"], "unplanned": ["b"]}}, r"ending\.column"),
        ({"ending": {"column": "x", "planned": [], "unplanned": ["b"]}}, r"ending\.planned"),
        ({"ending": {"column": "x", "planned": ["a"], "unplanned": "b"}}, r"ending\.unplanned"),
        ({"ending": {"column": "x", "planned": ["A"], "unplanned": ["a "]}}, "also listed"),
        ({"ending": {**ENDING, "values": ["a"]}}, "not a known key"),
        (
            {"ending": {**ENDING, "open": ["dropped_out"]}},
            "also listed as unplanned",
        ),
        (
            {"ending": ENDING, "identifier_columns": ["ending_status"]},
            "listed in identifier_columns",
        ),
    ],
)
def test_ending_config_is_validated(home: Path, changes: dict, message: str) -> None:
    from ingestion.config_errors import ConfigError
    from ingestion.consortium import load_consortium

    _configure(home, **changes)
    with pytest.raises(ConfigError, match=message) as raised:
        load_consortium(home / "consortium.yml")
    assert "consortium.yml" in str(raised.value) and "sites.alpha." in str(raised.value)
