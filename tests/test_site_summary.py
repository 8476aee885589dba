"""The per-site counts every view of a night prints (issue 11, item 11): one function,
`site_summary_lines`, fed by a real ingest; the expected lines are worked out from the rows."""

from __future__ import annotations

import csv
from pathlib import Path

from ingestion.ingest import ingest_site
from ingestion.site_summary import site_summary_lines, summary_table

HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
CONSORTIUM = Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml"
OK_WAI, OK_PHQ = ["3"] * 12, ["1"] * 9


def _deliver(home: Path, name: str, rows: list[list[str]]) -> None:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


def _row(client: str, session: int, wai: list[str], phq: list[str]) -> list[str]:
    return [client, f"session_{session}_arm_1", "T1", "2026-03-07", *wai, *phq]


def test_site_summary_counts_files_rows_rules_and_events(home: Path) -> None:
    text = CONSORTIUM.read_text().replace(
        "primary_outcome: phq9", "primary_outcome: phq9\n    max_retraction_fraction: 0.9", 1
    )
    (home / "consortium.yml").write_text(text)
    _deliver(home, "one.csv", [_row("A1", 1, OK_WAI, OK_PHQ), _row("A2", 1, OK_WAI, OK_PHQ)])
    first = ingest_site("alpha", "2026-11-01").as_dict()
    assert site_summary_lines(first) == [
        "site alpha: 1 files read (0 rejected), 2 rows, 4 accepted, 0 quarantined; "
        "events 4 recorded, 0 amended, 0 retracted"
    ]
    # Night 2: a full export where A1's PHQ-9 changed (amended), A2 is gone (2 retracted),
    # A3's WAI-SR has two bad items (1 administration, 2 records), A4's PHQ-9 one, and an
    # unreadable file (rejected whole, 1 record).
    _deliver(
        home,
        "two.csv",
        [
            _row("A1", 1, OK_WAI, ["2"] * 9),
            _row("A3", 1, ["x", "9"] + OK_WAI[2:], OK_PHQ),
            _row("A4", 1, OK_WAI, ["7"] + OK_PHQ[1:]),
        ],
    )
    (home / "inbox" / "alpha" / "three.csv").write_bytes(b"")
    second = ingest_site("alpha", "2026-11-02").as_dict()
    assert site_summary_lines(second) == [
        "site alpha: 2 files read (1 rejected), 3 rows, 4 accepted, 2 quarantined; "
        "events 2 recorded, 1 amended, 2 retracted",
        "site alpha: quarantined by rule: file.empty 1, item.non_numeric 1, item.out_of_range 2",
    ]
    table = summary_table([second, {"site_id": "beta", "files": []}])
    assert table[1].split() == [
        "alpha", "2", "3", "4", "2", "2", "1", "2",
        "file.empty", "1,", "item.non_numeric", "1,", "item.out_of_range", "2",
    ]  # fmt: skip
    assert table[2].split() == ["beta", "0", "0", "0", "0", "0", "0", "0", "-"]
    assert site_summary_lines({"site_id": "beta", "files": []}) == ["site beta: nothing new"]
