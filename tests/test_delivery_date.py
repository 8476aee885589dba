"""Dates against delivery: `delivery_date: {pattern, format}` reads the date a site wrote into a
file's name, and the future-date check uses it, never later than the night's logical date.

A catch-up night (logical date 2026-11-20) reads a file the site named on 2026-11-10. Sessions
dated 2026-11-10 (the delivery day) pass; 2026-11-12 could not have been known on the 10th and
is quarantined, although it lies before the night's logical date.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.delivery_date import DeliveryDateOptions, future_bound
from ingestion.ingest import ingest_site
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths

TINY = Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml"
NIGHT = date(2026, 11, 20)
HEADER = (
    ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    + [f"wai_{i}" for i in range(1, 13)]
    + [f"phq9_{i}" for i in range(1, 10)]
)
NAMED = {"pattern": r"_(?P<date>\d{8})\.csv$", "format": "%Y%m%d"}
OPTIONS = DeliveryDateOptions(re.compile(NAMED["pattern"]), NAMED["format"])


def _configure(home: Path, delivery_date: object) -> Path:
    doc = yaml.safe_load(TINY.read_text())
    doc["sites"][0]["delivery_date"] = delivery_date
    (home / "consortium.yml").write_text(yaml.safe_dump(doc))
    return home / "consortium.yml"


def _export(home: Path, name: str, sessions: list[tuple[str, int, str]]) -> None:
    path = home / "inbox" / "alpha" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for code, session, day in sessions:
            writer.writerow([code, f"session_{session}_arm_1", "T1", day] + ["3"] * 12 + ["1"] * 9)


# --- the bound, by hand --------------------------------------------------------------------


def test_a_matching_name_gives_the_delivery_date() -> None:
    bound = future_bound(OPTIONS, "alpha_20261110.csv", NIGHT)
    assert (bound.day, bound.note) == (date(2026, 11, 10), None)
    assert bound.basis == "the delivery date 2026-11-10 (from the file name)"


def test_without_a_pattern_the_logical_date_is_the_bound() -> None:
    bound = future_bound(None, "alpha_20261110.csv", NIGHT)
    assert (bound.day, bound.basis, bound.note) == (
        NIGHT,
        "the night's logical date 2026-11-20",
        None,
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("alpha_latest.csv", "does not match delivery_date.pattern"),
        ("alpha_20261340.csv", "'20261340' in the file name is not a date in format '%Y%m%d'"),
        ("alpha_20261121.csv", "2026-11-21 in the file name is after the night's logical date"),
    ],
)
def test_a_name_without_a_usable_date_falls_back_with_a_note(name: str, why: str) -> None:
    bound = future_bound(OPTIONS, name, NIGHT)
    assert bound.day == NIGHT and bound.basis == "the night's logical date 2026-11-20"
    assert bound.note is not None and why in bound.note
    assert bound.note.endswith("future dates checked against the night's logical date 2026-11-20")


# --- through intake --------------------------------------------------------------------------


def test_catch_up_night_checks_each_file_against_its_delivery_date(home: Path) -> None:
    _configure(home, NAMED)
    sessions = [("C1", 1, "2026-11-10"), ("C2", 1, "2026-11-12")]
    _export(home, "alpha_20261110.csv", sessions)
    (outcome,) = ingest_site("alpha", NIGHT.isoformat()).files
    # C1: both questionnaires accepted (dated the delivery day); C2: both held as future.
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (4, 2, 2)
    assert outcome.detail is None
    records = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    assert sorted((r["source_row"], r["rule_id"]) for r in records) == [
        (3, "row.session_date_future"),
        (3, "row.session_date_future"),
    ]
    assert {r["message"] for r in records} == {
        "session date is after the delivery date 2026-11-10 (from the file name)"
    }


def test_unmatched_name_falls_back_to_the_logical_date_and_says_so(home: Path) -> None:
    _configure(home, NAMED)
    _export(home, "alpha_latest.csv", [("C1", 1, "2026-11-10"), ("C2", 1, "2026-11-12")])
    result = ingest_site("alpha", NIGHT.isoformat())
    (outcome,) = result.files
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (4, 4, 0)
    assert outcome.detail is not None and "does not match delivery_date.pattern" in outcome.detail
    # Recorded with the run in the audit trail, not only in the task log.
    audit = [json.loads(line) for line in Paths(home).audit_log.read_text().splitlines()]
    (ingest,) = [a for a in audit if a["step"] == "ingest"]
    (file,) = ingest["files"]
    assert "does not match delivery_date.pattern" in file["detail"]


def test_without_delivery_date_the_logical_date_still_bounds(home: Path) -> None:
    _configure(home, None)
    _export(home, "alpha_20261110.csv", [("C2", 1, "2026-11-12"), ("C3", 1, "2026-11-21")])
    (outcome,) = ingest_site("alpha", NIGHT.isoformat()).files
    assert (outcome.offered, outcome.accepted, outcome.quarantined) == (4, 2, 2)
    records = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    assert {r["message"] for r in records} == {
        "session date is after the night's logical date 2026-11-20"
    }


# --- configuration -------------------------------------------------------------------------


DIGITS = r"_(?P<date>\d{8})"


@pytest.mark.parametrize(
    ("value", "key", "message"),
    [
        (DIGITS, "delivery_date", "must be a mapping"),
        ({"pattern": r"_(\d{8})", "format": "%Y%m%d"}, "delivery_date.pattern", r"\(\?P<date>"),
        ({"pattern": DIGITS[:-1], "format": "%Y%m%d"}, "delivery_date.pattern", "not a regex"),
        ({"pattern": DIGITS, "format": "%Y%m"}, "delivery_date.format", "a year, a month and a"),
        ({"pattern": DIGITS, "format": "%Y%q%d"}, "delivery_date.format", "does not read back"),
        ({"pattern": DIGITS}, "delivery_date.format", "non-empty string"),
        ({**NAMED, "fallback": "quarantine"}, "delivery_date.fallback", "not a known key"),
    ],
)
def test_delivery_date_config_is_validated(
    home: Path, value: object, key: str, message: str
) -> None:
    file = _configure(home, value)
    with pytest.raises(ConfigError, match=message) as raised:
        load_consortium(file)
    assert "consortium.yml" in str(raised.value) and f"sites.alpha.{key}" in str(raised.value)


def test_delivery_date_config_loads(home: Path) -> None:
    site = load_consortium(_configure(home, NAMED)).site("alpha")
    assert site.delivery_date is not None
    assert (site.delivery_date.pattern.pattern, site.delivery_date.format) == (
        NAMED["pattern"],
        "%Y%m%d",
    )
