"""The protocol consortium (issue 11, "Done when") through the real pipeline: every site of
tests/fixtures/protocol_consortium ingested on the night of 2026-11-18, then a real dbt build.

Each expected value is worked by hand from the fixture's files:
- strict (long CSV; consortium policy PHQ-9 rounded half up, WAI-SR no missing item; 99 =
  refused; delivered 2026-11-15; withdrawal list naming S3):
  S1 PHQ-9 s1 7 answered summing 5 -> 5/7x9 = 6.43 -> 6; S1 WAI-SR s1 all 3 -> 36;
  S1 PHQ-9 s2 8 answered summing 4 -> 4.5 -> 5 (half up, not to even); S1 WAI-SR s2 item 12 = 99
  (refused, so missing) -> item.too_many_missing; S2 PHQ-9 s1 3 of 9 blank ->
  item.too_many_missing; S2 s2 blank therapist -> row.therapist_code_blank; S2 s3 dated
  2026-11-17, after the 2026-11-15 delivery -> row.session_date_future; S3 -> withdrawn.
- two_wai (REDCap, a client and a therapist WAI-SR each with its own status): C1 s1 client
  all 4 = 48 (therapist status 0: form.not_complete), PHQ-9 all 1 = 9; C1 s2 therapist all 2
  = 24 (client status 0: form.not_complete), PHQ-9 all 2 = 18; C2 s1 client all 3 = 36,
  therapist all 4 = 48, PHQ-9 blank with status 0: not administered.
- rep_parent (REDCap repeating, therapist on the parent row): R1 (T1) WAI-SR 48, 60, PHQ-9 9,
  18; R2 (T2) s1 names T9 itself, WAI-SR 36, PHQ-9 0; s2 blank -> T2, WAI-SR 24, PHQ-9 27.
- fbs (feedback long CSV, status column): K1 SRS 36, 36, 38, ORS 20, 24, 28, last status
  closed_planned; K2 SRS 32, 28, ORS 16, 16, last status closed_unplanned.
- qual (Qualtrics, Finished = 1 AND Progress = 100): C1 s1 WAI-SR 48, GAD-7 7; C1 s2 WAI-SR 60,
  GAD-7 item 1 = 9 -> item.out_of_range; C2 s1 (Progress 60, Finished 0), C2 s2 (Progress 80,
  Finished 1) and C3 s1 (Progress 95) not final -> response.unfinished (3 WAI-SR, 1 GAD-7;
  the 2 blank GAD-7 are not administered).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingestion.pseudonyms import PseudonymKey
from tests.conftest import TEST_KEY, building, read_rows

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "protocol_consortium"
SITES = ("strict", "two_wai", "rep_parent", "fbs", "qual")
NIGHT = "2026-11-18"
KEY = PseudonymKey(TEST_KEY.encode())
SETTLED = 1_763_251_200  # 2026-11-16


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from ingestion.settings import Paths
    from warehouse import pipeline

    home = tmp_path_factory.mktemp("protocol") / "home"
    shutil.copytree(FIXTURE, home)
    for path in (home / "inbox").rglob("*"):
        if path.is_file():
            os.utime(path, (SETTLED, SETTLED))
    with building(home):
        where = Paths(home)
        results = {site: pipeline.ingest_step(site, NIGHT, where) for site in SITES}
        pipeline.build_step(where)
    return where, results


def _names(site: str, role: str, codes: list[str]) -> dict[str, str]:
    return {KEY.pseudonym(site, role, code): code for code in codes}


CLIENTS = {
    "strict": ["S1", "S2", "S3"],
    "two_wai": ["C1", "C2"],
    "rep_parent": ["R1", "R2"],
    "fbs": ["K1", "K2"],
    "qual": ["C1", "C2", "C3"],
}
THERAPISTS = {
    "strict": ["T1", "T2"],
    "two_wai": ["T1", "T2"],
    "rep_parent": ["T1", "T2", "T9"],
    "fbs": ["T1"],
    "qual": ["T9"],
}


def _decode(rows: list[tuple], role: str = "client") -> list[tuple]:
    """(site, pid, ...) -> (site, code, ...), so expectations read as the files do."""
    out = []
    for site, pid, *rest in rows:
        codes = _names(site, role, CLIENTS[site] if role == "client" else THERAPISTS[site])
        out.append((site, codes[pid], *rest))
    return sorted(out)


def test_every_row_is_accepted_or_quarantined_or_not_administered(built) -> None:
    _, results = built
    files = {(site, f["source_file"]): f for site, r in results.items() for f in r["files"]}
    counts = {
        k: (f["offered"], f["accepted"], f["quarantined"], f["not_administered"])
        for k, f in files.items()
    }
    assert counts == {
        ("strict", "export_20261115.csv"): (8, 3, 5, 0),
        ("strict", "withdrawals_20261115.csv"): (1, 1, 0, 0),
        ("two_wai", "redcap_two_wai_forms.csv"): (9, 6, 2, 1),
        ("rep_parent", "redcap_repeating_parent.csv"): (12, 8, 0, 4),
        ("fbs", "fbs_export.csv"): (10, 10, 0, 0),
        ("qual", "qualtrics_export.csv"): (10, 3, 5, 2),
    }
    for offered, accepted, quarantined, not_administered in counts.values():
        assert offered == accepted + quarantined + not_administered


def test_outcome_totals_follow_each_sites_protocol(built) -> None:
    where, _ = built
    rows = read_rows(
        where.build_db,
        "SELECT site_id, client_pid, instrument, session_number, total::DOUBLE "
        "FROM marts.fct_outcome_session",
    )
    assert _decode(rows) == sorted(
        [
            ("strict", "S1", "phq9", 1, 6.0),
            ("strict", "S1", "phq9", 2, 5.0),
            ("two_wai", "C1", "phq9", 1, 9.0),
            ("two_wai", "C1", "phq9", 2, 18.0),
            ("rep_parent", "R1", "phq9", 1, 9.0),
            ("rep_parent", "R1", "phq9", 2, 18.0),
            ("rep_parent", "R2", "phq9", 1, 0.0),
            ("rep_parent", "R2", "phq9", 2, 27.0),
            ("fbs", "K1", "ors", 1, 20.0),
            ("fbs", "K1", "ors", 2, 24.0),
            ("fbs", "K1", "ors", 3, 28.0),
            ("fbs", "K2", "ors", 1, 16.0),
            ("fbs", "K2", "ors", 2, 16.0),
            ("qual", "C1", "gad7", 1, 7.0),
        ]
    )


def test_alliance_totals_rater_roles_and_therapists(built) -> None:
    where, _ = built
    rows = read_rows(
        where.build_db,
        "SELECT site_id, client_pid, rater_role, session_number, total::DOUBLE, therapist_pid "
        "FROM marts.fct_alliance_session",
    )
    decoded = []
    for site, client, role, session, total, therapist in _decode(rows):
        names = _names(site, "therapist", THERAPISTS[site])
        decoded.append((site, client, role, session, total, names[therapist]))
    assert sorted(decoded) == sorted(
        [
            ("strict", "S1", "client", 1, 36.0, "T1"),
            ("two_wai", "C1", "client", 1, 48.0, "T1"),
            ("two_wai", "C1", "therapist", 2, 24.0, "T1"),
            ("two_wai", "C2", "client", 1, 36.0, "T2"),
            ("two_wai", "C2", "therapist", 1, 48.0, "T2"),
            ("rep_parent", "R1", "client", 1, 48.0, "T1"),
            ("rep_parent", "R1", "client", 2, 60.0, "T1"),
            ("rep_parent", "R2", "client", 1, 36.0, "T9"),
            ("rep_parent", "R2", "client", 2, 24.0, "T2"),
            ("fbs", "K1", "client", 1, 36.0, "T1"),
            ("fbs", "K1", "client", 2, 36.0, "T1"),
            ("fbs", "K1", "client", 3, 38.0, "T1"),
            ("fbs", "K2", "client", 1, 32.0, "T1"),
            ("fbs", "K2", "client", 2, 28.0, "T1"),
            ("qual", "C1", "client", 1, 48.0, "T9"),
            ("qual", "C1", "client", 2, 60.0, "T9"),
        ]
    )


def test_quarantine_by_site_rule_and_instrument(built) -> None:
    where, _ = built
    rows = read_rows(
        where.build_db,
        "SELECT site_id, rule_id, instrument, n_records FROM marts.fct_quarantine ORDER BY ALL",
    )
    assert rows == [
        ("qual", "item.out_of_range", "gad7", 1),
        ("qual", "response.unfinished", "gad7", 1),
        ("qual", "response.unfinished", "wai_sr", 3),
        ("strict", "client.consent_withdrawn", "phq9", 1),
        ("strict", "item.too_many_missing", "phq9", 1),
        ("strict", "item.too_many_missing", "wai_sr", 1),
        ("strict", "row.session_date_future", "phq9", 1),
        ("strict", "row.therapist_code_blank", "phq9", 1),
        ("two_wai", "form.not_complete", "wai_sr", 2),
    ]


def test_episode_ending_and_withdrawn_client(built) -> None:
    where, _ = built
    rows = read_rows(
        where.build_db,
        "SELECT site_id, client_pid, n_sessions_attended, ending_type, dropout_unplanned "
        "FROM marts.fct_episode WHERE site_id IN ('fbs', 'strict')",
    )
    # strict: S2 has no stored administration, S3 withdrew; only S1's episode exists.
    assert _decode(rows) == [
        ("fbs", "K1", 3, "planned", False),
        ("fbs", "K2", 2, "unplanned", True),
        ("strict", "S1", 2, None, None),
    ]
