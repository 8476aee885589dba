"""Bordin data-quality gate: Great Expectations suites over the marts.

This package file stays free of Great Expectations imports: the pipeline reads these names to
decide whether the gate must run at all, without paying for importing GX.
"""

import hashlib
from pathlib import Path

GATE_DIR = Path(__file__).resolve().parent
# A consortium's own expectations file, merged into the suite (expectations/gate.py).
EXTRA_ENV = "BORDIN_EXTRA_EXPECTATIONS"


def gate_code_sha256() -> str:
    """A hash of the gate's code and suites: a change to either is a new gate."""
    digest = hashlib.sha256()
    files = [*GATE_DIR.rglob("*.py"), *GATE_DIR.rglob("*.yml")]
    for path in sorted(p for p in files if "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(GATE_DIR)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
