"""`bordin config check` (issue 11, item 9): validate, then dry-run each site's newest delivery,
writing nothing and printing no raw value. Expected counts are worked out from the rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from warehouse import cli

HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
CONSORTIUM = (Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml").read_text()


def _row(client: str, session: int, wai: list[str], phq: list[str]) -> list[str]:
    return [client, f"session_{session}_arm_1", "T1", "2026-03-07", *wai, *phq]


def _deliver(home: Path, site: str, name: str, rows: list[list[str]], mtime: int) -> None:
    path = home / "inbox" / site / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    os.utime(path, (mtime, mtime))


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.fixture
def checked_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alpha: an old clean export and a newer one with two bad cells; beta: no delivery."""
    (home / "consortium.yml").write_text(CONSORTIUM)
    ok_wai, ok_phq = ["3"] * 12, ["1"] * 9
    _deliver(home, "alpha", "old.csv", [_row("A1", 1, ok_wai, ok_phq)], mtime=1_700_000_000)
    rows = [
        _row("A1", 1, ok_wai, ok_phq),  # line 2: both forms accepted
        _row("A2", 1, ok_wai[:2] + ["secretvalue"] + ok_wai[3:], ok_phq),  # line 3: wai_3
        _row("A3", 1, ok_wai, ok_phq[:4] + ["87"] + ok_phq[5:]),  # line 4: phq9_5 out of range
        _row("A4", 1, ok_wai, ok_phq[:1] + ["99"] + ok_phq[2:]),  # line 5: phq9_2 out of range
    ]
    _deliver(home, "alpha", "new.csv", rows, mtime=1_700_100_000)
    # No key is needed: the dry run keys with a throwaway one.
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY", raising=False)
    return home


def test_config_check_dry_runs_the_newest_delivery_and_writes_nothing(
    checked_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(checked_home)
    assert cli.main(["config", "check", "--date", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert _tree(checked_home) == before
    lines = out.splitlines()
    assert lines[0].endswith("consortium.yml: valid (2 sites)")
    # By hand: 4 rows x 2 forms = 8 administrations; 3 quarantined (A2's WAI-SR, A3's and
    # A4's PHQ-9), 5 accepted.
    assert "site alpha: files found: 2 export" in lines
    assert (
        "  newest delivery new.csv (ingested): 4 rows; administrations 5 accepted, "
        "3 quarantined, 0 not administered"
    ) in lines
    rule_lines = [line.strip() for line in lines if line.startswith("    ")]
    assert len(rule_lines) == 2
    assert rule_lines[0].startswith("item.non_numeric: 1 (e.g. row 3, column wai_3) - ")
    assert rule_lines[1].startswith("item.out_of_range: 2 (e.g. row 4, column phq9_5) - ")
    assert "site beta: files found: none" in lines
    assert "  no export to dry-run" in lines
    for raw in ("secretvalue", "87", "99", "A2", "A3"):
        assert raw not in out


def test_config_check_reports_bad_configuration_with_file_and_key(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "consortium.yml").write_text(
        CONSORTIUM.replace("primary_outcome: phq9", "primary_outcome: phq99", 1)
    )
    assert cli.main(["config", "check"]) == 2
    err = capsys.readouterr().err
    assert "consortium.yml" in err and "primary_outcome" in err


def test_one_sites_failed_dry_run_does_not_hide_the_others(
    checked_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingestion import config_check

    real = config_check.ingest_site
    _deliver(checked_home, "beta", "b.csv", [_row("B1", 1, ["2"] * 12, ["2"] * 9)], 1_700_000_000)

    def failing_for_alpha(site_id: str, *args, **kwargs):
        if site_id == "alpha":
            raise RuntimeError("scratch disk unavailable\nsecond line")
        return real(site_id, *args, **kwargs)

    monkeypatch.setattr(config_check, "ingest_site", failing_for_alpha)
    assert cli.main(["config", "check", "--date", "2026-11-20"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "  dry run FAILED: RuntimeError: scratch disk unavailable" in lines
    assert (
        "  newest delivery b.csv (ingested): 1 rows; administrations 2 accepted, "
        "0 quarantined, 0 not administered"
    ) in lines
