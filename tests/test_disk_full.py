"""A full disk names the path and the space needed; the rerun completes (issue 12, item 9).

The red-team run filled the disk at four points: every step recovered, but the message was
delta-rs' `Generic LocalFileSystem error`. Here the write that fails is replaced by one raising
what the OS raises (errno 28), or dbt's output is replaced by DuckDB's wording; the free space
the message reports is pinned so the expected text is known in advance.
"""

from __future__ import annotations

import errno
import json
import subprocess
from collections import namedtuple
from pathlib import Path

import duckdb
import pytest
from deltalake.exceptions import DeltaError

from ingestion import delta_store, disk_space
from ingestion.disk_space import DiskFullError, is_disk_full
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import INTAKE_SCHEMA
from ingestion.settings import Paths
from warehouse import build as build_module
from warehouse import cli
from warehouse import release as release_module
from warehouse.pipeline import ingest_step, release_step, site_ids

Usage = namedtuple("Usage", "total used free")
FREE = 1_500_000  # what the patched disk reports: "1.5 MB"


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def small_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda path: Usage(10**9, 0, FREE))


def test_library_wordings_of_a_full_disk_are_recognized() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(
        DeltaError("Generic LocalFileSystem error: Unable to copy data: No space left on device")
    )
    assert is_disk_full(DeltaError("Generic LocalFileSystem error: (os error 28)"))
    assert is_disk_full(
        duckdb.IOException('IO Error: Could not write file "x.duckdb": No space left on device')
    )
    try:
        try:
            _enospc()
        except OSError as inner:
            raise RuntimeError("Parquet write failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)  # found through the cause
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(DeltaError("Generic LocalFileSystem error: Permission denied"))


def test_full_disk_while_ingesting_names_path_and_space_and_commits_nothing(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch, small_disk: None
) -> None:
    where = Paths(tiny_home)
    with pytest.MonkeyPatch.context() as full, pytest.raises(DiskFullError) as caught:
        full.setattr(delta_store.pq, "write_table", _enospc)
        ingest_step("alpha", "2026-11-20", where)
    message = str(caught.value)
    assert "the disk is full" in message and "is free there" in message
    assert "1.5 MB is free there" in message
    assert str(tiny_home) in message and "needs about" in message
    assert "Generic LocalFileSystem" not in message
    assert caught.value.needed_bytes and caught.value.needed_bytes > 0
    assert delta_store.current_version(where.event_log) in (None, 0)  # no event committed
    # Space freed: the rerun ingests everything, once.
    result = ingest_step("alpha", "2026-11-20", where)
    assert result["events_written"] > 0
    events = delta_store.read(where.event_log, EVENT_SCHEMA).to_pylist()
    assert len(events) == result["events_written"]
    intake = delta_store.read(where.intake, INTAKE_SCHEMA).to_pylist()
    assert sorted(r["source_file"] for r in intake) == sorted(
        f["source_file"] for f in result["files"]
    )


def test_cli_reports_a_full_disk_in_one_line(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch, small_disk: None, capsys
) -> None:
    monkeypatch.setattr(delta_store.pq, "write_table", _enospc)
    assert cli.main(["ingest", "--date", "2026-11-20", "--site", "alpha"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bordin: the disk is full:") and "\n" not in err
    assert "1.5 MB is free there" in err


def test_full_disk_during_dbt_names_the_build_folder_and_cleans_up(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch, small_disk: None
) -> None:
    where = Paths(tiny_home)
    for site in site_ids(where):
        ingest_step(site, "2026-11-20", where)

    def full_dbt(env: dict[str, str], build_dir: Path, threads: int, variables: dict):
        (build_dir / env["BORDIN_BUILD_DB"]).write_bytes(b"half a database")
        out = 'Runtime Error\n  IO Error: Could not write file "warehouse.next.duckdb": '
        return subprocess.CompletedProcess(["dbt"], 2, out + "No space left on device", "")

    monkeypatch.setattr(build_module, "_run_dbt", full_dbt)
    with pytest.raises(DiskFullError) as caught:
        build_module.build(where)
    message = str(caught.value)
    assert "building the warehouse needs about" in message
    assert f"at {where.build_dir}," in message and "1.5 MB is free there" in message
    assert not (where.build_dir / "warehouse.next.duckdb").exists()
    assert not where.build_db.exists()


@pytest.mark.slow
def test_full_disk_while_publishing_leaves_no_release(tiny_built: Path, small_disk: None) -> None:
    where = Paths(tiny_built)
    with pytest.MonkeyPatch.context() as full, pytest.raises(DiskFullError) as caught:
        full.setattr(release_module, "export_marts", _enospc)
        release_step("2026-11-20", where)
    message = str(caught.value)
    build_size = where.build_db.stat().st_size
    needed = disk_space._size(2 * build_size)  # Parquet and marts.duckdb: the build twice
    assert f"publishing the release needs about {needed} at {where.releases}," in message
    assert not [p for p in where.releases.iterdir() if p.name != "latest"]  # not even staging
    published = release_step("2026-11-20", where)
    assert published["created"]
    manifest = json.loads((Path(published["path"]) / "manifest.json").read_text())
    assert manifest["release_id"] == published["release_id"]
