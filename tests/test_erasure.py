"""Erasure is final: serialized with publishing, every inbox format redacted, codes normalized
like intake, unknown codes refused without writing anything.

Fixtures (expected counts worked out from the files):
- tiny alpha (REDCap): A2 has 3 rows (sessions 1-3) x 2 forms = 6 events.
- formats/qualtrics_export.csv (site qual): C2 is records 6-7 (2 rows); C1 (4-5) and C3 (8) stay.
- formats/long_cp1252.csv (site longde): K2 is lines 6-8 (3 lines, the last truncated);
  K1's 4 lines stay, with their cp1252 bytes ("T\xd61").
- SPSS (tests/test_readers_spss.py fixture): C2 is cases 3-4; C1, C1, C3 stay.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import duckdb
import pyreadstat
import pytest

from ingestion import delta_store
from ingestion.events import CLIENT_ERASED, EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.locks import exclusive_lock
from ingestion.pseudonyms import PseudonymKey
from ingestion.settings import Paths
from tests.conftest import FIXTURES, TEST_KEY, run_bordin
from tests.test_event_sourcing import _configure
from tests.test_readers_qualtrics import deliver
from tests.test_readers_spss import SITE as SPSS_SITE
from tests.test_readers_spss import _consortium as spss_consortium
from tests.test_readers_spss import write_sav
from warehouse import erasure
from warehouse.erasure import UnknownClientError, erase_client

DATE, NEXT = "2026-11-20", "2026-11-21"
PID = PseudonymKey(TEST_KEY.encode()).pseudonym
FORMATS = FIXTURES / "formats"


def _erase(site: str, code: str):
    return erase_client(site, code, reason="GDPR art. 17 request", operator="dm.jones")


def _erased_records(home: Path) -> list[dict]:
    rows = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    return [r for r in rows if r["event_type"] == CLIENT_ERASED]


def _reingest_is_no_op(site: str) -> None:
    result = ingest_site(site, NEXT)
    assert result.files and {f.status for f in result.files} == {"already_ingested"}


# --------------------------------------------------------------------------- codes


def test_code_with_surrounding_spaces_erases_the_inbox_rows_too(tiny_home: Path) -> None:
    ingest_site("alpha", DATE)
    report = _erase("alpha", "  A2 ")
    assert report.client_pid == PID("alpha", "client", "A2")
    assert report.events_removed == 6 and report.inbox_rows_removed == 3
    text = (tiny_home / "inbox" / "alpha" / "alpha_export.csv").read_text()
    assert "A2," not in text and text.count("A1,") == 3
    _reingest_is_no_op("alpha")


def test_unknown_code_is_refused_and_nothing_is_written(tiny_home: Path) -> None:
    ingest_site("alpha", DATE)
    where = Paths(tiny_home)
    before_versions = [delta_store.current_version(t) for t in (where.event_log, where.quarantine)]
    inbox = (tiny_home / "inbox" / "alpha" / "alpha_export.csv").read_bytes()
    audit_before = where.audit_log.read_text()
    where.build_dir.mkdir(parents=True, exist_ok=True)
    (where.build_dir / "gate_result.json").write_text("{}")
    with pytest.raises(UnknownClientError, match="no data for client code 'A9' at site 'alpha'"):
        _erase("alpha", "A9")
    assert [delta_store.current_version(t) for t in (where.event_log, where.quarantine)] == (
        before_versions
    )
    assert (tiny_home / "inbox" / "alpha" / "alpha_export.csv").read_bytes() == inbox
    assert where.audit_log.read_text() == audit_before
    assert (where.build_dir / "gate_result.json").exists()
    assert _erased_records(tiny_home) == []


def test_cli_unknown_code_exits_non_zero_with_one_line(tiny_home: Path) -> None:
    ingest_site("alpha", DATE)
    result = run_bordin(
        "erase", "--site", "alpha", "--client", "A9", "--reason", "r", "--operator", "o"
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "A9" in lines[0] and "nothing was erased" in lines[0]
    assert _erased_records(tiny_home) == []


def test_withdrawal_file_loses_the_clients_line_too(tiny_home: Path) -> None:
    """Not a regression (today's code handled it): the withdrawal CSV keeps working."""
    withdrawals = {"file_glob": "withdrawals*.csv", "client_code_column": "client"}
    _configure(tiny_home, withdrawals=withdrawals)
    path = tiny_home / "inbox" / "alpha" / "withdrawals_1.csv"
    path.write_text("client\nA2\nA3\n", encoding="utf-8")
    ingest_site("alpha", DATE)
    assert _erase("alpha", "A2").inbox_rows_removed == 3 + 1
    assert path.read_text(encoding="utf-8") == "client\nA3\n"
    _reingest_is_no_op("alpha")


# --------------------------------------------------------------------------- formats


@pytest.fixture
def fhome(home: Path) -> Path:
    shutil.copy(FORMATS / "consortium.yml", home)
    return home


def test_qualtrics_export_loses_the_clients_rows_only(fhome: Path) -> None:
    path = deliver(fhome, "qual", "qualtrics_export.csv")
    ingest_site("qual", DATE)
    report = _erase("qual", "C2")
    assert report.inbox_rows_removed == 2
    text = path.read_text(encoding="utf-8-sig")
    assert ",C2," not in text and text.count(",C1,") == 2 and text.count(",C3,") == 1
    assert '{""ImportId"":""QID5_1""}' in text  # the three header rows are kept
    _reingest_is_no_op("qual")


def test_long_cp1252_export_keeps_its_encoding(fhome: Path) -> None:
    path = deliver(fhome, "longde", "long_cp1252.csv")
    ingest_site("longde", DATE)
    assert _erase("longde", "K2").inbox_rows_removed == 3
    lines = path.read_bytes().splitlines()
    assert [line.split(b";")[0] for line in lines] == [b"Klient"] + [b"K1"] * 4
    assert lines[1].startswith(b"K1;T\xd61;1;05.03.2026;WAI-SR;4,0;")
    _reingest_is_no_op("longde")


def test_zip_member_is_rewritten_without_the_client(fhome: Path) -> None:
    target = fhome / "inbox" / "zipq" / "export.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", "codebook\n")
        archive.write(FORMATS / "qualtrics_export.csv", "data/qualtrics_export.csv")
    ingest_site("zipq", DATE)
    assert _erase("zipq", "C2").inbox_rows_removed == 2
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == ["README.txt", "data/qualtrics_export.csv"]
        assert archive.read("README.txt") == b"codebook\n"
        text = archive.read("data/qualtrics_export.csv").decode("utf-8-sig")
    assert ",C2," not in text and text.count(",C1,") == 2 and text.count(",C3,") == 1
    _reingest_is_no_op("zipq")


