"""Short crash sweep: SIGKILL at every named point and once at random, then re-run.

The full sweep (many repeats and random kills) is `bench/crash_sweep.py`; its figures are
quoted in the README. This keeps the same checks in every `make test`.
"""

from __future__ import annotations

from bench.crash_sweep import sweep
from ingestion.crash_points import POINTS


def test_kill_at_each_named_point_and_at_random_then_rerun_matches_clean_run() -> None:
    tally = sweep(repeats=1, random_runs=1, fixture="tiny", seed=11)
    assert tally.runs == len(POINTS) + 1
    assert tally.killed >= len(POINTS)  # every named point really killed the process
    assert (tally.duplicates, tally.losses, tally.mismatches, tally.half_releases) == (
        0,
        0,
        0,
        0,
    ), tally.details
