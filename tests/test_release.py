"""Releases: whole or nothing, immutable, reproducible whatever the dbt thread count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingestion.settings import Paths
from warehouse import pipeline, release

DATE = "2026-11-20"


def _build_and_check(home: Path, threads: int) -> None:
    for site in pipeline.site_ids():
        pipeline.ingest_step(site, DATE)
    pipeline.build_step(threads=threads)
    pipeline.check_step()


@pytest.fixture
def built(tiny_built: Path) -> Path:
    """The tiny consortium ingested, built with the default dbt threads and gated (a copy)."""
    return tiny_built


@pytest.mark.slow
def test_crash_while_exporting_leaves_no_release(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(release, "content_sha256", explode)
    with pytest.raises(OSError, match="disk full"):
        pipeline.release_step(DATE)
    releases = Paths(built).releases
    assert [p.name for p in releases.iterdir()] == []  # no staging leftovers, no latest


@pytest.mark.slow
def test_release_is_read_only_and_repeat_is_a_no_op(built: Path) -> None:
    first = pipeline.release_step(DATE)
    assert first["created"] is True
    folder = Path(first["path"])
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o222 == 0, path
    again = pipeline.release_step(DATE)
    assert again["created"] is False and again["release_id"] == first["release_id"]
    assert (Paths(built).releases / "latest").resolve() == folder


@pytest.mark.slow
def test_release_refuses_a_build_that_changed_after_the_gate(built: Path) -> None:
    where = Paths(built)
    gate = json.loads((where.build_dir / "gate_result.json").read_text())
    gate["build_db_sha256"] = "0" * 64
    (where.build_dir / "gate_result.json").write_text(json.dumps(gate))
    with pytest.raises(pipeline.GateFailedError, match="changed after the gate"):
        pipeline.release_step(DATE)
    assert not where.releases.exists() or not list(where.releases.iterdir())


@pytest.mark.slow
def test_same_log_different_threads_same_bytes(built: Path, tmp_path: Path) -> None:
    first = pipeline.release_step(DATE)
    other = tmp_path / "other"
    shutil.copytree(built, other, ignore=shutil.ignore_patterns("build", "releases", "audit"))
    # Same event log (copied), rebuilt with another dbt thread count than `built` used.
    from ingestion import delta_store

    where = Paths(other)
    assert delta_store.current_version(where.event_log) == delta_store.current_version(
        Paths(built).event_log
    )
    import os

    from warehouse.build import default_threads

    os.environ["BORDIN_HOME"] = str(other)
    try:
        pipeline.build_step(threads=1 if default_threads() != 1 else 4)
        pipeline.check_step()
        second = pipeline.release_step(DATE)
    finally:
        os.environ["BORDIN_HOME"] = str(built)
    assert second["content_sha256"] == first["content_sha256"]
    assert second["release_id"] == first["release_id"]


@pytest.mark.slow
def test_demo_size_data_gives_identical_bytes_across_runs_and_threads(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two data roots ingest the same demo inbox (their Delta files get different random
    names) and build with 1 and 4 dbt threads: every published Parquet byte must agree.
    Caught a real bug: parallel float aggregation changed the last bits of r between runs."""
    from warehouse.demo_consortium import write_demo_consortium

    hashes = []
    for threads, root in ((1, home), (4, tmp_path / "second")):
        root.mkdir(exist_ok=True)
        monkeypatch.setenv("BORDIN_HOME", str(root))
        write_demo_consortium(root)
        _build_and_check(root, threads=threads)
        hashes.append(pipeline.release_step(DATE)["content_sha256"])
    assert hashes[0] == hashes[1]


# --------------------------------------------------------------------------- intake, dates

# The only date-typed columns a release without calendar dates may carry: delivery nights.
DELIVERY_NIGHTS = {
    ("fct_quarantine", "first_logical_date"),
    ("fct_quarantine", "last_logical_date"),
    ("mart_site_intake", "first_logical_date"),
    ("mart_site_intake", "last_logical_date"),
}


