"""Errors a pipeline step raises for a person to read: the CLI prints them without a traceback."""


class GateFailedError(RuntimeError):
    """The data-quality gate failed or errored, or its verdict no longer holds: nothing is
    published."""
