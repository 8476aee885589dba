"""Ingestion: conservation, quarantine reasons, pseudonyms, idempotency inside the commit."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import INTAKE_SCHEMA, ingest_site
from ingestion.pseudonyms import MissingKeyError, PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths
from tests.conftest import TEST_KEY

HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
DATE = "2026-11-20"


def _row(code: str, session: int, wai: list, phq: list, day: str = "2026-03-01") -> list[str]:
    return [code, f"session_{session}_arm_1", "T1", day, *map(str, wai), *map(str, phq)]


def _deliver(home: Path, name: str, rows: list[list[str]], site: str = "alpha") -> Path:
    path = home / "inbox" / site / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def site_home(home: Path) -> Path:
    shutil.copy(Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml", home)
    return home


def _events(home: Path):
    return delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()


def _quarantine(home: Path):
    return delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()


def test_bad_cells_quarantine_only_their_questionnaire(site_home: Path) -> None:
    ok_wai, ok_phq = [3] * 12, [1] * 9
    _deliver(
        site_home,
        "x.csv",
        [
            _row("C1", 1, ok_wai, ok_phq),  # both accepted
            _row("C1", 2, [9] + [3] * 11, ok_phq),  # WAI out of range; PHQ accepted
            _row("C1", 3, ok_wai, ["x"] + [1] * 8),  # PHQ non-numeric; WAI accepted
            _row("C2", 1, ok_wai, ok_phq, day="2027-01-01"),  # future date: both quarantined
            _row("", 1, ok_wai, ok_phq),  # blank client code: both quarantined
            _row("C3", 1, [""] * 12, ok_phq),  # WAI not administered; PHQ accepted
            _row("C3", 2, [2.5] + [3] * 11, ok_phq),  # WAI off the 1-step grid
        ],
    )
    result = ingest_site("alpha", DATE)
    (outcome,) = result.files
    # 7 rows x 2 forms = 14 administrations offered.
    assert outcome.offered == 14
    # Accepted: r2 x2, r3 PHQ, r4 WAI, r7 PHQ, r8 PHQ = 6; quarantined: r3, r4, r5 x2, r6 x2,
    # r8 WAI = 7; not administered: r7 WAI = 1.
    assert (outcome.accepted, outcome.quarantined, outcome.not_administered) == (6, 7, 1)
    assert outcome.accepted + outcome.quarantined + outcome.not_administered == outcome.offered
    assert result.events_written == 6 == len(_events(site_home))
    rules = sorted((q["source_row"], q["rule_id"], q["category"]) for q in _quarantine(site_home))
    assert rules == [
        (3, "item.out_of_range", "range"),
        (4, "item.non_numeric", "type"),
        (5, "row.session_date_future", "date"),
        (5, "row.session_date_future", "date"),
        (6, "row.client_code_blank", "identity"),
        (6, "row.client_code_blank", "identity"),
        (8, "item.out_of_range", "range"),
    ]
    raw = {q["raw_value"] for q in _quarantine(site_home) if q["rule_id"].startswith("item.")}
    assert raw == {"9", "x", "2.5"}


def test_duplicates_and_conflicts_within_a_file(site_home: Path) -> None:
    wai, phq = [3] * 12, [1] * 9
    _deliver(
        site_home,
        "d.csv",
        [
            _row("C1", 1, wai, phq),
            _row("C1", 1, wai, phq),  # exact repeat of both forms
            _row("C2", 1, wai, phq),
            _row("C2", 1, [4] * 12, phq),  # WAI conflicts; PHQ is an exact repeat
        ],
    )
    (outcome,) = ingest_site("alpha", DATE).files
    # C1: keep 1 WAI + 1 PHQ, 2 duplicates. C2: WAI conflict (2 held back), PHQ 1 kept + 1 dup.
    assert (outcome.accepted, outcome.quarantined) == (3, 5)
    categories = sorted(q["category"] for q in _quarantine(site_home))
    assert categories == ["conflict", "conflict", "duplicate", "duplicate", "duplicate"]


@pytest.mark.parametrize(
    ("content", "category", "rule"),
    [
        (b"", "parse", "file.empty"),
        ("record_id,wai_1\n\xe9\n".encode("cp1252"), "encoding", "file.encoding"),
        (b"record_id,redcap_event_name\nC1,session_1_arm_1\n", "schema", "file.missing_columns"),
    ],
)
def test_unreadable_files_are_quarantined_whole(
    site_home: Path, content: bytes, category: str, rule: str
) -> None:
    path = site_home / "inbox" / "alpha" / "bad.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    result = ingest_site("alpha", DATE)
    assert result.files[0].status == "rejected"
    (record,) = _quarantine(site_home)
    assert (record["category"], record["rule_id"], record["source_row"]) == (category, rule, None)
    assert _events(site_home) == []
    # The rejection is committed too: delivering the same bytes again is a no-op.
    assert ingest_site("alpha", DATE).no_op


def test_truncated_last_line_loses_only_that_row(site_home: Path) -> None:
    path = _deliver(site_home, "t.csv", [_row("C1", 1, [3] * 12, [1] * 9)])
    with path.open("a") as handle:
        handle.write("C1,session_2_arm_1,T1,2026-03-08,3,3,3\n")
    (outcome,) = ingest_site("alpha", DATE).files
    assert (outcome.rows_in, outcome.accepted, outcome.quarantined) == (2, 2, 2)
    assert {q["rule_id"] for q in _quarantine(site_home)} == {"row.field_count"}


def test_events_carry_pseudonyms_and_envelope_never_raw_codes(site_home: Path) -> None:
    _deliver(site_home, "p.csv", [_row("  SECRET-CODE-77 ", 1, [3] * 12, [1] * 9)])
    ingest_site("alpha", DATE)
    events = _events(site_home)
    expected = PseudonymKey(TEST_KEY.encode()).pseudonym("alpha", "client", "SECRET-CODE-77")
    assert {e["client_pid"] for e in events} == {expected}
    for event in events:
        assert event["event_type"] == "response_recorded"
        assert len(event["event_id"]) == 64 and len(event["source_sha256"]) == 64
        assert event["source_row"] == 2 and event["batch_id"].startswith("alpha-20261120-")
    for parquet in (site_home / "eventlog").rglob("*.parquet"):
        assert b"SECRET-CODE-77" not in parquet.read_bytes()
        assert b"SECRET-CODE-77" not in str(pq.read_table(parquet).to_pylist()).encode()


def test_redelivery_under_any_name_is_a_no_op(site_home: Path) -> None:
    path = _deliver(site_home, "a.csv", [_row("C1", 1, [3] * 12, [1] * 9)])
    first = ingest_site("alpha", DATE)
    assert first.events_written == 2 and not first.no_op
    version = delta_store.current_version(Paths(site_home).event_log)
    for n in range(3):
        shutil.copy(path, path.with_name(f"copy{n}.csv"))
    again = ingest_site("alpha", DATE)
    assert again.no_op and again.events_written == 0
    assert {f.status for f in again.files} == {"already_ingested", "duplicate_in_batch"}
    assert delta_store.current_version(Paths(site_home).event_log) == version
    assert len(_events(site_home)) == 2


def test_event_ids_do_not_depend_on_wall_clock_or_file_name(
    site_home: Path, tmp_path: Path
) -> None:
    rows = [_row("C1", 1, [3] * 12, [1] * 9), _row("C1", 2, [4] * 12, [0] * 9)]
    _deliver(site_home, "first-name.csv", rows)
    ingest_site("alpha", DATE)
    ids = sorted(e["event_id"] for e in _events(site_home))
    other = tmp_path / "other_home"
    shutil.copytree(
        site_home, other, ignore=shutil.ignore_patterns("eventlog", "restricted", "audit", "inbox")
    )
    _deliver(other, "another-name.csv", rows)
    ingest_site("alpha", DATE, where=Paths(other))
    assert sorted(e["event_id"] for e in _events(other)) == ids


def test_intake_counts_recorded(site_home: Path) -> None:
    _deliver(site_home, "i.csv", [_row("C1", 1, [3] * 12, [1] * 9)])
    ingest_site("alpha", DATE)
    (row,) = delta_store.read(Paths(site_home).intake, INTAKE_SCHEMA).to_pylist()
    assert (row["rows_in"], row["administrations_accepted"], row["status"]) == (1, 2, "ingested")


def test_rerun_after_a_crash_before_the_events_commit_records_each_file_once(
    site_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Night 1 dies after quarantine and intake are committed, before the events commit; a new
    # full export arrives before the rerun. The rerun must add intake and quarantine rows for
    # the new file only (one row per file), and events for both.
    night1 = [_row("C1", 1, [3] * 12, [1] * 9), _row("C2", 1, [3] * 11 + [9], [1] * 9)]
    _deliver(site_home, "a.csv", night1)
    real_append = delta_store.append

    def crash_on_events(path, *args, **kwargs):
        if path == Paths(site_home).event_log:
            raise RuntimeError("killed before the events commit")
        return real_append(path, *args, **kwargs)

    monkeypatch.setattr(delta_store, "append", crash_on_events)
    with pytest.raises(RuntimeError):
        ingest_site("alpha", DATE)
    monkeypatch.setattr(delta_store, "append", real_append)
    _deliver(site_home, "b.csv", [*night1, _row("C3", 1, [3] * 12, [1] * 9)])
    ingest_site("alpha", DATE)
    intake = delta_store.read(Paths(site_home).intake, INTAKE_SCHEMA).to_pylist()
    assert sorted(r["source_file"] for r in intake) == ["a.csv", "b.csv"]
    # C2's WAI-SR item 12 = 9 is out of range (1-5): one record per file that holds it.
    records = sorted(
        (q["source_file"], q["source_row"], q["rule_id"]) for q in _quarantine(site_home)
    )
    assert records == [("a.csv", 3, "item.out_of_range"), ("b.csv", 3, "item.out_of_range")]
    # a.csv: C1 x 2 + C2's PHQ-9; b.csv adds C3 x 2 (the rest unchanged).
    assert len(_events(site_home)) == 5


def test_readers_ignore_stray_parquet_files(site_home: Path) -> None:
    _deliver(site_home, "s.csv", [_row("C1", 1, [3] * 12, [1] * 9)])
    ingest_site("alpha", DATE)
    log = Paths(site_home).event_log
    (log / "stray-empty.parquet").write_bytes(b"")
    (log / "stray-broken.parquet").write_bytes(b"PAR1garbage")
    good = next(log.glob("part-*.parquet"))
    shutil.copy(good, log / "unlisted-valid.parquet")
    assert len(_events(site_home)) == 2


def test_no_key_no_ingestion(site_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY")
    _deliver(site_home, "k.csv", [_row("C1", 1, [3] * 12, [1] * 9)])
    with pytest.raises(MissingKeyError):
        ingest_site("alpha", DATE)
    assert not Paths(site_home).event_log.exists()


def test_export_where_no_date_matches_the_format_is_quarantined_row_by_row(home: Path) -> None:
    """Every date in US order at a site configured '%Y-%m-%d': this crashed the site's ingest
    with pandas' `Invalid comparison between dtype=datetime64[s] and date` (issue 11)."""
    from tests.test_event_sourcing import HEADER, _configure

    _configure(home)
    inbox = home / "inbox" / "alpha"
    inbox.mkdir(parents=True)
    rows = [
        [f"C{i}", "session_1_arm_1", "T1", "03/07/2026"] + ["3"] * 12 + ["1"] * 9 for i in (1, 2, 3)
    ]
    lines = [",".join(HEADER), *(",".join(row) for row in rows)]
    (inbox / "export.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (outcome,) = ingest_site("alpha", "2026-11-20").files
    assert (outcome.status, outcome.offered, outcome.accepted, outcome.quarantined) == (
        "ingested",
        6,
        0,
        6,
    )
    records = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    assert sorted((r["source_row"], r["rule_id"]) for r in records) == [
        (row, "row.session_date_format") for row in (2, 2, 3, 3, 4, 4)
    ]
