"""One error type for every configuration file, so a message always names file, key and problem."""

from __future__ import annotations

from pathlib import Path


class ConfigError(ValueError):
    """A configuration file is invalid; the message says where and why."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: {key}: {problem}")
