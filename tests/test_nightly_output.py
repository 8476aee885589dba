"""What `bordin nightly` prints (issue 11 item 11, issue 13 item 7): progress per step, a
per-site table, the release id and path, and on failure one line naming the step, site and file,
with no traceback. The tiny consortium's counts are worked out from tests/fixtures/tiny."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import nightly_output, run_bordin

pytestmark = pytest.mark.slow

DATE = "2026-11-20"


def test_nightly_shows_each_step_the_site_table_and_the_release(tiny_nightly_root: Path) -> None:
    out = nightly_output(tiny_nightly_root).read_text()
    lines = out.splitlines()
    assert "Traceback" not in out
    for step in ("list sites", "ingest alpha", "ingest beta", "build", "check", "release"):
        assert f"[{step}] started" in lines
        assert any(line.startswith(f"[{step}] done in ") for line in lines)
    # alpha: 15 rows (A1-A5 x 3 sessions), both forms each; A1 s2's PHQ-9 has one blank item
    # and is still accepted (prorated). beta: 12 rows (B1-B4 x 3). Nothing quarantined.
    assert (
        "[ingest alpha] site alpha: 1 files read (0 rejected), 15 rows, 30 accepted, "
        "0 quarantined; events 30 recorded, 0 amended, 0 retracted"
    ) in lines
    table = lines.index(
        next(line for line in lines if line.startswith("site ") and "files" in line)
    )
    assert lines[table + 1].split() == ["alpha", "1", "15", "30", "0", "30", "0", "0", "-"]
    assert lines[table + 2].split() == ["beta", "1", "12", "24", "0", "24", "0", "0", "-"]
    release_id = os.readlink(tiny_nightly_root / "releases" / "latest")
    assert f"[release] release {release_id} published: " in out
    assert f"bordin_nightly {DATE}: success" in lines
    assert lines[-1].startswith(f"release {release_id}: ")
    assert lines[-1].split(": ", 1)[1].split(" (latest")[0].endswith(f"releases/{release_id}")


FAILING_ENGINE = """
import sys
from ingestion.intake import engine

working = engine.IntakeSite.ingest

def broken_for_alpha(self, path, sha, emitter):
    if self.site.site_id == "alpha":
        raise RuntimeError("the scratch database could not be opened")
    return working(self, path, sha, emitter)

engine.IntakeSite.ingest = broken_for_alpha
from warehouse import cli
sys.exit(cli.main(["nightly", "--date", "2026-11-20"]))
"""


def test_a_failed_ingest_is_one_line_naming_site_and_file(
    tiny_home: Path, airflow_ready: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAILING_ENGINE],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        # No retries: each would wait 30 s and more and fail the same way (the retry policy
        # itself is tested in tests/test_dag_operations.py).
        env={**os.environ, "BORDIN_INGEST_RETRIES": "0"},
    )
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    expected = (
        f"bordin_nightly {DATE} FAILED at ingest alpha: site alpha: file alpha_export.csv: "
        "RuntimeError: the scratch database could not be opened"
    )
    assert expected in result.stderr.splitlines()
    # The other site still ran (12 rows, 24 administrations); the failed one is in the table.
    assert "[ingest beta] done in" in result.stdout.replace("\n", " ")
    table = [line.split() for line in result.stdout.splitlines()]
    assert ["beta", "1", "12", "24", "0", "24", "0", "0", "-"] in table
    assert any(line.split()[:2] == ["alpha", "FAILED:"] for line in result.stdout.splitlines())
    log = Path(result.stderr.splitlines()[-1].split(": ", 1)[1])
    assert "Traceback" in log.read_text()  # the full story stays in Airflow's log


def test_a_failed_gate_names_the_check_without_a_traceback(
    tiny_built: Path, airflow_ready: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "impossible.yml"
    extra.write_text(
        "fct_alliance_session:\n"
        "  - type: expect_table_row_count_to_be_between\n"
        "    id: planted_impossible_row_count\n"
        "    category: plausibility\n"
        "    why: planted by the test to prove a failing check is named\n"
        "    kwargs: {min_value: 0, max_value: 0}\n"
    )
    result = run_bordin("nightly", "--date", DATE, env={"BORDIN_EXTRA_EXPECTATIONS": str(extra)})
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    failure = [line for line in result.stderr.splitlines() if " FAILED at " in line]
    assert failure and failure[0].startswith(f"bordin_nightly {DATE} FAILED at check: ")
    assert "planted_impossible_row_count" in result.stderr
