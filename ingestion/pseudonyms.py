"""Keyed pseudonyms for client and therapist codes.

A plain hash of a participant code can be reversed by enumerating the code space in under a
second; an HMAC with a consortium secret cannot. The key is read once and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

KEY_ENV = "BORDIN_PSEUDONYM_KEY"
KEY_FILE_ENV = "BORDIN_PSEUDONYM_KEY_FILE"
ROLES = ("client", "therapist")
# HMAC'd with the key to fingerprint it (ingestion/key_fingerprint.py); never a code's format.
FINGERPRINT_LABEL = b"bordin:key-fingerprint:v1"


class MissingKeyError(RuntimeError):
    """No pseudonym key is configured; ingestion must not run without one."""


class PseudonymKey:
    """Holds the secret; its repr never shows it, so it cannot leak into logs or XComs."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the pseudonym key must be at least 16 bytes long")
        self._secret = secret

    def __repr__(self) -> str:
        return "PseudonymKey(<redacted>)"

    def fingerprint(self) -> str:
        """HMAC-SHA-256(key, a fixed label): tells keys apart without revealing either."""
        return hmac.new(self._secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()

    def pseudonym(self, site_id: str, role: str, code: str) -> str:
        """First 32 hex characters of HMAC-SHA-256(key, '<site>:<role>:<code stripped>')."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        message = f"{site_id}:{role}:{code.strip()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def pseudonyms(self, site_id: str, role: str, codes: list[str]) -> list[str]:
        """`pseudonym` of each code; the keyed state is set up once, not once per code (a
        large export has millions of distinct codes)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        keyed = hmac.new(self._secret, digestmod=hashlib.sha256)
        prefix = f"{site_id}:{role}:"
        out = []
        for code in codes:
            mac = keyed.copy()
            mac.update((prefix + code.strip()).encode())
            out.append(mac.hexdigest()[:32])
        return out


def load_key() -> PseudonymKey:
    """The key from $BORDIN_PSEUDONYM_KEY, or the file named by $BORDIN_PSEUDONYM_KEY_FILE."""
    value = os.environ.get(KEY_ENV)
    if value:
        return PseudonymKey(value.strip().encode())
    key_file = os.environ.get(KEY_FILE_ENV)
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise MissingKeyError(f"{KEY_FILE_ENV} names {path}, which is not a readable file")
        return PseudonymKey(path.read_text(encoding="utf-8").strip().encode())
    raise MissingKeyError(
        f"No pseudonym key: set {KEY_ENV} (the consortium secret) or {KEY_FILE_ENV} (a file "
        "holding it). Ingestion refuses to run without one, because raw client and therapist "
        "codes must never reach the event log."
    )


def write_new_key(path: Path) -> None:
    """A fresh random key for the demo, readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(os.urandom(32).hex() + "\n")
