"""The real nightly DAG (dag.test via `bordin nightly`) on the hand-scorable tiny consortium.

Expected values are worked out by hand from tests/fixtures/tiny (see the comments), and the
pooled estimates are recomputed here with numpy (fixed effect) and statsmodels (DerSimonian-
Laird), independently of the SQL that produced them.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from tests.conftest import TEST_KEY, copy_root, run_bordin

pytestmark = pytest.mark.slow

LOGICAL_DATE = "2026-11-20"

# Early alliance = mean WAI-SR total over sessions 1-3 (every item equal -> 12 x value).
# Improvement = PHQ-9 session 1 - session 3 (positive = better).
ALPHA = {  # client: (early alliance, PHQ-9 s1, s3)
    "A1": (36.0, 18.0, 9.0),
    "A2": (48.0, 18.0, 0.0),
    "A3": (24.0, 18.0, 18.0),
    "A4": (60.0, 27.0, 9.0),
    "A5": (12.0, 9.0, 18.0),
}
BETA = {  # opposite sign to alpha, so Q > k - 1 and the DL tau2 is positive
    "B1": (24.0, 18.0, 9.0),
    "B2": (36.0, 18.0, 18.0),
    "B3": (48.0, 9.0, 9.0),
    "B4": (60.0, 9.0, 18.0),
}


def _pid(site: str, code: str) -> str:
    import hashlib
    import hmac

    msg = f"{site}:client:{code}".encode()
    return hmac.new(TEST_KEY.encode(), msg, hashlib.sha256).hexdigest()[:32]


def _r(clients: dict[str, tuple[float, float, float]]) -> float:
    x = np.array([v[0] for v in clients.values()])
    y = np.array([v[1] - v[2] for v in clients.values()])
    return float(np.corrcoef(x, y)[0, 1])


@pytest.fixture
def nightly(home: Path, tiny_nightly_root: Path) -> Path:
    """A private copy of the tiny consortium after `bordin nightly` (run once per test run)."""
    return copy_root(tiny_nightly_root, home)


def _release(home: Path) -> Path:
    return (home / "releases" / "latest").resolve()


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_nightly_publishes_hand_checked_marts(nightly: Path) -> None:
    release = _release(nightly)
    db = release / "marts.duckdb"

    # Prorated PHQ-9: A1 session 2 has 8 items of 2 and one blank -> 16 / 8 x 9 = 18.
    rows = _query(
        db,
        "SELECT total, severity_band, at_caseness, items_answered, prorated "
        "FROM marts.fct_outcome_session "
        f"WHERE client_pid = '{_pid('alpha', 'A1')}' AND session_number = 2",
    )
    assert rows == [(18.0, "moderately_severe", True, 8, True)]

    # A5 deteriorated by 9 (PHQ-9 9 -> 18); reliable change threshold 6.
    rows = _query(
        db,
        "SELECT baseline_score, final_score, change, reliable_improvement, "
        "reliable_deterioration FROM marts.fct_episode_outcome "
        f"WHERE client_pid = '{_pid('alpha', 'A5')}' AND instrument = 'phq9'",
    )
    assert rows == [(9.0, 18.0, -9.0, False, True)]

    # WAI-SR all 4s: total 48, each four-item subscale 16.
    rows = _query(
        db,
        "SELECT total, goal, task, bond, items_answered FROM marts.fct_alliance_session "
        f"WHERE client_pid = '{_pid('alpha', 'A2')}' AND session_number = 1",
    )
    assert rows == [(48.0, 16.0, 16.0, 16.0, 12)]

    sites = {
        row[0]: row[1:]
        for row in _query(
            db,
            "SELECT site_id, n, r, ci_low, ci_high FROM marts.mart_alliance_outcome_site "
            "WHERE is_primary",
        )
    }
    for site, clients in (("alpha", ALPHA), ("beta", BETA)):
        n, r, lo, hi = sites[site]
        expected_r = _r(clients)
        half = 1.959963984540054 / math.sqrt(len(clients) - 3)
        assert n == len(clients)
        assert r == pytest.approx(expected_r, abs=1e-12)
        assert lo == pytest.approx(math.tanh(math.atanh(expected_r) - half), abs=1e-12)
        assert hi == pytest.approx(math.tanh(math.atanh(expected_r) + half), abs=1e-12)

    z = np.array([math.atanh(_r(ALPHA)), math.atanh(_r(BETA))])
    v = np.array([1 / (len(ALPHA) - 3), 1 / (len(BETA) - 3)])
    reference = combine_effects(z, v, method_re="dl")
    pooled = {
        row[0]: row[1:]
        for row in _query(
            db,
            "SELECT method, k_sites, n_clients, r, ci_low, ci_high, tau2 "
            "FROM marts.mart_alliance_outcome_pooled "
            "WHERE scope = 'primary' AND correlation_type = 'raw'",  # the headline rows
        )
    }
    w = 1 / v
    z_fixed = float((w * z).sum() / w.sum())
    assert pooled["fixed"][:3] == (2, 9, pytest.approx(math.tanh(z_fixed), abs=1e-12))
    assert reference.tau2 > 0  # the fixture is heterogeneous; no truncation at zero involved
    assert pooled["random_dl"][2] == pytest.approx(math.tanh(reference.mean_effect_re), abs=1e-9)
    assert pooled["random_dl"][5] == pytest.approx(reference.tau2, abs=1e-9)
    ci_low, ci_high = reference.conf_int(use_t=False)[1]  # row 1 = random effects
    assert pooled["random_dl"][3] == pytest.approx(math.tanh(ci_low), abs=1e-9)
    assert pooled["random_dl"][4] == pytest.approx(math.tanh(ci_high), abs=1e-9)


def test_release_manifest_lists_every_file_with_hash(nightly: Path) -> None:
    import hashlib

    release = _release(nightly)
    manifest = json.loads((release / "manifest.json").read_text())
    for key in ("release_id", "logical_date", "event_log_version", "code_version", "files"):
        assert key in manifest
    assert manifest["logical_date"] == LOGICAL_DATE
    assert manifest["dbt"]["failures"] == []
    assert manifest["gx"]["success"] is True
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {str(p.relative_to(release)) for p in release.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert listed == on_disk
    for entry in manifest["files"]:
        data = (release / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    marts = {f["mart"]: f["rows"] for f in manifest["files"] if "mart" in f}
    assert marts["fct_alliance_session"] == 27  # 9 clients x 3 sessions
    # primary and per-rater-role scope x raw and residualized r x fixed and random_dl; only
    # client ratings here: 2 x 2 x 2 = 8 (the headline is the primary/raw pair).
    assert marts["mart_alliance_outcome_pooled"] == 8


def test_no_raw_codes_or_key_in_release(nightly: Path) -> None:
    release = _release(nightly)
    codes = [*ALPHA, *BETA, "A-T1", "A-T2", "B-T1", "B-T2"]
    for path in release.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert TEST_KEY.encode() not in blob, path
            if path.suffix == ".parquet" or path.name == "manifest.json":
                for code in codes:
                    assert f'"{code}"'.encode() not in blob and code.encode() + b"\x00" not in blob
    con = duckdb.connect(str(release / "marts.duckdb"), read_only=True)
    try:
        for (table,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
        ).fetchall():
            text = " ".join(map(str, con.execute(f"SELECT * FROM marts.{table}").fetchall()))
            for code in codes:
                assert f"'{code}'" not in text
    finally:
        con.close()


def test_second_night_on_same_inbox_is_a_recorded_no_op(nightly: Path) -> None:
    from ingestion import delta_store
    from ingestion.events import EVENT_SCHEMA
    from ingestion.settings import Paths

    where = Paths(nightly)
    before_events = delta_store.read(where.event_log, EVENT_SCHEMA).num_rows
    before = json.loads((_release(nightly) / "manifest.json").read_text())

    # Re-deliver a file under another name: same bytes, so nothing new.
    src = nightly / "inbox" / "alpha" / "alpha_export.csv"
    (nightly / "inbox" / "alpha" / "alpha_export_resent.csv").write_bytes(src.read_bytes())
    result = run_bordin("nightly", "--date", LOGICAL_DATE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert delta_store.read(where.event_log, EVENT_SCHEMA).num_rows == before_events
    after = json.loads((_release(nightly) / "manifest.json").read_text())
    assert after["content_sha256"] == before["content_sha256"]
    assert after["release_id"] == before["release_id"]
    parquet = lambda m: {f["path"]: f["sha256"] for f in m["files"] if f.get("mart")}  # noqa: E731
    assert parquet(after) == parquet(before)
    audit = [json.loads(line) for line in where.audit_log.read_text().splitlines()]
    second_night = [a for a in audit if a["step"] == "ingest"][-2:]
    assert all(a["no_op"] for a in second_night)
    statuses = {f["status"] for a in second_night for f in a["files"]}
    assert statuses <= {"already_ingested", "duplicate_in_batch"}
    # Every re-run task is recorded, and recorded as a no-op.
    last = {a["step"]: a for a in audit}
    assert last["build"]["no_op"] is True and last["release"]["no_op"] is True
    assert [a["step"] for a in audit].count("build") == 2


def test_failing_expectation_publishes_nothing(
    tiny_built: Path, airflow_ready: Path, tmp_path: Path
) -> None:
    """From a gated build (so the night's build is a no-op): the gate runs again with a planted
    impossible expectation, fails, and the night publishes nothing."""
    tiny_home = tiny_built
    extra = tmp_path / "impossible.yml"
    extra.write_text(
        "fct_alliance_session:\n"
        "  - type: expect_table_row_count_to_be_between\n"
        "    id: planted_impossible_row_count\n"
        "    category: plausibility\n"
        "    why: planted by the test to prove a failing check blocks the release\n"
        "    kwargs: {min_value: 0, max_value: 0}\n"
    )
    result = run_bordin(
        "nightly", "--date", LOGICAL_DATE, env={"BORDIN_EXTRA_EXPECTATIONS": str(extra)}
    )
    assert result.returncode != 0
    releases = tiny_home / "releases"
    assert not releases.exists() or not [p for p in releases.iterdir()]
    gate = json.loads((tiny_home / "build" / "gate_result.json").read_text())
    assert gate["success"] is False


def test_mapped_ingest_tasks_are_named_by_site_in_the_ui(tiny_nightly_root: Path) -> None:
    """Airflow's grid showed the per-site ingests as [0], [1]; it now shows the site."""
    import sqlite3

    database = tiny_nightly_root / "airflow" / "airflow.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "SELECT map_index, rendered_map_index FROM task_instance WHERE task_id = 'ingest'"
        ).fetchall()
    assert sorted(rows) == [(0, "alpha"), (1, "beta")]


def test_readme_python_query_gives_one_row_per_site(tiny_nightly_root: Path) -> None:
    """The README's first query is what analysts copy: run it as written on a real release."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python", 1)[1].split("```", 1)[0]
    sql = "".join(re.findall(r'^\s*"([^"]*)"', block, flags=re.MULTILINE))
    assert sql.startswith("SELECT site_id") and "is_primary" in sql
    database = _release(tiny_nightly_root) / "marts.duckdb"
    with contextlib.closing(duckdb.connect(str(database), read_only=True)) as con:
        rows = con.execute(sql).fetchall()
    assert [row[0] for row in rows] == ["alpha", "beta"]
