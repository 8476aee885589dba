"""The protocol consortium fixture (issue 11, "Done when") loads and dry-runs with
`bordin config check`. Every count below is worked out by hand from the files under
tests/fixtures/protocol_consortium/inbox (see tests/test_protocol_consortium.py for the rows)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingestion.consortium import load_consortium
from warehouse import cli

FIXTURE = Path(__file__).parent / "fixtures" / "protocol_consortium"
SETTLED = 1_763_251_200  # 2026-11-16: the files were delivered before the night checked


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "home"
    shutil.copytree(FIXTURE, root)
    for path in (root / "inbox").rglob("*"):
        if path.is_file():
            os.utime(path, (SETTLED, SETTLED))
    monkeypatch.setenv("BORDIN_HOME", str(root))
    for name in ("BORDIN_PSEUDONYM_KEY", "BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR"):
        monkeypatch.delenv(name, raising=False)
    return root


def test_the_fixture_sets_one_protocol_quirk_per_site() -> None:
    consortium = load_consortium(FIXTURE / "consortium.yml")
    sites = consortium.sites
    assert sorted(sites) == ["fbs", "qual", "rep_parent", "strict", "two_wai"]
    assert sites["strict"].withdrawals is not None and sites["strict"].delivery_date is not None
    assert sites["fbs"].ending is not None and sites["rep_parent"].carry_down is not None
    assert sites["qual"].qualtrics.final_when == "finished_and_progress"
    assert [f.form_id for f in sites["two_wai"].forms] == ["wai_client", "wai_therapist", "phq9"]


def test_config_check_dry_runs_every_protocol_site(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "check", "--date", "2026-11-18"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("consortium.yml: valid (5 sites)")
    counts = {
        line.split()[2]: line.split(": ", 1)[1]
        for line in lines
        if line.startswith("  newest delivery ")
    }
    # fbs: 10 lines, one administration each. qual: 5 responses x 2 forms; R_abc1 both final,
    # R_abc2's WAI-SR final and its GAD-7 item 1 = 9 out of range; R_abc3/4/5 not final
    # (Progress 60, 80, 95): 4 administrations with answers, 2 blank GAD-7 not administered.
    # rep_parent: 4 session rows x 2 forms, 2 parent rows x 2 forms not administered.
    # strict (the dry run reads the export alone, not the withdrawal list): S1 PHQ-9 x2 and
    # WAI-SR session 1, S3 PHQ-9 accepted; S1's WAI-SR with 99, S2's PHQ-9 with 3 blanks, the
    # blank therapist and the 2026-11-17 session quarantined.
    # two_wai: 3 rows x 3 forms; C1's therapist WAI-SR (status 0) at session 1 and client WAI-SR
    # at session 2 quarantined, C2's blank PHQ-9 (status 0) not administered.
    assert counts == {
        "fbs_export.csv": "10 rows; administrations 10 accepted, 0 quarantined, 0 not administered",
        "qualtrics_export.csv": "5 rows; administrations 3 accepted, 5 quarantined, "
        "2 not administered",
        "redcap_repeating_parent.csv": "6 rows; administrations 8 accepted, 0 quarantined, "
        "4 not administered",
        "export_20261115.csv": "8 rows; administrations 4 accepted, 4 quarantined, "
        "0 not administered",
        "redcap_two_wai_forms.csv": "3 rows; administrations 6 accepted, 2 quarantined, "
        "1 not administered",
    }
    rules = [line.strip().split(" (")[0] for line in lines if line.startswith("    ")]
    assert rules == [
        "item.out_of_range: 1",
        "response.unfinished: 4",
        "item.too_many_missing: 2",
        "row.session_date_future: 1",
        "row.therapist_code_blank: 1",
        "form.not_complete: 2",
    ]


def test_the_readme_protocol_example_is_a_valid_site(tmp_path: Path) -> None:
    """README's "a protocol that differs from the registry" block loads as written."""
    import re

    import yaml

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Worked example: a protocol that differs from the registry.**")[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    doc = yaml.safe_load(block.group(1))
    doc.update(consortium_id="readme", name="README example")
    (tmp_path / "consortium.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    site = load_consortium(tmp_path / "consortium.yml").sites["zurich"]
    assert [(f.form_id, f.status_column) for f in site.forms] == [
        ("wai_client", "wai_client_complete"),
        ("wai_therapist", "wai_therapist_complete"),
        ("phq9", None),
    ]
    assert site.carry_down is not None and site.withdrawals is not None
    assert site.delivery_date is not None
