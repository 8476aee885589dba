"""The demo consortium: deterministic files, four site formats, nine instruments, planted true r.

bern exports REDCap "CSV raw" (plus its data dictionary) with WAI-SR client and therapist forms,
PHQ-9 and GAD-7; leeds a Qualtrics CSV (three header rows, items keyed on ImportId) with HAq-II
and CORE-10; ohio a PCOMS feedback system's long table (one line per measure per session, US
dates) with SRS and ORS read to one decimal; utrecht an SPSS .sav with WAI-S and OQ-45.2, value
labels and the user-missing code 99 = refused. Each file is read back here into one row per
client x session with canonical item columns.

Expectations are written out by hand (formats, instruments, item ranges, reverse keys) rather
than read from the generator or the registry, and the scoring is re-implemented with numpy
(key reversed items back, prorate one blank as mean of answered x n), so the planted
correlation is checked independently of the code that will later estimate it.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
from pathlib import Path

import numpy as np
import pyreadstat
import pytest
import yaml

from warehouse.demo_consortium import (
    DEMO_LOGICAL_DATE,
    TRUE_R,
    DemoSummary,
    generate_clients,
    write_demo_consortium,
)

# site -> (format, file name stem, [(instrument, rater role, canonical item column prefix)],
# primary alliance, primary outcome)
SITES = {
    "bern": (
        "redcap_csv",
        "bern_redcap",
        [
            ("wai_sr", "client", "wai"),
            ("wai_sr", "therapist", "wai_t"),
            ("phq9", "client", "phq9"),
            ("gad7", "client", "gad7"),
        ],
        "wai_sr",
        "phq9",
    ),
    "leeds": (
        "qualtrics_csv",
        "leeds_qualtrics",
        [("haq_ii", "client", "haq"), ("core10", "client", "core10")],
        "haq_ii",
        "core10",
    ),
    "ohio": (
        "long_csv",
        "ohio_feedback",
        [("srs", "client", "srs"), ("ors", "client", "ors")],
        "srs",
        "ors",
    ),
    "utrecht": (
        "spss_sav",
        "utrecht_spss",
        [("wai_s", "client", "wais"), ("oq45", "client", "oq45")],
        "wai_s",
        "oq45",
    ),
}
EXTENSION = {"redcap_csv": "csv", "qualtrics_csv": "csv", "long_csv": "csv", "spss_sav": "sav"}
# instrument -> (items, min, max, decimals, reverse-keyed items, higher is better)
SCALES = {
    "wai_sr": (12, 1, 5, 0, [], True),
    "wai_s": (12, 1, 7, 0, [4, 10], True),
    "haq_ii": (19, 1, 6, 0, [4, 8, 11, 16, 19], True),
    "srs": (4, 0, 10, 1, [], True),
    "phq9": (9, 0, 3, 0, [], False),
    "gad7": (7, 0, 3, 0, [], False),
    "core10": (10, 0, 4, 0, [2, 3], False),
    "oq45": (45, 0, 4, 0, [1, 12, 13, 20, 21, 24, 31, 37, 43], False),
    "ors": (4, 0, 10, 1, [], True),
}
PREFIX = {"bern": "BE", "leeds": "LE", "ohio": "OH", "utrecht": "UT"}
REFUSED = "99"
LONG_HEADER = ["ClientID", "ClinicianID", "SessionNumber", "SessionDate", "Measure"]
LONG_HEADER += ["Item1", "Item2", "Item3", "Item4", "Total"]
QUALTRICS_QID = {"QID1": "haq", "QID2": "core10"}
SPSS_PREFIX = {"WAIS": "wais", "OQ": "oq45"}
REDCAP_META = ["record_id", "redcap_event_name", "therapist_code", "session_date"]
EVENT = re.compile(r"^session_(\d+)_arm_\d+$")


def _columns(prefix: str, instrument: str) -> list[str]:
    return [f"{prefix}_{n}" for n in range(1, SCALES[instrument][0] + 1)]


# Demo-size data: the slow tier.
pytestmark = pytest.mark.slow


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
    """A site's export as rows of record_id, session, therapist_code, session_date (ISO) and
    canonical item cells as text ('' = blank), checking the format's layout on the way."""
    fmt, _, forms, _, _ = SITES[site]
    if fmt == "redcap_csv":
        header, rows = _read(path)
        items = [c for _, _, prefix in forms for c in _columns(prefix, _instrument(site, prefix))]
        assert header == [*REDCAP_META, *items, "ending_status"]
        for row in rows:
            row["session"] = EVENT.match(row.pop("redcap_event_name")).group(1)
        return rows
    if fmt == "qualtrics_csv":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Qualtrics writes a BOM
        with path.open(encoding="utf-8-sig", newline="") as handle:
            names, _texts, ids, *body = list(csv.reader(handle))
        import_ids = [json.loads(c)["ImportId"] for c in ids]
        assert import_ids[-29:] == [f"QID1_{n}" for n in range(1, 20)] + [
            f"QID2_{n}" for n in range(1, 11)
        ]
        assert {"IPAddress", "RecipientEmail", "Finished", "ExternalReference"} <= set(names)
        out = []
        for record in body:
            cell = dict(zip(names, record, strict=True))
            assert cell["Finished"] == "1" and cell["IPAddress"] == cell["RecipientEmail"] == ""
            row = {
                "record_id": cell["ExternalReference"],
                "session": cell["session"],
                "therapist_code": cell["therapist"],
                "session_date": cell["session_date"],
            }
            for import_id, value in zip(import_ids[-29:], record[-29:], strict=True):
                qid, n = import_id.split("_")
                row[f"{QUALTRICS_QID[qid]}_{n}"] = value
            out.append(row)
        return out
    if fmt == "long_csv":
        header, lines = _read(path)
        assert header == LONG_HEADER
        assert [line["Measure"] for line in lines[:2]] == ["ORS", "SRS"]  # PCOMS order
        assert len(lines) % 2 == 0
        out = []
        for k in range(0, len(lines), 2):
            ors, srs = lines[k : k + 2]
            key = [
                (x["ClientID"], x["ClinicianID"], x["SessionNumber"], x["SessionDate"])
                for x in (ors, srs)
            ]
            assert key[0] == key[1] and (ors["Measure"], srs["Measure"]) == ("ORS", "SRS")
            client, therapist, session, us_day = key[0]
            day = datetime.datetime.strptime(us_day, "%m/%d/%Y").date().isoformat()
            row = {
                "record_id": client,
                "session": session,
                "therapist_code": therapist,
                "session_date": day,
            }
            for prefix, line in (("ors", ors), ("srs", srs)):
                items = [line[f"Item{n}"] for n in range(1, 5)]
                row |= {f"{prefix}_{n}": v for n, v in enumerate(items, start=1)}
                assert line["Total"] == f"{sum(float(v) for v in items):.1f}"
            out.append(row)
        return out
    data, meta = pyreadstat.read_sav(str(path), user_missing=True)
    assert meta.variable_value_labels["Visit"][3.0] == "Session 3"
    assert meta.readstat_variable_types["SessDate"] == "double"
    out = []
    for record in data.to_dict("records"):
        row = {
            "record_id": record["ClientID"],
            "session": str(int(record["Visit"])),
            "therapist_code": record["Therapist"],
            "session_date": record["SessDate"].isoformat(),
        }
        for name, value in record.items():
            match = re.fullmatch(r"(WAIS|OQ)(\d+)", name)
            if match:
                text = "" if value != value else f"{value:g}"
                row[f"{SPSS_PREFIX[match.group(1)]}_{match.group(2)}"] = text
        out.append(row)
    return out


