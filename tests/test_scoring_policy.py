"""The consortium's scoring policy and the required row fields, checked by hand.

A long-table site delivers PHQ-9 and WAI-SR under a policy that allows no blank WAI-SR item
and rounds PHQ-9 half up; every line's fate is worked out in its comment. A second site makes
therapist and date optional; a third sends only dates in the wrong format.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion import delta_store
from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.registry import instruments_table, load_registry
from ingestion.settings import Paths

SITE_BLOCK = """
  - site_id: {site}
    format: long_csv
    columns: {{client_code: client, therapist_code: therapist, session_date: date, event: session}}
    # Loose on purpose: every session text reaches the session-number check.
    session_event_pattern: '^(.*)$'
    date_format: '%Y-%m-%d'
    missing_codes: {{"99": refused}}
    long_csv: {{measure_column: measure, measures: {{PHQ: phq9, WAI: wai_sr}},
               item_column_template: "i{{n}}"}}
    forms:
      - {{instrument: phq9, rater_role: client, item_column_template: "phq_{{n}}"}}
      - {{instrument: wai_sr, rater_role: client, item_column_template: "wai_{{n}}"}}
    primary_alliance: wai_sr
    primary_outcome: phq9
{extra}"""
POLICY = """
scoring_policy:
  wai_sr: {max_missing: 0, source: "Consortium protocol v2, 4.3: no missing alliance items"}
  phq9: {rounding: half_up}