def _sav_cases(raw: bytes):
    data, meta = pyreadstat.read_sav(io.BytesIO(raw), user_missing=True)
    return data, meta


def test_spss_sav_is_rewritten_without_the_clients_cases(home: Path) -> None:
    zipped = {**SPSS_SITE, "site_id": "spsszip", "format": "zip", "file_glob": "*.zip"}
    spss_consortium(home, {**zipped, "zip": {"format": "spss_sav"}})
    path = home / "inbox" / "spss" / "export.sav"
    write_sav(path)
    member = write_sav(home / "member.sav")
    (home / "inbox" / "spsszip").mkdir()
    with zipfile.ZipFile(home / "inbox" / "spsszip" / "export.zip", "w") as archive:
        archive.writestr("export.sav", member)
    ingest_site("spss", DATE)
    ingest_site("spsszip", DATE)
    assert _erase("spss", "C2").inbox_rows_removed == 2
    assert _erase("spsszip", "C2").inbox_rows_removed == 2
    with zipfile.ZipFile(home / "inbox" / "spsszip" / "export.zip") as archive:
        zipped_raw = archive.read("export.sav")
    for raw in (path.read_bytes(), zipped_raw):
        data, meta = _sav_cases(raw)
        assert data["ClientID"].tolist() == ["C1", "C1", "C3"]
        # Labels and user-missing declarations survive; the declared 99 stays a value.
        assert meta.variable_value_labels["Visit"][1.0] == "Session 1"
        assert meta.missing_ranges["WAI1"] == [{"lo": 98.0, "hi": 98.0}, {"lo": 99.0, "hi": 99.0}]
        assert data["WAI1"].tolist()[1] == 99.0
    _reingest_is_no_op("spss")
    _reingest_is_no_op("spsszip")


