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


# What each command reads from the environment, worked out from the code paths it runs (every
# command also reads BORDIN_HOME and BORDIN_TIMING): the key only where pseudonyms are made.
KEY = {"BORDIN_PSEUDONYM_KEY", "BORDIN_PSEUDONYM_KEY_FILE"}
INGEST = KEY | {
    "BORDIN_CONSORTIUM",
    "BORDIN_REGISTRY_DIR",
    "BORDIN_INTAKE_MEMORY",
    "BORDIN_INTAKE_THREADS",
    "BORDIN_QUIET_PERIOD_SECONDS",
}
BUILD = {"BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR", "BORDIN_DBT_THREADS", "BORDIN_BUILD_MEMORY"}
CHECK = {"BORDIN_REGISTRY_DIR", "BORDIN_EXTRA_EXPECTATIONS", "BORDIN_GATE_CHUNK_ROWS"}
NIGHT = INGEST | BUILD | CHECK | {"BORDIN_CRASH_AT", "BORDIN_DBT_PARSE_CACHE"}
READS = {
    "demo": NIGHT,
    "nightly": NIGHT,
    "ingest": INGEST | {"BORDIN_CRASH_AT"},
    "build": BUILD | {"BORDIN_CRASH_AT", "BORDIN_DBT_PARSE_CACHE"},
    "check": CHECK,
    "release": {"BORDIN_CRASH_AT"},
    "rebuild": {"BORDIN_DBT_THREADS", "BORDIN_BUILD_MEMORY", "BORDIN_DBT_PARSE_CACHE"},
    "verify": set(),
    "diff": set(),
    "history": KEY | {"BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR"},
    "erase": KEY | {"BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR"},
    "export": set(),
    "config": INGEST - KEY,  # a dry run keys with a throwaway key
    "reprocess": INGEST,
}
EVERYWHERE = {"BORDIN_HOME", "BORDIN_TIMING"}
ALL_VARIABLES = set().union(*READS.values()) | EVERYWHERE


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 0
    return capsys.readouterr().out


def test_every_command_is_covered_here() -> None:
    assert set(_subcommands()) == set(READS)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_has_a_description_and_names_the_environment_it_reads(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help([name, "-h"], capsys)
    description = text.split("\n\n")[1].strip()
    assert description and not description.startswith("options")
    environment = text.split("environment:\n")[1].split("\n\n")[0]
    listed = {line.split()[0] for line in environment.splitlines()}
    assert listed == READS[name] | EVERYWHERE
    for line in environment.splitlines():
        assert len(line.split(None, 1)) == 2, line  # each variable says what it does
    assert "exit status" in text


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_argument_has_help_text_and_shows_its_default(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _subcommands()[name]
    text = " ".join(_help([name, "-h"], capsys).split())
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        assert " ".join(action.help.split()) in text
        if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
            assert f"(default: {action.default})" in text, (name, action.dest)


def test_bare_bordin_lists_every_command_and_every_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["-h"], capsys)
    for name in READS:
        assert f"    {name} " in text
    for variable in ALL_VARIABLES:
        assert f"  {variable} " in text


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
