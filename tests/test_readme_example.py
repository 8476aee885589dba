"""The README's worked example (adding a site by configuration only) runs as written.

The export and the site block are taken from README.md between their markers, so the README
cannot drift from what works. Expected results worked out by hand from the five lines: lines 2-5
are valid SRS/ORS forms (one decimal, 0-10); line 6 has ORS item 1 = 11.0 (> 10): range.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingestion import delta_store
from ingestion.events import EVENT_SCHEMA
from ingestion.ingest import ingest_site
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA
from ingestion.settings import Paths
from tests.conftest import TEST_KEY

README = Path(__file__).resolve().parent.parent / "README.md"


def block(marker: str) -> tuple[str, str]:
    """(marker argument, fenced block right after `<!-- marker: argument -->`)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker}: (\S+) -->\n```\w*\n(.*?)```", text, re.S)
    assert found, f"README has no {marker} block"
    return found.group(1), found.group(2)


def test_readme_site_example(home: Path) -> None:
    target, export = block("example-export")
    site_id, site_block = block("example-site")
    (home / "consortium.yml").write_text(
        f"consortium_id: readme\nname: README example\nsites:\n{site_block}", encoding="utf-8"
    )
    path = home / "inbox" / target
    path.parent.mkdir(parents=True)
    path.write_text(export, encoding="utf-8")

    (outcome,) = ingest_site(site_id, "2026-11-21").files
    assert (outcome.rows_in, outcome.accepted, outcome.quarantined) == (5, 4, 1)
    (issue,) = delta_store.read(Paths(home).quarantine, QUARANTINE_SCHEMA).to_pylist()
    assert (issue["source_row"], issue["rule_id"], issue["category"]) == (
        6,
        "item.out_of_range",
        "range",
    )
    assert issue["message"] == "ors item 1 must be 0-10 in steps of 0.1"
    events = delta_store.read(Paths(home).event_log, EVENT_SCHEMA).to_pylist()
    key = PseudonymKey(TEST_KEY.encode())
    n001 = key.pseudonym(site_id, "client", "N-001")
    got = sorted((e["session_number"], e["instrument"], tuple(e["items"])) for e in events)
    assert got == [
        (1, "ors", (4.2, 5.0, 3.9, 4.4)),
        (1, "srs", (9.1, 8.7, 9.0, 9.4)),
        (2, "ors", (6.0, 6.1, 5.5, 5.9)),
        (2, "srs", (9.5, 9.2, 9.6, 9.8)),
    ]
    assert {e["client_pid"] for e in events} == {n001}
    stored = b"".join(p.read_bytes() for p in Paths(home).event_log.rglob("*.parquet"))
    assert b"tired after night shift" not in stored and b"N-001" not in stored
