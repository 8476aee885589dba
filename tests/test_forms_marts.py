"""Forms and carry-down through to the marts: ingest the hand-written exports of
tests/fixtures/forms, build with dbt, and check fct_alliance_session value by value.

WAI-SR (ingestion/instruments/wai_sr.yml): total = sum of 12 items, goal = sum of items
4, 6, 8, 11; POMP = (total - 12) / (60 - 12) x 100. Every item of an administration is equal
(item v: total 12v, goal 4v). session_day = days since the client's first session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from ingestion.settings import Paths
from tests.test_forms import FORMS, _deliver, _pid
from warehouse import pipeline

pytestmark = pytest.mark.slow

DATE = "2026-11-20"


def _pomp(total: float) -> float:
    return (total - 12) / 48 * 100


def test_alliance_mart_keeps_each_form_and_the_carried_down_therapist(home: Path) -> None:
    shutil.copy(FORMS / "consortium.yml", home)
    _deliver(home, "rep_parent", "redcap_repeating_parent.csv")
    _deliver(home, "two_wai", "redcap_two_wai_forms.csv")
    for site in ("rep_parent", "two_wai"):
        pipeline.ingest_step(site, DATE)
    pipeline.build_step()
    con = duckdb.connect(str(Paths(home).build_db), read_only=True)
    try:
        rows = con.execute(
            "SELECT site_id, client_pid, session_number, rater_role, therapist_pid, total, goal, "
            "pomp_total, session_day FROM marts.fct_alliance_session"
        ).fetchall()
    finally:
        con.close()
    got = {(r[0], r[1], r[2], r[3]): (r[4], r[5], r[6], round(r[7], 9), r[8]) for r in rows}

    def row(site, client, session, role, therapist, item, day):
        key = (site, _pid(site, "client", client), session, role)
        value = (_pid(site, "therapist", therapist), 12.0 * item, 4.0 * item,
                 round(_pomp(12.0 * item), 9), day)  # fmt: skip
        return key, value

    expected = dict(
        [
            # Therapist carried down from the client-level row (R2 s1 keeps its own T9).
            row("rep_parent", "R1", 1, "client", "T1", 4, 0),
            row("rep_parent", "R1", 2, "client", "T1", 5, 7),
            row("rep_parent", "R2", 1, "client", "T9", 3, 0),
            row("rep_parent", "R2", 2, "client", "T2", 2, 7),
            # Each WAI-SR form by its own status: C1 s1 therapist and s2 client were held.
            row("two_wai", "C1", 1, "client", "T1", 4, 0),
            row("two_wai", "C1", 2, "therapist", "T1", 2, 7),
            row("two_wai", "C2", 1, "client", "T2", 3, 0),
            row("two_wai", "C2", 1, "therapist", "T2", 4, 0),
        ]
    )
    assert got == expected
