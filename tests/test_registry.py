"""The instrument registry: the shipped files load, and bad files fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.registry import INSTRUMENTS_DIR, bands_table, instruments_table, load_registry

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


# --------------------------------------------------------------------------- science constants

WAI = yaml.safe_load((INSTRUMENTS_DIR / "wai_sr.yml").read_text())
NORMS = {"clinical_mean": 15, "clinical_sd": 5, "functional_mean": 3, "functional_sd": 3}


def test_shipped_science_constants() -> None:
    rows = {r["instrument"]: r for r in instruments_table(load_registry()).to_pylist()}
    phq9, gad7, wai = rows["phq9"], rows["gad7"], rows["wai_sr"]
    # Jacobson-Truax: published reliabilities, the sample's SD (null here), caseness as cutoff.
    assert (phq9["jt_reliability"], phq9["jt_sd_pre"], phq9["jt_cutoff"]) == (0.89, None, 10)
    assert (gad7["jt_reliability"], gad7["jt_cutoff"], gad7["jt_cutoff_operator"]) == (
        0.92,
        8,
        ">=",
    )
    assert (phq9["nhs_tt_role"], gad7["nhs_tt_role"], wai["nhs_tt_role"]) == (
        "depression",
        "anxiety",
        None,
    )
    # WAI-SR has no published concern rule: null, not an invented cutoff.
    assert (wai["concern_below"], wai["concern_drop_from_previous"]) == (None, None)
    registry = load_registry()
    for iid in ("phq9", "gad7"):
        assert "jacobson_truax" in registry.get(iid).provenance


def test_jacobson_truax_criterion_c_from_norms(tmp_path: Path) -> None:
    doc = {**GOOD, "jacobson_truax": {"reliability": 0.9, "sd_pre": 6, "cutoff": NORMS}}
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump(doc))
    jt = load_registry(tmp_path).get("phq9").jacobson_truax
    # c = (SD_clin x M_func + SD_func x M_clin) / (SD_clin + SD_func) = (15 + 45) / 8 = 7.5
    assert (jt.cutoff, jt.cutoff_operator, jt.cutoff_method, jt.sd_pre) == (7.5, ">=", "c", 6.0)


def test_alliance_concern_rule_is_data(tmp_path: Path) -> None:
    doc = {
        **WAI,
        "alliance_concern": {"below": 36, "drop_from_previous": 1},
        "provenance": {**WAI["provenance"], "alliance_concern": "SRS v3 (Duncan et al. 2003)"},
    }
    (tmp_path / "wai_sr.yml").write_text(yaml.safe_dump(doc))
    (row,) = instruments_table(load_registry(tmp_path)).to_pylist()
    assert (row["concern_below"], row["concern_drop_from_previous"]) == (36.0, 1.0)


@pytest.mark.parametrize(
    ("file", "change", "key", "problem"),
    [
        (
            "phq9",
            {"jacobson_truax": {"reliability": 1.2, "cutoff": "caseness"}},
            "jacobson_truax.reliability",
            "(0, 1)",
        ),
        (
            "phq9",
            {"jacobson_truax": {"reliability": 0.9, "sd_pre": -3, "cutoff": "caseness"}},
            "jacobson_truax.sd_pre",
            "positive",
        ),
        (
            "phq9",
            {"caseness": None, "jacobson_truax": {"reliability": 0.9, "cutoff": "caseness"}},
            "jacobson_truax.cutoff",
            "has none",
        ),
        (
            "phq9",
            {
                "jacobson_truax": {
                    "reliability": 0.9,
                    "cutoff": {**NORMS, "clinical_mean": 1},
                }
            },
            "jacobson_truax.cutoff",
            "wrong side",
        ),
        (
            "phq9",
            {"jacobson_truax": {"reliability": 0.9, "cutoff": {**NORMS, "functional_sd": 0}}},
            "jacobson_truax.cutoff.functional_sd",
            "positive",
        ),
        (
            "phq9",
            {"provenance": {"scoring": "x"}},
            "provenance.jacobson_truax",
            "required when jacobson_truax is set",
        ),
        ("phq9", {"nhs_talking_therapies": "panic"}, "nhs_talking_therapies", "must be one of"),
        (
            "phq9",
            {"reliable_change": None},
            "nhs_talking_therapies",
            "caseness and reliable_change",
        ),
        ("phq9", {"alliance_concern": {"below": 36}}, "alliance_concern", "alliance instruments"),
        (
            "wai_sr",
            {"jacobson_truax": {"reliability": 0.9, "cutoff": "caseness"}},
            "jacobson_truax",
            "outcome instruments",
        ),
        ("wai_sr", {"alliance_concern": {}}, "alliance_concern", "needs below"),
        (
            "wai_sr",
            {"alliance_concern": {"below": 36, "under": 30}},
            "alliance_concern",
            "unknown field",
        ),
        (
            "wai_sr",
            {"alliance_concern": {"drop_from_previous": 0}},
            "alliance_concern.drop_from_previous",
            "positive",
        ),
        (
            "wai_sr",
            {"alliance_concern": {"below": 36}},
            "provenance.alliance_concern",
            "required",
        ),
    ],
)
def test_invalid_science_block_names_file_and_key(
    tmp_path: Path, file: str, change: dict, key: str, problem: str
) -> None:
    base = GOOD if file == "phq9" else WAI
    (tmp_path / f"{file}.yml").write_text(yaml.safe_dump({**base, **change}))
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(tmp_path / f"{file}.yml") in str(err.value)


def test_two_instruments_cannot_share_an_nhs_role(tmp_path: Path) -> None:
    (tmp_path / "phq9.yml").write_text(yaml.safe_dump(GOOD))
    other = {**GOOD, "instrument_id": "phq9b"}
    (tmp_path / "phq9b.yml").write_text(yaml.safe_dump(other))
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert err.value.key == "nhs_talking_therapies"
    assert "already the role of phq9" in err.value.problem
    assert str(tmp_path / "phq9b.yml") in str(err.value)
