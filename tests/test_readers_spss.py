"""SPSS .sav reader and per-site missing codes.

The .sav fixture is written here with pyreadstat.write_sav so its metadata is visible. Site
`spss`: WAI-SR (WAI1..12, 1-5) and PHQ-9 (PHQ1..9, 0-3); Visit is numeric with value labels
(1 "Session 1", 2 "Session 2", 3 "Session 3", 0 "Baseline"), mapped through them
(`spss.event_from_labels`) before the pattern '^Session (\\d+)$'. Declared user-missing values:
WAI 98, 99 (labels "Not applicable", "Refused"); PHQ range 97-99 (97 labelled "Don't know").
The site's `missing_codes` say 99 = refused. Therapist is numeric with value labels that are
names (never applied). FullName and Email are identifier_columns; Notes is free text, unmapped.

  case 1  C1 T1 Session 1  WAI 4s, PHQ 1s                     -> both accepted
  case 2  C1 T1 Session 2  WAI 99, 98, 5 x 10; PHQ 2s, item 3 = 97
                                                             -> both accepted, items coded:
          WAI items [-, -, 5 x 10], item_missing [refused (site), not_applicable (label), ...]
          PHQ items [2, 2, -, 2 x 6], item_missing [.., .., don_t_know (label), ...]
  case 3  C2 T2 Session 3  WAI item 1 = 7, rest 3; PHQ system-missing
                                                             -> WAI range, PHQ not administered
  case 4  C2 T2 Baseline   WAI 3s, PHQ 0s                     -> both schema (session pattern)
  case 5  C3 T1 Session 1  WAI all 99 (refused); PHQ item 1 = 96 (not declared), rest 0
                                                             -> WAI not administered (no item
                                                                answered), PHQ range
  offered 5 x 2 = 10 = accepted 4 + quarantined 4 + not administered 2.
"""

from __future__ import annotations

import shutil
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest
import yaml

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.intake.missing_codes import missing_marker
from ingestion.intake.preview import read_export
from ingestion.intake.sources import required_columns
from ingestion.pseudonyms import PseudonymKey
from ingestion.registry import default_registry
from ingestion.settings import Paths
from tests.conftest import TEST_KEY
from tests.test_event_sourcing import _configure, _export, _night, _row
from tests.test_readers_qualtrics import counts, events, quarantine

DATE = "2026-11-20"
PID = PseudonymKey(TEST_KEY.encode()).pseudonym
PLANTED = [
    "Jane Q. Doe",
    "jane.q.doe@example.org",
    "Hildegard Plonkworth",
    "Xavier Quuxley",
    "SECRET-NOTE disclosed at intake",
]
WAI = [f"WAI{n}" for n in range(1, 13)]
PHQ = [f"PHQ{n}" for n in range(1, 10)]
NAN = float("nan")

SITE = {
    "site_id": "spss",
    "format": "spss_sav",
    "columns": {
        "client_code": "ClientID",
        "therapist_code": "Therapist",
        "session_date": "SessDate",
        "event": "Visit",
    },
    "session_event_pattern": r"^Session (\d+)$",
    "spss": {"event_from_labels": True},
    "missing_codes": {"99": "refused"},
    "identifier_columns": ["FullName", "Email"],
    "forms": [
        {"instrument": "wai_sr", "rater_role": "client", "item_column_template": "WAI{n}"},
        {"instrument": "phq9", "rater_role": "client", "item_column_template": "PHQ{n}"},
    ],
    "primary_alliance": "wai_sr",
    "primary_outcome": "phq9",
}


def _cases() -> list[dict]:
    def case(client, therapist, visit, day, wai, phq, name="", email="", note=""):
        row = {
            "ClientID": client,
            "Therapist": float(therapist),
            "Visit": float(visit),
            "SessDate": day,
            "FullName": name,
            "Email": email,
            "Notes": note,
        }
        row.update({c: float(v) for c, v in zip(WAI, wai, strict=True)})
        row.update({c: float(v) for c, v in zip(PHQ, phq, strict=True)})
        return row

    return [
        case("C1", 1, 1, date(2026, 3, 2), [4] * 12, [1] * 9, PLANTED[0], PLANTED[1], PLANTED[4]),
        case("C1", 1, 2, date(2026, 3, 9), [99, 98] + [5] * 10, [2, 2, 97] + [2] * 6),
        case("C2", 2, 3, date(2026, 3, 4), [7] + [3] * 11, [NAN] * 9, "Someone Else"),
        case("C2", 2, 0, date(2026, 3, 11), [3] * 12, [0] * 9),
        case("C3", 1, 1, date(2026, 3, 5), [99] * 12, [96] + [0] * 8),
    ]


