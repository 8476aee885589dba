"""Named places where the crash-safety tests kill the process (SIGKILL, no clean-up).

Set BORDIN_CRASH_AT to a point's name; the process dies there exactly as a power cut or an
OOM kill would end it. Unset (always, in production), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "ingest.after_data_files_before_commit",
    "ingest.after_commit_before_mark",
    "build.during_dbt",
    "release.before_rename",
    "release.after_rename_before_latest",
)


def crash_point(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    if os.environ.get("BORDIN_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
