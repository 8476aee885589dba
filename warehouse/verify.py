"""Check a published release against what was published: files vs manifest, manifest vs ledger.

A manifest inside the release cannot vouch for itself: whoever rewrites a Parquet file can rewrite
its hash too. So publishing also appends one line per release to a ledger outside the release
folder (`audit/releases.jsonl`: release id, logical date, SHA-256 of `manifest.json`), and
`verify_release` checks, from the files on disk only (nothing is rebuilt, nothing is written):

- the manifest's hash equals the ledger's line for that release;
- every file the manifest lists exists as a regular file inside the folder with its hash;
- no file is present that the manifest does not list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ingestion.hashing import sha256_file
from ingestion.settings import Paths, paths

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the release folder
    kind: str  # changed, missing, not in manifest, not a regular file, unsafe path, ...
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    release_id: str
    folder: str
    files_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- ledger


def ledger_path(where: Paths) -> Path:
    return where.audit_log.parent / "releases.jsonl"


def read_ledger(where: Paths) -> dict[str, dict]:
    """Ledger lines by release id. A line that does not parse (torn by a crash mid-append) is
    skipped: its release then counts as unrecorded, and re-running the publish records it."""
    ledger = ledger_path(where)
    if not ledger.is_file():
        return {}
    entries: dict[str, dict] = {}
    for line in ledger.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "release_id" in entry:
            entries.setdefault(entry["release_id"], entry)
    return entries


def record_release(where: Paths, release_id: str, logical_date: str, manifest: Path) -> bool:
    """Append the release's ledger line unless it is there already; True when one was added.

    One `write` of one line in append mode, then fsync: a crash leaves the line whole, absent,
    or torn (skipped by `read_ledger`). A recorded release is never recorded twice, and a
    different manifest for a recorded id is refused rather than silently re-recorded."""
    digest = sha256_file(manifest)
    known = read_ledger(where).get(release_id)
    if known is not None:
        recorded = known.get("manifest_sha256")
        if recorded != digest:
            raise RuntimeError(
                f"release {release_id} is in the ledger with manifest {recorded} but {manifest} "
                f"hashes to {digest}: not re-recording it (run `bordin verify`)"
            )
        return False
    ledger = ledger_path(where)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    line = {"release_id": release_id, "logical_date": logical_date, "manifest_sha256": digest}
    payload = json.dumps(line, sort_keys=True) + "\n"
    created = not ledger.exists()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size and not _ends_with_newline(ledger):
            payload = "\n" + payload  # after a torn line, start a fresh one
        os.write(fd, payload.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(ledger.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return True


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


# --------------------------------------------------------------------------- verify


def resolve_release(release: str, where: Paths) -> Path:
    """The folder of a release id, or of the release `latest` points at."""
    folder = where.releases / release
    if release == "latest" and folder.is_symlink():
        folder = where.releases / os.readlink(folder)
    if release in ("", ".", "..") or "/" in release or not folder.is_dir():
        raise FileNotFoundError(f"no release {release!r} under {where.releases}")
    return folder


def verify_release(release: str = "latest", where: Paths | None = None) -> VerifyReport:
    """Every difference between the release folder on disk, its manifest and the ledger."""
    where = where or paths()
    folder = resolve_release(release, where)
    release_id = folder.name
    problems: list[Problem] = []
    manifest_path = folder / MANIFEST
    if manifest_path.is_symlink() or not manifest_path.is_file():
        problems.append(Problem(MANIFEST, "missing", "the release has no manifest"))
        return VerifyReport(release_id, str(folder), 0, problems)
    problems += _check_ledger(where, release_id, sha256_file(manifest_path))
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = {str(entry["path"]): str(entry["sha256"]) for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(Problem(MANIFEST, "unreadable", f"not a release manifest: {exc}"))
        return VerifyReport(release_id, str(folder), 0, problems)
    if manifest.get("release_id") != release_id:
        problems.append(Problem(MANIFEST, "wrong release", f"names {manifest.get('release_id')!r}"))
    for relative, expected in sorted(listed.items()):
        problems += _check_file(folder, relative, expected)
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_symlink() or not p.is_dir()
    }
    for relative in sorted(present - set(listed) - {MANIFEST}):
        problems.append(Problem(relative, "not in manifest", "present but never published"))
    return VerifyReport(release_id, str(folder), len(listed) + 1, problems)


def _check_ledger(where: Paths, release_id: str, digest: str) -> list[Problem]:
    entry = read_ledger(where).get(release_id)
    if entry is None:
        return [
            Problem(
                MANIFEST,
                "not in ledger",
                f"no line for this release in {ledger_path(where)}: publishing did not finish "
                "(re-run `bordin release` for its date) or the folder was put there by hand",
            )
        ]
    if entry.get("manifest_sha256") != digest:
        return [
            Problem(
                MANIFEST,
                "manifest changed",
                f"sha256 {digest}, the ledger recorded {entry.get('manifest_sha256')}",
            )
        ]
    return []


def _check_file(folder: Path, relative: str, expected: str) -> list[Problem]:
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or relative in ("", "."):
        return [Problem(relative, "unsafe path", "points outside the release folder")]
    path = folder / relative
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return [Problem(relative, "not a regular file", "a link or folder where a file belongs")]
    if not path.exists():
        return [Problem(relative, "missing", "listed in the manifest, absent on disk")]
    actual = sha256_file(path)
    if actual != expected:
        return [Problem(relative, "changed", f"sha256 {actual}, the manifest says {expected}")]
    return []


def format_report(report: VerifyReport) -> list[str]:
    """Lines for a person: one per problem, then a verdict."""
    lines = [f"{p.kind.upper():<8} {p.path}  {p.detail}".rstrip() for p in report.problems]
    if report.ok:
        lines.append(f"release {report.release_id}: verified, {report.files_checked} files")
    else:
        count = len(report.problems)
        lines.append(
            f"release {report.release_id}: NOT verified, {count} problem{'s' if count > 1 else ''}"
        )
    return lines
