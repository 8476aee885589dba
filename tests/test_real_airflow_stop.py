"""The real-scheduler stack's shutdown (tests/real_airflow.py `_stop`) on real processes.

A service that ignores SIGTERM, and a task process left behind by a service that did exit, must
both be gone after the grace period: a stray scheduler or task would outlive the test run.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.real_airflow import _stop


def _spawn(script: str) -> tuple[subprocess.Popen, int]:
    """A process-group leader running `script`; returns it and its background child's pid."""
    process = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """No such process, or only a zombie waiting for its new parent to reap it."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        try:
            state = next(ln for ln in status.read_text().splitlines() if ln.startswith("State:"))
        except (FileNotFoundError, ProcessLookupError):
            return True
        if "Z" in state.split()[1]:
            return True
        time.sleep(0.1)
    return False


def test_stop_kills_stubborn_services_and_left_behind_tasks() -> None:
    # Ignores SIGTERM, and so does its child (an ignored signal stays ignored across fork).
    stubborn, stubborn_child = _spawn("trap '' TERM; sleep 300 & echo $!; wait")
    # Exits on SIGTERM at once, but leaves a child that ignores it (an orphaned task process).
    polite, orphan = _spawn("(trap '' TERM; exec sleep 300) & echo $!; wait")
    started = time.monotonic()
    _stop({"stubborn": stubborn, "polite": polite}, grace_s=1.0)

    assert stubborn.poll() is not None and polite.poll() is not None
    assert _gone(stubborn_child), "the stubborn service's child survived"
    assert _gone(orphan), "the task process of a service that exited survived"
    assert time.monotonic() - started < 15
