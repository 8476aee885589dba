"""The demo consortium: deterministic files, three site layouts, and the planted true r.

bern exports REDCap "CSV raw" (plus its data dictionary), leeds a Qualtrics CSV (three header
rows, items keyed on ImportId), ohio a feedback system's long table (one line per measure per
session, US dates). Each file is read back here into one row per client x session.

The scoring here is deliberately re-implemented with numpy (sum items, prorate one blank as
mean of answered x n) instead of reusing the warehouse, so the planted correlation is checked
independently of the code that will later estimate it.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from warehouse.demo_consortium import (
    DEMO_LOGICAL_DATE,
    TRUE_R,
    DemoSummary,
    generate_clients,
    write_demo_consortium,
)

WAI = [f"wai_{i}" for i in range(1, 13)]
PHQ = [f"phq9_{i}" for i in range(1, 10)]
GAD = [f"gad7_{i}" for i in range(1, 8)]
HEADER = ["record_id", "redcap_event_name", "therapist_code", "session_date", *WAI, *PHQ, *GAD]
FORMAT = {"bern": "redcap_csv", "leeds": "qualtrics_csv", "ohio": "long_csv"}
FILE_NAME = {"bern": "bern_redcap", "leeds": "leeds_qualtrics", "ohio": "ohio_feedback"}
QUALTRICS_IDS = (
    [f"QID1_{n}" for n in range(1, 13)]
    + [f"QID2_{n}" for n in range(1, 10)]
    + [f"QID3_{n}" for n in range(1, 8)]
)
LONG_HEADER = ["ClientID", "ClinicianID", "SessionNumber", "SessionDate", "Measure"]
LONG_HEADER += [f"Item{n}" for n in range(1, 13)] + ["Total"]
RANGES = {"wai": (WAI, 1, 5), "phq": (PHQ, 0, 3), "gad": (GAD, 0, 3)}
PREFIX = {"bern": "BE", "leeds": "LE", "ohio": "OH"}
EVENT = re.compile(r"^session_(\d+)_arm_\d+$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    home = tmp_path_factory.mktemp("demo")
    return home, write_demo_consortium(home)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def _rows(site: str, path: Path) -> list[dict[str, str]]:
    """Read a site's export back as REDCap-like rows (HEADER keys), checking its layout."""
    if FORMAT[site] == "redcap_csv":
        header, rows = _read(path)
        assert header == [*HEADER, "ending_status"]  # bern codes how each episode ended
        return rows
    if FORMAT[site] == "qualtrics_csv":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Qualtrics writes a BOM
        with path.open(encoding="utf-8-sig", newline="") as handle:
            names, _texts, ids, *body = list(csv.reader(handle))
        import_ids = [json.loads(c)["ImportId"] for c in ids]
        assert import_ids[-28:] == QUALTRICS_IDS
        assert {"IPAddress", "RecipientEmail", "Finished", "ExternalReference"} <= set(names)
        out = []
        for record in body:
            cell = dict(zip(names, record, strict=True))
            assert cell["Finished"] == "1" and cell["IPAddress"] == cell["RecipientEmail"] == ""
            row = {
                "record_id": cell["ExternalReference"],
                "redcap_event_name": f"session_{cell['session']}_arm_1",
                "therapist_code": cell["therapist"],
                "session_date": cell["session_date"],
            }
            row |= dict(zip(WAI + PHQ + GAD, record[-28:], strict=True))
            out.append(row)
        return out
    header, lines = _read(path)
    assert header == LONG_HEADER
    assert [line["Measure"] for line in lines[:3]] == ["WAI-SR", "PHQ-9", "GAD-7"]
    assert len(lines) % 3 == 0
    out = []
    for k in range(0, len(lines), 3):
        wai, phq, gad = lines[k : k + 3]
        key = [
            (x["ClientID"], x["ClinicianID"], x["SessionNumber"], x["SessionDate"])
            for x in (wai, phq, gad)
        ]
        assert key[0] == key[1] == key[2]
        client, therapist, session, us_day = key[0]
        day = datetime.datetime.strptime(us_day, "%m/%d/%Y").date().isoformat()
        row = {
            "record_id": client,
            "redcap_event_name": f"session_{session}_arm_1",
            "therapist_code": therapist,
            "session_date": day,
        }
        for columns, line in ((WAI, wai), (PHQ, phq), (GAD, gad)):
            items = [line[f"Item{n}"] for n in range(1, 13)]
            assert all(v == "" for v in items[len(columns) :])
            row |= dict(zip(columns, items[: len(columns)], strict=True))
            assert line["Total"] == str(sum(int(v) for v in items if v))
        out.append(row)
    return out


def _tree_bytes(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
    }


def _prorated_total(items: np.ndarray) -> np.ndarray:
    """Sum of items; a single blank is replaced by the mean of the answered items."""
    return np.nanmean(items, axis=1) * items.shape[1]