def _instrument(site: str, prefix: str) -> str:
    return next(i for i, _, p in SITES[site][2] if p == prefix)


def _tree_bytes(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
    }


def _keyed_total(items: np.ndarray, instrument: str) -> np.ndarray:
    """Sum of keyed items; one blank is replaced by the mean of the answered items (CORE-10's
    10 x mean is the same number)."""
    _, lo, hi, _, reverse, _ = SCALES[instrument]
    keyed = items.copy()
    for item in reverse:
        keyed[:, item - 1] = lo + hi - keyed[:, item - 1]
    return np.nanmean(keyed, axis=1) * keyed.shape[1]


def _early_alliance_and_improvement(
    client: np.ndarray,
    session: np.ndarray,
    alliance: np.ndarray,
    outcome: np.ndarray,
    higher_is_better: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per client with >= 2 sessions: mean alliance total of sessions 1-3 and the outcome's
    improvement first -> last (positive = better)."""
    order = np.lexsort((session, client))
    client, session = client[order], session[order]
    alliance, outcome = alliance[order], outcome[order]
    keys, first, counts = np.unique(client, return_index=True, return_counts=True)
    last = first + counts - 1
    idx = np.searchsorted(keys, client)
    early_rows = session <= 3
    early_sum = np.bincount(idx[early_rows], weights=alliance[early_rows], minlength=keys.size)
    early = early_sum / np.bincount(idx[early_rows], minlength=keys.size)
    improvement = outcome[first] - outcome[last]
    if higher_is_better:
        improvement = -improvement
    keep = counts >= 2
    return early[keep], improvement[keep]


def _primary_pair(site: str, rows) -> tuple[np.ndarray, np.ndarray]:
    """Early primary alliance and primary outcome improvement from canonical rows (pandas)."""
    _, _, forms, alliance, outcome = SITES[site]
    a_prefix = next(p for i, r, p in forms if i == alliance and r == "client")
    o_prefix = next(p for i, _, p in forms if i == outcome)
    client = rows["client"]
    session = rows["session"]
    a = _keyed_total(rows[a_prefix], alliance)
    o = _keyed_total(rows[o_prefix], outcome)
    return _early_alliance_and_improvement(client, session, a, o, SCALES[outcome][5])


def _within_site_r(groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> float:
    """Pearson r after standardizing each site: the pooled within-site correlation (sites
    use different instruments, so their scales differ)."""
    xs = np.concatenate([(x - x.mean()) / x.std() for x, _ in groups.values()])
    ys = np.concatenate([(y - y.mean()) / y.std() for _, y in groups.values()])
    return float(np.corrcoef(xs, ys)[0, 1])


def _tree_bytes_after(home: Path, seed: int) -> dict[str, bytes]:
    write_demo_consortium(home, seed=seed)
    return _tree_bytes(home)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    first = _tree_bytes_after(tmp_path / "a", seed=7)
    second = _tree_bytes_after(tmp_path / "b", seed=7)
    other = _tree_bytes_after(tmp_path / "c", seed=8)
    assert first == second  # the .sav too: its creation stamp is the logical date
    assert first.keys() == other.keys()
    exports = sorted(n for n in first if n.startswith("inbox/") and "DataDictionary" not in n)
    assert [Path(n).suffix for n in exports] == [".csv", ".csv", ".csv", ".sav"]
    assert all(first[name] != other[name] for name in exports)
    assert b"20 Nov 2600:00:00" in first["inbox/utrecht/utrecht_spss_20261120.sav"][:200]


def test_each_site_has_its_format_and_instruments(demo: tuple[Path, DemoSummary]) -> None:
    """Four formats and all nine registry instruments; the file loads as a valid consortium."""
    from ingestion.consortium import load_consortium

    home, summary = demo
    config = yaml.safe_load((home / "consortium.yml").read_text(encoding="utf-8"))
    assert config["consortium_id"] == "bordin_demo"
    assert [s["site_id"] for s in config["sites"]] == list(SITES) == summary.sites
    for site in config["sites"]:
        fmt, _, forms, alliance, outcome = SITES[site["site_id"]]
        assert site["format"] == fmt
        assert [(f["instrument"], f["rater_role"]) for f in site["forms"]] == [
            (i, r) for i, r, _ in forms
        ]
        assert (site["primary_alliance"], site["primary_outcome"]) == (alliance, outcome)
    assert {s["format"] for s in config["sites"]} == set(EXTENSION)
    assert {f["instrument"] for s in config["sites"] for f in s["forms"]} == set(SCALES)
    (utrecht,) = [s for s in config["sites"] if s["site_id"] == "utrecht"]
    assert utrecht["missing_codes"] == {"99": "refused"}
    consortium = load_consortium(home / "consortium.yml")
    assert list(consortium.sites) == list(SITES)


def test_files_have_their_sites_layouts(demo: tuple[Path, DemoSummary]) -> None:
    home, summary = demo
    stamp = DEMO_LOGICAL_DATE.strftime("%Y%m%d")
    assert summary.files == [
        home / "inbox" / s / f"{SITES[s][1]}_{stamp}.{EXTENSION[SITES[s][0]]}" for s in SITES
    ]
    assert (home / "inbox" / "bern" / f"bern_DataDictionary_{stamp}.csv").is_file()
    total_rows, administrations, clients, bad_cells, cells, missing = 0, 0, set(), 0, 0, 0
    refused, one_decimal, sizes = 0, 0, []
    for site, path in zip(summary.sites, summary.files, strict=True):
        rows = _rows(site, path)
        forms = SITES[site][2]
        total_rows += len(rows)
        administrations += len(rows) * len(forms)
        per_client: dict[str, list[tuple[int, datetime.date]]] = {}
        therapists: dict[str, set[str]] = {}
        for row in rows:
            assert re.fullmatch(rf"{PREFIX[site]}-\d{{4}}", row["record_id"])
            assert re.fullmatch(rf"{PREFIX[site]}-T\d{{2}}", row["therapist_code"])
            day = datetime.date.fromisoformat(row["session_date"])
            assert day <= DEMO_LOGICAL_DATE
            per_client.setdefault(row["record_id"], []).append((int(row["session"]), day))
            therapists.setdefault(row["therapist_code"], set()).add(row["record_id"])
            for instrument, _, prefix in forms:
                _, lo, hi, decimals, _, _ = SCALES[instrument]
                values = [row[c] for c in _columns(prefix, instrument)]
                gaps = sum(v in ("", REFUSED) for v in values)
                assert gaps <= 1 if decimals == 0 else gaps == 0  # a VAS form is complete
                refused += sum(v == REFUSED for v in values)
                missing += gaps
                cells += len(values)
                for value in (v for v in values if v not in ("", REFUSED)):
                    grid = r"\d+" if decimals == 0 else r"\d+\.\d"
                    assert re.fullmatch(grid, value), (site, instrument, value)
                    one_decimal += decimals == 1 and not value.endswith(".0")
                    bad_cells += not lo <= float(value) <= hi
        for visits in per_client.values():
            numbers = [n for n, _ in visits]
            assert numbers == list(range(1, len(visits) + 1)) and len(visits) <= 16
            days = [d for _, d in visits]
            assert days == sorted(days) and len(set(days)) == len(days)
        # About 14 clients per therapist, at least 4 therapists: 80-100 clients -> 6 or 7.
        assert 6 <= len(therapists) <= 7
        assert all(len(c) >= 10 for c in therapists.values())
        clients |= {(site, c) for c in per_client}
        sizes.append(len(per_client))
    assert bad_cells == summary.planted_bad_rows == 2
    assert 0.01 < missing / cells < 0.04
    assert refused > 0 and one_decimal > 0  # utrecht codes refusals; PCOMS reads tenths
    assert len(set(sizes)) > 1
    assert summary.clients == len(clients) == sum(sizes)
    assert summary.sessions == total_rows
    assert summary.administrations == administrations


def test_spss_file_declares_refused_as_user_missing(demo: tuple[Path, DemoSummary]) -> None:
    _, summary = demo
    (path,) = [p for p in summary.files if p.suffix == ".sav"]
    _, meta = pyreadstat.read_sav(str(path), metadataonly=True, user_missing=True)
    items = [c for c in meta.column_names if re.fullmatch(r"(WAIS|OQ)\d+", c)]
    assert len(items) == 12 + 45
    for name in items:
        assert meta.missing_ranges[name] == [{"lo": 99.0, "hi": 99.0}]
        assert meta.variable_value_labels[name][99.0] == "Refused"
    assert meta.variable_value_labels["WAIS1"][7.0] == "Always"
    assert meta.variable_value_labels["OQ1"][0.0] == "Never"


def test_demo_files_show_a_positive_alliance_outcome_link(
    demo: tuple[Path, DemoSummary],
) -> None:
    """Small sites are noisy, but the demo seed should at least show the sign of the effect."""
    _, summary = demo
    groups = {}
    for site, path in zip(summary.sites, summary.files, strict=True):
        rows = [r for r in _rows(site, path) if _in_range(site, r)]
        canonical = {
            "client": np.array([int(r["record_id"].split("-")[1]) for r in rows]),
            "session": np.array([int(r["session"]) for r in rows]),
        }
        for instrument, _, prefix in SITES[site][2]:
            canonical[prefix] = np.array(
                [[_number(r[c]) for c in _columns(prefix, instrument)] for r in rows]
            )
        groups[site] = _primary_pair(site, canonical)
    assert _within_site_r(groups) > 0


def _number(text: str) -> float:
    return float(text) if text not in ("", REFUSED) else np.nan


def _in_range(site: str, row: dict[str, str]) -> bool:
    for instrument, _, prefix in SITES[site][2]:
        _, lo, hi, _, _, _ = SCALES[instrument]
        for c in _columns(prefix, instrument):
            value = _number(row[c])
            if value == value and not lo <= value <= hi:
                return False
    return True


def test_large_sample_recovers_true_r() -> None:
    """5,000 clients per site through the demo's own generator: each site's observed r
    between its own primary alliance and outcome measures must sit on TRUE_R."""
    sizes = {site: 5000 for site in SITES}
    frame = generate_clients(sizes, seed=20261120)
    groups = {}
    for site in sizes:
        rows = frame[frame["site_id"] == site]
        canonical = {
            "client": rows["record_id"].str.split("-").str[1].astype(int).to_numpy(),
            "session": rows["session"].to_numpy(),
        }
        for instrument, _, prefix in SITES[site][2]:
            _, lo, hi, decimals, _, _ = SCALES[instrument]
            items = rows[_columns(prefix, instrument)].to_numpy(dtype=float)
            answered = items[~np.isnan(items)]
            assert np.all((answered >= lo) & (answered <= hi)), (site, instrument)
            assert np.allclose(answered * 10**decimals, np.rint(answered * 10**decimals))
            canonical[prefix] = items
        groups[site] = _primary_pair(site, canonical)
        assert len(np.unique(canonical["client"])) == sizes[site]

    for site, (early, improvement) in groups.items():
        site_r = np.corrcoef(early, improvement)[0, 1]
        assert abs(site_r - TRUE_R) < 0.05, (site, site_r)
    within = _within_site_r(groups)
    assert abs(within - TRUE_R) < 0.03, within


def test_every_site_format_ingests_the_same_administrations(home: Path) -> None:
    """Four layouts: every session's questionnaires arrive, the two planted out-of-range values
    are quarantined, utrecht's 99s are missing items (not quarantined), and bern's data
    dictionary is read, not ingested."""
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
    assert sum(f.offered for f in exports) == summary.administrations
    assert sum(f.accepted for f in exports) == summary.administrations - summary.planted_bad_rows
    assert sum(f.quarantined for f in exports) == summary.planted_bad_rows
    assert sum(f.not_administered for f in exports) == 0
    by_site = dict(zip(summary.sites, exports, strict=True))
    assert by_site["bern"].quarantined == by_site["leeds"].quarantined == 1


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


def test_every_format_ingests_under_a_small_memory_limit(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the quarantine text of an SPSS row expanded a strip macro per item; with
    OQ-45.2's 45 items the expression's working vectors alone overran a 300 MB limit, so the
    1 GB bench file (and this 360-client one) failed with DuckDB's OutOfMemoryException. The
    memory a file needs must not depend on the number of items either."""
    from ingestion.ingest import ingest_site
    from ingestion.intake.engine import MEMORY_ENV

    monkeypatch.setenv(MEMORY_ENV, "256MB")
    summary = write_demo_consortium(home)
    exports = []
    for site in summary.sites:
        exports += [f for f in ingest_site(site, DEMO_LOGICAL_DATE).files if f.kind == "export"]
    assert all(f.status == "ingested" for f in exports), [f.detail for f in exports]
    assert sum(f.offered for f in exports) == summary.administrations
    assert sum(f.quarantined for f in exports) == summary.planted_bad_rows
