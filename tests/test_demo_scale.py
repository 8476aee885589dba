"""`bordin demo --clients N`: a consortium of any size, in the demo's proportions (issue 10)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from warehouse.demo_consortium import site_sizes, write_demo_consortium


def test_default_size_is_the_documented_360() -> None:
    assert site_sizes() == {"bern": 90, "leeds": 100, "ohio": 80, "utrecht": 90}


def test_sizes_keep_the_proportions_and_add_up() -> None:
    # 1000 x 90/360 = 250, x 100/360 = 277.78, x 80/360 = 222.22: floors add to 999, and the
    # largest remainder (leeds, .78) takes the last client.
    assert site_sizes(1000) == {"bern": 250, "leeds": 278, "ohio": 222, "utrecht": 250}
    assert sum(site_sizes(100_003).values()) == 100_003


def test_fewer_clients_than_sites_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        site_sizes(3)


def test_scaled_consortium_writes_every_client(tmp_path: Path) -> None:
    summary = write_demo_consortium(tmp_path, clients=40)  # bern 10, leeds 11, ohio 9, utrecht 10
    assert summary.clients == 40
    (bern,) = (tmp_path / "inbox" / "bern").glob("bern_redcap_*.csv")
    with bern.open(newline="", encoding="utf-8") as handle:
        codes = {row["record_id"] for row in csv.DictReader(handle)}
    assert len(codes) == 10