def write_sav(path: Path, cases: list[dict] | None = None, label: str = "") -> bytes:
    """The fixture export, with value labels and declared user-missing values."""
    frame = pd.DataFrame(cases or _cases())
    labels = {
        "Visit": {1: "Session 1", 2: "Session 2", 3: "Session 3", 0: "Baseline"},
        "Therapist": {1: "Dr " + PLANTED[2], 2: "Dr " + PLANTED[3]},
    }
    missing: dict[str, list] = {}
    for column in WAI:
        labels[column] = {1: "Never", 5: "Always", 98: "Not applicable", 99: "Refused"}
        missing[column] = [98, 99]
    for column in PHQ:
        labels[column] = {0: "Not at all", 97: "Don't know", 99: "Refused"}
        missing[column] = [{"lo": 97, "hi": 99}]
    path.parent.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_sav(
        frame,
        str(path),
        file_label=label,
        variable_value_labels=labels,
        missing_ranges=missing,
        variable_format={"SessDate": "DATE11"},
    )
    return path.read_bytes()


def _consortium(home: Path, *extra: dict) -> Path:
    file = home / "consortium.yml"
    doc = {"consortium_id": "spss_test", "sites": [SITE, *extra]}
    file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return file


@pytest.fixture
def shome(home: Path) -> Path:
    zipped = {
        **SITE,
        "site_id": "spsszip",
        "format": "zip",
        "file_glob": "*.zip",
        "zip": {"format": "spss_sav"},
    }
    plain = {
        **SITE,
        "site_id": "spssraw",
        "session_event_pattern": r"^(\d+)$",
        "spss": {"event_from_labels": False},
        "missing_codes": None,
    }
    del plain["missing_codes"]
    _consortium(home, zipped, plain)
    return home


def _site(home: Path, site_id: str = "spss"):
    registry = default_registry()
    return load_consortium(home / "consortium.yml", registry).site(site_id), registry


def _texts(frame: pd.DataFrame) -> list[str]:
    return [str(v) for v in frame.astype(str).to_numpy().ravel()] + list(frame.columns)


def test_reader_renders_the_canonical_frame(shome: Path, tmp_path: Path) -> None:
    site, registry = _site(shome)
    assert site.file_glob == "*.sav"
    path = tmp_path / "export.sav"
    write_sav(path)
    read = read_export(path, site, registry)
    assert read.issue is None and read.rows_in == 5
    frame = read.frame
    columns = [c for c in frame.columns if not c.startswith("__")]
    assert columns == required_columns(site, registry)
    assert frame["__source_row"].tolist() == [1, 2, 3, 4, 5]
    assert frame["ClientID"].tolist() == ["C1", "C1", "C2", "C2", "C3"]
    # Codes, not the names in the therapist's value labels.
    assert frame["Therapist"].tolist() == ["1", "1", "2", "2", "1"]
    assert frame["Visit"].tolist() == [
        "Session 1",
        "Session 2",
        "Session 3",
        "Baseline",
        "Session 1",
    ]
    assert frame["SessDate"].tolist()[:2] == ["2026-03-02", "2026-03-09"]
    assert frame["WAI1"].tolist() == [
        "4",
        missing_marker("refused"),
        "7",
        "3",
        missing_marker("refused"),
    ]
    assert frame["WAI2"].tolist()[1] == missing_marker("not_applicable")
    assert frame["PHQ3"].tolist()[1] == missing_marker("don_t_know")
    # System-missing is blank; 96 is not declared missing: a value (validation says range).
    assert frame["PHQ1"].tolist() == ["1", "2", "", "0", "96"]
    assert not any(p in t for p in PLANTED for t in _texts(frame))
    assert not {"FullName", "Email", "Notes"} & set(frame.columns)


def test_without_labels_the_event_is_the_number(shome: Path, tmp_path: Path) -> None:
    site, registry = _site(shome, "spssraw")
    path = tmp_path / "export.sav"
    write_sav(path)
    frame = read_export(path, site, registry).frame
    assert frame["Visit"].tolist() == ["1", "2", "3", "0", "1"]
    # No site codes: 99 is still declared missing in the file, its reason is its value label.
    assert frame["WAI1"].tolist()[1] == missing_marker("refused")


