"""Nothing new, nothing rebuilt: with every input equal to the last gated build's, dbt does not
run; a change to any one input (or a build the gate has not passed) runs it.

dbt is replaced by a stand-in that records the call and fails, so "ran" is observed directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.settings import Paths
from warehouse import build as build_module
from warehouse import pipeline

pytestmark = pytest.mark.slow  # starts from the shared tiny build


class DbtRan(Exception):
    pass


@pytest.fixture
def dbt_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def stand_in(env: dict[str, str], build_dir: Path, threads: int, variables: dict):
        calls.append(variables)
        raise DbtRan

    monkeypatch.setattr(build_module, "_run_dbt", stand_in)
    return calls


def _audit(home: Path) -> list[dict]:
    lines = Paths(home).audit_log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["step"] == "build"]


def test_unchanged_inputs_skip_dbt_and_record_a_no_op(tiny_built: Path, dbt_calls) -> None:
    before = json.loads((tiny_built / "build" / "build_info.json").read_text())
    result = pipeline.build_step()
    assert dbt_calls == []
    assert result == before
    last = _audit(tiny_built)[-1]
    assert last["no_op"] is True and last["skipped"] is True
    with pytest.raises(DbtRan):  # --force always runs dbt
        pipeline.build_step(force=True)


@pytest.mark.parametrize("change", ["consortium", "new_delivery", "gate_not_passed", "db_changed"])
def test_any_changed_input_runs_dbt(tiny_built: Path, dbt_calls, change: str) -> None:
    where = Paths(tiny_built)
    if change == "consortium":
        with where.consortium_file.open("a", encoding="utf-8") as handle:
            handle.write("# a comment changes the file's hash\n")
    elif change == "new_delivery":
        export = tiny_built / "inbox" / "beta" / "beta_export.csv"
        lines = export.read_text().splitlines()
        extra = lines[1].replace("B1,", "B9,", 1)  # one new client, one new session
        (export.parent / "beta_export_2.csv").write_text("\n".join([*lines, extra]) + "\n")
        pipeline.ingest_step("beta", "2026-11-21")
    elif change == "gate_not_passed":
        gate = json.loads((where.build_dir / "gate_result.json").read_text())
        (where.build_dir / "gate_result.json").write_text(json.dumps({**gate, "success": False}))
    elif change == "db_changed":
        with where.build_db.open("ab") as handle:
            handle.write(b"\0")
    with pytest.raises(DbtRan):
        pipeline.build_step()
    assert len(dbt_calls) == 1


class GateRan(Exception):
    pass


@pytest.fixture
def gate_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's GX run replaced by one that fails loudly: observed, never executed."""
    import expectations.gate

    def stand_in(*args, **kwargs):
        raise GateRan

    monkeypatch.setattr(expectations.gate, "run_gate", stand_in)


def _checks(home: Path) -> list[dict]:
    lines = Paths(home).audit_log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["step"] == "check"]


def test_gate_passed_on_the_same_inputs_is_a_recorded_no_op(tiny_built: Path, gate_runs) -> None:
    where = Paths(tiny_built)
    before = json.loads((where.build_dir / "gate_result.json").read_text(encoding="utf-8"))
    result = pipeline.check_step(where)  # GX would raise GateRan if it ran
    assert result == before and result["success"]
    assert _checks(tiny_built)[-1]["no_op"] is True


@pytest.mark.parametrize("change", ["extra_expectations", "db_changed", "gate_failed"])
def test_any_changed_gate_input_runs_the_gate(
    tiny_built: Path, gate_runs, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = Paths(tiny_built)
    gate_file = where.build_dir / "gate_result.json"
    if change == "extra_expectations":
        extra = tiny_built / "extra.yml"
        extra.write_text("fct_alliance_session: []\n", encoding="utf-8")
        monkeypatch.setenv("BORDIN_EXTRA_EXPECTATIONS", str(extra))
    elif change == "db_changed":
        with where.build_db.open("ab") as handle:
            handle.write(b"\0")
    else:
        gate = json.loads(gate_file.read_text(encoding="utf-8"))
        gate_file.write_text(json.dumps({**gate, "success": False}), encoding="utf-8")
    with pytest.raises(GateRan):
        pipeline.check_step(where)