def test_scratch_and_rebuild_folders_are_deleted(tiny_home: Path) -> None:
    ingest_site("alpha", DATE)
    where = Paths(tiny_home)
    for folder in (tiny_home / "scratch" / "rebuild-x" / "build", where.scratch / "alpha"):
        folder.mkdir(parents=True)
        (folder / "warehouse.duckdb").write_bytes(b"A2 data")
    _erase("alpha", "A2")
    assert not (tiny_home / "scratch").exists() and not where.scratch.exists()


# --------------------------------------------------------------------------- serialization


def test_erasure_waits_for_publishing_and_for_a_running_build(tiny_home: Path) -> None:
    ingest_site("alpha", DATE)
    where = Paths(tiny_home)
    version = delta_store.current_version(where.event_log)
    locks = (erasure.publish_lock_path(where), where.build_dir / ".writer.lock")
    for lock, code in zip(locks, ("A1", "A3"), strict=True):
        with exclusive_lock(lock, wait=False):
            worker = threading.Thread(target=_erase, args=("alpha", code))
            worker.start()
            time.sleep(1.0)
            assert worker.is_alive(), f"erasure did not wait for {lock.name}"
            assert delta_store.current_version(where.event_log) == version
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert delta_store.current_version(where.event_log) > version
        version = delta_store.current_version(where.event_log)


def _pids_in_release(release: Path) -> set[str]:
    con = duckdb.connect()
    try:
        pids: set[str] = set()
        for parquet in (release / "parquet").glob("*.parquet"):
            names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{parquet}'").fetchall()]
            if "client_pid" in names:
                rows = con.execute(f"SELECT DISTINCT client_pid FROM '{parquet}'").fetchall()
                pids |= {r[0] for r in rows}
        return pids
    finally:
        con.close()


@pytest.mark.slow
def test_a_build_racing_the_erasure_is_never_published(tiny_built: Path) -> None:
    from warehouse import pipeline

    where = Paths(tiny_built)
    pid = PID("alpha", "client", "A2")
    names = ("warehouse.duckdb", "gate_result.json", "build_info.json")
    saved = {n: (where.build_dir / n).read_bytes() for n in names}
    pinned = json.loads(saved["build_info.json"])["event_log_version"]
    _erase("alpha", "A2")
    # The racing build swaps in what it built from the log pinned before the erasure.
    for name, raw in saved.items():
        (where.build_dir / name).write_bytes(raw)
    with pytest.raises(pipeline.GateFailedError, match="rebuild first"):
        pipeline.release_step(NEXT)
    assert not where.releases.exists() or not any(where.releases.iterdir())
    # The next build is not skipped, and its release does not hold the client.
    built = pipeline.build_step()
    assert built["event_log_version"] > pinned
    pipeline.check_step()
    published = pipeline.release_step(NEXT)
    assert published["created"]
    pids = _pids_in_release(where.releases / published["release_id"])
    assert pids and pid not in pids


def test_erasure_under_another_key_stops_before_writing(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a different key A2's pseudonym matches nothing of the real A2; the erasure must
    stop on the data root's key fingerprint, not erase (or tombstone) a stranger."""
    from ingestion.key_fingerprint import KeyMismatchError

    ingest_site("alpha", DATE)
    where = Paths(tiny_home)
    before = delta_store.current_version(where.event_log)
    inbox = (tiny_home / "inbox" / "alpha" / "alpha_export.csv").read_bytes()
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY", "another-key-9876543210")
    with pytest.raises(KeyMismatchError):
        _erase("alpha", "A2")
    assert delta_store.current_version(where.event_log) == before
    assert (tiny_home / "inbox" / "alpha" / "alpha_export.csv").read_bytes() == inbox
    assert _erased_records(tiny_home) == []


def test_redacted_file_keeps_its_delivery_time_so_it_is_not_taken_for_an_upload(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_home / "inbox" / "alpha" / "alpha_export.csv"
    delivered = path.stat().st_mtime_ns - 3_600 * 10**9  # delivered an hour ago
    os.utime(path, ns=(delivered, delivered))
    ingest_site("alpha", DATE)
    _erase("alpha", "A2")
    assert path.stat().st_mtime_ns == delivered
    monkeypatch.delenv("BORDIN_QUIET_PERIOD_SECONDS")  # the default quiet period applies
    (outcome,) = ingest_site("alpha", DATE).files
    assert outcome.status == "already_ingested"  # not "waiting"