def date_typed_columns(folder: Path) -> set[tuple[str, str]]:
    """(table, column) of every DATE / TIMESTAMP / TIME column in the release's Parquet files
    and in its marts.duckdb, which must agree."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    in_parquet = set()
    for path in sorted((folder / "parquet").glob("*.parquet")):
        for field in pq.read_schema(path):
            kind = field.type
            if pa.types.is_date(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind):
                in_parquet.add((path.stem, field.name))
    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    try:
        in_duckdb = set(
            con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE data_type LIKE 'DATE%' OR data_type LIKE 'TIME%'"
            ).fetchall()
        )
    finally:
        con.close()
    assert in_parquet == in_duckdb
    return in_parquet


def _parquet_rows(folder: Path, mart: str, columns: str, order: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect()
    try:
        path = folder / "parquet" / f"{mart}.parquet"
        return con.execute(f"SELECT {columns} FROM '{path}' ORDER BY {order}").fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_release_carries_site_intake_and_no_calendar_date(built: Path) -> None:
    from datetime import date

    from ingestion import delta_store

    result = pipeline.release_step(DATE)
    folder = Path(result["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parameters"]["release_calendar_dates"] is False
    assert manifest["intake_version"] == delta_store.current_version(Paths(built).intake)
    marts = {f["mart"] for f in manifest["files"] if "mart" in f}
    assert "mart_site_intake" in marts and "fct_session_calendar" not in marts
    # alpha: 5 clients x 3 sessions = 15 rows, each a WAI-SR and a PHQ-9: 30 administrations,
    # all accepted and new; beta: 4 clients x 3 sessions = 12 rows, 24 administrations.
    night = date(2026, 11, 20)
    assert _parquet_rows(
        folder,
        "mart_site_intake",
        "site_id, files_delivered, files_ingested, files_rejected, rows_in, "
        "administrations_offered, administrations_accepted, administrations_quarantined, "
        "administrations_not_administered, administrations_unaccounted, quarantine_records, "
        "events_recorded, events_amended, events_retracted, events_withdrawn, "
        "first_logical_date, last_logical_date, suppressed_cells",
        "site_id",
    ) == [
        ("alpha", 1, 1, 0, 15, 30, 30, 0, 0, 0, 0, 30, 0, 0, 0, night, night, ""),
        ("beta", 1, 1, 0, 12, 24, 24, 0, 0, 0, 0, 24, 0, 0, 0, night, night, ""),
    ]
    # No participant's calendar date in any released table: only delivery nights are dates.
    assert date_typed_columns(folder) == DELIVERY_NIGHTS
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="intake"' in report
    for session_date in ("2026-03-07", "2026-03-14", "2026-03-21"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert session_date.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_calendar_dates_released_only_when_the_consortium_allows(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date, timedelta

    from ingestion.pseudonyms import PseudonymKey
    from tests.conftest import TEST_KEY
    from warehouse.rebuild import rebuild

    consortium = tiny_home / "consortium.yml"
    plain = consortium.read_text(encoding="utf-8")
    consortium.write_text(plain + "release: {calendar_dates: true}\n", encoding="utf-8")
    _build_and_check(tiny_home, threads=1)
    result = pipeline.release_step(DATE)
    folder = Path(result["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parameters"]["release_calendar_dates"] is True
    assert date_typed_columns(folder) == DELIVERY_NIGHTS | {
        ("fct_session_calendar", "session_date")
    }

    # Every client of both sites had sessions 1, 2, 3 on 7, 14 and 21 March 2026, each with
    # a WAI-SR and a PHQ-9 (tests/fixtures/tiny).
    pid = PseudonymKey(TEST_KEY.encode()).pseudonym
    clients = {"alpha": ["A1", "A2", "A3", "A4", "A5"], "beta": ["B1", "B2", "B3", "B4"]}
    expected = sorted(
        (site, pid(site, "client", code), n, date(2026, 3, 7) + timedelta(days=7 * (n - 1)))
        + (7 * (n - 1), 2)
        for site, codes in clients.items()
        for code in codes
        for n in (1, 2, 3)
    )
    rows = _parquet_rows(
        folder,
        "fct_session_calendar",
        "site_id, client_pid, session_number, session_date, session_day, n_administrations",
        "site_id, client_pid, session_number",
    )
    assert rows == expected and len(rows) == 27

    # A rebuild follows the release's own rules/consortium.yml, not today's file.
    consortium.write_text(plain, encoding="utf-8")
    report = rebuild(result["release_id"])
    assert report.reproduced, report.checks
    assert "parquet/fct_session_calendar.parquet" in {c.path for c in report.checks}


def test_publishing_refuses_a_calendar_date_it_may_not_carry(tmp_path: Path) -> None:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "parquet").mkdir()

    def mart(name: str, column: str, value: object) -> dict:
        pq.write_table(pa.table({column: [value]}), tmp_path / "parquet" / f"{name}.parquet")
        return {"path": f"parquet/{name}.parquet", "mart": name}

    nights = [mart("mart_site_intake", "first_logical_date", dt.date(2026, 11, 20))]
    release.check_calendar_dates(tmp_path, nights, allowed=False)
    calendar = [mart("fct_session_calendar", "session_date", dt.date(2026, 3, 7))]
    release.check_calendar_dates(tmp_path, nights + calendar, allowed=True)
    with pytest.raises(release.CalendarDateError, match="fct_session_calendar.session_date"):
        release.check_calendar_dates(tmp_path, calendar, allowed=False)
    stray = [mart("fct_episode", "first_session_at", dt.datetime(2026, 3, 7, 10, 0))]
    with pytest.raises(release.CalendarDateError, match="fct_episode.first_session_at"):
        release.check_calendar_dates(tmp_path, stray, allowed=True)


@pytest.mark.parametrize(
    ("block", "key", "problem"),
    [
        ("release: [calendar_dates]", "release", "must be a mapping"),
        ("release: {calendar_dates: 'yes'}", "release.calendar_dates", "must be true or false"),
        ("release: {calendar_date: true}", "release.calendar_date", "not a known key"),
    ],
)
def test_release_options_are_validated_on_load(
    tmp_path: Path, block: str, key: str, problem: str
) -> None:
    from ingestion.config_errors import ConfigError
    from ingestion.consortium import load_consortium
    from tests.conftest import FIXTURES

    file = tmp_path / "consortium.yml"
    file.write_text((FIXTURES / "tiny" / "consortium.yml").read_text() + block + "\n")
    with pytest.raises(ConfigError) as raised:
        load_consortium(file)
    assert (raised.value.file, raised.value.key) == (str(file), key)
    assert problem in raised.value.problem
    file.write_text((FIXTURES / "tiny" / "consortium.yml").read_text())
    assert load_consortium(file).release.calendar_dates is False


@pytest.mark.slow
def test_site_intake_counts_corrections_withdrawals_and_a_rejected_file(built: Path) -> None:
    """Night 2 at alpha: its full export again without A3's session 3 and with A1's session-3
    PHQ-9 corrected, a withdrawal file for A5 and a file without the configured columns.
    Withdrawals are configured after night 1 (which had no withdrawal file)."""
    import csv
    from datetime import date

    import yaml

    tiny_home = built
    pipeline.release_step(DATE)
    doc = yaml.safe_load((tiny_home / "consortium.yml").read_text())
    doc["sites"][0]["withdrawals"] = {"file_glob": "withdrawals*.csv", "client_code_column": "id"}
    (tiny_home / "consortium.yml").write_text(yaml.safe_dump(doc))

    inbox = tiny_home / "inbox" / "alpha"
    header, *body = list(csv.reader((inbox / "alpha_export.csv").open()))
    phq = {header.index(f"phq9_{i}") for i in range(1, 10)}
    night2 = []
    for row in body:
        if row[:2] == ["A3", "session_3_arm_1"]:
            continue
        if row[:2] == ["A1", "session_3_arm_1"]:
            row = ["0" if i in phq else v for i, v in enumerate(row)]
        night2.append(row)
    with (inbox / "alpha_export_2.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *night2])
    (inbox / "alpha_export.csv").unlink()
    (inbox / "withdrawals_1.csv").write_text("id\nA5\n")
    (inbox / "broken.csv").write_text("just,some,columns\n1,2,3\n")
    for site in pipeline.site_ids():
        pipeline.ingest_step(site, "2026-11-21")
    pipeline.build_step()
    pipeline.check_step()
    folder = Path(pipeline.release_step("2026-11-21")["path"])

    (alpha,) = _parquet_rows(
        folder, "mart_site_intake", "* EXCLUDE (small_cell_threshold)", "site_id"
    )[:1]
    assert alpha == (
        "alpha",
        4,  # files: night 1's export; night 2's export, withdrawal file and broken file
        3,
        1,  # broken.csv, rejected whole
        15 + 14 + 1,  # rows: night 1, night 2 (A3 s3 gone), broken.csv's one data row
        30 + 28,  # administrations offered: 2 per export row
        30 + 22,  # accepted: night 2 less A5's 3 sessions x 2 (A5 withdrew first)
        6,  # quarantined: A5's six (client.consent_withdrawn)
        0,
        0,  # unaccounted: 58 = 52 + 6 + 0
        6 + 1,  # quarantine records: A5's six, and broken.csv's
        30,  # recorded: night 1 only
        1,  # amended: A1's session-3 PHQ-9
        2,  # retracted: A3's session-3 WAI-SR and PHQ-9
        None,  # 1 withdrawal: a small cell, suppressed
        date(2026, 11, 20),
        date(2026, 11, 21),
        "events_withdrawn",
    )