def test_missing_codes_are_scored_as_missing_never_as_values(shome: Path) -> None:
    """The former row-engine check, through the one engine: coded items are missing (with
    their reasons), never out of range; an undeclared 96 is a value, and out of range."""
    write_sav(shome / "inbox" / "spss" / "export.sav")
    (outcome,) = ingest_site("spss", DATE).files
    assert counts(outcome) == (10, 4, 4, 2)
    records = quarantine(shome)
    rules = sorted(
        (q["source_row"], q["instrument"], q["rule_id"], q["raw_value"]) for q in records
    )
    assert rules == [
        (3, "wai_sr", "item.out_of_range", "7"),
        (4, "phq9", "row.session_event", "Baseline"),
        (4, "wai_sr", "row.session_event", "Baseline"),
        (5, "phq9", "item.out_of_range", "96"),
    ]
    c1 = PID("spss", "client", "C1")
    admins = {
        (e["client_pid"], e["session_number"], e["instrument"]): (e["items"], e["item_missing"])
        for e in events(shome)
    }
    none12, none9 = [None] * 12, [None] * 9
    assert admins == {
        (c1, 1, "wai_sr"): ([4.0] * 12, None),
        (c1, 1, "phq9"): ([1.0] * 9, None),
        (c1, 2, "wai_sr"): (
            [None, None] + [5.0] * 10,
            ["refused", "not_applicable"] + none12[2:],
        ),
        (c1, 2, "phq9"): (
            [2.0, 2.0, None] + [2.0] * 6,
            none9[:2] + ["don_t_know"] + none9[3:],
        ),
    }
    for record in records:
        assert not any(p in str(v) for p in PLANTED for v in record.values())


def test_ingested_sav_events_and_no_identifier_in_the_log(shome: Path) -> None:
    write_sav(shome / "inbox" / "spss" / "export_2026-11.sav")
    (outcome,) = ingest_site("spss", DATE).files
    assert outcome.status == "ingested" and outcome.rows_in == 5
    assert counts(outcome) == (10, 4, 4, 2)
    assert outcome.quarantine_records == 4
    got = {
        (e["client_pid"], e["session_number"], e["instrument"]): (
            e["items"],
            e["item_missing"],
            e["therapist_pid"],
            str(e["session_date"]),
            e["source_row"],
        )
        for e in events(shome)
    }
    c1, t1 = PID("spss", "client", "C1"), PID("spss", "therapist", "1")
    assert got == {
        (c1, 1, "wai_sr"): ([4.0] * 12, None, t1, "2026-03-02", 1),
        (c1, 1, "phq9"): ([1.0] * 9, None, t1, "2026-03-02", 1),
        (c1, 2, "wai_sr"): (
            [None, None] + [5.0] * 10,
            ["refused", "not_applicable"] + [None] * 10,
            t1,
            "2026-03-09",
            2,
        ),
        (c1, 2, "phq9"): (
            [2.0, 2.0, None] + [2.0] * 6,
            [None, None, "don_t_know"] + [None] * 6,
            t1,
            "2026-03-09",
            2,
        ),
    }
    files = [
        p for p in shome.rglob("*") if p.is_file() and p.relative_to(shome).parts[0] != "inbox"
    ]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert any("eventlog" in p.parts for p in parquet)
    for path in files:
        data = path.read_bytes()
        texts = [data.decode("utf-8", errors="replace")]
        if path.suffix == ".parquet":
            texts += [str(v) for row in pq.read_table(path).to_pylist() for v in row.values()]
        for value in PLANTED:
            assert value.encode() not in data, (value, path)
            assert not any(value in t for t in texts), (value, path)
    # Delivered again under another name (the same bytes; writing the .sav again would stamp a
    # new creation time into its header, making it a different delivery): a no-op.
    inbox = shome / "inbox" / "spss"
    (inbox / "copy.sav").write_bytes((inbox / "export_2026-11.sav").read_bytes())
    assert ingest_site("spss", DATE).no_op


