"""Crash-safety sweep: SIGKILL the nightly pipeline at named points and at random moments.

For each run: a fresh copy of a consortium's inbox, one pipeline run killed (at a named crash
point via BORDIN_CRASH_AT, or by the sweep after a random delay), then a clean re-run. The
result is compared with an uninterrupted run of the same inbox:

- duplicate: an event id appears twice in the log
- loss: the set of event ids differs from the clean run's, or a delivered file's events differ
- hash mismatch: a published Parquet file differs from the clean run's
- half release: a visible release folder whose files do not all match its manifest

Usage: .venv/bin/python bench/crash_sweep.py [--repeats 3] [--random 20] [--fixture tiny|demo]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingestion import delta_store  # noqa: E402
from ingestion.crash_points import POINTS  # noqa: E402
from ingestion.events import EVENT_SCHEMA  # noqa: E402
from ingestion.settings import Paths  # noqa: E402

DATE = "2026-11-20"
KEY = "crash-sweep-key-0123456789"
PIPELINE = (
    "from warehouse import pipeline\n"
    f"for site in pipeline.site_ids(): pipeline.ingest_step(site, {DATE!r})\n"
    "pipeline.build_step()\n"
    "pipeline.check_step()\n"
    f"pipeline.release_step({DATE!r})\n"
)


@dataclass
class Outcome:
    events: list[str]
    per_file: dict[str, int]
    parquet: dict[str, str]
    half_releases: int


@dataclass
class Tally:
    runs: int = 0
    duplicates: int = 0
    losses: int = 0
    mismatches: int = 0
    half_releases: int = 0
    killed: int = 0
    details: list[str] = field(default_factory=list)


def make_template(root: Path, fixture: str) -> Path:
    template = root / "template"
    if fixture == "tiny":
        shutil.copytree(REPO / "tests" / "fixtures" / "tiny", template)
    else:
        from warehouse.demo_consortium import write_demo_consortium

        template.mkdir()
        write_demo_consortium(template)
    return template


def _env(home: Path, crash_at: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "BORDIN_HOME": str(home),
        "BORDIN_PSEUDONYM_KEY": KEY,
        "BORDIN_QUIET_PERIOD_SECONDS": "0",  # the inbox was copied in a moment ago
    }
    env.pop("BORDIN_PSEUDONYM_KEY_FILE", None)
    env.pop("BORDIN_CRASH_AT", None)
    if crash_at:
        env["BORDIN_CRASH_AT"] = crash_at
    return env


def run_pipeline(home: Path, crash_at: str | None = None, kill_after: float | None = None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", PIPELINE],
        env=_env(home, crash_at),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    if kill_after is None:
        return proc.wait(timeout=600)
    try:
        return proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=60)


def observe(home: Path) -> Outcome:
    where = Paths(home)
    events = delta_store.read(where.event_log, EVENT_SCHEMA).to_pylist()
    per_file = Counter(e["source_sha256"] for e in events)
    parquet: dict[str, str] = {}
    latest = where.releases / "latest"
    if latest.exists():
        manifest = json.loads((latest / "manifest.json").read_text())
        parquet = {f["path"]: f["sha256"] for f in manifest["files"] if f.get("mart")}
    return Outcome(sorted(e["event_id"] for e in events), dict(per_file), parquet, _half(where))


def _half(where: Paths) -> int:
    """Visible release folders whose content does not match their own manifest."""
    bad = 0
    if not where.releases.is_dir():
        return 0
    for folder in where.releases.iterdir():
        if folder.name.startswith(".") or folder.is_symlink():
            continue
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            bad += 1
            continue
        for entry in json.loads(manifest.read_text())["files"]:
            path = folder / entry["path"]
            if (
                not path.is_file()
                or hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]
            ):
                bad += 1
                break
    return bad


def compare(label: str, clean: Outcome, got: Outcome, tally: Tally) -> None:
    tally.runs += 1
    if len(got.events) != len(set(got.events)):
        tally.duplicates += 1
        tally.details.append(f"{label}: duplicate event ids")
    if set(got.events) != set(clean.events) or got.per_file != clean.per_file:
        tally.losses += 1
        tally.details.append(f"{label}: events differ from the clean run")
    if got.parquet != clean.parquet:
        tally.mismatches += 1
        tally.details.append(f"{label}: release hashes differ")
    if got.half_releases:
        tally.half_releases += 1
        tally.details.append(f"{label}: {got.half_releases} half-written release folder(s)")


def one_run(template: Path, root: Path, label: str, **kill) -> Outcome:
    home = root / re.sub(r"[^A-Za-z0-9._-]", "-", label)
    shutil.copytree(template, home)
    code = run_pipeline(home, **kill)
    killed = code in (-signal.SIGKILL, 128 + signal.SIGKILL)
    run_pipeline(home)  # the re-run a scheduler retry or the next night performs
    outcome = observe(home)
    outcome.killed = killed  # type: ignore[attr-defined]
    shutil.rmtree(home, ignore_errors=True)
    return outcome


@dataclass
class CleanRun:
    """The uninterrupted run every killed run is compared with."""

    template: Path
    outcome: Outcome
    seconds: float


def clean_run(root: Path, fixture: str) -> CleanRun:
    template = make_template(root, fixture)
    clean_home = root / "clean"
    shutil.copytree(template, clean_home)
    started = time.monotonic()
    if run_pipeline(clean_home) != 0:
        raise RuntimeError("the uninterrupted run failed; fix that first")
    return CleanRun(template, observe(clean_home), time.monotonic() - started)


def kill_and_compare(clean: CleanRun, root: Path, label: str, tally: Tally, **kill) -> None:
    """One run killed (at a named point or after a delay), re-run, and compared."""
    got = one_run(clean.template, root, label, **kill)
    tally.killed += got.killed  # type: ignore[attr-defined]
    compare(label, clean.outcome, got, tally)


def random_delays(clean: CleanRun, runs: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.2, clean.seconds) for _ in range(runs)]


def sweep(repeats: int, random_runs: int, fixture: str, seed: int = 7) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="bordin-crash-") as tmp:
        root = Path(tmp)
        clean = clean_run(root, fixture)
        for point in POINTS:
            for k in range(repeats):
                kill_and_compare(clean, root, f"{point}#{k}", tally, crash_at=point)
        for k, delay in enumerate(random_delays(clean, random_runs, seed)):
            kill_and_compare(clean, root, f"random#{k}@{delay:.1f}s", tally, kill_after=delay)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--fixture", choices=("tiny", "demo"), default="tiny")
    args = parser.parse_args()
    started = time.monotonic()
    tally = sweep(args.repeats, args.random, args.fixture)
    print(
        f"crash sweep ({args.fixture}): {tally.runs} runs "
        f"({len(POINTS)} named points x {args.repeats} + {args.random} random kills), "
        f"{tally.killed} actually killed before finishing\n"
        f"  duplicates: {tally.duplicates}\n  losses: {tally.losses}\n"
        f"  hash mismatches: {tally.mismatches}\n  half-written releases: {tally.half_releases}\n"
        f"  took {time.monotonic() - started:.0f} s"
    )
    for line in tally.details:
        print("  !", line)
    bad = tally.duplicates + tally.losses + tally.mismatches + tally.half_releases
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
