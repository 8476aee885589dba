"""Shared fixtures: isolated data roots, a test pseudonym key, a pre-migrated Airflow DB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_KEY = "test-key-0123456789"

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY_FILE", raising=False)
    return TEST_KEY


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_env: str) -> Path:
    """An empty data root, selected through $BORDIN_HOME as in production."""
    root = tmp_path / "bordin_home"
    root.mkdir()
    monkeypatch.setenv("BORDIN_HOME", str(root))
    monkeypatch.delenv("BORDIN_CONSORTIUM", raising=False)
    monkeypatch.delenv("BORDIN_EXTRA_EXPECTATIONS", raising=False)
    return root


@pytest.fixture
def tiny_home(home: Path) -> Path:
    """The hand-scorable two-site consortium, delivered into a fresh inbox."""
    shutil.copytree(FIXTURES / "tiny", home, dirs_exist_ok=True)
    return home


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`airflow db migrate` once per test session; each data root gets a copy."""
    root = tmp_path_factory.mktemp("airflow_template")
    from ingestion.settings import Paths
    from warehouse.airflow_runner import airflow_env

    where = Paths(root)
    where.airflow_home.mkdir(parents=True)
    env = {**os.environ, **airflow_env(where)}
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    return where.airflow_home / "airflow.db"


@pytest.fixture
def airflow_ready(home: Path, migrated_airflow_db: Path) -> Path:
    target = home / "airflow"
    target.mkdir(exist_ok=True)
    shutil.copy(migrated_airflow_db, target / "airflow.db")
    (target / ".migrated").write_text("ok\n", encoding="utf-8")
    return target


def run_bordin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `bordin` console script, as a person runs it."""
    bordin = Path(sys.executable).with_name("bordin")
    return subprocess.run(
        [str(bordin), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
