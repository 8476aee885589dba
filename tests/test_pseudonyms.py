"""Keyed pseudonyms, checked against `openssl dgst -sha256 -hmac` (computed outside Python)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingestion.pseudonyms import MissingKeyError, PseudonymKey, load_key, write_new_key

KEY = b"test-key-0123456789"


def test_matches_openssl_hmac() -> None:
    # printf '%s' "bern:client:BE-0001" | openssl dgst -sha256 -hmac "test-key-0123456789"
    key = PseudonymKey(KEY)
    assert key.pseudonym("bern", "client", "BE-0001") == "c8d3d16dd9f2b452bba16866a8a4382b"
    # printf '%s' "bern:therapist:BE-T03" | openssl dgst -sha256 -hmac "test-key-0123456789"
    assert key.pseudonym("bern", "therapist", "BE-T03") == "6ea9f96892bb678b444f0f3aa8f7b9c7"


def test_batch_matches_openssl_hmac() -> None:
    """The batch form (keyed once, copied per code) gives the same openssl-checked values."""
    key = PseudonymKey(KEY)
    assert (
        key.pseudonyms("bern", "client", ["BE-0001", " BE-0001 "])
        == ["c8d3d16dd9f2b452bba16866a8a4382b"] * 2
    )
    assert key.pseudonyms("bern", "therapist", ["BE-T03"]) == ["6ea9f96892bb678b444f0f3aa8f7b9c7"]
    with pytest.raises(ValueError):
        key.pseudonyms("bern", "site", ["x"])


def test_code_is_stripped_and_site_and_role_separate_namespaces() -> None:
    key = PseudonymKey(KEY)
    assert key.pseudonym("bern", "client", "  BE-0001 ") == key.pseudonym(
        "bern", "client", "BE-0001"
    )
    assert key.pseudonym("bern", "client", "X1") != key.pseudonym("leeds", "client", "X1")
    assert key.pseudonym("bern", "client", "X1") != key.pseudonym("bern", "therapist", "X1")


def test_not_a_plain_hash() -> None:
    # A plain SHA-256 of the same message is enumerable; the pseudonym must not equal it.
    plain = hashlib.sha256(b"bern:client:BE-0001").hexdigest()[:32]
    assert PseudonymKey(KEY).pseudonym("bern", "client", "BE-0001") != plain


def test_key_never_shown_in_repr() -> None:
    assert "test-key" not in repr(PseudonymKey(KEY))


def test_missing_key_stops_with_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(MissingKeyError, match="BORDIN_PSEUDONYM_KEY"):
        load_key()


def test_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BORDIN_PSEUDONYM_KEY", raising=False)
    key_file = tmp_path / "k"
    write_new_key(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY_FILE", str(key_file))
    assert len(load_key().pseudonym("s1", "client", "c")) == 32
    monkeypatch.setenv("BORDIN_PSEUDONYM_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(MissingKeyError, match="not a readable file"):
        load_key()


def test_short_key_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        PseudonymKey(b"short")
