"""What makes a client code unusable: a control character inside it.

A control character (C0, DEL, C1) inside a client code is a broken export, never a new client.
It is looked for after stripping ASCII whitespace only; the engine's SQL uses the same class.
"""

from __future__ import annotations

import re

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROL_RE = r"[\x00-\x1f\x7f-\x9f]"
ASCII_SPACE = " \t\n\r\x0b\x0c"