def _early_alliance_and_improvement(
    client: np.ndarray, session: np.ndarray, wai: np.ndarray, phq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per client with >= 2 sessions: mean WAI-SR total of sessions 1-3, PHQ-9 first - last."""
    order = np.lexsort((session, client))
    client, session = client[order], session[order]
    wai_total, phq_total = _prorated_total(wai[order]), _prorated_total(phq[order])
    keys, first, counts = np.unique(client, return_index=True, return_counts=True)
    last = first + counts - 1
    idx = np.searchsorted(keys, client)
    early_rows = session <= 3
    early_sum = np.bincount(idx[early_rows], weights=wai_total[early_rows], minlength=keys.size)
    early_n = np.bincount(idx[early_rows], minlength=keys.size)
    early = early_sum / early_n
    improvement = phq_total[first] - phq_total[last]
    keep = counts >= 2
    return early[keep], improvement[keep]


def _within_site_r(groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> float:
    """Pearson r after centring each site: the pooled within-site correlation."""
    xs = np.concatenate([x - x.mean() for x, _ in groups.values()])
    ys = np.concatenate([y - y.mean() for _, y in groups.values()])
    return float(np.corrcoef(xs, ys)[0, 1])


def _tree_bytes_after(home: Path, seed: int) -> dict[str, bytes]:
    write_demo_consortium(home, seed=seed)
    return _tree_bytes(home)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first = _tree_bytes_after(tmp_path / "a", seed=7)
    second = _tree_bytes_after(tmp_path / "b", seed=7)
    other = _tree_bytes_after(tmp_path / "c", seed=8)
    assert first == second
    assert first.keys() == other.keys()
    csvs = [name for name in first if name.endswith(".csv") and "DataDictionary" not in name]
    assert len(csvs) == 3
    assert all(first[name] != other[name] for name in csvs)


def test_files_have_their_sites_layouts(demo: tuple[Path, DemoSummary]) -> None:
    home, summary = demo
    stamp = DEMO_LOGICAL_DATE.strftime("%Y%m%d")
    assert summary.sites == ["bern", "leeds", "ohio"]
    assert summary.files == [
        home / "inbox" / s / f"{FILE_NAME[s]}_{stamp}.csv" for s in summary.sites
    ]
    assert (home / "inbox" / "bern" / f"bern_DataDictionary_{stamp}.csv").is_file()
    total_rows, clients, bad_rows, cells, blanks = 0, set(), 0, 0, 0
    sizes = []
    for site, path in zip(summary.sites, summary.files, strict=True):
        assert path.read_bytes().decode("utf-8")
        rows = _rows(site, path)
        total_rows += len(rows)
        per_client: dict[str, list[tuple[int, datetime.date]]] = {}
        therapists: dict[str, set[str]] = {}
        for row in rows:
            assert re.fullmatch(rf"{PREFIX[site]}-\d{{4}}", row["record_id"])
            assert re.fullmatch(rf"{PREFIX[site]}-T\d{{2}}", row["therapist_code"])
            event = EVENT.match(row["redcap_event_name"])
            assert event is not None
            day = datetime.date.fromisoformat(row["session_date"])
            assert day <= DEMO_LOGICAL_DATE
            per_client.setdefault(row["record_id"], []).append((int(event.group(1)), day))
            therapists.setdefault(row["therapist_code"], set()).add(row["record_id"])
            out_of_range = 0
            for columns, lo, hi in RANGES.values():
                values = [row[c] for c in columns]
                assert sum(v == "" for v in values) <= 1
                blanks += sum(v == "" for v in values)
                cells += len(values)
                for value in values:
                    if value:
                        assert re.fullmatch(r"\d+", value)
                        out_of_range += not lo <= int(value) <= hi
            assert out_of_range <= 1
            bad_rows += out_of_range
        for visits in per_client.values():
            numbers = [n for n, _ in visits]
            assert numbers == list(range(1, len(visits) + 1)) and len(visits) <= 16
            days = [d for _, d in visits]
            assert days == sorted(days) and len(set(days)) == len(days)
        assert 4 <= len(therapists) <= 6
        assert all(len(c) >= 3 for c in therapists.values())
        clients |= {(site, c) for c in per_client}
        sizes.append(len(per_client))
    assert bad_rows == summary.planted_bad_rows == 2
    assert 0.02 < blanks / cells < 0.04
    assert len(set(sizes)) == 3
    assert summary.clients == len(clients)
    assert summary.sessions == total_rows

    config_path = home / "consortium.yml"
    text = config_path.read_text(encoding="utf-8")
    assert text.startswith("# Demo consortium written by bordin demo (synthetic data).\n")
    config = yaml.safe_load(text)
    assert config["consortium_id"] == "bordin_demo"
    assert [s["site_id"] for s in config["sites"]] == ["bern", "leeds", "ohio"]
    events = {"redcap_csv": "session_12_arm_1", "qualtrics_csv": "12", "long_csv": "12"}
    for site in config["sites"]:
        assert site["format"] == FORMAT[site["site_id"]]
        pattern = re.compile(site["session_event_pattern"])
        assert pattern.match(events[site["format"]]).group(1) == "12"
        assert [f["instrument"] for f in site["forms"]] == ["wai_sr", "phq9", "gad7"]
        assert (site["primary_alliance"], site["primary_outcome"]) == ("wai_sr", "phq9")


def test_demo_files_show_a_positive_alliance_outcome_link(
    demo: tuple[Path, DemoSummary],
) -> None:
    """Small sites are noisy, but the demo seed should at least show the sign of the effect."""
    _, summary = demo
    groups = {}
    for site, path in zip(summary.sites, summary.files, strict=True):
        rows = _rows(site, path)
        rows = [r for r in rows if all(_in_range(r, *spec) for spec in RANGES.values())]
        client = np.array([int(r["record_id"].split("-")[1]) for r in rows])
        session = np.array([int(EVENT.match(r["redcap_event_name"]).group(1)) for r in rows])
        groups[site] = _early_alliance_and_improvement(
            client, session, _items(rows, WAI), _items(rows, PHQ)
        )
    assert _within_site_r(groups) > 0


def _items(rows: list[dict[str, str]], columns: list[str]) -> np.ndarray:
    return np.array([[float(r[c]) if r[c] else np.nan for c in columns] for r in rows])


def _in_range(row: dict[str, str], columns: list[str], lo: int, hi: int) -> bool:
    return all(row[c] == "" or lo <= int(row[c]) <= hi for c in columns)


def test_large_sample_recovers_true_r() -> None:
    """20,000 clients through the demo's own generator: observed r must sit on TRUE_R."""
    sizes = {"bern": 7000, "leeds": 7000, "ohio": 6000}
    frame = generate_clients(sizes, seed=20261120)
    groups = {}
    for site in sizes:
        rows = frame[frame["site_id"] == site]
        client = rows["record_id"].str.split("-").str[1].astype(int).to_numpy()
        session = rows["redcap_event_name"].str.extract(EVENT)[0].astype(int).to_numpy()
        wai = rows[WAI].to_numpy(dtype=float, na_value=np.nan)
        phq = rows[PHQ].to_numpy(dtype=float, na_value=np.nan)
        assert np.all(np.isnan(wai) | ((wai >= 1) & (wai <= 5)))
        assert np.all(np.isnan(phq) | ((phq >= 0) & (phq <= 3)))
        groups[site] = _early_alliance_and_improvement(client, session, wai, phq)
        assert len(np.unique(client)) == sizes[site]

    for site, (early, improvement) in groups.items():
        site_r = np.corrcoef(early, improvement)[0, 1]
        assert abs(site_r - TRUE_R) < 0.05, (site, site_r)
    within = _within_site_r(groups)
    assert abs(within - TRUE_R) < 0.03, within
    pooled = np.corrcoef(
        np.concatenate([g[0] for g in groups.values()]),
        np.concatenate([g[1] for g in groups.values()]),
    )[0, 1]
    assert abs(pooled - TRUE_R) < 0.03, pooled


def test_every_site_format_ingests_the_same_administrations(home: Path) -> None:
    """Three layouts, one data set: every session's three questionnaires arrive, two planted
    out-of-range values are quarantined, and bern's data dictionary is read, not ingested."""
    from ingestion.ingest import ingest_site

    summary = write_demo_consortium(home)
    files = {}
    for site in summary.sites:
        files |= {f.source_file: f for f in ingest_site(site, DEMO_LOGICAL_DATE).files}
    stamp = DEMO_LOGICAL_DATE.strftime("%Y%m%d")
    assert files[f"bern_DataDictionary_{stamp}.csv"].kind == "data_dictionary"
    exports = [files[p.name] for p in summary.files]
    assert all(f.status == "ingested" and f.kind == "export" for f in exports)
    assert all(f.offered == f.accepted + f.quarantined + f.not_administered for f in exports)
    assert sum(f.accepted for f in exports) == 3 * summary.sessions - summary.planted_bad_rows
    assert sum(f.quarantined for f in exports) == summary.planted_bad_rows
    assert sum(f.not_administered for f in exports) == 0


def test_bern_codes_each_episodes_ending_on_its_last_session(
    demo: tuple[Path, DemoSummary],
) -> None:
    home, summary = demo
    (path,) = [p for p in summary.files if p.name.startswith("bern_redcap")]
    _, rows = _read(path)
    sessions: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        session = int(EVENT.match(row["redcap_event_name"]).group(1))
        sessions.setdefault(row["record_id"], []).append((session, row["ending_status"]))
    for series in sessions.values():
        *before, (_, last) = sorted(series)
        assert all(code == "" for _, code in before)
        assert last == ("completed" if len(series) >= 6 else "dropped_out")
    config = yaml.safe_load((home / "consortium.yml").read_text())
    (bern,) = [s for s in config["sites"] if s["site_id"] == "bern"]
    assert bern["ending"]["column"] == "ending_status"
