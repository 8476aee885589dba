"""Bordin data-quality gate: Great Expectations suites over the marts.

This package file stays free of Great Expectations imports: the pipeline reads these names to
decide whether the gate must run at all, without paying for importing GX.
"""

from pathlib import Path

from ingestion.hashing import files_sha256

GATE_DIR = Path(__file__).resolve().parent
# A consortium's own expectations file, merged into the suite (expectations/gate.py).
EXTRA_ENV = "BORDIN_EXTRA_EXPECTATIONS"


def gate_code_sha256() -> str:
    """A hash of the gate's code and suites: a change to either is a new gate."""
    files = [*GATE_DIR.rglob("*.py"), *GATE_DIR.rglob("*.yml")]
    return files_sha256((p for p in files if "__pycache__" not in p.parts), GATE_DIR)
