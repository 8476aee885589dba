"""A failed build cleans up after itself: no half-written warehouse or WAL is left behind.

A red-team run found `warehouse.next.duckdb` and a 20 MB WAL after a failed dbt build. dbt is
replaced here by a stand-in that writes both files and fails (a unit test of `build` alone).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ingestion.settings import Paths
from warehouse import build as build_module
from warehouse.pipeline import ingest_step, site_ids


def test_failed_dbt_build_leaves_no_partial_files(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = Paths(tiny_home)
    for site in site_ids(where):
        ingest_step(site, "2026-11-20", where)

    def failing_dbt(env: dict[str, str], build_dir: Path, threads: int, variables: dict):
        fresh = build_dir / env["BORDIN_BUILD_DB"]
        fresh.write_bytes(b"half a database")
        fresh.with_suffix(".duckdb.wal").write_bytes(b"\0" * 1024)
        return subprocess.CompletedProcess(["dbt"], 2, "Compilation Error in model x", "")

    monkeypatch.setattr(build_module, "_run_dbt", failing_dbt)
    with pytest.raises(build_module.BuildError, match="Compilation Error"):
        build_module.build(where)
    left = sorted(p.name for p in where.build_dir.iterdir() if p.is_file())
    assert "warehouse.next.duckdb" not in left
    assert "warehouse.next.duckdb.wal" not in left
    assert not where.build_db.exists()  # and nothing was swapped in
