"""Qualtrics completion: `qualtrics.final_when` decides which responses are final.

Fixture: tests/fixtures/formats/qualtrics_export.csv with row 7's Progress set from 100 to 80
(written by `_export` below), so one response is Finished = 1 but not at 100 %. Forms WAI-SR and
GAD-7; by hand (Finished, Progress):
  row 4 C1 s1 (1, 100)     WAI 4s, GAD 1s
  row 5 C1 s2 (True, 100)  WAI 5s, GAD item 1 = 9 (out of range)
  row 6 C2 s1 (0, 60)      WAI 3s, GAD blank
  row 7 C2 s2 (1, 80)      WAI 2s, GAD blank
  row 8 C3 s1 (False, 95)  WAI 4s, GAD 2s
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.ingest import ingest_site
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths

FORMATS = Path(__file__).parent / "fixtures" / "formats"
DATE = "2026-11-20"
ROW7 = "100,540,1,2026-03-01 10:09:01,R_abc4"


def _configure(home: Path, **qualtrics: object) -> Path:
    doc = yaml.safe_load((FORMATS / "consortium.yml").read_text())
    site = next(s for s in doc["sites"] if s["site_id"] == "qual")
    site["qualtrics"] = {**site["qualtrics"], **qualtrics}
    doc["sites"] = [site]
    (home / "consortium.yml").write_text(yaml.safe_dump(doc))
    return home / "consortium.yml"


def _export(home: Path, progress_column: bool = True) -> None:
    text = (FORMATS / "qualtrics_export.csv").read_text(encoding="utf-8-sig")
    assert text.count(ROW7) == 1
    text = text.replace(ROW7, ROW7.replace("100,", "80,", 1))
    if not progress_column:  # the header's Progress column renamed away
        text = text.replace("Progress,", "Fortschritt,", 2).replace('"progress"', '"fortschritt"')
    target = home / "inbox" / "qual" / "export.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def _quarantine(home: Path) -> list[dict]:
    return delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()


def _counts(home: Path) -> tuple[int, int, int, int]:
    (outcome,) = ingest_site("qual", DATE).files
    assert outcome.offered == outcome.accepted + outcome.quarantined + outcome.not_administered
    return outcome.offered, outcome.accepted, outcome.quarantined, outcome.not_administered


def test_finished_alone_takes_a_finished_response_below_100_percent(home: Path) -> None:
    _configure(home)
    _export(home)
    # accepted r4 x2, r5 WAI, r7 WAI; quarantined r5 GAD (range), r6 WAI, r8 x2; n/a r6, r7 GAD
    assert _counts(home) == (10, 4, 4, 2)


def test_finished_and_progress_requires_both_flags(home: Path) -> None:
    _configure(home, final_when="finished_and_progress")
    _export(home)
    # r7 (Finished 1, Progress 80) is no longer final: its WAI is quarantined, GAD blank n/a.
    assert _counts(home) == (10, 3, 5, 2)
    unfinished = sorted(
        (q["source_row"], q["instrument"], q["message"])
        for q in _quarantine(home)
        if q["rule_id"] == "response.unfinished"
    )
    assert [(r, i) for r, i, _ in unfinished] == [
        (6, "wai_sr"),
        (7, "wai_sr"),
        (8, "gad7"),
        (8, "wai_sr"),
    ]
    assert unfinished[1][2] == (
        "response not finished (Finished 1, Progress 80 %); only final responses count: "
        "Finished = 1 and Progress >= 100 %"
    )


def test_finished_and_progress_with_a_lower_bound(home: Path) -> None:
    _configure(home, final_when="finished_and_progress", min_progress=80)
    _export(home)
    # 80 >= 80: r7 counts again; r8 (95 %) is still not Finished.
    assert _counts(home) == (10, 4, 4, 2)


def test_min_progress_alone_keeps_its_meaning_either_flag(home: Path) -> None:
    consortium = load_consortium(_configure(home, min_progress=90))
    options = consortium.site("qual").qualtrics
    assert (options.final_when, options.min_progress) == ("finished_or_progress", 90.0)
    _export(home)
    # r8 (95 %) now counts: both accepted; r6 (60 %) WAI still quarantined; r7 Finished.
    assert _counts(home) == (10, 6, 2, 2)


def test_a_rule_that_reads_progress_needs_the_progress_column(home: Path) -> None:
    _configure(home, final_when="finished_and_progress")
    _export(home, progress_column=False)
    (outcome,) = ingest_site("qual", DATE).files
    assert (outcome.status, outcome.rows_in) == ("rejected", 5)
    (record,) = _quarantine(home)
    assert record["rule_id"] == "file.missing_columns"
    assert "Progress (final_when: finished_and_progress)" in record["message"]


BOTH = "finished_and_progress"


@pytest.mark.parametrize(
    ("settings", "key", "message"),
    [
        ({"final_when": "finished_and_progres"}, "final_when", f"did you mean `{BOTH}`"),
        ({"final_when": True}, "final_when", "is not a rule"),
        ({"final_when": "finished", "min_progress": 90}, "min_progress", "not read when"),
        ({"final_when": "finished_or_progress"}, "min_progress", "is required"),
        ({"final_when": BOTH, "min_progress": 0}, "min_progress", "1..100"),
        ({"final_when": BOTH, "min_progress": True}, "min_progress", "1..100"),
        ({"final_when": BOTH, "min_progress": "100"}, "min_progress", "1..100"),
    ],
)
def test_final_rule_config_is_validated(home: Path, settings: dict, key: str, message: str) -> None:
    file = _configure(home, **settings)
    with pytest.raises(ConfigError, match=message) as raised:
        load_consortium(file)
    assert "consortium.yml" in str(raised.value) and f"sites.qual.qualtrics.{key}" in str(
        raised.value
    )