def test_changed_missing_reason_is_one_amendment(shome: Path) -> None:
    write_sav(shome / "inbox" / "spss" / "a.sav")
    ingest_site("spss", DATE)
    cases = _cases()
    cases[1]["WAI1"] = 98.0  # refused -> not applicable
    write_sav(shome / "inbox" / "spss" / "b.sav", cases)
    result = ingest_site("spss", "2026-11-21")
    (outcome,) = [f for f in result.files if f.source_file == "b.sav"]
    assert (outcome.recorded, outcome.amended, outcome.unchanged) == (0, 1, 3)
    (amended,) = [e for e in events(shome) if e["event_type"] == "response_amended"]
    assert amended["item_missing"][:2] == ["not_applicable", "not_applicable"]


def test_log_written_before_item_missing_still_replays(shome: Path) -> None:
    """Old events without the column read as null; an unchanged export adds nothing."""
    cases = [c for c in _cases() if c["ClientID"] == "C1" and c["Visit"] == 1.0]
    write_sav(shome / "inbox" / "spss" / "a.sav", cases)
    ingest_site("spss", DATE)
    log = Paths(shome).event_log
    old = delta_store.read(log, EVENT_SCHEMA).drop_columns(["item_missing"])
    sha = old.column("source_sha256")[0].as_py()
    shutil.rmtree(log)
    delta_store.append(log, old, [sha], {})
    assert all(e["item_missing"] is None for e in events(shome))
    write_sav(shome / "inbox" / "spss" / "b.sav", cases, label="re-exported")
    assert ingest_site("spss", "2026-11-21").events_written == 0


def test_zip_of_a_sav_reads_like_the_sav(shome: Path, tmp_path: Path) -> None:
    raw = write_sav(tmp_path / "export.sav")
    target = shome / "inbox" / "spsszip" / "delivery.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/data.sav", raw)
        archive.writestr("export/codebook.txt", b"variables...")
    (outcome,) = ingest_site("spsszip", DATE).files
    assert outcome.source_file == "delivery.zip" and outcome.status == "ingested"
    assert counts(outcome) == (10, 4, 4, 2)
    assert len(events(shome)) == 4
    assert {q["source_file"] for q in quarantine(shome)} == {"delivery.zip"}
    # Nothing was extracted anywhere in the data root.
    assert [p.name for p in shome.rglob("*.sav")] == []


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"$FL2@(#) IBM SPSS STATISTICS 64-bit Linux" + b"\x00\xff" * 200, "file.sav_unreadable"),
        (b"ClientID,Visit\nC1,1\n", "file.sav_unreadable"),
        ("truncated", "file.sav_unreadable"),
        (b"", "file.empty"),
    ],
)
def test_unreadable_sav_is_one_file_level_record(
    shome: Path, tmp_path: Path, content: bytes | str, rule: str
) -> None:
    if content == "truncated":
        content = write_sav(tmp_path / "whole.sav")[:400]
    target = shome / "inbox" / "spss" / "broken.sav"
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    (outcome,) = ingest_site("spss", DATE).files
    assert outcome.status == "rejected" and outcome.quarantine_records == 1
    assert counts(outcome) == (0, 0, 0, 0)
    (issue,) = quarantine(shome)
    assert (issue["rule_id"], issue["category"], issue["source_row"]) == (rule, "parse", None)
    if rule == "file.sav_unreadable":
        assert "not a readable SPSS .sav file" in issue["message"]
        assert "re-export it from SPSS" in issue["message"]
    assert events(shome) == []


def test_missing_variable_is_named(shome: Path, tmp_path: Path) -> None:
    cases = [{k: v for k, v in c.items() if k != "PHQ9"} for c in _cases()]
    frame = pd.DataFrame(cases)
    target = shome / "inbox" / "spss" / "short.sav"
    target.parent.mkdir(parents=True)
    pyreadstat.write_sav(frame, str(target))
    (outcome,) = ingest_site("spss", DATE).files
    assert outcome.status == "rejected" and outcome.rows_in == 5
    (issue,) = quarantine(shome)
    assert issue["rule_id"] == "file.missing_columns" and "PHQ9" in issue["message"]


