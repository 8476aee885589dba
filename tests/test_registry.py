"""The instrument registry: the shipped files load, and bad files fail naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.registry import (
    INSTRUMENTS_DIR,
    bands_table,
    instruments_table,
    items_table,
    load_registry,
)

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


# --------------------------------------------------------------------------- all nine instruments
# Expected constants are typed from ../shared/reference/domain.md ("Alliance instruments",
# "Outcome instruments"), not read back from the YAML files.

OQ = yaml.safe_load((INSTRUMENTS_DIR / "oq45.yml").read_text())
SRS = yaml.safe_load((INSTRUMENTS_DIR / "srs.yml").read_text())
CORE = yaml.safe_load((INSTRUMENTS_DIR / "core10.yml").read_text())


def test_all_nine_instruments_load_with_the_domain_constants() -> None:
    registry = load_registry()
    assert set(registry.instruments) == {
        "wai_sr",
        "wai_s",
        "srs",
        "haq_ii",
        "phq9",
        "gad7",
        "oq45",
        "core10",
        "ors",
    }
    # (items, item_min, item_max, total_min, total_max, reverse items, direction)
    expected = {
        "wai_sr": (12, 1, 5, 12, 60, (), "higher_is_better"),
        "wai_s": (12, 1, 7, 12, 84, (4, 10), "higher_is_better"),
        "srs": (4, 0, 10, 0, 40, (), "higher_is_better"),
        "haq_ii": (19, 1, 6, 19, 114, (4, 8, 11, 16, 19), "higher_is_better"),
        "phq9": (9, 0, 3, 0, 27, (), "higher_is_worse"),
        "gad7": (7, 0, 3, 0, 21, (), "higher_is_worse"),
        "oq45": (45, 0, 4, 0, 180, (1, 12, 13, 20, 21, 24, 31, 37, 43), "higher_is_worse"),
        "core10": (10, 0, 4, 0, 40, (2, 3), "higher_is_worse"),
        "ors": (4, 0, 10, 0, 40, (), "higher_is_better"),
    }
    for iid, want in expected.items():
        i = registry.get(iid)
        got = (i.items, i.item_min, i.item_max, i.total_min, i.total_max)
        assert got + (i.reverse_items, i.direction) == want, iid
        assert {"missing"} <= set(i.provenance), iid
    # WAI-SR therapist form = rater role on the same instrument (identical key).
    assert registry.get("wai_sr").rater_roles == ("client", "therapist")
    # WAI-S: Task 1,2,8,12; Bond 3,5,7,9; Goal 4,6,10,11 (not WAI-SR's key).
    assert registry.get("wai_s").subscales == {
        "task": (1, 2, 8, 12),
        "bond": (3, 5, 7, 9),
        "goal": (4, 6, 10, 11),
    }
    assert registry.get("wai_s").construct == registry.get("haq_ii").construct == "alliance"


def test_new_cutoffs_reliable_change_and_missing_rules() -> None:
    registry = load_registry()
    oq, core, ors, srs = (registry.get(i) for i in ("oq45", "core10", "ors", "srs"))
    # Caseness and reliable change: OQ-45 >= 64, RC 14; CORE-10 >= 11, RC 6; ORS < 25, RC 5.
    assert (oq.caseness_operator, oq.caseness_threshold, oq.reliable_change) == (">=", 64, 14)
    assert (core.caseness_operator, core.caseness_threshold, core.reliable_change) == (">=", 11, 6)
    assert (ors.caseness_operator, ors.caseness_threshold, ors.reliable_change) == ("<", 25, 5)
    # SRS: concern below 36 or a drop of >= 1 (PCOMS).
    assert srs.alliance_concern is not None
    assert (srs.alliance_concern.below, srs.alliance_concern.drop_from_previous) == (36, 1)
    # VAS items: 0-10 in steps of 0.1, no blank allowed.
    for vas in (srs, ors):
        assert (vas.item_step, vas.item_decimals, vas.missing_method, vas.max_missing) == (
            0.1,
            1,
            "none",
            0,
        )
    # CORE-10 clinical score = 10 x mean item score, at most 1 blank.
    assert (core.scoring, core.score_multiplier, core.max_missing) == ("mean", 10, 1)
    # OQ-45.2: blank = rounded mean of its subscale; subscales SD 25, IR 11, SR 9 items.
    assert oq.missing_method == "subscale_mean_rounded"
    sizes = {name: len(items) for name, items in oq.subscales.items()}
    assert sizes == {"symptom_distress": 25, "interpersonal_relations": 11, "social_role": 9}
    assert sorted(n for items in oq.subscales.values() for n in items) == list(range(1, 46))
    # What domain.md does not give is flagged in provenance, not passed off as verified: the
    # subscale key is unchecked, the reverse key names its secondary source.
    assert "UNCERTAIN" in oq.provenance["subscales"]
    assert "Bordin default" in oq.provenance["missing"]
    assert "secondary source" in oq.provenance["reverse_items"]
    assert oq.reverse_items == (1, 12, 13, 20, 21, 24, 31, 37, 43)


def test_registry_tables_carry_the_scoring_vocabulary() -> None:
    rows = {r["instrument"]: r for r in instruments_table(load_registry()).to_pylist()}
    assert (rows["core10"]["scoring"], rows["core10"]["score_multiplier"]) == ("mean", 10.0)
    assert (rows["srs"]["item_step"], rows["srs"]["item_decimals"]) == (0.1, 1)
    assert rows["oq45"]["missing_method"] == "subscale_mean_rounded"
    assert (rows["phq9"]["scoring"], rows["phq9"]["missing_method"]) == ("sum", "prorate_mean")
    items = [r for r in items_table(load_registry()).to_pylist() if r["instrument"] == "core10"]
    assert [r["item_number"] for r in items if r["is_reversed"]] == [2, 3]


def test_gate_ranges_come_from_the_scoring_rules() -> None:
    """Generated range expectations: CORE-10 0-40 (10 x mean), VAS sums 0-40, HAq-II 19-114."""
    from expectations.gate import registry_range_expectations

    # As warehouse.pipeline._registry_ranges builds them (alliance vs outcome mart).
    ranges: dict[str, dict[str, tuple[float, float]]] = {
        "fct_alliance_session": {},
        "fct_outcome_session": {},
    }
    for i in load_registry().instruments.values():
        mart = "fct_alliance_session" if i.construct == "alliance" else "fct_outcome_session"
        ranges[mart][i.instrument_id] = (i.total_min, i.total_max)
    suite = registry_range_expectations(ranges)
    bounds = {
        e["kwargs"]["row_condition"]["parameter"]: (
            e["kwargs"]["min_value"],
            e["kwargs"]["max_value"],
        )
        for entries in suite.values()
        for e in entries
    }
    assert bounds["core10"] == (0, 40) and bounds["srs"] == (0, 40) and bounds["ors"] == (0, 40)
    assert bounds["haq_ii"] == (19, 114) and bounds["oq45"] == (0, 180)
    assert bounds["wai_s"] == (12, 84) and bounds["wai_sr"] == (12, 60)
    assert {e["kwargs"]["row_condition"]["parameter"] for e in suite["fct_outcome_session"]} == {
        "phq9",
        "gad7",
        "oq45",
        "core10",
        "ors",
    }


def test_mean_scoring_range_uses_the_multiplier(tmp_path: Path) -> None:
    doc = {**CORE, "score_multiplier": 2.5}
    (tmp_path / "core10.yml").write_text(yaml.safe_dump(doc))
    core = load_registry(tmp_path).get("core10")
    # 2.5 x item range 0..4, not 10 items x 0..4.
    assert (core.total_min, core.total_max) == (0, 10)


@pytest.mark.parametrize(
    ("file", "change", "key", "problem"),
    [
        ("phq9", {"scoring": "median"}, "scoring", "must be one of"),
        ("phq9", {"score_multiplier": 10}, "score_multiplier", "only to scoring: mean"),
        ("core10", {"score_multiplier": 0}, "score_multiplier", "positive"),
        ("core10", {"score_multiplier": "ten"}, "score_multiplier", "positive number"),
        (
            "phq9",
            {"missing": {"max_missing": 2, "method": "impute"}},
            "missing.method",
            "must be one of",
        ),
        ("srs", {"missing": {"max_missing": 1, "method": "none"}}, "missing.max_missing", "0 when"),
        (
            "phq9",
            {"missing": {"max_missing": 2, "method": "prorate_mean", "max_blank": 1}},
            "missing",
            "unknown field",
        ),
        (
            "phq9",
            {"missing": {"max_missing": 2, "subscale_max_missing": 1, "method": "prorate_mean"}},
            "missing.subscale_max_missing",
            "no subscales",
        ),
        (
            "phq9",
            {"missing": {"max_missing": 2, "method": "subscale_mean_rounded"}},
            "subscales",
            "in no subscale",
        ),
        (
            "oq45",
            {"subscales": {**OQ["subscales"], "social_role": [4, 12, 14, 21, 28, 32, 38, 39]}},
            "subscales",
            "[44] are in no subscale",
        ),
        (
            "oq45",
            {"missing": {**OQ["missing"], "max_missing": 9}},
            "missing.max_missing",
            "smallest subscale's 9 items",
        ),
        (
            "oq45",
            {"missing": {**OQ["missing"], "subscale_max_missing": 9}},
            "missing.subscale_max_missing",
            "smallest subscale's 9 items",
        ),
        (
            "oq45",
            {"subscales": {**OQ["subscales"], "zz_extra": [1]}},
            "subscales.zz_extra",
            "item 1 is already in subscale 'interpersonal_relations'",
        ),
        ("oq45", {"subscales": {**OQ["subscales"], "empty": []}}, "subscales.empty", "no items"),
        ("srs", {"item_step": 0.3}, "item_step", "does not divide the range 0-10"),
        ("srs", {"item_step": 0.00000001}, "item_step", "at most 6 decimals"),
        ("phq9", {"rater_roles": []}, "rater_roles", "at least one"),
        ("phq9", {"rater_roles": ["client", "client"]}, "rater_roles", "twice"),
        ("phq9", {"rater_roles": ["client", "parent"]}, "rater_roles", "must be one of"),
        (
            "core10",
            {"provenance": {k: v for k, v in CORE["provenance"].items() if k != "reverse_items"}},
            "provenance.reverse_items",
            "required when reverse_items is set",
        ),
        (
            "core10",
            {"provenance": {k: v for k, v in CORE["provenance"].items() if k != "scoring"}},
            "provenance.scoring",
            "required when scoring is set",
        ),
        (
            "oq45",
            {"provenance": {k: v for k, v in OQ["provenance"].items() if k != "missing"}},
            "provenance.missing",
            "required",
        ),
        ("srs", {"alliance_concern": {"below": 36, "drop": 1}}, "alliance_concern", "unknown"),
    ],
)
def test_invalid_scoring_vocabulary_names_file_and_key(
    tmp_path: Path, file: str, change: dict, key: str, problem: str
) -> None:
    base = {"phq9": GOOD, "oq45": OQ, "srs": SRS, "core10": CORE}[file]
    (tmp_path / f"{file}.yml").write_text(yaml.safe_dump({**base, **change}))
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(tmp_path / f"{file}.yml") in str(err.value)
