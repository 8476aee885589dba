"""One DuckDB writer at a time: an exclusive lock on the build folder.

DuckDB allows a single writing process, and Airflow runs tasks at least once, so a stale
attempt can outlive its retry. The lock is an OS lock (released when the holder dies, so a
killed build never wedges the next night) and is taken without waiting: a second writer fails
fast with a clear message instead of corrupting or blocking.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriterBusyError(RuntimeError):
    """Another process holds the build writer lock."""


@contextmanager
def exclusive_writer(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".writer.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WriterBusyError(
                f"another build holds {lock_path}; only one DuckDB writer may run at a time"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
