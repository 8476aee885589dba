"""A full disk, said plainly: which path, how much is free there, about how much is needed.

Writes fail deep inside delta-rs, Parquet, DuckDB or dbt, each with its own wording
(`Generic LocalFileSystem error`, `IO Error: Could not write file`, errno 28). Every step
already recovers from such a failure on its rerun (see the crash-safety tests); what it lacked
was a message a data manager can act on. `DiskFullError` is that message.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

# How the libraries we call word a full disk or an exhausted quota.
_SIGNS = (
    "no space left on device",
    "os error 28",
    "errno 28",
    "disk quota exceeded",
    "os error 122",
    "not enough space on the disk",
)


class DiskFullError(RuntimeError):
    """The disk holding `path` ran out of space. Every step commits atomically and its rerun
    skips what an earlier run committed, so the advice is always: free space, run again."""

    def __init__(self, path: Path, needed_bytes: int | None, what: str) -> None:
        self.path = path
        self.free_bytes = free_bytes(path)
        self.needed_bytes = needed_bytes
        need = f"about {_size(needed_bytes)}" if needed_bytes else "more space"
        super().__init__(
            f"the disk is full: {what} needs {need} at {path}, and {_size(self.free_bytes)} "
            f"is free there. Free space on that disk (or move $BORDIN_HOME to a larger one) "
            f"and run the step again: it finishes what this run left, without duplicates."
        )


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised from, is a full disk or quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(sign in str(seen).lower() for sign in _SIGNS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def output_says_disk_full(text: str) -> bool:
    """For a child process (dbt) whose exception we only see as text."""
    lowered = text.lower()
    return any(sign in lowered for sign in _SIGNS)


@contextlib.contextmanager
def named_when_full(path: Path, needed_bytes: int | None, what: str) -> Iterator[None]:
    """Turn a full-disk failure inside the block into a `DiskFullError` naming `path`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, needed_bytes, what) from exc
        raise


def free_bytes(path: Path) -> int:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


def tree_bytes(path: Path) -> int:
    """Bytes of the files under `path` (a file: its size); 0 when it does not exist."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _size(n: int | None) -> str:
    value = float(n or 0)
    if value < 1000:
        return f"{value:,.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:,.1f} {unit}"
