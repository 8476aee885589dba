"""The intake rule catalogue is the one list: README, code, messages and dbt all read it."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from ingestion.intake import rules
from ingestion.quarantine import CATEGORIES, Issue

ROOT = Path(__file__).resolve().parent.parent


def test_readme_table_is_the_catalogue() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- rules:begin -->\n(.*?)<!-- rules:end -->", text, re.S)
    assert found, "README has no rules block"
    assert found.group(1) == rules.markdown()


def test_every_catalogued_rule_is_raised_somewhere_and_nothing_else_is() -> None:
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "ingestion").rglob("*.py")
        if p.name != "rules.py"
    )
    raised = set(re.findall(r"[\"']((?:file|row|item|record|snapshot|response|form|withdrawal|"
                            r"archive)\.[a-z_]+)[\"']", code))  # fmt: skip
    raised |= {f"archive.{r}" for r in re.findall(r'_archive\(\s*"([a-z_]+)"', code)}
    # Client rules are raised as 'client.' || the closing event's type.
    raised |= {"client.consent_withdrawn", "client.client_erased"}
    assert raised == set(rules.RULES)


def test_categories_are_the_quarantine_categories() -> None:
    assert {r.category for r in rules.RULES.values()} <= set(CATEGORIES)


def test_an_issue_outside_the_catalogue_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="not in the intake rule catalogue"):
        Issue(None, None, None, "row.invented", "schema", "no such rule")
    with pytest.raises(ValueError, match="another category"):
        Issue(None, None, None, "item.out_of_range", "type", "range is its category")


@pytest.mark.parametrize(
    ("rule_id", "values"),
    [
        ("row.session_event", {"pattern": r"^Session (\d+)$"}),
        (
            "item.out_of_range",
            {"instrument": "ors", "k": 1, "item_min": "0", "item_max": "10", "item_step": "0.1"},
        ),  # fmt: skip
        ("record.exact_duplicate", {"instrument": "phq9", "session": 3}),
        ("snapshot.mass_retraction", {"retracted": 4, "live": 5, "limit": "10%"}),
    ],
)
def test_sql_and_python_messages_agree(rule_id: str, values: dict) -> None:
    expected = {
        "row.session_event": r"event name does not match the site's session pattern "
        r"^Session (\d+)$",
        "item.out_of_range": "ors item 1 must be 0-10 in steps of 0.1",
        "record.exact_duplicate": "exact repeat of phq9 session 3 for this client; the first "
        "copy was taken",
        "snapshot.mass_retraction": "this full export would retract 4 of the site's 5 current "
        "administrations (limit 10%); it is treated as a broken export and nothing from it is "
        "applied. Re-export, or raise max_retraction_fraction for this site if the deletions "
        "are real.",
    }[rule_id]
    assert rules.message(rule_id, **values) == expected
    literals = {
        k: ("'" + str(v).replace("'", "''") + "'") if isinstance(v, str) else str(v)
        for k, v in values.items()
    }
    (sql,) = duckdb.sql(f"SELECT {rules.sql_message(rule_id, **literals)}").fetchone()
    assert sql == expected
