"""Shared fixtures: isolated data roots, a test pseudonym key, a pre-migrated Airflow DB, and
data roots built once per test run and copied into each test that needs one.

Tiers: tests that run dbt, a nightly DAG, the crash sweep or demo-size data are marked `slow`;
`make test-fast` leaves them out, `make test` runs everything. A test that is not marked slow
is stopped if it starts a dbt build or a nightly, so the fast tier stays fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from warehouse import parse_cache

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_KEY = "test-key-0123456789"

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
# Tests write a file and ingest it at once: no quiet period (ingestion/arrival.py), except in
# tests/test_arrival.py, which removes this to test the waiting itself.
os.environ["BORDIN_QUIET_PERIOD_SECONDS"] = "0"


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


# --------------------------------------------------------------------------- tiers

_SLOW_COMMANDS = {"nightly", "build", "demo", "rebuild"}
_current_test_is_slow = True


@pytest.fixture(autouse=True)
def _fast_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test outside the slow tier may not run dbt or a nightly: mark it `slow` instead."""
    global _current_test_is_slow
    _current_test_is_slow = request.node.get_closest_marker("slow") is not None
    if _current_test_is_slow:
        return
    from warehouse import build

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} runs dbt: mark it @pytest.mark.slow")

    monkeypatch.setattr(build, "_run_dbt", refuse)


# Slow modules, most work first (measured with --durations): the heaviest, and the shared roots
# other tests wait for, start at once; lighter ones fill in and are stolen by the idle worker.
_HEAVIEST_FIRST = (
    "test_crash_safety",
    "test_end_to_end",
    "test_real_scheduler",
    "test_release",
    "test_lifecycle",
    "test_release_identifiers",
    "test_verify",
    "test_science_pooling",
    "test_inbox_hygiene",
    "test_erasure",
)


def _schedule(item: pytest.Item) -> tuple[int, int]:
    if item.get_closest_marker("slow") is None:
        return (1, 0)
    module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
    rank = _HEAVIEST_FIRST.index(module) if module in _HEAVIEST_FIRST else len(_HEAVIEST_FIRST)
    return (0, rank)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, heaviest modules first, so the workers finish together.
    (`--random-order` reorders after this: the proof that order does not matter.)"""
    items.sort(key=_schedule)


# --------------------------------------------------------------------------- shared roots


class SharedRoots:
    """Data roots built once per test run, across xdist workers (a file lock per root).

    Build-once roots are read by many tests: a test that writes works on its own copy
    (`copy_root`). Every path the platform stores is relative to the root, so copies work.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, name: str, make: Callable[[Path], None]) -> Path:
        root = self.folder / name
        done = self.folder / f"{name}.done"
        with FileLock(str(self.folder / f"{name}.lock")):
            if not done.exists():
                shutil.rmtree(root, ignore_errors=True)
                make(root)
                done.write_text("ok\n", encoding="utf-8")
        return root


def copy_root(source: Path, target: Path) -> Path:
    """A private copy of a built data root (symlinks such as releases/latest stay links)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    return target


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> SharedRoots:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by every worker
    return SharedRoots(base / "shared-roots")


@pytest.fixture(scope="session", autouse=True)
def _shared_dbt_parse(shared: SharedRoots) -> Iterator[None]:
    """Every data root's first build starts from the parse an earlier build saved (dbt checks
    it still holds): a full parse of the project costs about 8 s per fresh root."""
    mp = pytest.MonkeyPatch()
    mp.setenv(parse_cache.ENV, str(shared.folder.parent / "dbt-parse-cache"))
    yield
    mp.undo()


def _with_root(root: Path) -> pytest.MonkeyPatch:
    """Environment for building a shared root, as the `home` fixture sets it for a test."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BORDIN_HOME", str(root))
    mp.setenv("BORDIN_PSEUDONYM_KEY", TEST_KEY)
    for name in (
        "BORDIN_PSEUDONYM_KEY_FILE",
        "BORDIN_CONSORTIUM",
        "BORDIN_REGISTRY_DIR",
        "BORDIN_EXTRA_EXPECTATIONS",
    ):
        mp.delenv(name, raising=False)
    return mp


def read_rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a query on a DuckDB file, opened read-only and closed again."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@contextlib.contextmanager
def building(root: Path) -> Iterator[Path]:
    """Run pipeline steps on a shared root: only slow tests ask for one."""
    global _current_test_is_slow
    mp = _with_root(root)
    was_slow, _current_test_is_slow = _current_test_is_slow, True
    try:
        yield root
    finally:
        _current_test_is_slow = was_slow
        mp.undo()


TINY_NIGHT = "2026-11-20"


def night(day: str, where=None, *, release: bool = True) -> dict:
    """One night through the pipeline functions the DAG's tasks call (no Airflow)."""
    from warehouse import pipeline

    for site in pipeline.site_ids(where):
        pipeline.ingest_step(site, day, where)
    built = pipeline.build_step(where)
    pipeline.check_step(where)
    return pipeline.release_step(day, where) if release else built


def _make_tiny_built(root: Path) -> None:
    shutil.copytree(FIXTURES / "tiny", root)
    with building(root):
        night(TINY_NIGHT, release=False)


def _make_airflow_db(root: Path) -> None:
    from ingestion.settings import Paths
    from warehouse.airflow_runner import airflow_env

    where = Paths(root)
    where.airflow_home.mkdir(parents=True)
    env = {**os.environ, **airflow_env(where)}
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)


def _make_tiny_nightly(shared_roots: SharedRoots) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        shutil.copytree(FIXTURES / "tiny", root)
        install_airflow_db(shared_roots, root)
        with building(root):
            result = run_bordin("nightly", "--date", TINY_NIGHT)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        # What the person saw, beside the root (not in it): tests/test_nightly_output.py.
        nightly_output(root).write_text(result.stdout + result.stderr, encoding="utf-8")

    return make


def nightly_output(root: Path) -> Path:
    """Where the shared tiny nightly's terminal output is kept."""
    return root.parent / f"{root.name}.output.txt"


def install_airflow_db(shared_roots: SharedRoots, root: Path) -> Path:
    template = shared_roots.get("airflow_db", _make_airflow_db) / "airflow" / "airflow.db"
    target = root / "airflow"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, target / "airflow.db")
    (target / ".migrated").write_text("ok\n", encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def tiny_built_root(shared: SharedRoots) -> Path:
    """The tiny consortium after one night's ingest, dbt build and gate (no release yet).

    Shared by every test of the run: read it, never write into it (use `tiny_built`)."""
    return shared.get("tiny_built", _make_tiny_built)


@pytest.fixture
def tiny_built(home: Path, tiny_built_root: Path) -> Path:
    """A private copy of `tiny_built_root` as this test's $BORDIN_HOME."""
    return copy_root(tiny_built_root, home)


@pytest.fixture(scope="session")
def tiny_nightly_root(shared: SharedRoots) -> Path:
    """The tiny consortium after one real nightly DAG run (`bordin nightly`); read-only."""
    return shared.get("tiny_nightly", _make_tiny_nightly(shared))


@pytest.fixture
def airflow_ready(home: Path, shared: SharedRoots) -> Path:
    return install_airflow_db(shared, home)


def run_bordin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `bordin` console script, as a person runs it."""
    if args and args[0] in _SLOW_COMMANDS and not _current_test_is_slow:
        raise AssertionError(f"`bordin {args[0]}` runs dbt or a DAG: mark the test slow")
    bordin = Path(sys.executable).with_name("bordin")
    return subprocess.run(
        [str(bordin), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