"""
HEADER = "client,therapist,session,date,measure," + ",".join(f"i{n}" for n in range(1, 13))


def _line(client: str, therapist: str, session: str, day: str, measure: str, items) -> str:
    cells = ["" if v is None else str(v) for v in items]
    return ",".join([client, therapist, session, day, measure, *cells, *[""] * (12 - len(cells))])


PHQ_OK = [2, 2, 1, 1, 1, 1, 1, 1, 0]
LINES = [
    HEADER,
    _line("K1", "T1", "1", "2026-03-02", "PHQ", [1, 1, 1, 0, 0, 1, 1, None, None]),  # 2 ok
    _line("K1", "T1", "2", "2026-03-09", "PHQ", [3] * 6 + [None] * 3),  # 3 too many missing
    _line("K1", "T1", "1", "2026-03-02", "WAI", [5] * 11 + [None]),  # 4 too many (policy 0)
    _line("K1", "T1", "2", "2026-03-09", "WAI", [5] * 11 + [99]),  # 5 coded missing, too many
    _line("K1", "T1", "3", "2026-03-16", "WAI", [5] * 12),  # 6 ok
    _line("K2", "", "1", "2026-03-02", "PHQ", PHQ_OK),  # 7 therapist blank
    _line("K2", "T2", "2.5", "2026-03-02", "PHQ", PHQ_OK),  # 8 session not whole
    _line("K2", "T2", "0", "2026-03-02", "PHQ", PHQ_OK),  # 9 session below 1
    _line("K2", "T2", "-1", "2026-03-02", "PHQ", PHQ_OK),  # 10 session below 1
    _line("K2", "T2", "", "2026-03-02", "PHQ", PHQ_OK),  # 11 session blank: pattern
    _line("K2", "T2", "1e1", "2026-03-02", "PHQ", PHQ_OK),  # 12 not written as a whole number
    _line("K2", "T2", "4", "2026-03-09", "PHQ", [None] * 9),  # 13 not administered
    _line("K2", "T2", "3.0", "2026-03-09", "PHQ", PHQ_OK),  # 14 ok: session 3
]


def _consortium(home: Path, sites: str, policy: str = POLICY) -> None:
    home.mkdir(parents=True, exist_ok=True)
    text = f"consortium_id: policy\nname: Policy test\nsites:{sites}{policy}"
    (home / "consortium.yml").write_text(text, encoding="utf-8")


def _deliver(home: Path, site: str, lines: list[str]) -> None:
    inbox = home / "inbox" / site
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "export.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _ingest(home: Path, site: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BORDIN_HOME", str(home))
    monkeypatch.delenv("BORDIN_CONSORTIUM", raising=False)
    (export,) = ingest_site(site, "2026-11-18").files
    quarantine = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    events = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    return export, quarantine, sorted(events, key=lambda e: e["site_seq"])


def test_policy_and_required_fields_at_intake(tmp_path: Path, monkeypatch, key_env) -> None:
    home = tmp_path / "root"
    _consortium(home, SITE_BLOCK.format(site="polic", extra=""))
    _deliver(home, "polic", LINES)
    export, quarantine, events = _ingest(home, "polic", monkeypatch)
    # 13 rows: accepted 2, 6, 14; not administered 13; the other 9 quarantined.
    assert (export.rows_in, export.offered, export.accepted) == (13, 13, 3)
    assert (export.quarantined, export.not_administered) == (9, 1)
    assert export.offered == export.accepted + export.quarantined + export.not_administered
    found = sorted((r["source_row"], r["rule_id"], r["category"]) for r in quarantine)
    assert found == [
        (3, "item.too_many_missing", "completeness"),
        (4, "item.too_many_missing", "completeness"),
        (5, "item.too_many_missing", "completeness"),
        (7, "row.therapist_code_blank", "identity"),
        (8, "row.session_number", "schema"),
        (9, "row.session_number", "schema"),
        (10, "row.session_number", "schema"),
        (11, "row.session_event", "schema"),
        (12, "row.session_number", "schema"),
    ]
    by_row = {r["source_row"]: r for r in quarantine}
    assert by_row[3]["message"] == (
        "phq9 has 3 of 9 items missing; the scoring policy allows at most 2, so it cannot be "
        "scored and is not stored"
    )
    assert by_row[4]["message"].startswith("wai_sr has 1 of 12 items missing; the scoring ")
    assert "at most 0," in by_row[5]["message"]  # 99 = refused is missing, not a value
    assert by_row[3]["raw_value"] is None and by_row[3]["column_name"] is None
    assert by_row[8]["raw_value"] == "2.5" and by_row[8]["column_name"] == "session"
    assert by_row[7]["column_name"] == "therapist" and by_row[7]["raw_value"] is None
    assert [(e["source_row"], e["instrument"], e["session_number"]) for e in events] == [
        (2, "phq9", 1),
        (6, "wai_sr", 3),
        (14, "phq9", 3),
    ]
    assert events[0]["items"] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, None, None]


def test_without_a_policy_the_registry_default_holds(tmp_path, monkeypatch, key_env) -> None:
    """No scoring_policy: WAI-SR allows 2 blanks (registry), so lines 4 and 5 are accepted."""
    home = tmp_path / "root"
    _consortium(home, SITE_BLOCK.format(site="polic", extra=""), policy="")
    _deliver(home, "polic", LINES)
    export, quarantine, events = _ingest(home, "polic", monkeypatch)
    assert export.accepted == 5
    rules_by_row = {r["source_row"]: r["rule_id"] for r in quarantine}
    assert rules_by_row[3] == "item.too_many_missing"  # PHQ-9's own limit is 2
    assert 4 not in rules_by_row and 5 not in rules_by_row
    assert [e["item_missing"] for e in events if e["source_row"] == 5] == [
        [None] * 11 + ["refused"]
    ]


OPTIONAL = "    required_fields: {therapist_code: false, session_date: false}\n"


def test_optional_therapist_and_date(tmp_path: Path, monkeypatch, key_env) -> None:
    home = tmp_path / "root"
    _consortium(home, SITE_BLOCK.format(site="loose", extra=OPTIONAL))
    _deliver(
        home,
        "loose",
        [
            HEADER,
            _line("K1", "", "1", "2026-03-02", "PHQ", PHQ_OK),  # 2 ok, no therapist
            _line("K1", "T1", "2", "", "PHQ", PHQ_OK),  # 3 ok, no date
            _line("K1", "T1", "3", "09.03.2026", "PHQ", PHQ_OK),  # 4 a date, but malformed
        ],
    )
    export, quarantine, events = _ingest(home, "loose", monkeypatch)
    assert (export.accepted, export.quarantined) == (2, 1)
    assert [(r["source_row"], r["rule_id"]) for r in quarantine] == [(4, "row.session_date_format")]
    assert [(e["source_row"], e["therapist_pid"] is None, e["session_date"]) for e in events] == [
        (2, True, events[0]["session_date"]),
        (3, False, None),
    ]
    assert str(events[0]["session_date"]) == "2026-03-02"


REDCAP_SITE = """
  - site_id: wrongdates
    format: redcap_csv
    columns: {client_code: record_id, therapist_code: therapist, session_date: visit_date,
              event: redcap_event_name}
    session_event_pattern: '^session_(\\d+)_arm_1$'
    date_format: '%Y-%m-%d'
    forms:
      - {instrument: phq9, rater_role: client, item_column_template: "phq_{n}"}
      - {instrument: wai_sr, rater_role: client, item_column_template: "wai_{n}"}
    primary_alliance: wai_sr
    primary_outcome: phq9
