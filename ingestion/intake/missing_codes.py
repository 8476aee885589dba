"""Missing codes a file itself declares (SPSS user-missing values), as canonical cell text.

A reader puts, in an item cell holding such a code, `MISSING_MARKER` followed by the reason
label. It starts with NUL, so it is no data value and no whitespace (stripping keeps it); the
engine takes it as a missing item with that reason, like a code in the site's `missing_codes`.
"""

from __future__ import annotations

MISSING_MARKER = "\x00missing:"
UNLABELLED_MISSING = "user_missing"


def missing_marker(reason: str) -> str:
    """The canonical cell text of a file-declared missing code with this reason."""
    return MISSING_MARKER + reason
