"""Complete deliveries only: a file still arriving waits, a cut-off snapshot is rejected whole.

Issue 12, item 7. A snapshot cut off mid-row and a file still being copied were both ingested,
and the administrations they lacked were retracted under the 50 % guard. Each scenario below
starts from a first complete night, as the attack did.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ingestion import delta_store
from ingestion.arrival import ArrivalOptions, still_arriving
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import INTAKE_SCHEMA, ingest_site
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.registry import default_registry
from ingestion.settings import Paths
from tests.test_event_sourcing import HEADER, _configure

CLIENTS = [f"C{i}" for i in range(8)]  # one session each: 16 administrations (WAI-SR, PHQ-9)


def _row(code: str, therapist: str = "T1") -> list[str]:
    return [code, "session_1_arm_1", therapist, "2026-03-01"] + ["3"] * 12 + ["1"] * 9


def _csv_bytes(rows: list[list[str]]) -> bytes:
    lines = [",".join(_quoted(cell) for cell in row) for row in [HEADER, *rows]]
    return ("\n".join(lines) + "\n").encode()


def _quoted(cell: str) -> str:
    return f'"{cell}"' if "," in cell else cell


def _deliver(home: Path, name: str, content: bytes, age_s: float = 3600) -> Path:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def _events(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()


def _rules(home: Path) -> list[tuple[str, str, str]]:
    rows = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    return [(r["source_file"], r["rule_id"], r["category"]) for r in rows]


def _outcome(result, name: str):
    (outcome,) = [f for f in result.files if f.source_file == name]
    return outcome


@pytest.fixture
def night1(home: Path) -> Path:
    """Alpha (a snapshot site) after one complete night: 8 clients, 16 administrations."""
    _configure(home)
    _deliver(home, "night1.csv", _csv_bytes([_row(c) for c in CLIENTS]))
    assert ingest_site("alpha", "2026-11-20").events_written == 16
    return home


def _assert_state_kept(home: Path, result, name: str, reason: str) -> None:
    outcome = _outcome(result, name)
    assert (outcome.status, outcome.retracted, result.events_written) == ("rejected", 0, 0)
    assert len(_events(home)) == 16  # nothing retracted, nothing added
    ((rule, category, message),) = [
        (r["rule_id"], r["category"], r["message"])
        for r in delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
        if r["source_file"] == name
    ]
    assert (rule, category) == ("file.truncated", "parse")
    assert reason in message


def test_snapshot_cut_mid_row_is_rejected_whole_and_state_kept(night1: Path) -> None:
    full = _csv_bytes([_row(c) for c in CLIENTS])
    # Cut 40 bytes into C5's line (4 of its 21 items left); C6 and C7 are gone. Read as a
    # snapshot, their 4 administrations (25 %, under the old 50 % guard) would be retracted.
    cut = full[: full.index(b"C5,") + 40]
    _deliver(night1, "night2.csv", cut)
    result = ingest_site("alpha", "2026-11-21")
    _assert_state_kept(night1, result, "night2.csv", "does not end with a line break")


def test_cut_record_with_short_field_count_is_caught_without_the_newline_rule(
    night1: Path,
) -> None:
    _configure(night1, arrival={"final_newline": False})
    full = _csv_bytes([_row(c) for c in CLIENTS])
    cut = full[: full.index(b"C5,") + 40]
    assert cut.count(b"\n") == 6 and cut[-1:] != b"\n"
    _deliver(night1, "night2.csv", cut)
    result = ingest_site("alpha", "2026-11-21")
    fields = cut.rsplit(b"\n", 1)[1].count(b",") + 1
    assert fields == 8  # by hand: 4 identifying columns + 4 WAI items
    _assert_state_kept(night1, result, "night2.csv", f"has {fields} of the header's 25 fields")


def test_snapshot_ending_inside_a_quoted_field_is_rejected(night1: Path) -> None:
    rows = [_row(c) for c in CLIENTS]
    rows[-1] = _row("C7", therapist="Team A, room 2")  # quoted: holds the delimiter
    full = _csv_bytes(rows)
    cut = full[: full.index(b'"Team A, ro') + 8]
    _deliver(night1, "night2.csv", cut + b"\n")  # even a line break after the cut
    result = ingest_site("alpha", "2026-11-21")
    _assert_state_kept(night1, result, "night2.csv", "a quoted field is opened and never closed")


def test_complete_export_with_quoted_line_breaks_is_not_taken_for_a_cut(night1: Path) -> None:
    full = _csv_bytes([_row(c) for c in CLIENTS])
    at = full.rindex(b",T1,2026-03-01,3")  # the last record: the scan from the end must
    full = full[:at] + b',"T\n1"' + full[at + 3 :]  # skip the line break inside the quotes
    _deliver(night1, "night2.csv", full)
    result = ingest_site("alpha", "2026-11-21")
    assert _outcome(result, "night2.csv").status == "ingested"
    assert "file.truncated" not in {rule for _, rule, _ in _rules(night1)}


def test_export_without_final_newline_is_fine_when_the_site_says_so(night1: Path) -> None:
    _configure(night1, arrival={"final_newline": False})
    rows = [_row(c) for c in CLIENTS]
    rows[0][4] = "4"  # one change, so the night is not a no-op
    _deliver(night1, "night2.csv", _csv_bytes(rows).rstrip(b"\n"))
    result = ingest_site("alpha", "2026-11-21")
    outcome = _outcome(result, "night2.csv")
    assert (outcome.status, outcome.amended, outcome.retracted) == ("ingested", 1, 0)


def test_incremental_site_keeps_the_complete_rows_of_a_cut_file(home: Path) -> None:
    """Only a snapshot reads absence as deletion; an incremental site's complete rows stand."""
    _configure(home, delivery="incremental")
    full = _csv_bytes([_row(c) for c in CLIENTS])
    _deliver(home, "night1.csv", full[: full.index(b"C5,") + 40])
    result = ingest_site("alpha", "2026-11-20")
    outcome = _outcome(result, "night1.csv")
    assert outcome.status == "ingested" and outcome.recorded == 10  # C0..C4, both forms
    assert "file.truncated" not in {rule for _, rule, _ in _rules(home)}