def test_variable_names_match_ignoring_case(shome: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame(_cases()).rename(columns=lambda c: c.lower())
    target = tmp_path / "lower.sav"
    pyreadstat.write_sav(frame, str(target))
    site, registry = _site(shome)
    read = read_export(target, site, registry)
    assert read.issue is None
    assert read.frame["WAI1"].tolist()[0] == "4"  # no declared missing values in this file:
    assert read.frame["WAI1"].tolist()[1] == "99"  # the site's code, recognised in validation


# --- missing codes on a REDCap CSV site (tests/fixtures/tiny alpha) ---------------------------


def test_missing_codes_on_a_redcap_site(home: Path) -> None:
    """Site codes 99 = refused, -9 = not_asked; rows:
    line 2  C1 s1 WAI "99", "-9.0", 4 x 10; PHQ 1s  -> both accepted, WAI items 1-2 coded
    line 3  C2 s1 WAI all 99; PHQ item 1 = 98      -> WAI not administered; PHQ range (98 no code)
    line 4  C3 s1 WAI " 99 ", 3 x 11; PHQ blank    -> WAI accepted (code after stripping); PHQ n/a
    offered 6 = accepted 3 + quarantined 1 + not administered 2.
    """
    _configure(home, missing_codes={"99": "refused", "-9": "not_asked"})
    r2 = _row("C1", 1, 4, 1)
    r2[4:6] = ["99", "-9.0"]
    r3 = _row("C2", 1, 99, 0)
    r3[16] = "98"
    r4 = _row("C3", 1, 3, 0)
    r4[4] = " 99 "
    r4[16:] = [""] * 9
    _export(home, "a.csv", [r2, r3, r4])
    (outcome,) = _night(home).files
    assert counts(outcome) == (6, 3, 1, 2)
    (issue,) = quarantine(home)
    assert (issue["source_row"], issue["rule_id"], issue["raw_value"]) == (
        3,
        "item.out_of_range",
        "98",
    )
    got = {
        (e["client_pid"], e["instrument"]): (e["items"], e["item_missing"]) for e in events(home)
    }
    assert got == {
        (PID("alpha", "client", "C1"), "wai_sr"): (
            [None, None] + [4.0] * 10,
            ["refused", "not_asked"] + [None] * 10,
        ),
        (PID("alpha", "client", "C1"), "phq9"): ([1.0] * 9, None),
        (PID("alpha", "client", "C3"), "wai_sr"): (
            [None] + [3.0] * 11,
            ["refused"] + [None] * 11,
        ),
    }


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"missing_codes": {"0": "refused"}}, "missing_codes.0", "valid answer to phq9"),
        ({"missing_codes": {"5": "refused"}}, "missing_codes.5", "valid answer to wai_sr"),
        ({"missing_codes": {"99": "Refused!"}}, "missing_codes.99", "lower-case label"),
        ({"missing_codes": {"99": "refused", 99: "x"}}, "missing_codes.99", "listed twice"),
        ({"missing_codes": []}, "sites.spss.missing_codes", "must map codes"),
        ({"spss": {"labels": True}}, "sites.spss.spss.labels", "not a known key"),
        ({"spss": {"event_from_labels": "yes"}}, "spss.event_from_labels", "true or false"),
        ({"format": "qualtrics_csv"}, "sites.spss.spss", "not read for format"),
        ({"identifier_columns": ["WAI3"]}, "sites.spss.identifier_columns", "'WAI3'"),
    ],
)
def test_bad_options_name_site_key_and_problem(
    tmp_path: Path, change: dict, key: str, problem: str
) -> None:
    site = {**SITE, **change}
    if site["format"] == "qualtrics_csv":
        site["qualtrics"] = {"import_ids": {"QID1": "ClientID"}}
    file = tmp_path / "consortium.yml"
    doc = {"consortium_id": "x", "sites": [site]}
    file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_consortium(file)
    assert key in str(error.value) and problem in str(error.value)
    assert str(file) in str(error.value)


def test_zip_member_glob_defaults_to_sav(shome: Path) -> None:
    site, _ = _site(shome, "spsszip")
    assert site.zip.member_glob == "*.sav" and site.zip.format == "spss_sav"


def test_a_zipped_sav_leaves_nothing_in_scratch(shome: Path) -> None:
    """A zip member is copied into the private scratch folder to be read, and removed."""
    raw = write_sav(shome / "export.sav")
    target = shome / "inbox" / "spsszip" / "export.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("export.sav", raw)
    (outcome,) = ingest_site("spsszip", DATE).files
    assert counts(outcome) == (10, 4, 4, 2)
    scratch = Paths(shome).scratch
    assert not scratch.exists() or not any(scratch.iterdir())
