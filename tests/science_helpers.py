"""Small hand-designed consortia, built through the real pipeline steps for the science tests.

A client is a list of sessions; each session gives one value for every WAI-SR item and one for
every PHQ-9 item (None = not administered), so totals are 12 x and 9 x that value and every
expected number can be worked out by hand.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from ingestion.settings import Paths
from tests.conftest import TEST_KEY

DATE = "2026-11-20"
FIRST_DAY = datetime.date(2026, 3, 2)
Session = tuple[int | None, int | None]  # (WAI-SR item value, PHQ-9 item value)
Client = Sequence[Session]


def _site_config(site_id: str) -> dict:
    return {
        "site_id": site_id,
        "format": "redcap_csv",
        "columns": {
            "client_code": "record_id",
            "therapist_code": "therapist_code",
            "session_date": "session_date",
            "event": "redcap_event_name",
        },
        "session_event_pattern": r"^session_(\d+)_arm_\d+$",
        "forms": [
            {"instrument": "wai_sr", "rater_role": "client", "item_column_template": "wai_{n}"},
            {"instrument": "phq9", "rater_role": "client", "item_column_template": "phq9_{n}"},
        ],
        "primary_alliance": "wai_sr",
        "primary_outcome": "phq9",
    }


def write_consortium(home: Path, sites: Mapping[str, Mapping[str, Client]]) -> None:
    """consortium.yml plus one REDCap export per site; sessions are a week apart and clients
    alternate between two therapists per site."""
    doc = {"consortium_id": "science", "sites": [_site_config(s) for s in sites]}
    (home / "consortium.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    header = ["record_id", "redcap_event_name", "therapist_code", "session_date"]
    header += [f"wai_{i}" for i in range(1, 13)] + [f"phq9_{i}" for i in range(1, 10)]
    for site_id, clients in sites.items():
        inbox = home / "inbox" / site_id
        inbox.mkdir(parents=True, exist_ok=True)
        with (inbox / f"{site_id}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for index, (code, sessions) in enumerate(clients.items()):
                therapist = f"{site_id}-T{index % 2}"
                for number, (wai, phq) in enumerate(sessions, start=1):
                    day = FIRST_DAY + datetime.timedelta(weeks=number - 1)
                    writer.writerow(
                        [code, f"session_{number}_arm_1", therapist, day.isoformat()]
                        + [_cell(wai)] * 12
                        + [_cell(phq)] * 9
                    )


def _cell(value: int | None) -> str:
    return "" if value is None else str(value)


@contextlib.contextmanager
def built(home: Path) -> Iterator[Path]:
    """Ingest every site and run the dbt build under `home`; yields the warehouse file."""
    from warehouse import pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BORDIN_HOME", str(home))
        mp.setenv("BORDIN_PSEUDONYM_KEY", TEST_KEY)
        mp.delenv("BORDIN_PSEUDONYM_KEY_FILE", raising=False)
        mp.delenv("BORDIN_CONSORTIUM", raising=False)
        where = Paths(home)
        for site in pipeline.site_ids(where):
            pipeline.ingest_step(site, DATE, where)
        pipeline.build_step(where)
        yield where.build_db
