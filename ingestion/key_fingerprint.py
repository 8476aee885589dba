"""The data root remembers which pseudonym key it was built with, without holding the key.

Pseudonyms are HMACs of the codes: a run with another key would give every client a second
pseudonym (a second set of clients, and, for a snapshot site, the real ones retracted). So the
first run records HMAC-SHA-256(key, a fixed label) in `restricted/key_fingerprint`, and every
later run that writes (ingestion, erasure) compares the key with it before writing anything.
The fingerprint reveals nothing about the key, and neither is ever logged.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from ingestion.pseudonyms import PseudonymKey
from ingestion.settings import Paths


class KeyMismatchError(RuntimeError):
    """The key differs from the one the data root's pseudonyms were made with."""


def fingerprint_file(where: Paths) -> Path:
    return where.home / "restricted" / "key_fingerprint"


def check_key(where: Paths, key: PseudonymKey) -> None:
    """Raise KeyMismatchError unless `key` is the data root's key; record it on first use.

    Call it before writing anything. The first caller creates the file exclusively, so two
    first runs with different keys at once cannot both win.
    """
    path = fingerprint_file(where)
    mine = key.fingerprint()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(mine + "\n", encoding="ascii")
        try:
            os.link(tmp, path)  # atomic, and fails if another run recorded a key first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    recorded = path.read_text(encoding="ascii").strip()
    if not hmac.compare_digest(recorded, mine):
        raise KeyMismatchError(
            "This is a different pseudonym key from the one this data root was built with "
            f" (its fingerprint is recorded in {where.stored(path)}). Pseudonyms "
            "made with it would split every client in two, so nothing was written. Run with "
            "the consortium's original key (BORDIN_PSEUDONYM_KEY or BORDIN_PSEUDONYM_KEY_FILE)."
        )
