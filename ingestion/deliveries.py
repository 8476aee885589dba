"""What a site's inbox holds, and whether a delivery is already ingested.

A delivery is identified by site, kind (export, withdrawals, data_dictionary) and SHA-256: the
same bytes delivered by two sites are two deliveries, so one site's withdrawal list can never
be taken for another's. Every file in the inbox gets an outcome: a file no glob selects is
`file.unsupported_type`, a symbolic link (or a file reached through one) is refused without
ever being opened, and a glob can only select inside the site's own inbox.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

import pyarrow as pa

from ingestion import delta_store
from ingestion.arrival import is_marker

if TYPE_CHECKING:
    from ingestion.consortium import SiteConfig

log = logging.getLogger(__name__)

# Kinds the intake table (and dbt's stg_intake__files) knows.
KINDS = ("export", "withdrawals", "data_dictionary")
# Why a file is refused before any reader sees it.
SYMLINK = "symlink"
UNSUPPORTED = "unsupported"
_OWNERS_SCHEMA = pa.schema(
    [("site_id", pa.string()), ("source_sha256", pa.string()), ("kind", pa.string())]
)


def glob_problem(glob: str) -> str | None:
    """Why a configured glob could select outside the site's inbox (None: it cannot)."""
    if not glob.strip():
        return "must be a non-empty file name pattern inside the site's inbox"
    posix, windows = PurePosixPath(glob), PureWindowsPath(glob)
    if posix.is_absolute() or windows.is_absolute() or glob.startswith(("~", "\\")):
        return f"{glob!r} is an absolute path; a pattern selects files inside the site's inbox"
    if ".." in posix.parts or ".." in windows.parts:
        return f"{glob!r} climbs out with '..'; a pattern selects files inside the site's inbox"
    return None


@dataclass(frozen=True)
class Found:
    """One file of the inbox: its kind, and why it is refused unread (None: it is read)."""

    path: Path
    name: str  # the file's name, as intake, quarantine and events record it
    relative: str  # its path inside the inbox
    kind: str
    refused: str | None = None


def list_inbox(site: SiteConfig, folder: Path) -> list[Found]:
    """Every file of the site's inbox, withdrawals first, each group in name order.

    Hidden files (a name starting with '.', e.g. an upload still being written) are left for a
    later night; a site's completion markers (`arrival.completion_marker`) are signals, not
    deliveries. A glob match outside the inbox is dropped (the loader already refuses such
    globs); a symbolic link, or a file whose real path leaves the inbox, is refused.
    """
    if not folder.is_dir():
        return []
    root = folder.resolve()

    def selected(glob: str | None) -> set[Path]:
        if not glob:
            return set()
        if glob_problem(glob):
            log.warning(
                "site %s: a file pattern leaves the inbox; it selects nothing", site.site_id
            )
            return set()
        return {p for p in folder.glob(glob) if delivered(p.name)}

    def delivered(name: str) -> bool:
        return not name.startswith(".") and not is_marker(name, site.arrival)

    withdrawals = selected(site.withdrawals.file_glob if site.withdrawals else None)
    dictionaries = selected(site.data_dictionary_glob) - withdrawals
    exports = selected(site.file_glob) - withdrawals - dictionaries
    others = (
        {p for p in folder.iterdir() if delivered(p.name) and (p.is_symlink() or p.is_file())}
        - withdrawals
        - dictionaries
        - exports
    )
    found: list[Found] = []
    for kind, paths in (
        ("withdrawals", withdrawals),
        ("data_dictionary", dictionaries),
        ("export", exports),
    ):
        for path in sorted(paths):
            refused = _refusal(path, folder, root)
            if refused or path.is_file():
                found.append(Found(path, path.name, _relative(path, folder), kind, refused))
    for path in sorted(others):
        refused = _refusal(path, folder, root) or UNSUPPORTED
        found.append(Found(path, path.name, _relative(path, folder), "export", refused))
    order = {"withdrawals": 0, "data_dictionary": 1, "export": 1}
    return sorted(found, key=lambda f: (order[f.kind], f.path))


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _refusal(path: Path, folder: Path, root: Path) -> str | None:
    """A link anywhere between the inbox and the file, or a real path outside the inbox."""
    here = path
    while here != folder:
        if here.is_symlink():
            return SYMLINK
        here = here.parent
    return None if path.resolve().is_relative_to(root) else SYMLINK


def refused_digest(site_id: str, found: Found) -> str:
    """A stable stand-in for the SHA-256 of a file that is never opened (a link)."""
    return hashlib.sha256(f"bordin:unopened:{site_id}/{found.relative}".encode()).hexdigest()


class Ledger:
    """Which deliveries a table holds, reading markers written before per-site ids too.

    An old marker (`bordin.file.<sha>`) counts for the sites whose intake rows hold that
    SHA-256 and were written under the old scheme (no per-site marker in intake); an old marker
    with no intake row at all (erasure's redacted copies had none) counts for every site.
    """

    def __init__(self, intake: Path) -> None:
        self.intake = intake
        self._owners = cache(self._legacy_owners)

    def is_ingested(self, table: Path, site_id: str, kind: str, sha256: str) -> bool:
        if delta_store.is_committed(table, sha256, site_id, kind):
            return True
        if not delta_store.is_committed(table, sha256):
            return False
        owners = self._owners(sha256)
        return owners is None or site_id in owners

    def _legacy_owners(self, sha256: str) -> frozenset[str] | None:
        if not all(c in "0123456789abcdef" for c in sha256):
            return frozenset()
        rows = delta_store.read(
            self.intake, _OWNERS_SCHEMA, where=f"source_sha256 = '{sha256}'"
        ).to_pylist()
        if not rows:
            return None
        return frozenset(
            r["site_id"]
            for r in rows
            if not delta_store.is_committed(self.intake, sha256, r["site_id"], r["kind"])
        )
