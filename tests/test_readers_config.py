"""Per-format consortium options: validated on load, errors name file, site, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium

FORMATS = Path(__file__).parent / "fixtures" / "formats"
EXAMPLES = Path(__file__).resolve().parent.parent / "ingestion" / "examples"


def _site(site_id: str) -> dict:
    doc = yaml.safe_load((FORMATS / "consortium.yml").read_text(encoding="utf-8"))
    return next(s for s in doc["sites"] if s["site_id"] == site_id)


def _load(tmp_path: Path, site: dict) -> None:
    file = tmp_path / "consortium.yml"
    file.write_text(yaml.safe_dump({"consortium_id": "x", "sites": [site]}), encoding="utf-8")
    load_consortium(file)


def test_fixture_consortium_loads() -> None:
    consortium = load_consortium(FORMATS / "consortium.yml")
    assert consortium.site("qual").qualtrics.unfinished == "quarantine"
    assert consortium.site("qual_skip").qualtrics.unfinished == "skip"
    assert consortium.site("qual_progress").qualtrics.min_progress == 90
    assert consortium.site("longde").long_csv.decimal == ","
    assert consortium.site("zipq").zip.max_members == 5
    assert consortium.site("zipr").zip.format == "redcap_csv"
    assert consortium.site("rcrep").redcap.status_columns["wai_sr"] == "alliance_complete"
    assert consortium.site("rcrep_unverified").redcap.accept_unverified is True


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.name)
def test_examples_load(example: Path) -> None:
    assert load_consortium(example).sites


@pytest.mark.parametrize(
    ("site_id", "change", "key", "problem"),
    [
        ("qual", {"qualtrics": None}, "sites.qual.qualtrics", "is required"),
        ("qual", {"qualtrics": {"unfinished": "drop"}}, "qualtrics.import_ids", "must map"),
        ("qual", {"qualtrics.unfinished": "drop"}, "qualtrics.unfinished", "must be one of"),
        ("qual", {"qualtrics.min_progress": 150}, "qualtrics.min_progress", "percentage"),
        ("qual", {"qualtrics.encoding": "latin-1"}, "qualtrics.encoding", "must be one of"),
        ("qual", {"columns.client_code": "RecipientEmail"}, "columns.client_code", "identifying"),
        ("qual", {"qualtrics.import_ids.ipAddress": "ip"}, "import_ids.ipAddress", "identifying"),
        ("qual", {"qualtrics.import_ids.QID5_2": "wai_1"}, "qualtrics.import_ids", "several"),
        ("qual", {"long_csv": {"x": 1}}, "sites.qual.long_csv", "not read"),
        ("longde", {"long_csv.delimiter": ","}, "long_csv.decimal", "same as the delimiter"),
        ("longde", {"long_csv.delimiter": ";;"}, "long_csv.delimiter", "one character"),
        ("longde", {"long_csv.measures.ORS": "ors"}, "long_csv.measures.ORS", "not among"),
        ("longde", {"long_csv.item_column_template": "Item"}, "item_column_template", "{n}"),
        ("longde", {"long_csv.skip_measures": ["GAD-7"]}, "skip_measures", "also listed"),
        ("zipq", {"zip.format": "zip"}, "sites.zipq.zip.format", "must be one of"),
        ("zipq", {"zip.max_members": 0}, "zip.max_members", "positive"),
        ("zipq", {"zip": None}, "sites.zipq.zip", "is required"),
        ("qual", {"zip": {"format": "long_csv"}}, "sites.qual.zip", "only read"),
        ("rcrep", {"redcap.status_columns.gad7": "x"}, "status_columns.gad7", "not among"),
        ("rcrep", {"redcap.accept_unverified": "yes"}, "redcap.accept_unverified", "true or"),
        ("qual", {"redcap": {}}, "sites.qual.redcap", "not read"),
    ],
)
def test_bad_options_name_site_key_and_problem(
    tmp_path: Path, site_id: str, change: dict, key: str, problem: str
) -> None:
    site = _site(site_id)
    for path, value in change.items():
        *parents, last = path.split(".")
        node = site
        for part in parents:
            node = node[part]
        node[last] = value
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, site)
    assert str(tmp_path / "consortium.yml") in str(error.value)
    assert f"sites.{site_id}." in error.value.key and error.value.key.endswith(key)
    assert problem in error.value.problem
