"""One nightly per data root: a second one is refused at once, naming the first.

Two `dag.test` runs on one SQLite metadata DB used to fail deep inside Airflow (FOREIGN KEY
constraint failed) and could skip the night's release.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from ingestion.settings import Paths
from tests.conftest import run_bordin
from warehouse.airflow_runner import NightlyBusyError, airflow_env, one_nightly, run_nightly


def test_second_nightly_is_refused_naming_the_first(home: Path, monkeypatch) -> None:
    where = Paths(home)
    for key, value in airflow_env(where).items():  # run_nightly sets these; restore after
        monkeypatch.setenv(key, value)
    with one_nightly(where, date(2026, 11, 20)), pytest.raises(NightlyBusyError) as refused:
        run_nightly(date(2026, 11, 21), where)
    message = str(refused.value)
    assert f"pid {os.getpid()}, logical date 2026-11-20" in message
    assert str(home) in message
    assert not (where.locks / "nightly.holder.json").exists()  # the holder cleans up
    with one_nightly(where, date(2026, 11, 21)):  # and the lock is free again
        pass


@pytest.mark.slow
def test_two_nightlies_at_once_one_runs_one_is_refused(tiny_built: Path, airflow_ready) -> None:
    bordin = Path(sys.executable).with_name("bordin")
    first = subprocess.Popen(
        [str(bordin), "nightly", "--date", "2026-11-20"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = Paths(tiny_built).locks / "nightly.holder.json"
    deadline = time.monotonic() + 120
    while not holder.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder.exists(), "the first nightly never took the data root's lock"
    second = run_bordin("nightly", "--date", "2026-11-20")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out[-2000:] + err[-2000:]
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("bordin: another bordin nightly is running") and str(first.pid) in line
    assert (tiny_built / "releases" / "latest").is_symlink()  # the first one released