def test_file_still_being_copied_waits_and_nothing_is_recorded(
    night1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BORDIN_QUIET_PERIOD_SECONDS")  # the default quiet period applies
    full = _csv_bytes([_row(c) for c in CLIENTS])
    partial = _deliver(night1, "night2.csv", full[: full.index(b"C5,")], age_s=0)
    result = ingest_site("alpha", "2026-11-21")
    outcome = _outcome(result, "night2.csv")
    assert outcome.status == "waiting" and "read once unchanged for 120 s" in outcome.detail
    assert result.events_written == 0 and len(_events(night1)) == 16
    intake = delta_store.read(Paths(night1).intake, INTAKE_SCHEMA).to_pylist()
    assert "night2.csv" not in {r["source_file"] for r in intake}
    # The copy finishes; once the file has been quiet for the period, it is read.
    first_item = b"C0,session_1_arm_1,T1,2026-03-01,3"
    partial.write_bytes(full.replace(first_item, first_item[:-1] + b"4"))
    stamp = time.time() - 121
    os.utime(partial, (stamp, stamp))
    later = ingest_site("alpha", "2026-11-21")
    done = _outcome(later, "night2.csv")
    assert (done.status, done.amended, done.retracted) == ("ingested", 1, 0)


def test_site_quiet_period_setting_is_used(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BORDIN_QUIET_PERIOD_SECONDS")
    _configure(home, arrival={"quiet_period_seconds": 0})
    _deliver(home, "night1.csv", _csv_bytes([_row("C0")]), age_s=0)
    assert _outcome(ingest_site("alpha", "2026-11-20"), "night1.csv").status == "ingested"


def test_completion_marker_gates_the_file_and_is_never_a_delivery(home: Path) -> None:
    _configure(home, arrival={"completion_marker": ".done"})
    _deliver(home, "night1.csv", _csv_bytes([_row(c) for c in CLIENTS]))
    first = ingest_site("alpha", "2026-11-20")
    assert [(f.source_file, f.status) for f in first.files] == [("night1.csv", "waiting")]
    assert "night1.csv.done" in _outcome(first, "night1.csv").detail
    _deliver(home, "night1.csv.done", b"")
    second = ingest_site("alpha", "2026-11-20")
    assert [(f.source_file, f.status) for f in second.files] == [("night1.csv", "ingested")]
    assert second.events_written == 16
    assert all(source != "night1.csv.done" for source, _, _ in _rules(home))


def test_still_arriving_reads_age_from_the_given_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BORDIN_QUIET_PERIOD_SECONDS")
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    os.utime(path, (1000.0, 1000.0))
    options = ArrivalOptions(quiet_period_seconds=60)
    assert still_arriving(path, options, now=1059.0) == (
        "modified 59 s ago; read once unchanged for 60 s"
    )
    assert still_arriving(path, options, now=1060.0) is None


def test_mass_retraction_guard_defaults_to_ten_percent_and_is_per_site(night1: Path) -> None:
    """A cut at a record boundary cannot be seen in the file: the guard is the backstop."""
    _deliver(night1, "night2.csv", _csv_bytes([_row(c) for c in CLIENTS[:6]]))  # 4 of 16 gone
    result = ingest_site("alpha", "2026-11-21")
    outcome = _outcome(result, "night2.csv")
    assert (outcome.status, outcome.retracted) == ("rejected", 0)
    assert ("night2.csv", "snapshot.mass_retraction", "conflict") in _rules(night1)
    _configure(night1, max_retraction_fraction=0.25)  # 4/16 = 25 %: not more than the limit
    _deliver(night1, "night3.csv", _csv_bytes([_row(c) for c in CLIENTS[:6]]) + b"\n")
    applied = _outcome(ingest_site("alpha", "2026-11-22"), "night3.csv")
    assert (applied.status, applied.retracted) == ("ingested", 4)


@pytest.mark.parametrize(
    ("arrival", "key", "problem"),
    [
        ({"quiet": 5}, "sites.alpha.arrival.quiet", "is not a known key"),
        ({"quiet_period_seconds": -1}, "sites.alpha.arrival.quiet_period_seconds", ">= 0"),
        ({"quiet_period_seconds": "5m"}, "sites.alpha.arrival.quiet_period_seconds", ">= 0"),
        ({"completion_marker": "../x"}, "sites.alpha.arrival.completion_marker", "suffix"),
        ({"final_newline": "yes"}, "sites.alpha.arrival.final_newline", "true or false"),
        ("fast", "sites.alpha.arrival", "must be a mapping"),
    ],
)
def test_arrival_config_errors_name_file_key_and_problem(
    home: Path, arrival: object, key: str, problem: str
) -> None:
    _configure(home, arrival=arrival)
    with pytest.raises(ConfigError) as caught:
        load_consortium(home / "consortium.yml", default_registry())
    text = str(caught.value)
    assert "consortium.yml" in text and key in text and problem in text
