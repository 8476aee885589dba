"""Where everything lives: every path the platform writes derives from $BORDIN_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DAGS_DIR = REPO_ROOT / "dags"
INSTRUMENTS_DIR = REPO_ROOT / "ingestion" / "instruments"


@dataclass(frozen=True)
class Paths:
    """The data root's layout; one object so no module invents its own paths."""

    home: Path

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def consortium_file(self) -> Path:
        return Path(os.environ.get("BORDIN_CONSORTIUM", self.home / "consortium.yml"))

    @property
    def event_log(self) -> Path:
        return self.home / "eventlog" / "events"

    @property
    def quarantine(self) -> Path:
        return self.home / "restricted" / "quarantine"

    @property
    def intake(self) -> Path:
        return self.home / "restricted" / "intake"

    @property
    def locks(self) -> Path:
        return self.home / "restricted" / "locks"

    @property
    def exports(self) -> Path:
        """`bordin export` output, one folder per release and format (outside the release)."""
        return self.home / "exports"

    @property
    def scratch(self) -> Path:
        """The intake engine's scratch databases: raw codes, so restricted; removed after use."""
        return self.home / "restricted" / "scratch"

    @property
    def build_dir(self) -> Path:
        return self.home / "build"

    @property
    def build_db(self) -> Path:
        return self.build_dir / "warehouse.duckdb"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def audit_log(self) -> Path:
        return self.home / "audit" / "runs.jsonl"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    def inbox_for(self, site_id: str) -> Path:
        return self.inbox / site_id

    def stored(self, path: Path) -> str:
        """A path as artefacts record it: relative to the data root when inside it, so a copied
        or moved root keeps working; absolute otherwise (e.g. the repository's registry)."""
        try:
            return str(Path(path).resolve().relative_to(self.home.resolve()))
        except ValueError:
            return str(path)

    def resolve(self, stored: str) -> Path:
        """The inverse of `stored`; absolute paths from older artefacts pass through."""
        path = Path(stored)
        return path if path.is_absolute() else self.home / path


def bordin_home() -> Path:
    return Path(os.environ.get("BORDIN_HOME", REPO_ROOT / "var")).resolve()


def paths() -> Paths:
    return Paths(bordin_home())
