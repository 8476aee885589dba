"""Releases: whole or nothing, immutable, reproducible whatever the dbt thread count."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingestion.settings import Paths
from warehouse import pipeline, release

DATE = "2026-11-20"


def _build_and_check(home: Path, threads: int) -> None:
    for site in pipeline.site_ids():
        pipeline.ingest_step(site, DATE)
    pipeline.build_step(threads=threads)
    pipeline.check_step()


@pytest.fixture
def built(tiny_home: Path) -> Path:
    _build_and_check(tiny_home, threads=1)
    return tiny_home


def test_crash_while_exporting_leaves_no_release(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(release, "content_sha256", explode)
    with pytest.raises(OSError, match="disk full"):
        pipeline.release_step(DATE)
    releases = Paths(built).releases
    assert [p.name for p in releases.iterdir()] == []  # no staging leftovers, no latest


def test_release_is_read_only_and_repeat_is_a_no_op(built: Path) -> None:
    first = pipeline.release_step(DATE)
    assert first["created"] is True
    folder = Path(first["path"])
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o222 == 0, path
    again = pipeline.release_step(DATE)
    assert again["created"] is False and again["release_id"] == first["release_id"]
    assert (Paths(built).releases / "latest").resolve() == folder


def test_release_refuses_a_build_that_changed_after_the_gate(built: Path) -> None:
    where = Paths(built)
    gate = json.loads((where.build_dir / "gate_result.json").read_text())
    gate["build_db_sha256"] = "0" * 64
    (where.build_dir / "gate_result.json").write_text(json.dumps(gate))
    with pytest.raises(pipeline.GateFailedError, match="changed after the gate"):
        pipeline.release_step(DATE)
    assert not where.releases.exists() or not list(where.releases.iterdir())


def test_same_log_different_threads_same_bytes(built: Path, tmp_path: Path) -> None:
    first = pipeline.release_step(DATE)
    other = tmp_path / "other"
    shutil.copytree(built, other, ignore=shutil.ignore_patterns("build", "releases", "audit"))
    # Same event log (copied), rebuilt with 4 dbt threads.
    from ingestion import delta_store

    where = Paths(other)
    assert delta_store.current_version(where.event_log) == delta_store.current_version(
        Paths(built).event_log
    )
    import os

    os.environ["BORDIN_HOME"] = str(other)
    try:
        pipeline.build_step(threads=4)
        pipeline.check_step()
        second = pipeline.release_step(DATE)
    finally:
        os.environ["BORDIN_HOME"] = str(built)
    assert second["content_sha256"] == first["content_sha256"]
    assert second["release_id"] == first["release_id"]


def test_demo_size_data_gives_identical_bytes_across_runs_and_threads(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two data roots ingest the same demo inbox (their Delta files get different random
    names) and build with 1 and 4 dbt threads: every published Parquet byte must agree.
    Caught a real bug: parallel float aggregation changed the last bits of r between runs."""
    from warehouse.demo_consortium import write_demo_consortium

    hashes = []
    for threads, root in ((1, home), (4, tmp_path / "second")):
        root.mkdir(exist_ok=True)
        monkeypatch.setenv("BORDIN_HOME", str(root))
        write_demo_consortium(root)
        _build_and_check(root, threads=threads)
        hashes.append(pipeline.release_step(DATE)["content_sha256"])
    assert hashes[0] == hashes[1]