"""


@pytest.mark.parametrize("fmt", ["redcap_csv", "long_csv"])
def test_every_date_in_the_wrong_format_is_quarantined_row_by_row(
    tmp_path: Path, monkeypatch, key_env, fmt: str
) -> None:
    """The export writes 02.03.2026 where the site said %Y-%m-%d: no date parses at all (the
    pandas engine crashed on exactly this: an all-NaT column compared with a date)."""
    home = tmp_path / "root"
    if fmt == "long_csv":
        site = "wrongdates"
        _consortium(home, SITE_BLOCK.format(site=site, extra=""), policy="")
        lines = [HEADER] + [
            _line(f"K{n}", "T1", "1", f"0{n}.03.2026", "PHQ", PHQ_OK) for n in range(1, 4)
        ]
    else:
        site = "wrongdates"
        _consortium(home, REDCAP_SITE, policy="")
        header = ["record_id", "redcap_event_name", "therapist", "visit_date"]
        header += [f"phq_{n}" for n in range(1, 10)] + [f"wai_{n}" for n in range(1, 13)]
        lines = [",".join(header)] + [
            ",".join([f"K{n}", "session_1_arm_1", "T1", f"0{n}.03.2026"])
            + ","
            + ",".join(str(v) for v in PHQ_OK + [4] * 12)
            for n in range(1, 4)
        ]
    _deliver(home, site, lines)
    export, quarantine, events = _ingest(home, site, monkeypatch)
    per_row = 1 if fmt == "long_csv" else 2  # REDCap: PHQ-9 and WAI-SR on each row
    assert (export.accepted, export.quarantined) == (0, 3 * per_row)
    assert events == []
    assert {r["rule_id"] for r in quarantine} == {"row.session_date_format"}
    assert sorted({r["source_row"] for r in quarantine}) == [2, 3, 4]
    assert len(quarantine) == 3 * per_row


# --- configuration ---------------------------------------------------------------------------


def _load(tmp_path: Path, policy: str):
    _consortium(tmp_path, SITE_BLOCK.format(site="polic", extra=""), policy)
    return load_consortium(tmp_path / "consortium.yml", load_registry())


def test_policy_overrides_only_what_it_names(tmp_path: Path) -> None:
    registry = load_registry()
    consortium = _load(tmp_path, POLICY)
    applied = consortium.scoring_policy.apply(registry)
    phq, wai = applied.get("phq9"), applied.get("wai_sr")
    assert (phq.max_missing, phq.missing_method, phq.rounding) == (2, "prorate_mean", "half_up")
    # WAI-SR: no blank in the form, so none in a subscale either (the registry allows 1).
    assert (wai.max_missing, wai.subscale_max_missing, wai.rounding) == (0, 0, "none")
    assert registry.get("wai_sr").subscale_max_missing == 1  # the registry is unchanged
    rows = {r["instrument"]: r for r in instruments_table(applied).to_pylist()}
    assert rows["phq9"]["rounding"] == "half_up" and rows["gad7"]["rounding"] == "none"
    assert rows["wai_sr"]["max_missing"] == 0
    in_force = {r["instrument"]: r for r in consortium.scoring_policy.in_force(registry)}
    assert in_force["wai_sr"]["set_by"] == "consortium"
    assert in_force["wai_sr"]["overridden"] == ["max_missing"]
    assert in_force["wai_sr"]["source"].startswith("Consortium protocol v2")
    assert in_force["phq9"]["overridden"] == ["rounding"]
    assert in_force["gad7"]["set_by"] == "registry" and in_force["gad7"]["max_missing"] == 2
    assert len(in_force) == len(registry.instruments)


def test_method_none_means_no_blank(tmp_path: Path) -> None:
    consortium = _load(tmp_path, "\nscoring_policy:\n  oq45: {method: none}\n")
    oq = consortium.scoring_policy.apply(load_registry()).get("oq45")
    assert (oq.missing_method, oq.max_missing, oq.subscale_max_missing) == ("none", 0, 0)


@pytest.mark.parametrize(
    ("policy", "key", "problem"),
    [
        ("phq_9: {rounding: half_up}", "scoring_policy.phq_9", "did you mean `phq9`?"),
        ("phq9: {roundng: half_up}", "scoring_policy.phq9.roundng", "did you mean `rounding`?"),
        ("phq9: {rounding: bankers}", "scoring_policy.phq9.rounding", "must be one of"),
        ("phq9: {max_missing: 9}", "scoring_policy.phq9.max_missing", "must be in 0..8"),
        ("phq9: {max_missing: two}", "scoring_policy.phq9.max_missing", "must be int"),
        ("phq9: {method: impute}", "scoring_policy.phq9.method", "must be one of"),
        ("wai_sr: {method: none, max_missing: 2}", "scoring_policy.wai_sr.max_missing", "be 0"),
        ("phq9: {method: subscale_mean_rounded}", "scoring_policy.phq9.method", "no subscale"),
        ("phq9: {}", "scoring_policy.phq9", "must set one or more of"),
        ("phq9: {source: ''}", "scoring_policy.phq9.source", "must cite"),
    ],
)
def test_bad_policy_names_file_key_and_problem(tmp_path: Path, policy, key, problem) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"\nscoring_policy:\n  {policy}\n")
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert caught.value.file == str(tmp_path / "consortium.yml")


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ("    required_fields: {therapist: false}\n", "sites.polic.required_fields.therapist"),
        ("    required_fields: {session_date: 'no'}\n", "sites.polic.required_fields.session_date"),
        ("    required_fields: [therapist_code]\n", "sites.polic.required_fields"),
    ],
)
def test_bad_required_fields_name_site_and_key(tmp_path: Path, block: str, key: str) -> None:
    _consortium(tmp_path, SITE_BLOCK.format(site="polic", extra=block), "")
    with pytest.raises(ConfigError) as caught:
        load_consortium(tmp_path / "consortium.yml", load_registry())
    assert caught.value.key == key


def test_registry_rounding_is_validated(tmp_path: Path) -> None:
    """The registry's own default may round too; an unknown rounding names the file and key."""
    source = Path(__file__).resolve().parent.parent / "ingestion" / "instruments" / "phq9.yml"
    text = source.read_text(encoding="utf-8")
    assert "  method: prorate_mean\n" in text
    folder = tmp_path / "instruments"
    folder.mkdir()
    (folder / "phq9.yml").write_text(
        text.replace("  method: prorate_mean\n", "  method: prorate_mean\n  rounding: up\n")
    )
    with pytest.raises(ConfigError) as caught:
        load_registry(folder)
    assert caught.value.key == "missing.rounding" and "half_up" in caught.value.problem
    (folder / "phq9.yml").write_text(
        text.replace("  method: prorate_mean\n", "  method: prorate_mean\n  rounding: half_up\n")
    )
    assert load_registry(folder).get("phq9").rounding == "half_up"
