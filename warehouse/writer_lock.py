"""One DuckDB writer at a time: an exclusive lock on the build folder.

DuckDB allows a single writing process, and Airflow runs tasks at least once, so a stale
attempt can outlive its retry. The lock is taken without waiting: a second writer fails fast
with a clear message instead of corrupting or blocking.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingestion.locks import LockBusyError, exclusive_lock


class WriterBusyError(RuntimeError):
    """Another process holds the build writer lock."""


@contextmanager
def exclusive_writer(folder: Path) -> Iterator[None]:
    lock_path = folder / ".writer.lock"
    try:
        with exclusive_lock(lock_path, wait=False):
            yield
    except LockBusyError as exc:
        raise WriterBusyError(
            f"another build holds {lock_path}; only one DuckDB writer may run at a time"
        ) from exc
