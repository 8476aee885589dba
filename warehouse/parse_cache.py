"""dbt's saved parse, shared between data roots on one machine.

dbt re-reads the whole project (about 8 s) whenever a build folder has no saved parse, which is
the first build of every data root. The parse depends on the project, the dbt version, the
command-line vars and the profile, never on a root's data, and dbt checks all of these itself
before reusing a saved parse: a stale copy only costs the full parse it would have cost anyway.
So when `BORDIN_DBT_PARSE_CACHE` names a folder, a build folder without a saved parse starts
from the newest one any root left there. Unset (the default), nothing is shared.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "BORDIN_DBT_PARSE_CACHE"
SAVED_PARSE = "partial_parse.msgpack"


def _cache_dir() -> Path | None:
    folder = os.environ.get(ENV)
    return Path(folder) if folder else None


def restore(target: Path) -> None:
    """Give a dbt target folder the shared parse if it has none of its own."""
    cache = _cache_dir()
    if cache is None or (target / SAVED_PARSE).exists() or not (cache / SAVED_PARSE).exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    _copy_atomically(cache / SAVED_PARSE, target / SAVED_PARSE)


def keep(target: Path) -> None:
    """Share the parse a successful dbt run saved in `target`."""
    cache = _cache_dir()
    if cache is None or not (target / SAVED_PARSE).exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    _copy_atomically(target / SAVED_PARSE, cache / SAVED_PARSE)


def _copy_atomically(source: Path, destination: Path) -> None:
    """Readers (other builds, other processes) see the old file or the new one, never half."""
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
