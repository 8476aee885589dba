"""dbt's saved parse, shared between data roots on one machine.

dbt re-reads the whole project (about 8 s) whenever a build folder has no saved parse, which is
the first build of every data root. The parse depends on the project, the dbt version, the
command-line vars and the profile, never on a root's data, and dbt checks all of these itself
before reusing a saved parse: a stale copy only costs the full parse it would have cost anyway.
So when `BORDIN_DBT_PARSE_CACHE` names a folder, a build folder without a saved parse starts
from the newest one any root left there. Unset (the default), nothing is shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

ENV = "BORDIN_DBT_PARSE_CACHE"
SAVED_PARSE = "partial_parse.msgpack"


def _cached(variables: dict) -> Path | None:
    """The shared parse for these dbt vars: dbt re-parses everything when the vars differ, so
    each set of vars (e.g. calendar dates released or not) keeps its own."""
    folder = os.environ.get(ENV)
    if not folder:
        return None
    key = hashlib.sha256(json.dumps(variables, sort_keys=True).encode()).hexdigest()[:16]
    return Path(folder) / f"{key}.msgpack"


def restore(target: Path, variables: dict) -> None:
    """Give a dbt target folder the shared parse if it has none of its own."""
    cached = _cached(variables)
    if cached is None or (target / SAVED_PARSE).exists() or not cached.exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    _copy_atomically(cached, target / SAVED_PARSE)


def keep(target: Path, variables: dict) -> None:
    """Share the parse a successful dbt run saved in `target`."""
    cached = _cached(variables)
    if cached is None or not (target / SAVED_PARSE).exists():
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    _copy_atomically(target / SAVED_PARSE, cached)


def _copy_atomically(source: Path, destination: Path) -> None:
    """Readers (other builds, other processes) see the old file or the new one, never half."""
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, destination)
