"""The environment variables `bordin` reads, described once, and which command reads which.

Each command's `-h` lists only the variables that command (and the steps it runs) reads, so a
person can see what changes its behaviour without reading code.
"""

from __future__ import annotations

VARIABLES: dict[str, str] = {
    "BORDIN_HOME": "the data root (inbox, event log, builds, releases, exports); default ./var",
    "BORDIN_PSEUDONYM_KEY": "the pseudonym key itself (a secret; or BORDIN_PSEUDONYM_KEY_FILE)",
    "BORDIN_PSEUDONYM_KEY_FILE": "a file holding the pseudonym key",
    "BORDIN_CONSORTIUM": "the consortium file; default $BORDIN_HOME/consortium.yml",
    "BORDIN_REGISTRY_DIR": "the instrument registry folder; default ingestion/instruments",
    "BORDIN_INTAKE_MEMORY": "memory limit of the intake engine per file; default 768MB",
    "BORDIN_INTAKE_THREADS": "DuckDB threads of the intake engine; default every core",
    "BORDIN_QUIET_PERIOD_SECONDS": "overrides every site's quiet period before a file is read",
    "BORDIN_DBT_THREADS": "dbt and DuckDB threads when --threads is not given; default every core",
    "BORDIN_BUILD_MEMORY": "DuckDB memory limit of the dbt build, which spills to build/duckdb_tmp "
    "past it; default 1.5GiB",
    "BORDIN_EXTRA_EXPECTATIONS": "a consortium's own expectations file, merged into the gate",
    "BORDIN_GATE_CHUNK_ROWS": "rows per gate batch (bounds the gate's memory); default 200000",
    "BORDIN_TIMING": "when set (to anything), print how long the command took",
    "BORDIN_CRASH_AT": "test hook: die at this crash point (ingestion/crash_points.py)",
    "BORDIN_DBT_PARSE_CACHE": "test hook: a folder sharing dbt's saved parse between data roots",
}

_KEY = ("BORDIN_PSEUDONYM_KEY", "BORDIN_PSEUDONYM_KEY_FILE")
_INGEST = (
    *_KEY,
    "BORDIN_CONSORTIUM",
    "BORDIN_REGISTRY_DIR",
    "BORDIN_INTAKE_MEMORY",
    "BORDIN_INTAKE_THREADS",
    "BORDIN_QUIET_PERIOD_SECONDS",
)
_BUILD = ("BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR", "BORDIN_DBT_THREADS", "BORDIN_BUILD_MEMORY")
_CHECK = ("BORDIN_REGISTRY_DIR", "BORDIN_EXTRA_EXPECTATIONS", "BORDIN_GATE_CHUNK_ROWS")
_NIGHT = (*_INGEST, *_BUILD, *_CHECK, "BORDIN_CRASH_AT", "BORDIN_DBT_PARSE_CACHE")

# Besides BORDIN_HOME and BORDIN_TIMING, which every command reads.
_READS: dict[str, tuple[str, ...]] = {
    "demo": _NIGHT,
    "nightly": _NIGHT,
    "ingest": (*_INGEST, "BORDIN_CRASH_AT"),
    "build": (*_BUILD, "BORDIN_CRASH_AT", "BORDIN_DBT_PARSE_CACHE"),
    "check": _CHECK,
    "release": ("BORDIN_CRASH_AT",),
    "history": (*_KEY, "BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR"),
    "verify": (),
    "rebuild": ("BORDIN_DBT_THREADS", "BORDIN_BUILD_MEMORY", "BORDIN_DBT_PARSE_CACHE"),
    "diff": (),
    "erase": (*_KEY, "BORDIN_CONSORTIUM", "BORDIN_REGISTRY_DIR"),
    "export": (),
    "config": (
        "BORDIN_CONSORTIUM",
        "BORDIN_REGISTRY_DIR",
        "BORDIN_INTAKE_MEMORY",
        "BORDIN_INTAKE_THREADS",
        "BORDIN_QUIET_PERIOD_SECONDS",
    ),
    "reprocess": _INGEST,
}

EXIT_STATUS = """exit status:
  0  done
  1  the step failed: a failed gate, a failed nightly, a difference found, a release that does
     not verify
  2  bad configuration, no key, a nightly already running, or a full disk"""


def reads(command: str | None) -> list[str]:
    """The variables `command` reads, in VARIABLES' order; every one for the bare `bordin`."""
    if command is None:
        return list(VARIABLES)
    wanted = {"BORDIN_HOME", "BORDIN_TIMING", *_READS[command]}
    return [name for name in VARIABLES if name in wanted]


def epilog(command: str | None = None) -> str:
    """The environment block and exit status a command's -h ends with."""
    names = reads(command)
    width = max(len(n) for n in names)
    lines = [f"  {name:<{width}}  {VARIABLES[name]}" for name in names]
    title = "environment:" if command else "environment (`bordin COMMAND -h`: what it reads):"
    return title + "\n" + "\n".join(lines) + "\n\n" + EXIT_STATUS
