"""The instrument registry: the shipped files load, and bad files fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.registry import INSTRUMENTS_DIR, bands_table, load_registry

GOOD = yaml.safe_load((INSTRUMENTS_DIR / "phq9.yml").read_text())


def test_shipped_registry_constants() -> None:
    registry = load_registry()
    phq9, gad7, wai = registry.get("phq9"), registry.get("gad7"), registry.get("wai_sr")
    assert (phq9.items, phq9.item_min, phq9.item_max, phq9.total_max) == (9, 0, 3, 27)
    assert (phq9.caseness_operator, phq9.caseness_threshold, phq9.reliable_change) == (">=", 10, 6)
    assert (gad7.caseness_threshold, gad7.reliable_change, gad7.total_max) == (8, 4, 21)
    # WAI-SR (Hatcher & Gillaspy 2006): Task 1,2,10,12; Bond 3,5,7,9; Goal 4,6,8,11.
    assert wai.subscales == {"task": (1, 2, 10, 12), "bond": (3, 5, 7, 9), "goal": (4, 6, 8, 11)}
    assert wai.total_min == 12 and wai.total_max == 60
    assert all(i.provenance for i in registry.instruments.values())


def test_bands_are_half_open_intervals() -> None:
    rows = bands_table(load_registry()).to_pylist()
    phq = [
        (r["band"], r["min_score"], r["max_score_exclusive"])
        for r in rows
        if r["instrument"] == "phq9"
    ]
    assert phq == [
        ("minimal", 0, 5),
        ("mild", 5, 10),
        ("moderate", 10, 15),
        ("moderately_severe", 15, 20),
        ("severe", 20, None),
    ]


def test_hash_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump(GOOD))
    first = load_registry(tmp_path).sha256
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump({**GOOD, "reliable_change": 5}))
    assert load_registry(tmp_path).sha256 != first


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"items": 0}, "items", "at least 1"),
        ({"item_max": -1}, "item_max", "greater than item_min"),
        ({"reverse_items": [10]}, "reverse_items", "outside 1..9"),
        ({"subscales": {"a": [1, 1]}}, "subscales.a", "twice"),
        ({"direction": "up"}, "direction", "must be one of"),
        ({"caseness": {"operator": ">", "threshold": 10}}, "caseness.operator", "must be one of"),
        ({"missing": {"max_missing": 9, "method": "prorate_mean"}}, "missing.max_missing", "0..8"),
        (
            {"severity_bands": [{"band": "a", "min": 5}, {"band": "b", "min": 0}]},
            "severity_bands",
            "increasing",
        ),
        ({"reliable_change": -2}, "reliable_change", "positive"),
        ({"instrument_id": "other"}, "instrument_id", "file name"),
    ],
)
def test_invalid_file_names_file_and_key(
    tmp_path: Path, change: dict, key: str, problem: str
) -> None:
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump({**GOOD, **change}))
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(tmp_path / "phq9.yml") in str(err.value)


def test_missing_key_is_named(tmp_path: Path) -> None:
    doc = dict(GOOD)
    del doc["provenance"]
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="provenance: is required"):
        load_registry(tmp_path)
