"""The `bordin` command explains itself and fails in one readable message (issue 13, item 7)."""

from __future__ import annotations

import argparse

import pytest

from warehouse import cli, pipeline
from warehouse.step_errors import GateFailedError


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_has_a_description_and_names_the_environment(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([name, "-h"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1].strip()
    assert description and not description.startswith("options")
    for name_in_help in ("BORDIN_HOME", "BORDIN_PSEUDONYM_KEY_FILE", "exit status"):
        assert name_in_help in text


def test_defaults_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "-h"])
    assert "(default: 20261120)" in capsys.readouterr().out


def test_failed_gate_is_one_message_and_exit_1_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_gate():
        raise GateFailedError(
            "data-quality gate failed; nothing published:\n"
            "fct_outcome_session.phq9_total_in_range failed: 3 unexpected values"
        )

    monkeypatch.setattr(pipeline, "check_step", failing_gate)
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bordin check: data-quality gate failed; nothing published:")
    assert "phq9_total_in_range failed" in err and "Traceback" not in err
