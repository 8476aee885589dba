"""Prove a release is the one that was published: rebuild it and compare every content hash.

The rebuild reads the event log (and the quarantine and intake tables) at the versions the
manifest records, scores with the registry and consortium file the release carries (`rules/`;
the consortium file also decides whether fct_session_calendar is built), builds in a scratch
folder (never touching the nightly build) and exports the marts and the codebook the same way
publishing does; every Parquet file and both codebook files must come out byte for byte.
A release written in another release format (warehouse/release_format.py) is not rebuilt: the
report says which format changes stand between it and this code, and which code to check out.
It also verifies the release folder on disk (warehouse/verify.py): a rebuild that matches the
manifest proves nothing about a file overwritten after publishing, so any difference between the
files on disk, the manifest and the release ledger means "not reproduced".
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

from ingestion.settings import Paths, paths
from warehouse.build import BuildError, Rules, build
from warehouse.release import export_marts, reproducible, reproducible_hashes
from warehouse.release_format import format_problem
from warehouse.verify import Problem, verify_release


@dataclass(frozen=True)
class FileCheck:
    path: str
    published: str
    rebuilt: str | None

    @property
    def matches(self) -> bool:
        return self.published == self.rebuilt


@dataclass(frozen=True)
class RebuildReport:
    release_id: str
    event_log_version: int
    checks: list[FileCheck]
    problem: str | None = None
    disk_problems: list[Problem] = field(default_factory=list)  # release folder vs manifest

    @property
    def reproduced(self) -> bool:
        return (
            self.problem is None
            and not self.disk_problems
            and bool(self.checks)
            and all(c.matches for c in self.checks)
        )


def rebuild(
    release_id: str, where: Paths | None = None, threads: int | None = None
) -> RebuildReport:
    where = where or paths()
    folder = where.releases / release_id
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no release {release_id!r} under {where.releases}")
    disk = verify_release(release_id, where).problems
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    version = int(manifest["event_log_version"])
    too_old = format_problem(manifest)
    if too_old:
        return RebuildReport(release_id, version, [], too_old, disk)
    scratch = where.home / "scratch" / f"rebuild-{release_id}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rules = Rules(folder / "rules" / "instruments", folder / "rules" / "consortium.yml")
    try:
        result = build(
            where,
            version=version,
            threads=threads,
            build_dir=scratch / "build",
            rules=rules,
            quarantine_version=manifest.get("quarantine_version"),
            intake_version=manifest.get("intake_version"),
        )
    except BuildError as exc:
        return RebuildReport(release_id, version, [], _explain(str(exc)), disk)
    files = export_marts(where.resolve(result.build_db), scratch / "release", rules.registry_dir)
    rebuilt = reproducible_hashes(files)
    checks = [
        FileCheck(f["path"], f["sha256"], rebuilt.get(f["path"]))
        for f in manifest["files"]
        if reproducible(f["path"])
    ]
    checks += [FileCheck(p, "", h) for p, h in rebuilt.items() if p not in {c.path for c in checks}]
    return RebuildReport(release_id, version, sorted(checks, key=lambda c: c.path), None, disk)


def _explain(message: str) -> str:
    if "No files found" in message or "not found" in message.lower():
        return (
            "the event-log files of this version no longer exist: an erasure removed data this "
            "release was built from, so it can no longer be rebuilt byte for byte (see README, "
            f"Erasure). dbt said: {message[-500:]}"
        )
    return message[-2000:]
