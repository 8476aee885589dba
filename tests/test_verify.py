"""Verifiable releases: every file on disk against the manifest, the manifest against the ledger.

Red-team finding (issue 12): an overwritten Parquet file moved the pooled r and `bordin rebuild`
still said "reproduced", because it compared rebuilt hashes with the manifest, never with disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from ingestion.settings import Paths
from tests.conftest import run_bordin
from warehouse import pipeline, release
from warehouse.verify import ledger_path, verify_release

DATE = "2026-11-20"


def _flip_byte(path: Path, at: int | None = None) -> None:
    """Change one byte in place (the file is 0444: as a non-root owner, allow writing first)."""
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if at is None else at
    data[index] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _kinds(report) -> set[tuple[str, str]]:
    return {(p.path, p.kind) for p in report.problems}


def _publish(home: Path) -> Path:
    return Path(pipeline.release_step(DATE)["path"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- regression


@pytest.mark.slow
def test_rebuild_does_not_say_reproduced_when_a_file_on_disk_was_overwritten(
    tiny_built: Path,
) -> None:
    from warehouse.rebuild import rebuild

    folder = _publish(tiny_built)
    target = folder / "parquet" / "mart_alliance_outcome_pooled.parquet"
    _flip_byte(target)
    report = rebuild(folder.name)
    assert not report.reproduced
    assert ("parquet/mart_alliance_outcome_pooled.parquet", "changed") in {
        (p.path, p.kind) for p in report.disk_problems
    }


# --------------------------------------------------------------------------- real release


@pytest.mark.slow
def test_untouched_release_verifies_and_one_changed_byte_in_each_kind_of_file_is_caught(
    tiny_built: Path,
) -> None:
    folder = _publish(tiny_built)
    assert verify_release().problems == []
    assert verify_release(folder.name).problems == []
    instrument = sorted((folder / "rules" / "instruments").glob("*.yml"))[0]
    for relative in (
        "parquet/fct_episode_outcome.parquet",
        "marts.duckdb",
        "report.html",
        "rules/consortium.yml",
        f"rules/instruments/{instrument.name}",
    ):
        path = folder / relative
        original = path.read_bytes()
        _flip_byte(path)
        assert _kinds(verify_release(folder.name)) == {(relative, "changed")}, relative
        path.write_bytes(original)
    # The manifest's last byte (its newline) becomes a space: still valid JSON, listing the same
    # hashes, but no longer the manifest the ledger recorded at publishing.
    manifest = folder / "manifest.json"
    original = manifest.read_bytes()
    manifest.chmod(0o644)
    manifest.write_bytes(original[:-1] + b" ")
    assert _kinds(verify_release(folder.name)) == {("manifest.json", "manifest changed")}
    manifest.write_bytes(original)
    assert verify_release(folder.name).problems == []


@pytest.mark.slow
def test_deleted_and_added_files_are_reported(tiny_built: Path) -> None:
    folder = _publish(tiny_built)
    (folder / "report.html").unlink()
    (folder / "parquet" / "extra.parquet").write_bytes(b"not published")
    assert _kinds(verify_release()) == {
        ("report.html", "missing"),
        ("parquet/extra.parquet", "not in manifest"),
    }


@pytest.mark.slow
def test_manifest_rewritten_to_match_a_tampered_file_is_caught_by_the_ledger(
    tiny_built: Path,
) -> None:
    folder = _publish(tiny_built)
    relative = "parquet/mart_alliance_outcome_pooled.parquet"
    _flip_byte(folder / relative)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        if entry["path"] == relative:
            entry["sha256"] = _sha(folder / relative)
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert _kinds(verify_release()) == {("manifest.json", "manifest changed")}
    assert run_bordin("verify").returncode == 1


@pytest.mark.slow
def test_ledger_has_one_line_per_release_and_folders_are_read_only(tiny_built: Path) -> None:
    folder = _publish(tiny_built)
    again = pipeline.release_step(DATE)
    assert again["created"] is False
    lines = ledger_path(Paths(tiny_built)).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "release_id": folder.name,
            "logical_date": DATE,
            "manifest_sha256": _sha(folder / "manifest.json"),
        }
    ]
    for path in [folder, *folder.rglob("*")]:
        expected = 0o555 if path.is_dir() else 0o444
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


@pytest.mark.slow
def test_crash_between_rename_and_ledger_is_repaired_by_the_rerun(
    tiny_built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die_after_rename(name: str) -> None:
        if name == "release.after_rename_before_latest":
            raise KeyboardInterrupt("killed (simulated)")

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(release, "crash_point", die_after_rename)
        pipeline.release_step(DATE)
    where = Paths(tiny_built)
    [folder] = [p for p in where.releases.iterdir() if not p.name.startswith(".")]
    assert _kinds(verify_release(folder.name)) == {("manifest.json", "not in ledger")}
    assert pipeline.release_step(DATE)["created"] is False
    assert verify_release().problems == []
    assert len(ledger_path(where).read_text().splitlines()) == 1


# --------------------------------------------------------------------------- hand-made release


def _fake_release(home: Path, release_id: str = "2026-11-20_v1_abcdef12") -> Path:
    """A release folder written by hand, with a ledger line, so verify is tested without dbt."""
    where = Paths(home)
    folder = where.releases / release_id
    (folder / "parquet").mkdir(parents=True)
    (folder / "parquet" / "a.parquet").write_bytes(b"alpha")
    (folder / "report.html").write_bytes(b"<html></html>")
    files = [
        {"path": "parquet/a.parquet", "sha256": hashlib.sha256(b"alpha").hexdigest()},
        {"path": "report.html", "sha256": hashlib.sha256(b"<html></html>").hexdigest()},
    ]
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"release_id": release_id, "files": files}) + "\n")
    (where.releases / "latest").symlink_to(release_id)
    ledger = ledger_path(where)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    line = {"release_id": release_id, "logical_date": DATE, "manifest_sha256": _sha(manifest)}
    ledger.write_text(json.dumps(line) + "\n")
    return folder


def test_verify_hand_made_release_and_cli_exit_codes(home: Path) -> None:
    folder = _fake_release(home)
    assert verify_release().problems == []
    ok = run_bordin("verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2026-11-20_v1_abcdef12: verified, 3 files" in ok.stdout
    (folder / "parquet" / "a.parquet").write_bytes(b"alphA")
    bad = run_bordin("verify", folder.name)
    assert bad.returncode == 1
    assert "CHANGED  parquet/a.parquet" in bad.stdout
    assert "NOT verified, 1 problem" in bad.stdout


def test_unsafe_paths_and_symlinks_in_a_release_are_problems(home: Path) -> None:
    folder = _fake_release(home)
    outside = home / "outside.txt"
    outside.write_bytes(b"<html></html>")
    (folder / "report.html").unlink()
    os.symlink(outside, folder / "report.html")
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"].append({"path": "../outside.txt", "sha256": "0" * 64})
    manifest.write_text(json.dumps(data) + "\n")
    assert _kinds(verify_release()) == {
        ("manifest.json", "manifest changed"),
        ("report.html", "not a regular file"),
        ("../outside.txt", "unsafe path"),
    }


def test_missing_release_and_torn_ledger_line(home: Path) -> None:
    folder = _fake_release(home)
    ledger = ledger_path(Paths(home))
    ledger.write_text('{"release_id": "2026-11-19_v1_0000' + "\n" + ledger.read_text())
    assert verify_release().problems == []  # a torn line (crash mid-append) is skipped
    with pytest.raises(FileNotFoundError, match="no release"):
        verify_release("2026-01-01_v9_deadbeef")
    missing = run_bordin("verify", "2026-01-01_v9_deadbeef")
    assert missing.returncode == 1 and "no release" in missing.stdout + missing.stderr
    assert folder.is_dir()


# --------------------------------------------------------------------------- older formats


def test_format_problem_names_every_change_since_the_release_and_its_code() -> None:
    from warehouse.release_format import CHANGES, RELEASE_FORMAT, format_problem

    assert format_problem({"release_format": RELEASE_FORMAT}) is None
    old = format_problem({"code_version": "abc123"})  # no release_format: written in format 1
    assert old is not None
    assert f"published in release format 1; this Bordin writes format {RELEASE_FORMAT}" in old
    for n in range(2, RELEASE_FORMAT + 1):
        assert f"format {n}: {CHANGES[n]}" in old
    assert "(abc123)" in old
    newer = format_problem({"release_format": RELEASE_FORMAT + 1, "code_version": "fff"})
    assert newer is not None and "newer than this Bordin's" in newer and "(fff)" in newer


@pytest.mark.slow
def test_rebuild_of_a_release_in_an_older_format_says_why_instead_of_mismatching(
    tiny_built: Path,
) -> None:
    """Issue 10/13: a release published before the codebook cannot come out byte for byte from
    today's code; the rebuild must say so and name the code to check out, not list mismatches."""
    from warehouse.rebuild import rebuild

    folder = _publish(tiny_built)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    from warehouse.release_format import RELEASE_FORMAT

    assert manifest["release_format"] == RELEASE_FORMAT
    del manifest["release_format"]
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report = rebuild(folder.name)
    assert not report.reproduced
    assert report.checks == []
    assert report.problem is not None
    assert "published in release format 1" in report.problem
    assert manifest["code_version"] in report.problem
    out = run_bordin("rebuild", folder.name)
    assert out.returncode == 1
    assert "cannot rebuild" in out.stdout and "release format 1" in out.stdout
