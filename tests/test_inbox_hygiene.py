"""Issue 12: per-site delivery idempotency, the key fingerprint, and inbox hygiene.

Each test reproduces a red-team finding against the REDCap sites of the tiny consortium
(WAI-SR 12 items + PHQ-9 9 items: one row offers 2 administrations).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import INTAKE_SCHEMA, ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths
from tests.conftest import FIXTURES, TEST_KEY
from tests.test_ingest import DATE, _deliver, _row

WAI, PHQ = [3] * 12, [1] * 9
WITHDRAWAL = b"code,reason\nC1,asked\n"


@pytest.fixture
def sites_home(home: Path) -> Path:
    """alpha and beta, both delivering withdrawal files `withdraw*.csv` (column `code`)."""
    doc = yaml.safe_load((FIXTURES / "tiny" / "consortium.yml").read_text())
    for site in doc["sites"]:
        site["withdrawals"] = {"file_glob": "withdraw*.csv", "client_code_column": "code"}
    (home / "consortium.yml").write_text(yaml.safe_dump(doc))
    return home


def _events(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()


def _quarantine(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()


def _intake(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).intake, INTAKE_SCHEMA).to_pylist()


def _pid(site: str, code: str, key: str = TEST_KEY) -> str:
    return PseudonymKey(key.encode()).pseudonym(site, "client", code)


# ------------------------------------------------------------------ 1. per-site idempotency


def test_a_withdrawal_with_the_same_bytes_as_another_sites_file_is_applied(
    sites_home: Path,
) -> None:
    for site in ("alpha", "beta"):
        _deliver(sites_home, "export.csv", [_row("C1", 1, WAI, PHQ)], site=site)
    ingest_site("beta", DATE)
    # alpha's withdrawal list is delivered and ingested first...
    (sites_home / "inbox" / "alpha" / "withdraw_1.csv").write_bytes(WITHDRAWAL)
    ingest_site("alpha", DATE)
    # ...then beta withdraws its own C1 with a file of exactly the same bytes.
    (sites_home / "inbox" / "beta" / "withdraw_7.csv").write_bytes(WITHDRAWAL)
    result = ingest_site("beta", "2026-11-21")
    (outcome,) = [f for f in result.files if f.kind == "withdrawals"]
    assert (outcome.status, outcome.withdrawn) == ("ingested", 1)
    withdrawn = {(e["site_id"], e["client_pid"]) for e in _events(sites_home)
                 if e["event_type"] == "consent_withdrawn"}  # fmt: skip
    assert withdrawn == {("alpha", _pid("alpha", "C1")), ("beta", _pid("beta", "C1"))}
    # Each site's delivery is now on record for that site: delivering again is a no-op.
    assert ingest_site("beta", "2026-11-22").no_op
    assert ingest_site("alpha", "2026-11-22").no_op


def _legacy_commit(home: Path, site: str, name: str, sha: str, with_intake: bool) -> None:
    """What ingestion wrote before per-site ids: one `bordin.file.<sha>` marker per table."""
    where = Paths(home)
    rows = []
    if with_intake:
        rows = [{"site_id": site, "source_file": name, "source_sha256": sha, "batch_id": "b",
                 "logical_date": None, "kind": "export", "status": "ingested"}]  # fmt: skip
    intake = pa.Table.from_pylist(rows, schema=INTAKE_SCHEMA)
    delta_store.append(where.intake, intake, [sha], {})
    delta_store.append(where.quarantine, QUARANTINE_SCHEMA.empty_table(), [sha], {})
    delta_store.append(where.event_log, EVENT_SCHEMA.empty_table(), [sha], {})


def test_a_file_recorded_under_the_old_app_id_stays_ingested_for_its_site(
    sites_home: Path,
) -> None:
    from ingestion.ingest import sha256_file

    path = _deliver(sites_home, "old.csv", [_row("C1", 1, WAI, PHQ)], site="alpha")
    sha = sha256_file(path)
    _legacy_commit(sites_home, "alpha", "old.csv", sha, with_intake=True)
    shutil.copy(path, path.with_name("renamed.csv"))
    again = ingest_site("alpha", DATE)
    assert again.no_op and {f.status for f in again.files} == {
        "already_ingested",
        "duplicate_in_batch",
    }
    # The same bytes at beta were never ingested there.
    (sites_home / "inbox" / "beta").mkdir()
    shutil.copy(path, sites_home / "inbox" / "beta" / "old.csv")
    beta = ingest_site("beta", DATE)
    assert [(f.source_file, f.status) for f in beta.files] == [("old.csv", "ingested")]
    assert {e["site_id"] for e in _events(sites_home)} == {"beta"}


def test_an_old_marker_without_an_intake_row_counts_for_every_site(sites_home: Path) -> None:
    # Erasure's redacted copies were marked without an intake row; they stay committed.
    path = _deliver(sites_home, "redacted.csv", [_row("C1", 1, WAI, PHQ)], site="alpha")
    from ingestion.ingest import sha256_file

    _legacy_commit(sites_home, "alpha", "redacted.csv", sha256_file(path), with_intake=False)
    assert ingest_site("alpha", DATE).no_op


def test_delta_store_keeps_the_old_call_and_takes_site_and_kind(sites_home: Path) -> None:
    where = Paths(sites_home)
    sha = "ab" * 32
    delta_store.append(where.event_log, EVENT_SCHEMA.empty_table(), [sha], {})
    assert delta_store.is_committed(where.event_log, sha)
    assert not delta_store.is_committed(where.event_log, sha, site_id="beta", kind="export")
    other = "cd" * 32
    meta = {"bordin.redacted_from": sha}
    delta_store.append(
        where.event_log, EVENT_SCHEMA.empty_table(), [other], meta, site_id="beta", kind="export"
    )
    assert delta_store.is_committed(where.event_log, other, site_id="beta", kind="export")
    assert not delta_store.is_committed(where.event_log, other, site_id="alpha", kind="export")
    assert not delta_store.is_committed(where.event_log, other, site_id="beta", kind="withdrawals")


def test_a_caller_asking_by_hash_alone_still_finds_an_ingested_file(sites_home: Path) -> None:
    # warehouse/erasure.py asks `is_committed(event_log, sha)` before marking a redacted copy.
    from ingestion.ingest import sha256_file

    path = _deliver(sites_home, "e.csv", [_row("C1", 1, WAI, PHQ)], site="alpha")
    ingest_site("alpha", DATE)
    log = Paths(sites_home).event_log
    assert delta_store.is_committed(log, sha256_file(path))
    assert delta_store.is_committed(log, sha256_file(path), site_id="alpha", kind="export")


# ------------------------------------------------------------------ 2. the key fingerprint


def test_a_different_key_stops_ingestion_before_anything_is_written(
    sites_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    doc = yaml.safe_load((sites_home / "consortium.yml").read_text())
    doc["sites"][0]["delivery"] = "incremental"
    (sites_home / "consortium.yml").write_text(yaml.safe_dump(doc))
    _deliver(sites_home, "n1.csv", [_row("C1", 1, WAI, PHQ)])
    ingest_site("alpha", DATE)
    where = Paths(sites_home)
    before = [delta_store.current_version(t) for t in (where.event_log, where.quarantine,
                                                       where.intake)]  # fmt: skip
    fingerprint = (where.home / "restricted" / "key_fingerprint").read_text()
    assert TEST_KEY not in fingerprint
    _deliver(sites_home, "n2.csv", [_row("C1", 1, WAI, PHQ), _row("C1", 2, WAI, PHQ)])
    audit_before = where.audit_log.read_text()
    other_key = "a-different-key-9876543210"
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY", other_key)
    with pytest.raises(RuntimeError, match="different pseudonym key") as err:
        ingest_site("alpha", "2026-11-21")
    assert other_key not in str(err.value) and TEST_KEY not in str(err.value)
    assert other_key not in caplog.text and TEST_KEY not in caplog.text
    after = [delta_store.current_version(t) for t in (where.event_log, where.quarantine,
                                                      where.intake)]  # fmt: skip
    assert after == before
    assert where.audit_log.read_text() == audit_before
    assert (where.home / "restricted" / "key_fingerprint").read_text() == fingerprint
    # With the right key the night goes through: one client, one pseudonym.
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY", TEST_KEY)
    ingest_site("alpha", "2026-11-21")
    assert {e["client_pid"] for e in _events(sites_home)} == {_pid("alpha", "C1")}


def test_the_key_check_is_a_function_other_steps_can_call(sites_home: Path) -> None:
    from ingestion.key_fingerprint import KeyMismatchError, check_key

    where = Paths(sites_home)
    check_key(where, PseudonymKey(TEST_KEY.encode()))  # first use: recorded
    check_key(where, PseudonymKey(TEST_KEY.encode()))
    with pytest.raises(KeyMismatchError):
        check_key(where, PseudonymKey(b"another-key-0123456789"))


# ------------------------------------------------------------------ 3. inputs refused


def test_symlinks_in_the_inbox_are_refused_and_never_opened(
    sites_home: Path, tmp_path: Path
) -> None:
    outside = _deliver(tmp_path / "elsewhere", "real.csv", [_row("C9", 1, WAI, PHQ)])
    inbox = sites_home / "inbox" / "alpha"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "export.csv").symlink_to(outside)
    key_file = sites_home / "secrets" / "pseudonym.key"
    key_file.parent.mkdir()
    key_file.write_text("super-secret-key-material\n")
    (inbox / "withdraw_key.csv").symlink_to(key_file)
    (inbox / "passwd.csv").symlink_to("/etc/passwd")
    result = ingest_site("alpha", DATE)
    assert sorted((f.source_file, f.status) for f in result.files) == [
        ("export.csv", "rejected"),
        ("passwd.csv", "rejected"),
        ("withdraw_key.csv", "rejected"),
    ]
    assert _events(sites_home) == []
    records = sorted(
        (q["source_file"], q["rule_id"], q["raw_value"]) for q in _quarantine(sites_home)
    )
    assert records == [
        ("export.csv", "file.symlink", None),
        ("passwd.csv", "file.symlink", None),
        ("withdraw_key.csv", "file.symlink", None),
    ]
    assert all("symbolic link" in q["message"] for q in _quarantine(sites_home))
    assert sorted(r["source_file"] for r in _intake(sites_home)) == [
        "export.csv",
        "passwd.csv",
        "withdraw_key.csv",
    ]
    assert ingest_site("alpha", "2026-11-21").no_op


def test_a_linked_data_dictionary_is_never_read(sites_home: Path, tmp_path: Path) -> None:
    from ingestion.consortium import load_consortium
    from ingestion.intake.redcap_dictionary import find_dictionary

    doc = yaml.safe_load((sites_home / "consortium.yml").read_text())
    doc["sites"][0]["redcap"] = {"data_dictionary_glob": "*DataDictionary*.csv"}
    (sites_home / "consortium.yml").write_text(yaml.safe_dump(doc))
    site = load_consortium(sites_home / "consortium.yml").site("alpha")
    inbox = sites_home / "inbox" / "alpha"
    inbox.mkdir(parents=True)
    (inbox / "a_DataDictionary.csv").write_text("Variable / Field Name\n")
    (tmp_path / "elsewhere.csv").write_text("Variable / Field Name\n")
    (inbox / "z_DataDictionary.csv").symlink_to(tmp_path / "elsewhere.csv")
    assert find_dictionary(inbox, site) == inbox / "a_DataDictionary.csv"


def test_a_glob_leading_out_of_the_inbox_selects_nothing_outside(sites_home: Path) -> None:
    # The loader refuses such a glob (tests/test_consortium.py); listing confines it anyway.
    import dataclasses

    from ingestion.consortium import load_consortium

    consortium = load_consortium(sites_home / "consortium.yml")
    alpha = dataclasses.replace(consortium.site("alpha"), file_glob="../beta/*.csv")
    consortium.sites["alpha"] = alpha
    _deliver(sites_home, "theirs.csv", [_row("C1", 1, WAI, PHQ)], site="beta")
    (sites_home / "inbox" / "alpha").mkdir()
    result = ingest_site("alpha", DATE, consortium=consortium)
    assert result.files == [] and _events(sites_home) == []


def test_a_control_character_in_a_client_code_is_quarantined(sites_home: Path) -> None:
    _deliver(sites_home, "n1.csv", [_row("C1", 1, WAI, PHQ), _row("C2", 1, WAI, PHQ)])
    ingest_site("alpha", DATE)
    # The next full export carries C1 with a NUL inside its code, and C3 with an ESC.
    _deliver(
        sites_home,
        "n2.csv",
        [_row("C1\x00", 1, WAI, PHQ), _row("C2", 1, WAI, PHQ), _row("C\x1b3", 1, WAI, PHQ)],
    )
    result = ingest_site("alpha", "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "n2.csv"]
    # 3 rows x 2 forms: C2's 2 accepted (unchanged), 4 quarantined; no new client, and C1 is
    # held (its row is in the file, only unreadable), not retracted.
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (6, 2, 4)
    assert (outcome.recorded, outcome.retracted) == (0, 0)
    events = _events(sites_home)
    assert {e["client_pid"] for e in events} == {_pid("alpha", "C1"), _pid("alpha", "C2")}
    assert {e["event_type"] for e in events} == {"response_recorded"}
    records = sorted((q["source_row"], q["rule_id"], q["category"], q["raw_value"])
                     for q in _quarantine(sites_home))  # fmt: skip
    assert records == [
        (2, "row.client_code_control", "identity", "C1\x00"),
        (2, "row.client_code_control", "identity", "C1\x00"),
        (4, "row.client_code_control", "identity", "C\x1b3"),
        (4, "row.client_code_control", "identity", "C\x1b3"),
    ]


def test_a_control_character_in_a_withdrawal_code_is_quarantined(sites_home: Path) -> None:
    (sites_home / "inbox" / "alpha").mkdir(parents=True)
    (sites_home / "inbox" / "alpha" / "withdraw_1.csv").write_bytes(b"code\nC\x001\nC2\n")
    (outcome,) = ingest_site("alpha", DATE).files
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (2, 1, 1)
    assert [(q["source_row"], q["rule_id"], q["category"]) for q in _quarantine(sites_home)] == [
        (2, "withdrawal.client_code_control", "identity")
    ]
    assert [e["client_pid"] for e in _events(sites_home)] == [_pid("alpha", "C2")]


def test_every_file_in_the_inbox_gets_an_intake_outcome(sites_home: Path) -> None:
    _deliver(sites_home, "export.csv", [_row("C1", 1, WAI, PHQ)])
    inbox = sites_home / "inbox" / "alpha"
    (inbox / "export.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (inbox / "notes").mkdir()  # a folder is not a delivery
    (inbox / ".partial-upload").write_bytes(b"hidden: still being written")
    result = ingest_site("alpha", DATE)
    assert sorted((f.source_file, f.status, f.kind) for f in result.files) == [
        ("export.csv", "ingested", "export"),
        ("export.xlsx", "rejected", "export"),
    ]
    (record,) = _quarantine(sites_home)
    assert (record["source_file"], record["rule_id"], record["source_row"]) == (
        "export.xlsx",
        "file.unsupported_type",
        None,
    )
    xlsx = next(r for r in _intake(sites_home) if r["source_file"] == "export.xlsx")
    assert (xlsx["status"], xlsx["rows_in"], xlsx["administrations_offered"]) == (
        "rejected",
        0,
        0,
    )
    assert xlsx["quarantine_records"] == 1
    assert ingest_site("alpha", "2026-11-21").no_op
    assert os.path.exists(inbox / "export.xlsx")


# ------------------------------------------------------------------ the marts (dbt: slow)


@pytest.mark.slow
def test_refused_files_keep_the_intake_conservation_checks(tiny_built: Path) -> None:
    """An .xlsx and a link at alpha: two rejected files with no rows; every check still holds."""
    from tests.conftest import night
    from tests.test_release import _parquet_rows

    inbox = tiny_built / "inbox" / "alpha"
    (inbox / "alpha_export.xlsx").write_bytes(b"PK\x03\x04 a workbook")
    (inbox / "linked.csv").symlink_to(inbox / "alpha_export.csv")
    folder = Path(night("2026-11-21")["path"])  # ingest, dbt build, gate, release
    columns = "files_delivered, files_ingested, files_rejected, rows_in, "
    columns += "administrations_offered, administrations_unaccounted, quarantine_records"
    (alpha, *_) = _parquet_rows(folder, "mart_site_intake", columns, "site_id")
    # Night 1: one export of 15 rows (30 administrations, nothing quarantined); night 2 adds
    # two files rejected whole, no rows, one file-level quarantine record each.
    assert alpha == (3, 1, 2, 15, 30, 0, 2)
    rules = _parquet_rows(folder, "fct_quarantine", "site_id, rule_id", "rule_id")
    assert [r for r in rules if r[0] == "alpha"] == [
        ("alpha", "file.symlink"),
        ("alpha", "file.unsupported_type"),
    ]


@pytest.mark.slow
def test_the_same_bytes_at_two_sites_count_at_both(tiny_built: Path) -> None:
    from tests.conftest import night
    from tests.test_release import _parquet_rows

    for site in ("alpha", "beta"):  # no reader column: rejected whole at each site
        (tiny_built / "inbox" / site / "same.csv").write_bytes(b"record_id\nZ9\n")
    folder = Path(night("2026-11-21")["path"])
    columns = "site_id, files_delivered, files_ingested, files_rejected"
    rows = _parquet_rows(folder, "mart_site_intake", columns, "site_id")
    # Night 1: one export per site; night 2: the same rejected bytes at each site.
    assert rows == [("alpha", 2, 1, 1), ("beta", 2, 1, 1)]
