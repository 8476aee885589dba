"""Short crash sweep: SIGKILL at every named point and once at random, then re-run.

The full sweep (many repeats and random kills) is `bench/crash_sweep.py`; its figures are
quoted in the README. This keeps the same checks in every `make test`: one test per named
point, so the runs spread over the test workers, each compared with one uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_sweep import (
    CleanRun,
    Tally,
    clean_run,
    kill_and_compare,
    observe,
    random_delays,
)
from ingestion.crash_points import POINTS
from tests.conftest import SharedRoots

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def clean(shared: SharedRoots) -> CleanRun:
    """The uninterrupted run of the tiny consortium, once per test run."""

    def make(root: Path) -> None:
        root.mkdir(parents=True)
        seconds = clean_run(root, "tiny").seconds
        (root / "seconds.txt").write_text(f"{seconds}\n", encoding="utf-8")

    root = shared.get("crash_clean", make)
    seconds = float((root / "seconds.txt").read_text(encoding="utf-8"))
    return CleanRun(root / "template", observe(root / "clean"), seconds)


def _no_damage(tally: Tally) -> None:
    assert (tally.duplicates, tally.losses, tally.mismatches, tally.half_releases) == (
        0,
        0,
        0,
        0,
    ), tally.details


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_named_point_then_rerun_matches_clean_run(
    point: str, clean: CleanRun, tmp_path: Path
) -> None:
    tally = Tally()
    kill_and_compare(clean, tmp_path, point, tally, crash_at=point)
    assert tally.runs == 1
    assert tally.killed == 1  # the named point really killed the process
    _no_damage(tally)


def test_kill_at_a_random_moment_then_rerun_matches_clean_run(
    clean: CleanRun, tmp_path: Path
) -> None:
    (delay,) = random_delays(clean, 1, seed=11)
    tally = Tally()
    kill_and_compare(clean, tmp_path, f"random@{delay:.1f}s", tally, kill_after=delay)
    assert tally.runs == 1
    _no_damage(tally)
