"""`bordin check` on a bad warehouse: a readable verdict, GX results and Data Docs in the
restricted area, and the release-safe summary a release carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_gate import BAD_FIXTURES, valid_frames, write_db
from warehouse import cli
from warehouse.pipeline import gate_failure_message
from warehouse.release import GATE_SUMMARY_FILE, write_gate_summary


def _bad_warehouse(home: Path) -> Path:
    frames = valid_frames()
    BAD_FIXTURES["alliance_client_pid_format"](frames)  # a raw code at site s1
    (home / "build").mkdir()
    return write_db(home / "build" / "warehouse.duckdb", frames)


def test_failed_check_prints_rule_count_and_site_and_keeps_results_restricted(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bordin check` (check_step under the CLI) on a warehouse with one raw code at site s1."""
    _bad_warehouse(home)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(
        "bordin check: data-quality gate failed; nothing published (1 failed, 0 error"
    )
    assert (
        "  FAILED fct_alliance_session.alliance_client_pid_format: 1 unexpected of 4 applicable "
        "rows; sites: s1 (client_pid must be a keyed pseudonym (32 lowercase hex), never a raw "
        "participant code)"
    ) in lines
    docs = "restricted/gx/uncommitted/data_docs/local_site/index.html"
    assert lines[-1] == f"details (restricted): {docs}"
    assert "SITE1-0007" not in err  # the raw value stays in the restricted results
    assert (home / docs).is_file()
    assert list((home / "restricted" / "gx" / "uncommitted" / "validations").rglob("*.json"))
    stored = json.loads((home / "build" / "gate_result.json").read_text(encoding="utf-8"))
    assert stored["success"] is False and stored["data_docs"] == docs
    assert {c["status"] for c in stored["checks"]} >= {"passed", "failed"}


def test_failure_message_by_hand() -> None:
    summary = {
        "by_status": {"passed": 5, "failed": 1, "error": 1, "not_applicable": 2},
        "checks": [
            {"rule": "m.ok", "status": "passed", "observed": None, "message": None},
            {
                "rule": "m.bad",
                "status": "failed",
                "observed": "3 unexpected of 10 applicable rows",
                "sites_affected": ["leeds", "ohio"],
                "message": "why",
            },
            {"rule": "m.err", "status": "error", "observed": None, "message": "GX run failed"},
        ],
    }
    assert gate_failure_message(summary).splitlines() == [
        "data-quality gate failed; nothing published (1 failed, 1 error, 5 passed, "
        "2 not applicable):",
        "  FAILED m.bad: 3 unexpected of 10 applicable rows; sites: leeds, ohio (why)",
        "  ERROR  m.err: - (GX run failed)",
    ]


def test_release_gate_summary_file_holds_every_check_and_is_hashed(tmp_path: Path) -> None:
    summary = {
        "success": True,
        "by_status": {"passed": 1, "failed": 0, "error": 0, "not_applicable": 1},
        "gx_version": "1.24.1",
        "suite_sha256": "0" * 64,
        "gate_inputs": {"build_db_sha256": "f" * 64},
        "checks": [
            {"rule": "m.a", "status": "passed", "sites_affected": None},
            {"rule": "m.b", "status": "not_applicable", "sites_affected": None},
        ],
    }
    entry = write_gate_summary(summary, tmp_path)
    written = tmp_path / GATE_SUMMARY_FILE
    doc = json.loads(written.read_text(encoding="utf-8"))
    assert [c["status"] for c in doc["checks"]] == ["passed", "not_applicable"]
    assert "gate_inputs" not in doc  # hashes of restricted inputs stay out of the summary
    import hashlib

    assert entry == {
        "path": GATE_SUMMARY_FILE,
        "rows": 2,
        "sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
    }
