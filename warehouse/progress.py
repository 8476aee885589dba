"""What a person running `bordin nightly` sees: a line per step as it starts and ends, and the
first failure in one line naming its step, site and file.

The pipeline's steps are decorated with `reported`; the DAG runs them in this process under
`bordin nightly` (`dag.test`), whose task-log capture would swallow `print`. So the lines go to a
terminal stream `watching` saved beforehand. Outside `watching` (a real scheduler, tests) the
decorator only keeps the night's ingest results and first failure, and prints nothing: the task
logs carry the same lines through logging.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from ingestion.site_summary import site_summary_lines

log = logging.getLogger("bordin.progress")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Night:
    """What `bordin nightly` prints at its end."""

    ingested: list[dict] = field(default_factory=list)  # SiteIngestResult.as_dict() per site
    release: dict | None = None
    failure: str | None = None  # the first failure, one line
    failure_detail: list[str] = field(default_factory=list)  # e.g. a failed gate's checks


_stream: TextIO | None = None
_night: Night | None = None


@contextmanager
def watching(stream: TextIO) -> Iterator[Night]:
    """Print step lines to `stream` while the block runs; yields the night's record."""
    global _stream, _night
    saved = (_stream, _night)
    _stream, _night = stream, Night()
    try:
        yield _night
    finally:
        _stream, _night = saved


@contextmanager
def terminal_only(log_file: Path) -> Iterator[TextIO]:
    """Send everything this process (and its children: dbt) writes to stdout and stderr into
    `log_file`, and yield a stream to the terminal for the progress lines: Airflow's task
    runner prints a failed task's traceback and its own warnings there, which under
    `bordin nightly` say less than the step's one line and bury it."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = open(os.dup(saved[0]), "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    with log_file.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


def say(line: str) -> None:
    log.info("%s", line)
    if _stream is not None:
        _stream.write(line + "\n")
        _stream.flush()


def one_line(exc: BaseException) -> tuple[str, list[str]]:
    """An exception as one line (its type unless the message is self-explanatory) plus the
    rest of its message, without a traceback."""
    text = str(exc).strip()
    first, *rest = text.splitlines() or [""]
    kind = type(exc).__name__
    readable = kind.endswith(("GateFailedError", "IngestFileError", "ConfigError"))
    return (first if readable and first else f"{kind}: {first}"), [r for r in rest if r.strip()]


def reported(step: str) -> Callable[[F], F]:
    """Announce the step, time it, summarize its result, and keep the night's first failure."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            subject = step if step != "ingest" else f"ingest {args[0] if args else ''}".strip()
            say(f"[{subject}] started")
            started = time.monotonic()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                first, rest = one_line(exc)
                say(f"[{subject}] FAILED: {first}")
                if _night is not None and step == "ingest" and args:
                    _night.ingested.append({"site_id": args[0], "failed": first})
                if _night is not None and _night.failure is None:
                    _night.failure = f"{subject}: {first}"
                    _night.failure_detail = rest
                raise
            took = time.monotonic() - started
            for line in _done(step, result):
                say(f"[{subject}] {line}")
            say(f"[{subject}] done in {took:.1f} s")
            return result

        return run  # type: ignore[return-value]

    return wrap


def _done(step: str, result: Any) -> list[str]:
    if isinstance(result, list):
        return [f"{len(result)}: {', '.join(map(str, result))}"]
    if not isinstance(result, dict):
        return []
    if step == "ingest":
        if _night is not None:
            _night.ingested.append(result)
        return site_summary_lines(result)
    if step == "build":
        return [f"event log version {result.get('event_log_version')}"]
    if step == "check":
        return ["data-quality gate passed"]
    if step == "release":
        if _night is not None:
            _night.release = result
        new = "published" if result.get("created") else "unchanged (already published)"
        return [f"release {result.get('release_id')} {new}: {result.get('path')}"]
    return []
