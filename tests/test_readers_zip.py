"""Zip reader: one export per zip, read in memory; unsafe paths and zip bombs refused whole.

A zip is accounted as one delivered file (its SHA-256, its name); row numbers are lines of the
export inside it. Zips are built here from the formats fixtures so their contents are visible.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from ingestion.ingest import ingest_site
from tests.test_readers_qualtrics import DATE, FORMATS, counts, events, quarantine
from tests.test_readers_qualtrics import fhome as fhome  # noqa: F401 (pytest fixture)

QUALTRICS = (FORMATS / "qualtrics_export.csv").read_bytes()


def make_zip(home: Path, site: str, name: str, members: dict[str, bytes]) -> Path:
    target = home / "inbox" / site / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(zipfile.ZipInfo(member), data, compress_type=zipfile.ZIP_DEFLATED)
    return target


def archive_issue(home: Path) -> dict:
    (issue,) = quarantine(home)
    assert issue["category"] == "archive" and issue["source_row"] is None
    return issue


def test_zip_of_qualtrics_reads_like_the_export_itself(fhome: Path) -> None:
    make_zip(fhome, "zipq", "delivery.zip", {"export/survey.csv": QUALTRICS, "README.txt": b"hi"})
    (outcome,) = ingest_site("zipq", DATE).files
    assert outcome.source_file == "delivery.zip" and outcome.status == "ingested"
    assert counts(outcome) == (10, 4, 4, 2)  # as in test_readers_qualtrics
    assert {q["source_file"] for q in quarantine(fhome)} == {"delivery.zip"}
    assert len(events(fhome)) == 4


def test_zip_of_redcap_export(fhome: Path) -> None:
    tiny = (FORMATS.parent / "tiny" / "inbox" / "alpha" / "alpha_export.csv").read_bytes()
    make_zip(fhome, "zipr", "redcap.zip", {"alpha_export.csv": tiny})
    (outcome,) = ingest_site("zipr", DATE).files
    assert outcome.status == "ingested"
    rows = tiny.decode().strip().count("\n")
    assert outcome.rows_in == rows and outcome.offered == 2 * rows
    counts(outcome)
    assert outcome.accepted > 0
    # Nothing of the temporary extraction is left in the data root.
    assert not list(fhome.rglob("member.csv"))


def test_member_path_escaping_is_refused_and_nothing_written(fhome: Path, tmp_path: Path) -> None:
    make_zip(fhome, "zipq", "evil.zip", {"../evil.csv": QUALTRICS})
    (outcome,) = ingest_site("zipq", DATE).files
    assert outcome.status == "rejected" and outcome.quarantine_records == 1
    assert "../evil.csv" in archive_issue(fhome)["message"]
    assert not list(tmp_path.rglob("evil.csv"))
    assert not (fhome / "inbox" / "evil.csv").exists() and events(fhome) == []


def test_absolute_member_path_is_refused(fhome: Path) -> None:
    make_zip(fhome, "zipq", "abs.zip", {"/tmp/abs.csv": QUALTRICS})
    assert ingest_site("zipq", DATE).files[0].status == "rejected"
    assert "absolute" in archive_issue(fhome)["message"]


def test_zip_bomb_is_refused_by_size(fhome: Path) -> None:
    # 5 MB of one byte compresses to a few kB; the site allows 100 kB uncompressed.
    make_zip(fhome, "zipq", "bomb.zip", {"survey.csv": QUALTRICS + b"0" * 5_000_000})
    assert (fhome / "inbox" / "zipq" / "bomb.zip").stat().st_size < 50_000
    (outcome,) = ingest_site("zipq", DATE).files
    assert outcome.status == "rejected"
    assert "zip bomb" in archive_issue(fhome)["message"]


def test_too_many_members_is_refused(fhome: Path) -> None:
    members = {f"m{i}.txt": b"x" for i in range(6)} | {"survey.csv": QUALTRICS}
    make_zip(fhome, "zipq", "many.zip", members)
    assert ingest_site("zipq", DATE).files[0].status == "rejected"
    assert "limit of 5" in archive_issue(fhome)["message"]


def test_two_exports_in_one_zip_are_refused(fhome: Path) -> None:
    make_zip(fhome, "zipq", "two.zip", {"a.csv": QUALTRICS, "b.csv": QUALTRICS})
    assert ingest_site("zipq", DATE).files[0].status == "rejected"
    assert "exactly one" in archive_issue(fhome)["message"]


def test_not_a_zip(fhome: Path) -> None:
    target = fhome / "inbox" / "zipq" / "broken.zip"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PK\x03\x04 not really")
    assert ingest_site("zipq", DATE).files[0].status == "rejected"
    assert "not a readable zip" in archive_issue(fhome)["message"]


def test_member_that_lies_about_its_size_is_cut_off() -> None:
    import io

    from ingestion.intake.sources import Rejected, _copy_capped

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("survey.csv", b"0" * 10_000)
    with zipfile.ZipFile(buffer) as archive, tempfile.TemporaryDirectory() as folder:
        (info,) = archive.infolist()
        target = Path(folder) / "member.csv"
        refused = _copy_capped(archive, info, target, 1_000)
        assert isinstance(refused, Rejected) and refused.issue.rule_id == "archive.too_large"
        assert not target.exists()  # the partial copy is removed
        assert _copy_capped(archive, info, target, 10_000) is None
        assert target.read_bytes() == b"0" * 10_000
