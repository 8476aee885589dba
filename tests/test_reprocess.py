"""`bordin reprocess --site S`: a site re-derived from its retained deliveries (issue 11, item 10).

Every expectation is worked out by hand from the fixture rows: which administrations exist, which
therapist code each carries, and so which events a corrected configuration must add.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.reprocess import ReprocessRefusedError, reprocess_site
from ingestion.settings import Paths
from tests.conftest import TEST_KEY
from warehouse import cli

KEY = PseudonymKey(TEST_KEY.encode())
HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "supervisor_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
CONSORTIUM = """\
consortium_id: reprocess
name: Reprocess test
sites:
  - site_id: alpha
    format: redcap_csv
    columns: {{client_code: record_id, therapist_code: {therapist}, session_date: session_date,
              event: {event}}}
    session_event_pattern: '^session_(\\d+)_arm_\\d+$'
    forms:
      - {{instrument: wai_sr, rater_role: client, item_column_template: "wai_{{n}}"}}
      - {{instrument: phq9, rater_role: client, item_column_template: "phq9_{{n}}"}}
    primary_alliance: wai_sr
    primary_outcome: phq9
    max_retraction_fraction: 0.5
{extra}"""
RIGHT = {"therapist": "therapist_code", "event": "redcap_event_name", "extra": ""}


def _configure(home: Path, **columns: str) -> None:
    (home / "consortium.yml").write_text(CONSORTIUM.format(**{**RIGHT, **columns}))


def _row(client: str, session: int, day: str, wai: int, phq: int) -> list[str]:
    items = [str(wai)] * 12 + [str(phq)] * 9
    return [client, f"session_{session}_arm_1", f"T-{client}", "SUP-9", day, *items]


def _deliver(
    home: Path, name: str, rows: list[list[str]], mtime: int, header: list[str] = HEADER
) -> Path:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.utime(path, (mtime, mtime))
    return path


def _events(home: Path) -> list[dict]:
    rows = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    return sorted(rows, key=lambda r: r["site_seq"])


def _audit(home: Path, step: str) -> list[dict]:
    lines = (home / "audit" / "runs.jsonl").read_text().splitlines()
    return [entry for line in lines if (entry := json.loads(line))["step"] == step]


ROWS = [
    _row("A1", 1, "2026-03-07", 3, 2),
    _row("A1", 2, "2026-03-14", 4, 1),
    _row("A2", 1, "2026-03-07", 2, 3),
]


def test_fixing_a_wrong_column_map_amends_exactly_the_affected_values(home: Path) -> None:
    _configure(home, therapist="supervisor_code")  # wrong: every row names SUP-9
    _deliver(home, "export.csv", ROWS, mtime=1_700_000_000)
    ingest_site("alpha", "2026-11-01", key=KEY)
    before = _events(home)
    assert len(before) == 6  # 3 rows x 2 forms
    supervisor = KEY.pseudonym("alpha", "therapist", "SUP-9")
    assert {e["therapist_pid"] for e in before} == {supervisor}

    _configure(home)  # fixed
    result = reprocess_site("alpha", "2026-11-20", key=KEY)

    after = _events(home)
    added = after[len(before) :]
    # By hand: every administration's therapist changes (SUP-9 -> T-<client>); nothing else.
    assert (result.recorded, result.amended, result.retracted) == (0, 6, 0)
    assert [e["event_type"] for e in added] == ["response_amended"] * 6
    assert {e["reason"] for e in added} == {"reprocessed"}
    assert [e["site_seq"] for e in added] == [7, 8, 9, 10, 11, 12]
    by_key = {(e["client_pid"], e["session_number"], e["instrument"]): e for e in before}
    for event in added:
        old = by_key[(event["client_pid"], event["session_number"], event["instrument"])]
        assert event["supersedes_event_id"] == old["event_id"]
        assert event["items"] == old["items"]
        assert event["session_date"] == old["session_date"]
        assert event["logical_date"].isoformat() == "2026-11-20"
        assert event["source_file"] == "export.csv"
        assert event["source_row"] == old["source_row"]
    client = {KEY.pseudonym("alpha", "client", c): c for c in ("A1", "A2")}
    assert sorted((client[e["client_pid"]], e["therapist_pid"]) for e in added) == sorted(
        [(c, KEY.pseudonym("alpha", "therapist", f"T-{c}")) for c in ("A1", "A1", "A1", "A1")]
        + [("A2", KEY.pseudonym("alpha", "therapist", "T-A2"))] * 2
    )
    (entry,) = _audit(home, "reprocess")
    assert entry["site_id"] == "alpha" and entry["amended"] == 6 and entry["no_op"] is False


def test_a_file_rejected_under_the_old_config_is_read_again_then_reprocess_is_a_no_op(
    home: Path,
) -> None:
    _configure(home, event="visit")  # no such column: the whole file is rejected
    _deliver(home, "export.csv", ROWS, mtime=1_700_000_000)
    first = ingest_site("alpha", "2026-11-01", key=KEY)
    assert first.files[0].status == "rejected"
    assert _events(home) == []

    _configure(home)
    result = reprocess_site("alpha", "2026-11-20", key=KEY)
    events = _events(home)
    assert (result.recorded, result.amended, result.retracted) == (6, 0, 0)
    assert [e["event_type"] for e in events] == ["response_recorded"] * 6
    assert {e["reason"] for e in events} == {"reprocessed"}
    assert {e["supersedes_event_id"] for e in events} == {None}
    # PHQ-9 items as delivered, per administration (A1 s1: 2, A1 s2: 1, A2 s1: 3).
    phq = {
        (e["client_pid"], e["session_number"]): e["items"]
        for e in events
        if e["instrument"] == "phq9"
    }
    a1, a2 = (KEY.pseudonym("alpha", "client", c) for c in ("A1", "A2"))
    assert phq == {(a1, 1): [2.0] * 9, (a1, 2): [1.0] * 9, (a2, 1): [3.0] * 9}

    version = delta_store.current_version(Paths(home).event_log)
    again = reprocess_site("alpha", "2026-11-21", key=KEY)
    assert again.no_op
    assert delta_store.current_version(Paths(home).event_log) == version
    assert [e["no_op"] for e in _audit(home, "reprocess")] == [False, True]
    # The nightly ingest still takes the file as already ingested: nothing doubles.
    assert ingest_site("alpha", "2026-11-22", key=KEY).no_op


def test_snapshot_deliveries_replay_in_the_order_they_arrived_not_by_name(home: Path) -> None:
    # Night 1 delivers b_first.csv (A1 s1, A1 s2, A2 s1); night 2 a_second.csv, a full export
    # without A1 s2 (retracted). Name order would replay them the other way round and bring
    # A1 s2 back.
    _configure(home, therapist="supervisor_code")
    _deliver(home, "b_first.csv", ROWS, mtime=1_700_000_000)
    ingest_site("alpha", "2026-11-01", key=KEY)
    _deliver(home, "a_second.csv", [ROWS[0], ROWS[2]], mtime=1_700_100_000)
    ingest_site("alpha", "2026-11-02", key=KEY)
    before = _events(home)
    assert [e["event_type"] for e in before[6:]] == ["response_retracted"] * 2

    _configure(home)
    result = reprocess_site("alpha", "2026-11-20", key=KEY)
    assert [n for n, _ in result.nights] == ["2026-11-01", "2026-11-02"]
    added = _events(home)[len(before) :]
    a1, a2 = (KEY.pseudonym("alpha", "client", c) for c in ("A1", "A2"))
    # The four live administrations get their real therapist; A1 s2 stays retracted.
    assert sorted((e["event_type"], e["client_pid"], e["session_number"]) for e in added) == [
        ("response_amended", p, s) for p, s in sorted([(a1, 1), (a1, 1), (a2, 1), (a2, 1)])
    ]
    # Their values were last delivered on night 1 (night 2 repeated them unchanged).
    assert {e["source_file"] for e in added} == {"b_first.csv"}


def test_a_replay_that_would_retract_most_of_the_site_is_refused_whole(home: Path) -> None:
    _configure(home)
    _deliver(home, "export.csv", ROWS, mtime=1_700_000_000)
    ingest_site("alpha", "2026-11-01", key=KEY)
    version = delta_store.current_version(Paths(home).event_log)
    _configure(home, event="visit")  # a broken map: every file is now rejected
    with pytest.raises(ReprocessRefusedError, match="retract 6 of its 6 current"):
        reprocess_site("alpha", "2026-11-20", key=KEY)
    assert delta_store.current_version(Paths(home).event_log) == version


def test_reprocess_command_prints_the_replay_and_the_differences(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _configure(home, therapist="supervisor_code")
    _deliver(home, "export.csv", ROWS, mtime=1_700_000_000)
    ingest_site("alpha", "2026-11-01", key=KEY)
    _configure(home)
    assert cli.main(["reprocess", "--site", "alpha", "--date", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert "replayed night 2026-11-01: export.csv" in out
    assert "0 recorded, 6 amended, 0 retracted, 0 withdrawn (reason 'reprocessed'" in out
    assert "SUP-9" not in out and "T-A1" not in out
    assert cli.main(["reprocess", "--site", "alpha", "--date", "2026-11-21"]) == 0
    assert "nothing differs from the event log; no-op recorded" in capsys.readouterr().out


def test_a_newly_mapped_withdrawal_column_withdraws_and_leaves_responses_alone(home: Path) -> None:
    _configure(home)  # the export's `withdrawn` column is not mapped yet
    rows = [ROWS[0] + [""], ROWS[1] + [""], ROWS[2] + ["1"]]  # A2 withdrew
    _deliver(home, "export.csv", rows, mtime=1_700_000_000, header=[*HEADER, "withdrawn"])
    ingest_site("alpha", "2026-11-01", key=KEY)
    before = _events(home)
    assert len(before) == 6

    _configure(home, extra="    withdrawals: {column: withdrawn}\n")
    result = reprocess_site("alpha", "2026-11-20", key=KEY)
    added = _events(home)[len(before) :]
    a2 = KEY.pseudonym("alpha", "client", "A2")
    # By hand: one withdrawal (A2); A2's two stored administrations are not retracted (a
    # withdrawn client leaves the marts through the withdrawal), A1's are unchanged.
    assert (result.withdrawn, result.recorded, result.amended, result.retracted) == (1, 0, 0, 0)
    assert [(e["event_type"], e["client_pid"], e["site_seq"]) for e in added] == [
        ("consent_withdrawn", a2, 7)
    ]
    assert added[0]["reason"] == "consent withdrawn (export column)"
    assert (added[0]["source_file"], added[0]["source_row"]) == ("export.csv", 4)
    assert reprocess_site("alpha", "2026-11-21", key=KEY).no_op
