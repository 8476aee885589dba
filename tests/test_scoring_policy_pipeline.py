"""A consortium scoring policy through the real pipeline: ingest, dbt build, release files.

One long-table site, policy: PHQ-9 and its registry's prorating rounded half up, GAD-7 left as
the registry has it (prorated, unrounded), WAI-SR allowing no blank item. Every total below is
worked by hand from the lines; the dbt unit test scoring_policy_rounds_half_up_and_limits_
missing_items covers the SQL's branches, this checks the policy reaches dbt and the release.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import building, read_rows

pytestmark = pytest.mark.slow

CONSORTIUM = """
consortium_id: policy_e2e
name: Policy end to end
scoring_policy:
  phq9: {rounding: half_up, source: "Protocol 4.5"}
  wai_sr: {max_missing: 0, source: "Protocol 4.3"}
sites:
  - site_id: polic
    format: long_csv
    columns: {client_code: client, therapist_code: therapist, session_date: date, event: session}
    session_event_pattern: '^(\\d+)$'
    date_format: '%Y-%m-%d'
    long_csv: {measure_column: measure, measures: {PHQ: phq9, GAD: gad7, WAI: wai_sr},
               item_column_template: "i{n}"}
    forms:
      - {instrument: phq9, rater_role: client, item_column_template: "phq_{n}"}
      - {instrument: gad7, rater_role: client, item_column_template: "gad_{n}"}
      - {instrument: wai_sr, rater_role: client, item_column_template: "wai_{n}"}
    primary_alliance: wai_sr
    primary_outcome: phq9
  - site_id: nodate
    format: long_csv
    columns: {client_code: client, therapist_code: therapist, session_date: date, event: session}
    session_event_pattern: '^(\\d+)$'
    date_format: '%Y-%m-%d'
    required_fields: {therapist_code: false, session_date: false}
    long_csv: {measure_column: measure, measures: {PHQ: phq9, WAI: wai_sr},
               item_column_template: "i{n}"}
    forms:
      - {instrument: phq9, rater_role: client, item_column_template: "phq_{n}"}
      - {instrument: wai_sr, rater_role: client, item_column_template: "wai_{n}"}
    primary_alliance: wai_sr
    primary_outcome: phq9
"""
# Site nodate records neither therapist nor date (required_fields): its sessions are stored and
# pass every dbt test and contract of the build, with no relative day and no therapist.
NODATE = [
    "client,therapist,session,date,measure," + ",".join(f"i{n}" for n in range(1, 13)),
    "N1,,1,,PHQ," + ",".join(["2"] * 9) + ",,,",
    "N1,,2,,PHQ," + ",".join(["1"] * 9) + ",,,",
]
B = None
LINES = [
    # PHQ-9 7 answered summing 5: 5 / 7 x 9 = 6.43 -> 6 (half up to the step of 1).
    ("K1", "1", "2026-03-02", "PHQ", [1, 1, 1, 0, 0, 1, 1, B, B]),
    # GAD-7 6 answered summing 3: 3 / 6 x 7 = 3.5, unrounded (the registry's rule).
    ("K1", "1", "2026-03-02", "GAD", [1, 1, 1, 0, 0, 0, B]),
    # WAI-SR complete, all 3: 36.
    ("K1", "1", "2026-03-02", "WAI", [3] * 12),
    # PHQ-9 8 answered summing 4: 4 / 8 x 9 = 4.5 -> 5 (half up, not to even).
    ("K1", "2", "2026-03-09", "PHQ", [1, 1, 1, 1, 0, 0, 0, 0, B]),
    # WAI-SR complete, all 4: 48.
    ("K1", "2", "2026-03-09", "WAI", [4] * 12),
    # WAI-SR one blank: the policy allows none, so quarantined, not stored.
    ("K1", "3", "2026-03-16", "WAI", [4] * 11 + [B]),
]


def _write(home: Path) -> None:
    (home / "consortium.yml").write_text(CONSORTIUM, encoding="utf-8")
    inbox = home / "inbox" / "polic"
    inbox.mkdir(parents=True)
    rows = ["client,therapist,session,date,measure," + ",".join(f"i{n}" for n in range(1, 13))]
    for client, session, day, measure, items in LINES:
        cells = ["" if v is None else str(v) for v in items] + [""] * (12 - len(items))
        rows.append(",".join([client, "T1", session, day, measure, *cells]))
    (inbox / "export.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (home / "inbox" / "nodate").mkdir()
    (home / "inbox" / "nodate" / "export.csv").write_text("\n".join(NODATE) + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from ingestion.settings import Paths
    from warehouse import pipeline
    from warehouse.release import publish

    home = tmp_path_factory.mktemp("policy") / "home"
    home.mkdir()
    _write(home)
    with building(home):
        where = Paths(home)
        pipeline.ingest_step("polic", "2026-11-18", where)
        pipeline.ingest_step("nodate", "2026-11-18", where)
        pipeline.build_step(where)
        info = json.loads((where.build_dir / "build_info.json").read_text(encoding="utf-8"))
        # The gate needs pooled marts one client cannot make; the release files are what
        # this test reads, so publish the build directly.
        release = publish(date(2026, 11, 18), info, {"skipped": "test"}, where)
    return where, Path(release.path)


def test_dbt_scores_by_the_policy_in_force(built) -> None:
    where, _ = built
    outcome = read_rows(
        where.build_db,
        "SELECT instrument, session_number, total FROM marts.fct_outcome_session "
        "WHERE site_id = 'polic' ORDER BY instrument, session_number",
    )
    assert outcome == [("gad7", 1, 3.5), ("phq9", 1, 6.0), ("phq9", 2, 5.0)]
    alliance = read_rows(
        where.build_db,
        "SELECT session_number, total FROM marts.fct_alliance_session "
        "WHERE site_id = 'polic' ORDER BY session_number",
    )
    assert alliance == [(1, 36.0), (2, 48.0)]  # session 3 never stored with a NULL total
    quarantined = read_rows(
        where.build_db,
        "SELECT site_id, category, rule_id, instrument, n_records FROM marts.fct_quarantine",
    )
    assert quarantined == [("polic", "completeness", "item.too_many_missing", "wai_sr", 1)]


def test_a_site_without_therapist_or_date_builds(built) -> None:
    where, _ = built
    rows = read_rows(
        where.build_db,
        "SELECT session_number, total, session_day FROM marts.fct_outcome_session "
        "WHERE site_id = 'nodate' ORDER BY session_number",
    )
    assert rows == [(1, 18.0, None), (2, 9.0, None)]  # PHQ-9 all 2s: 18; all 1s: 9


def test_release_records_the_policy_in_force(built) -> None:
    _, release = built
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    policy = {r["instrument"]: r for r in manifest["scoring_policy"]}
    assert policy["phq9"]["rounding"] == "half_up" and policy["phq9"]["set_by"] == "consortium"
    assert policy["phq9"]["source"] == "Protocol 4.5"
    assert (policy["wai_sr"]["max_missing"], policy["wai_sr"]["subscale_max_missing"]) == (0, 0)
    assert policy["gad7"] == {
        "instrument": "gad7",
        "max_missing": 2,
        "subscale_max_missing": 0,
        "method": "prorate_mean",
        "rounding": "none",
        "set_by": "registry",
        "overridden": [],
        "source": policy["gad7"]["source"],  # the registry's own provenance text
    }
    on_disk = json.loads((release / "rules" / "scoring_policy.json").read_text(encoding="utf-8"))
    assert on_disk == manifest["scoring_policy"]
    listed = {f["path"] for f in manifest["files"]}
    assert "rules/scoring_policy.json" in listed
