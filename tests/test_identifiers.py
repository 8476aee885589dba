"""No identifiers: planted names, e-mails, phones, IPs and dates of birth never leave the inbox.

Fixtures in tests/fixtures/formats/identifiers/ (consortium.yml there), one per format:
  redcap_identified.csv + Study_DataDictionary_2026-11-20.csv (site rcid)
      first_name, last_name, email, phone, dob are `Identifier? = y`; notes is free text.
      line 2 ID-1 s1 WAI 4s PHQ 1s -> both accepted
      line 3 ID-1 s2 WAI 5s PHQ item 1 = 9 -> WAI accepted, PHQ range
      line 4 ID-2 s1 WAI 3s PHQ 2s -> both accepted                   => (6, 5, 1, 0)
  the same two files inside one zip (site zipid)                        => (6, 5, 1, 0)
  qualtrics_identified.csv (site qualid): IPAddress, Recipient*, Location* always dropped;
      Phone, DOB listed in identifier_columns; Q9 free text not mapped.
      row 4 Q-1 s1 finished, WAI 4s GAD 1s -> both accepted
      row 5 Q-1 s2 finished, GAD item 1 = 9 -> WAI accepted, GAD range
      row 6 Q-2 s1 not finished (40 %), WAI 3s, GAD blank -> WAI unfinished, GAD n/a
                                                                        => (6, 3, 2, 1)
  long_identified.csv (site longid): Name, Email, Geburtsdatum in identifier_columns;
      Bemerkung free text.
      line 2 WAI-SR 4s -> accepted; line 3 GAD-7 1s -> accepted;
      line 4 GAD-7 item 1 = "x" -> type                                 => (3, 2, 1, 0)
  an SPSS .sav (site spssid, added to the fixture consortium in the test; the file is built by
      tests/test_readers_spss.write_sav): FullName, Email in identifier_columns; Notes free
      text; the therapist variable's value labels are names (never applied).
                                                                        => (10, 4, 4, 2)
After ingesting all four sites, every file of the data root outside inbox/ (the event log's
Parquet and Delta log JSON, the restricted quarantine and intake tables, audit, locks) is
scanned, as bytes and as decoded Parquet values, for every planted value.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.ingest import ingest_site
from ingestion.intake.preview import read_export
from ingestion.intake.sources import required_columns
from ingestion.registry import default_registry
from tests.test_readers_qualtrics import counts, events, quarantine
from tests.test_readers_spss import PLANTED as SPSS_PLANTED
from tests.test_readers_spss import SITE as SPSS_SITE
from tests.test_readers_spss import write_sav

FIXTURES = Path(__file__).parent / "fixtures" / "formats" / "identifiers"
DICTIONARY = "Study_DataDictionary_2026-11-20.csv"
DATE = "2026-11-20"
PLANTED = [
    # REDCap
    "Zyxwvut",
    "Qwertyson",
    "zyxwvut.qwertyson@example.org",
    "+41 79 555 01 23",
    "1987-04-13",
    "Mirabelle",
    "Quonkworth",
    "m.quonkworth@example.net",
    "(614) 555-0199",
    "1979-12-02",
    "Plonkeria",
    "call back on",
    # Qualtrics
    "198.51.100.23",
    "198.51.100.24",
    "46.948090",
    "7.447440",
    "47.376887",
    "8.541694",
    "Zyxwvutson",
    "Qwertina",
    "qwertina.zyx@example.org",
    "my name is",
    # long table
    "Vandersnoot",
    "p.vandersnoot@example.com",
    "02.12.1979",
    "+44 113 496 0000",
    "192.0.2.99",
    # SPSS .sav
    *SPSS_PLANTED,
]


@pytest.fixture
def ihome(home: Path) -> Path:
    shutil.copy(FIXTURES / "consortium.yml", home)
    return home


def deliver(home: Path, site: str, *names: str) -> Path:
    inbox = home / "inbox" / site
    inbox.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, inbox / name)
    return inbox


def deliver_zip(home: Path, site: str, members: dict[str, bytes]) -> Path:
    inbox = home / "inbox" / site
    inbox.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(inbox / "delivery.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return inbox / "delivery.zip"


def _leaks(home: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        rel = path.relative_to(home)
        if rel.parts[0] == "inbox" or rel.name == "consortium.yml":
            continue
        data = path.read_bytes()
        texts = [data.decode("utf-8", errors="replace")]
        if path.suffix == ".parquet":
            for column in pq.read_table(path).to_pylist():
                texts.extend(str(v) for v in column.values())
        for value in PLANTED:
            if value.encode() in data or any(value in t for t in texts):
                found.append((str(rel), value))
    return found


def test_planted_identifiers_never_reach_the_data_root(ihome: Path) -> None:
    deliver(ihome, "rcid", "redcap_identified.csv", DICTIONARY)
    deliver_zip(
        ihome,
        "zipid",
        {
            "export/redcap_identified.csv": (FIXTURES / "redcap_identified.csv").read_bytes(),
            f"export/{DICTIONARY}": (FIXTURES / DICTIONARY).read_bytes(),
        },
    )
    deliver(ihome, "qualid", "qualtrics_identified.csv")
    deliver(ihome, "longid", "long_identified.csv")

    rc = {f.source_file: f for f in ingest_site("rcid", DATE).files}
    assert counts(rc["redcap_identified.csv"]) == (6, 5, 1, 0)
    # The dictionary is read, not ingested: no rows, no events, no quarantine record.
    assert rc[DICTIONARY].kind == "data_dictionary" and rc[DICTIONARY].rows_in == 0
    (zipped,) = ingest_site("zipid", DATE).files
    assert zipped.status == "ingested" and counts(zipped) == (6, 5, 1, 0)
    (qual,) = ingest_site("qualid", DATE).files
    assert counts(qual) == (6, 3, 2, 1)
    (long,) = ingest_site("longid", DATE).files
    assert counts(long) == (3, 2, 1, 0)

    assert len(events(ihome)) == 5 + 5 + 3 + 2
    assert {q["source_file"] for q in quarantine(ihome)} == {
        "redcap_identified.csv",
        "delivery.zip",
        "qualtrics_identified.csv",
        "long_identified.csv",
    }
    assert list((ihome / "eventlog").rglob("*.parquet"))
    assert _leaks(ihome) == []


def test_planted_identifiers_in_a_sav_never_reach_the_data_root(ihome: Path) -> None:
    doc = yaml.safe_load((ihome / "consortium.yml").read_text(encoding="utf-8"))
    doc["sites"].append({**SPSS_SITE, "site_id": "spssid"})
    (ihome / "consortium.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    raw = write_sav(ihome / "inbox" / "spssid" / "export.sav")
    assert all(value.encode() in raw for value in SPSS_PLANTED)  # planted, so the scan can fail
    (outcome,) = ingest_site("spssid", DATE).files
    assert counts(outcome) == (10, 4, 4, 2)
    assert len(events(ihome)) == 4 and len(quarantine(ihome)) == 4
    assert _leaks(ihome) == []
    registry = default_registry()
    config = load_consortium(ihome / "consortium.yml", registry).site("spssid")
    read = read_export(ihome / "inbox" / "spssid" / "export.sav", config, registry)
    columns = set(read.frame.columns) - {"__source_row", "__ragged"}
    assert columns == set(required_columns(config, registry))
    assert not {"FullName", "Email", "Notes"} & columns


def test_the_scan_would_see_a_leak(ihome: Path) -> None:
    """Guard against a scan that cannot fail: a planted value written anywhere is found."""
    deliver(ihome, "longid", "long_identified.csv")
    ingest_site("longid", DATE)
    (ihome / "eventlog" / "stray.txt").write_text("Plonkeria Vandersnoot")
    assert ("eventlog/stray.txt", "Plonkeria") in _leaks(ihome)


@pytest.mark.parametrize(
    ("site", "fixture", "dropped"),
    [
        ("rcid", "redcap_identified.csv", {"first_name", "last_name", "email", "phone", "dob"}),
        ("qualid", "qualtrics_identified.csv", {"Phone", "DOB", "IPAddress", "RecipientEmail"}),
        ("longid", "long_identified.csv", {"Name", "Email", "Geburtsdatum", "Bemerkung"}),
    ],
)
def test_readers_pass_on_mapped_columns_only(site: str, fixture: str, dropped: set[str]) -> None:
    registry = default_registry()
    config = load_consortium(FIXTURES / "consortium.yml", registry).site(site)
    read = read_export(FIXTURES / fixture, config, registry)
    assert read.frame is not None
    columns = set(read.frame.columns) - {"__source_row", "__ragged"}
    assert columns <= set(required_columns(config, registry))
    assert not columns & dropped
    assert not {"notes", "Q9"} & columns


def _dictionary_with(home: Path, edit) -> None:
    text = (FIXTURES / DICTIONARY).read_text(encoding="utf-8")
    inbox = deliver(home, "rcid", "redcap_identified.csv")
    (inbox / DICTIONARY).write_text(edit(text), encoding="utf-8")


def _rejected_for(home: Path) -> dict:
    files = {f.source_file: f for f in ingest_site("rcid", DATE).files}
    assert files["redcap_identified.csv"].status == "rejected"
    assert files["redcap_identified.csv"].rows_in == 0
    (issue,) = quarantine(home)
    assert issue["category"] == "schema" and issue["rule_id"] == "file.data_dictionary"
    assert issue["source_row"] is None and issue["source_file"] == "redcap_identified.csv"
    assert events(home) == []
    return issue


def test_item_range_differs_from_the_registry(ihome: Path) -> None:
    _dictionary_with(
        ihome, lambda t: t.replace("PHQ-9 item 4,,,integer,0,3", "PHQ-9 item 4,,,integer,1,4")
    )
    issue = _rejected_for(ihome)
    assert issue["column_name"] == "phq9_4"
    assert "phq9_4 (phq9) has range 1-4" in issue["message"] and "0-3" in issue["message"]


def test_radio_choices_are_checked_when_there_is_no_min_max(ihome: Path) -> None:
    _dictionary_with(ihome, lambda t: t.replace("5, Always", "5, Always | 6, Daily | 7, Hourly", 1))
    issue = _rejected_for(ihome)
    assert issue["column_name"] == "wai_1" and "range 1-7" in issue["message"]


def test_item_missing_from_the_dictionary(ihome: Path) -> None:
    def drop_wai_12(text: str) -> str:
        return "\n".join(line for line in text.split("\n") if not line.startswith("wai_12,"))

    _dictionary_with(ihome, drop_wai_12)
    issue = _rejected_for(ihome)
    assert issue["column_name"] == "wai_12"
    assert "wai_12 (wai_sr) is not in the data dictionary" in issue["message"]


def test_mapped_item_marked_as_identifier(ihome: Path) -> None:
    _dictionary_with(
        ihome, lambda t: t.replace("PHQ-9 item 2,,,integer,0,3,", "PHQ-9 item 2,,,integer,0,3,y")
    )
    issue = _rejected_for(ihome)
    assert "phq9_2 (phq9) is marked Identifier? = y" in issue["message"]


def test_dictionary_without_its_columns(ihome: Path) -> None:
    _dictionary_with(ihome, lambda t: t.replace("Identifier?", "Identifier"))
    issue = _rejected_for(ihome)
    assert "Identifier?" in issue["message"]


def test_without_a_dictionary_the_export_is_read(ihome: Path) -> None:
    deliver(ihome, "rcid", "redcap_identified.csv")
    (outcome,) = ingest_site("rcid", DATE).files
    assert counts(outcome) == (6, 5, 1, 0)
    assert _leaks(ihome) == []


def test_identifier_column_cannot_be_mapped(tmp_path: Path) -> None:
    doc = yaml.safe_load((FIXTURES / "consortium.yml").read_text(encoding="utf-8"))
    (site,) = [s for s in doc["sites"] if s["site_id"] == "longid"]
    site["identifier_columns"] = ["Name", "Klient"]
    file = tmp_path / "consortium.yml"
    file.write_text(yaml.safe_dump({"consortium_id": "x", "sites": [site]}), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_consortium(file)
    assert "sites.longid.identifier_columns" in str(error.value)
    assert "'Klient'" in str(error.value)
