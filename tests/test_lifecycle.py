"""A correction, a deletion, a withdrawal and an erasure, end to end through releases.

Night 1 publishes release A from the tiny consortium. Night 2 delivers a full export in which
A1's session-3 PHQ-9 is corrected (all items 1 -> 0), A3's session 3 is gone, and a withdrawal
file for A5. Then: history, diff, rebuild of A at its old log version, erasure of A2.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import yaml

from ingestion.pseudonyms import PseudonymKey
from tests.conftest import TEST_KEY, SharedRoots, building, copy_root, night
from warehouse.erasure import erase_client
from warehouse.history import client_history
from warehouse.rebuild import rebuild
from warehouse.release_diff import diff_releases

PID = PseudonymKey(TEST_KEY.encode()).pseudonym

pytestmark = pytest.mark.slow


def _night(day: str) -> dict:
    return night(day)


def _pids(release: dict, mart: str) -> set[str]:
    con = duckdb.connect()
    try:
        path = Path(release["path"]) / "parquet" / f"{mart}.parquet"
        return {r[0] for r in con.execute(f"SELECT DISTINCT client_pid FROM '{path}'").fetchall()}
    finally:
        con.close()


def _make_two_nights(tiny_built_root: Path) -> Callable[[Path], None]:
    """Night 1 releases A from the tiny build; withdrawals are then configured, and night 2
    delivers the corrected export and a withdrawal file, and releases B."""

    def make(root: Path) -> None:
        copy_root(tiny_built_root, root)
        with building(root):
            _night("2026-11-20")
            doc = yaml.safe_load((root / "consortium.yml").read_text())
            doc["sites"][0]["withdrawals"] = {
                "file_glob": "withdrawals*.csv",
                "client_code_column": "record_id",
                "reason_column": "reason",
            }
            (root / "consortium.yml").write_text(yaml.safe_dump(doc))
            inbox = root / "inbox" / "alpha"
            rows = list(csv.reader((inbox / "alpha_export.csv").open()))
            header, body = rows[0], rows[1:]
            phq = [header.index(f"phq9_{i}") for i in range(1, 10)]
            new_body = []
            for row in body:
                if row[0] == "A3" and row[1] == "session_3_arm_1":
                    continue  # deleted at the site
                if row[0] == "A1" and row[1] == "session_3_arm_1":
                    row = [("0" if i in phq else v) for i, v in enumerate(row)]  # corrected
                new_body.append(row)
            with (inbox / "alpha_export_2.csv").open("w", newline="") as handle:
                csv.writer(handle, lineterminator="\n").writerows([header, *new_body])
            (inbox / "alpha_export.csv").unlink()  # the site replaces its export
            (inbox / "withdrawals_2026-11-21.csv").write_text(
                "record_id,reason\nA5,withdrew consent\n"
            )
            _night("2026-11-21")

    return make


def _release_on(home: Path, day: str) -> dict:
    (folder,) = (p for p in (home / "releases").iterdir() if p.name.startswith(f"{day}_v"))
    return {"release_id": folder.name, "path": str(folder)}


@pytest.fixture
def two_nights(home: Path, shared: SharedRoots, tiny_built_root: Path) -> tuple[Path, dict, dict]:
    """A private copy of the two-night data root (built once per test run)."""
    copy_root(shared.get("two_nights", _make_two_nights(tiny_built_root)), home)
    return home, _release_on(home, "2026-11-20"), _release_on(home, "2026-11-21")


def test_correction_deletion_withdrawal_reach_the_next_release(two_nights) -> None:
    home, release_a, release_b = two_nights
    assert PID("alpha", "client", "A5") in _pids(release_a, "fct_alliance_session")
    for mart in ("fct_alliance_session", "fct_outcome_session", "fct_episode_outcome"):
        assert PID("alpha", "client", "A5") not in _pids(release_b, mart)

    con = duckdb.connect()
    try:
        db = Path(release_b["path"]) / "marts.duckdb"
        con.execute(f"ATTACH '{db}' AS b (READ_ONLY)")
        a1 = con.execute(
            "SELECT final_score, change FROM b.fct_episode_outcome "
            f"WHERE client_pid = '{PID('alpha', 'client', 'A1')}' AND instrument = 'phq9'"
        ).fetchall()
        a3 = con.execute(
            "SELECT max(session_number) FROM b.fct_outcome_session "
            f"WHERE client_pid = '{PID('alpha', 'client', 'A3')}'"
        ).fetchall()
    finally:
        con.close()
    assert a1 == [(0.0, 18.0)]  # 18 -> 0 after the correction (was 18 -> 9)
    assert a3 == [(2,)]  # session 3 retracted

    by_mart = {d.mart: d for d in diff_releases(release_a["release_id"], release_b["release_id"])}
    alliance = by_mart["fct_alliance_session"]
    # A5's 3 sessions withdrawn and A3's session 3 retracted: 4 rows removed. A3's other two
    # sessions change: with 2 sessions left, the rupture flags become not evaluable
    # (var rupture_min_sessions = 3). A1's WAI is untouched.
    assert (alliance.removed, alliance.added, alliance.changed) == (4, 0, 2)
    episodes = by_mart["fct_episode_outcome"]
    assert episodes.changed >= 2 and episodes.removed == 1  # A1 and A3 changed; A5 gone

    history = client_history("alpha", "A1", session=3, instrument="phq9")
    assert [v.event_type for v in history] == ["response_recorded", "response_amended"]
    assert history[1].changed_items == {n: (1.0, 0.0) for n in range(1, 10)}
    assert history[1].source_file == "alpha_export_2.csv" and history[1].reason


def test_old_release_rebuilds_byte_for_byte_after_new_events(two_nights) -> None:
    _, release_a, _ = two_nights
    report = rebuild(release_a["release_id"])
    assert report.problem is None
    assert report.checks and all(c.matches for c in report.checks), report.checks
    assert report.reproduced


def test_erasure_removes_client_everywhere_but_the_record(two_nights) -> None:
    home, release_a, release_b = two_nights
    pid = PID("alpha", "client", "A2")
    report = erase_client("alpha", "A2", reason="GDPR art. 17 request", operator="dm.jones")
    assert report.events_removed == 6 and report.inbox_rows_removed == 3
    assert report.releases_holding_client == sorted(
        [release_a["release_id"], release_b["release_id"]]
    )
    # No stored Parquet file of the log holds the payload any more, in any version.
    log = home / "eventlog" / "events"
    con = duckdb.connect()
    try:
        for parquet in log.glob("*.parquet"):
            rows = con.execute(
                f"SELECT event_type FROM '{parquet}' WHERE client_pid = ?", [pid]
            ).fetchall()
            assert rows in ([], [("client_erased",)])
    finally:
        con.close()
    assert "A2," not in (home / "inbox" / "alpha" / "alpha_export_2.csv").read_text()
    # The next night: no re-ingestion of the redacted file, and A2 is absent.
    release_c = _night("2026-11-22")
    assert pid not in _pids(release_c, "fct_alliance_session")
    history = client_history("alpha", "A2")
    assert [v.event_type for v in history] == ["client_erased"]
    assert "GDPR" in history[0].reason and history[0].actor == "operator:dm.jones"
    # A release built before the erasure can no longer be rebuilt, and says why.
    old = rebuild(release_a["release_id"])
    assert not old.reproduced and "erasure" in (old.problem or "")
    shutil.rmtree(home / "scratch", ignore_errors=True)
