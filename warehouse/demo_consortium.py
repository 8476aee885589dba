"""A synthetic three-site consortium for `bordin demo` and the tests.

Why it exists: the pipeline needs realistic inputs whose answer is known in advance. The
generator plants a known alliance-outcome correlation (TRUE_R, close to the meta-analytic
r = .278 of Flückiger et al. 2018) so the marts' per-site r and pooled estimate can be checked
against the truth, and it adds a little item missingness and two out-of-range rows so the demo
shows proration and quarantine at work. The three sites export in three formats (bern REDCap
with its data dictionary, leeds Qualtrics, ohio a feedback system's long table), so the demo
shows the readers' breadth on the same data. Only numpy, csv/pandas and yaml are used; every draw
comes from numpy.random.default_rng(seed), so the files are byte-identical for a given seed.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TRUE_R: float = 0.28
"""Population Pearson r between early alliance and PHQ-9 improvement in the *observed* scores."""

DEMO_LOGICAL_DATE = datetime.date(2026, 11, 20)
DEMO_SEED = 20261120

# The latent correlation is larger than TRUE_R on purpose: session noise, the dose scaling of
# improvement, integer rounding and clipping at the scale ends attenuate the correlation that
# the pipeline sees in the scored items. The factor was calibrated by simulation (about a million
# clients) so that the observed r lands on TRUE_R; tests/test_demo_consortium.py guards it.
_ATTENUATION = 0.700
LATENT_R: float = TRUE_R / _ATTENUATION

# Share of the alliance latent that belongs to the therapist (therapist effects on alliance).
# Improvement follows the whole latent, so this adds realism without changing the true r.
_THERAPIST_SHARE = 0.10

WAI_ITEMS, WAI_MIN, WAI_MAX = 12, 1, 5
PHQ_ITEMS, PHQ_MIN, PHQ_MAX = 9, 0, 3
GAD_ITEMS, GAD_MIN, GAD_MAX = 7, 0, 3

WAI_COLUMNS = [f"wai_{i}" for i in range(1, WAI_ITEMS + 1)]
PHQ_COLUMNS = [f"phq9_{i}" for i in range(1, PHQ_ITEMS + 1)]
GAD_COLUMNS = [f"gad7_{i}" for i in range(1, GAD_ITEMS + 1)]
ITEM_COLUMNS = WAI_COLUMNS + PHQ_COLUMNS + GAD_COLUMNS
EXPORT_COLUMNS = ["record_id", "redcap_event_name", "therapist_code", "session_date"]
EXPORT_COLUMNS += ITEM_COLUMNS

# bern's REDCap export codes how each episode ended, on the client's last session: a course
# of at least ENDING_MIN_SESSIONS sessions completed (planned), a shorter one dropped out
# (unplanned); every other session row leaves the field blank.
ENDING_COLUMN = "ending_status"
ENDING_MIN_SESSIONS = 6
ENDING_CONFIG = {"column": ENDING_COLUMN, "planned": ["completed"], "unplanned": ["dropped_out"]}

MAX_SESSIONS = 16
# P(number of attended sessions = 1..16): a few early dropouts, most attend 6-14.
_SESSION_WEIGHTS = np.array([4, 4, 3, 3, 4, 7, 8, 9, 10, 10, 9, 8, 7, 6, 4, 4], dtype=float)
_SESSION_WEIGHTS /= _SESSION_WEIGHTS.sum()


@dataclass(frozen=True)
class SiteProfile:
    """One synthetic site: its size and its means (sites differ in means, not in true r)."""

    site_id: str
    name: str
    prefix: str
    n_clients: int
    wai_level: float  # mean WAI-SR total at session 1
    phq_baseline: float  # mean PHQ-9 total at intake
    phq_improvement: float  # mean PHQ-9 improvement at full dose
    gad_baseline: float  # mean GAD-7 total at intake


DEMO_SITES: tuple[SiteProfile, ...] = (
    SiteProfile(
        "bern", "Bern University Outpatient Clinic (synthetic)", "BE", 70, 45.0, 14.5, 6.0, 11.0
    ),
    SiteProfile(
        "leeds", "Leeds Community Talking Therapies (synthetic)", "LE", 90, 43.0, 15.0, 5.75, 11.5
    ),
    SiteProfile(
        "ohio", "Ohio University Counseling Clinic (synthetic)", "OH", 60, 46.5, 14.0, 6.25, 10.5
    ),
)
_PROFILES = {site.site_id: site for site in DEMO_SITES}


@dataclass(frozen=True)
class DemoSummary:
    """What the demo wrote, for the CLI to print and for tests to check."""

    sites: list[str]
    clients: int
    sessions: int
    files: list[Path]
    planted_bad_rows: int


def _profile(site_id: str, n_clients: int) -> SiteProfile:
    """The demo profile of a known site, or a neutral one so any site name can be generated."""
    known = _PROFILES.get(site_id)
    if known is not None:
        return known
    prefix = "".join(ch for ch in site_id.upper() if ch.isalnum())[:2] or "XX"
    return SiteProfile(site_id, f"{site_id} (synthetic)", prefix, n_clients, 45.0, 14.0, 6.0, 11.0)


def _split_totals(
    totals: np.ndarray, n_items: int, lo: int, hi: int, rng: np.random.Generator
) -> np.ndarray:
    """Integer items in [lo, hi] whose row sums equal `totals` exactly.

    Keeping the sum exact means item rounding and clipping cannot erode the planted correlation;
    random one-point transfers between items give realistic item-to-item variation.
    """
    m = totals.shape[0]
    width = hi - lo
    rest = totals.astype(np.int64) - n_items * lo
    base, remainder = np.divmod(rest, n_items)
    ranks = rng.random((m, n_items)).argsort(axis=1).argsort(axis=1)
    items = base[:, None] + (ranks < remainder[:, None])
    rows = np.arange(m)
    for _ in range(max(2, n_items // 3)):
        src = rng.integers(0, n_items, m)
        dst = rng.integers(0, n_items, m)
        ok = (src != dst) & (items[rows, src] > 0) & (items[rows, dst] < width)
        items[rows[ok], src[ok]] -= 1
        items[rows[ok], dst[ok]] += 1
    return items + lo


def _blank_one_item(items: np.ndarray, missing_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Blank at most one item per questionnaire so that the cell rate is about `missing_rate`."""
    m, n_items = items.shape
    out = items.astype(float)
    blank = rng.random(m) < min(1.0, missing_rate * n_items)
    which = rng.integers(0, n_items, m)
    out[np.flatnonzero(blank), which[blank]] = np.nan
    return out


def _generate_site(
    site: SiteProfile,
    n: int,
    rng: np.random.Generator,
    logical_date: datetime.date,
    missing_rate: float,
) -> pd.DataFrame:
    """Rows (client x attended session) for one site; see generate_clients."""
    n_therapists = max(4, round(n / 14))
    therapist = rng.permutation(np.arange(n) % n_therapists)
    therapist_effect = rng.standard_normal(n_therapists)[therapist]
    alliance = math.sqrt(_THERAPIST_SHARE) * therapist_effect + math.sqrt(
        1 - _THERAPIST_SHARE
    ) * rng.standard_normal(n)
    improvement = LATENT_R * alliance + math.sqrt(1 - LATENT_R**2) * rng.standard_normal(n)
    n_sessions = rng.choice(np.arange(1, MAX_SESSIONS + 1), size=n, p=_SESSION_WEIGHTS)
    dose = 1.0 - np.exp(-(n_sessions - 1) / 4.0)

    phq_base_z = rng.standard_normal(n)
    phq_base = site.phq_baseline + 5.0 * phq_base_z
    phq_drop = dose * (site.phq_improvement + 4.5 * improvement)
    gad_base = site.gad_baseline + 4.0 * (0.6 * phq_base_z + 0.8 * rng.standard_normal(n))
    gad_latent = 0.7 * improvement + math.sqrt(1 - 0.7**2) * rng.standard_normal(n)
    gad_drop = dose * (0.75 * site.phq_improvement + 3.5 * gad_latent)
    wai_level = site.wai_level + 6.5 * alliance
    wai_slope = 0.3 + 0.2 * rng.standard_normal(n)
    start_offset = rng.integers(0, 540, n)

    # Expand to one row per attended session.
    client = np.repeat(np.arange(n), n_sessions)
    first_row = np.concatenate([[0], np.cumsum(n_sessions)[:-1]])
    session = np.arange(client.size) - np.repeat(first_row, n_sessions) + 1
    rows = client.size
    progress = np.where(
        n_sessions[client] > 1,
        ((session - 1) / np.maximum(n_sessions[client] - 1, 1)) ** 0.8,
        0.0,
    )
    wai_total = wai_level[client] + wai_slope[client] * (session - 1)
    wai_total = wai_total + 2.5 * rng.standard_normal(rows)
    phq_total = phq_base[client] - phq_drop[client] * progress + 2.0 * rng.standard_normal(rows)
    gad_total = gad_base[client] - gad_drop[client] * progress + 1.8 * rng.standard_normal(rows)
    wai_total = np.clip(np.rint(wai_total), WAI_ITEMS * WAI_MIN, WAI_ITEMS * WAI_MAX)
    phq_total = np.clip(np.rint(phq_total), PHQ_ITEMS * PHQ_MIN, PHQ_ITEMS * PHQ_MAX)
    gad_total = np.clip(np.rint(gad_total), GAD_ITEMS * GAD_MIN, GAD_ITEMS * GAD_MAX)

    wai = _split_totals(wai_total, WAI_ITEMS, WAI_MIN, WAI_MAX, rng)
    phq = _split_totals(phq_total, PHQ_ITEMS, PHQ_MIN, PHQ_MAX, rng)
    gad = _split_totals(gad_total, GAD_ITEMS, GAD_MIN, GAD_MAX, rng)
    items = np.hstack(
        [
            _blank_one_item(wai, missing_rate, rng),
            _blank_one_item(phq, missing_rate, rng),
            _blank_one_item(gad, missing_rate, rng),
        ]
    )

    # Weekly-ish calendar: mostly 7 days apart, sometimes a missed week, a few days of jitter.
    gap = 7 + 7 * (rng.random(rows) < 0.12) + rng.integers(-2, 4, rows)
    gap[session == 1] = 0
    elapsed = np.cumsum(gap)
    elapsed -= np.repeat(elapsed[first_row], n_sessions)
    span = elapsed[first_row + n_sessions - 1]
    start = np.datetime64(logical_date, "D") - (span + start_offset).astype("timedelta64[D]")
    dates = start[client] + elapsed.astype("timedelta64[D]")

    width = max(4, len(str(n)))
    record_ids = np.array([f"{site.prefix}-{i + 1:0{width}d}" for i in range(n)], dtype=object)
    therapist_codes = np.array(
        [f"{site.prefix}-T{t + 1:02d}" for t in range(n_therapists)], dtype=object
    )
    events = np.array([f"session_{s}_arm_1" for s in range(MAX_SESSIONS + 1)], dtype=object)
    frame = pd.DataFrame(
        {
            "site_id": site.site_id,
            "record_id": record_ids[client],
            "redcap_event_name": events[session],
            "therapist_code": therapist_codes[therapist[client]],
            "session_date": np.datetime_as_string(dates, unit="D").astype(object),
            "session": session,
        }
    )
    item_frame = pd.DataFrame(items, columns=ITEM_COLUMNS).astype("Int64")
    return pd.concat([frame, item_frame], axis=1)


def generate_clients(
    n_per_site: Mapping[str, int],
    seed: int = DEMO_SEED,
    logical_date: datetime.date = DEMO_LOGICAL_DATE,
    missing_rate: float = 0.03,
) -> pd.DataFrame:
    """Long table, one row per client x attended session, in the export's column layout.

    The demo files and the large-sample test share this one code path, so the test's realized
    correlation is the files' population correlation. Columns: site_id, record_id,
    redcap_event_name, therapist_code, session_date (ISO text), session (int), then the item
    columns as nullable integers (NA = blank). No out-of-range values are planted here.
    """
    rng = np.random.default_rng(seed)
    frames = [
        _generate_site(_profile(site_id, n), n, rng, logical_date, missing_rate)
        for site_id, n in n_per_site.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _plant_bad_rows(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Two rows with one impossible item each, so the demo shows quarantine working.

    A WAI-SR item of 7 (a 7-point WAI-S form mixed up with the 5-point WAI-SR) and a PHQ-9 item
    of 4 (a 1-4 coding instead of 0-3). Drawn from a separate stream so the clean data do not
    depend on the planting.
    """
    rng = np.random.default_rng([seed, 1])
    rows = rng.choice(len(frame), size=2, replace=False)
    planted = frame.copy()
    wai_col = WAI_COLUMNS[int(rng.integers(0, WAI_ITEMS))]
    phq_col = PHQ_COLUMNS[int(rng.integers(0, PHQ_ITEMS))]
    planted.loc[int(rows[0]), wai_col] = 7
    planted.loc[int(rows[1]), phq_col] = 4
    return planted


FORMS = [
    {"instrument": "wai_sr", "rater_role": "client", "item_column_template": "wai_{n}"},
    {"instrument": "phq9", "rater_role": "client", "item_column_template": "phq9_{n}"},
    {"instrument": "gad7", "rater_role": "client", "item_column_template": "gad7_{n}"},
]
# Each demo site exports from a different system: the same synthetic data, three layouts.
SITE_FORMATS = {"bern": "redcap_csv", "leeds": "qualtrics_csv", "ohio": "long_csv"}

# Qualtrics: question blocks by ImportId; the three header rows are name, text, ImportId.
QUALTRICS_META = [
    ("StartDate", "Start Date", "startDate"),
    ("EndDate", "End Date", "endDate"),
    ("Status", "Response Type", "status"),
    ("IPAddress", "IP Address", "ipAddress"),
    ("Progress", "Progress", "progress"),
    ("Duration (in seconds)", "Duration (in seconds)", "duration"),
    ("Finished", "Finished", "finished"),
    ("RecordedDate", "Recorded Date", "recordedDate"),
    ("ResponseId", "Response ID", "_recordId"),
    ("RecipientLastName", "Recipient Last Name", "recipientLastName"),
    ("RecipientFirstName", "Recipient First Name", "recipientFirstName"),
    ("RecipientEmail", "Recipient Email", "recipientEmail"),
    ("ExternalReference", "External Data Reference", "externalDataReference"),
    ("LocationLatitude", "Location Latitude", "locationLatitude"),
    ("LocationLongitude", "Location Longitude", "locationLongitude"),
    ("DistributionChannel", "Distribution Channel", "distributionChannel"),
    ("UserLanguage", "User Language", "userLanguage"),
    ("therapist", "therapist", "therapist"),
    ("session", "session", "session"),
    ("session_date", "session_date", "session_date"),
]
QUALTRICS_BLOCKS = [  # (canonical columns, question name prefix, QID, question text)
    (WAI_COLUMNS, "WAI", "QID1", "Working Alliance Inventory (short, revised) - item"),
    (PHQ_COLUMNS, "PHQ", "QID2", "Over the last 2 weeks (PHQ-9) - problem"),
    (GAD_COLUMNS, "GAD", "QID3", "Over the last 2 weeks (GAD-7) - problem"),
]
# The feedback system's long table: one line per measure per session, US dates.
LONG_HEADER = ["ClientID", "ClinicianID", "SessionNumber", "SessionDate", "Measure"]
LONG_HEADER += [f"Item{n}" for n in range(1, WAI_ITEMS + 1)] + ["Total"]
LONG_MEASURES = [("WAI-SR", WAI_COLUMNS), ("PHQ-9", PHQ_COLUMNS), ("GAD-7", GAD_COLUMNS)]
LONG_DATE_FORMAT = "%m/%d/%Y"
# REDCap data dictionary (18 columns), delivered with bern's export.
DICTIONARY_HEADER = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]


def _site_config(site: SiteProfile) -> dict:
    """One site's consortium.yml entry, in the format that site exports."""
    fmt = SITE_FORMATS.get(site.site_id, "redcap_csv")
    common = {
        "site_id": site.site_id,
        "name": site.name,
        "format": fmt,
    }
    tail = {
        "forms": [dict(form) for form in FORMS],
        "primary_alliance": "wai_sr",
        "primary_outcome": "phq9",
    }
    if fmt == "qualtrics_csv":
        import_ids = {
            "externalDataReference": "client_code",
            "therapist": "therapist_code",
            "session": "session",
            "session_date": "session_date",
        }
        for columns, _, qid, _ in QUALTRICS_BLOCKS:
            import_ids |= {f"{qid}_{n}": c for n, c in enumerate(columns, start=1)}
        return {
            **common,
            "file_glob": "*.csv",
            "columns": {
                "client_code": "client_code",
                "therapist_code": "therapist_code",
                "session_date": "session_date",
                "event": "session",
            },
            "session_event_pattern": r"^(\d+)$",
            "date_format": "%Y-%m-%d",
            "qualtrics": {"unfinished": "quarantine", "import_ids": import_ids},
            **tail,
        }
    if fmt == "long_csv":
        return {
            **common,
            "file_glob": "*.csv",
            "columns": {
                "client_code": "ClientID",
                "therapist_code": "ClinicianID",
                "session_date": "SessionDate",
                "event": "SessionNumber",
            },
            "session_event_pattern": r"^(\d+)$",
            "date_format": LONG_DATE_FORMAT,
            "long_csv": {
                "measure_column": "Measure",
                "measures": {"WAI-SR": "wai_sr", "PHQ-9": "phq9", "GAD-7": "gad7"},
                "item_column_template": "Item{n}",
                "delimiter": ",",
                "encoding": "utf-8",
            },
            **tail,
        }
    return {
        **common,
        "file_glob": "*.csv",
        "columns": {
            "client_code": "record_id",
            "therapist_code": "therapist_code",
            "session_date": "session_date",
            "event": "redcap_event_name",
        },
        "session_event_pattern": r"^session_(\d+)_arm_\d+$",
        "date_format": "%Y-%m-%d",
        "redcap": {"data_dictionary_glob": "*DataDictionary*.csv"},
        "ending": {k: v if isinstance(v, str) else list(v) for k, v in ENDING_CONFIG.items()},
        **tail,
    }


def _consortium_config() -> dict:
    """consortium.yml content: bern REDCap, leeds Qualtrics, ohio a feedback-system long table."""
    return {
        "consortium_id": "bordin_demo",
        "name": "Bordin demo consortium (synthetic)",
        "sites": [_site_config(site) for site in DEMO_SITES],
    }


def _cell(value: object) -> str:
    return "" if pd.isna(value) else str(int(value))


def _write_csv(target: Path, rows: list[list[str]], encoding: str = "utf-8") -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _endings(rows: pd.DataFrame) -> np.ndarray:
    """The ending code per row: set on each client's last session only (no random draws)."""
    n_sessions = rows.groupby("record_id")["session"].transform("max").to_numpy()
    last = rows["session"].to_numpy() == n_sessions
    code = np.where(n_sessions >= ENDING_MIN_SESSIONS, "completed", "dropped_out")
    return np.where(last, code, "").astype(object)


def _redcap_rows(rows: pd.DataFrame) -> list[list[str]]:
    text_columns = rows[EXPORT_COLUMNS[:4]].to_numpy(dtype=object)
    item_values = rows[ITEM_COLUMNS].to_numpy(dtype=object)
    endings = _endings(rows)
    out = [[*EXPORT_COLUMNS, ENDING_COLUMN]]
    for text, values, ending in zip(text_columns, item_values, endings, strict=True):
        out.append([*text, *(_cell(v) for v in values), ending])
    return out


def _dictionary_rows() -> list[list[str]]:
    """REDCap's data dictionary for bern's project: item ranges as the registry has them."""

    def field(name, form, ftype, label, choices="", vtype="", lo="", hi=""):
        row = dict.fromkeys(DICTIONARY_HEADER, "")
        row.update(
            {
                "Variable / Field Name": name,
                "Form Name": form,
                "Field Type": ftype,
                "Field Label": label,
                "Choices, Calculations, OR Slider Labels": choices,
                "Text Validation Type OR Show Slider Number": vtype,
                "Text Validation Min": lo,
                "Text Validation Max": hi,
            }
        )
        return [row[h] for h in DICTIONARY_HEADER]

    wai_choices = " | ".join(
        f"{k}, {label}"
        for k, label in enumerate(
            ["Seldom", "Sometimes", "Fairly often", "Very often", "Always"], start=WAI_MIN
        )
    )
    out = [
        DICTIONARY_HEADER,
        field("record_id", "enrolment", "text", "Record ID"),
        field("therapist_code", "session", "text", "Therapist code"),
        field("session_date", "session", "text", "Session date", vtype="date_ymd"),
        field(
            ENDING_COLUMN,
            "session",
            "radio",
            "How the episode ended",
            "completed, Completed | dropped_out, Dropped out",
        ),
    ]
    out += [
        field(c, "wai_sr", "radio", f"WAI-SR item {n}", wai_choices)
        for n, c in enumerate(WAI_COLUMNS, 1)
    ]
    for columns, form, lo, hi in (
        (PHQ_COLUMNS, "phq9", PHQ_MIN, PHQ_MAX),
        (GAD_COLUMNS, "gad7", GAD_MIN, GAD_MAX),
    ):
        out += [
            field(c, form, "text", f"{form} item {n}", vtype="integer", lo=str(lo), hi=str(hi))
            for n, c in enumerate(columns, 1)
        ]
    return out


def _qualtrics_rows(rows: pd.DataFrame, site: SiteProfile) -> list[list[str]]:
    """Three header rows, then one finished response per session (anonymous link: no names)."""
    items = [
        (f"{prefix}_{n}", f"{text} {n}", f"{qid}_{n}")
        for columns, prefix, qid, text in QUALTRICS_BLOCKS
        for n in range(1, len(columns) + 1)
    ]
    header = QUALTRICS_META + items
    out = [[h[0] for h in header], [h[1] for h in header]]
    out.append([json.dumps({"ImportId": h[2]}, separators=(",", ":")) for h in header])
    item_values = rows[ITEM_COLUMNS].to_numpy(dtype=object)
    meta = rows[["record_id", "therapist_code", "session", "session_date"]].to_numpy(dtype=object)
    for k, ((client, therapist, session, day), values) in enumerate(
        zip(meta, item_values, strict=True), start=1
    ):
        stamp = f"{day} 10:00:00"
        out.append(
            [
                stamp, f"{day} 10:07:00", "IP Address", "", "100", "420", "1", f"{day} 10:07:01",
                f"R_{site.prefix}{k:08d}", "", "", "", client, "", "", "anonymous", "EN",
                therapist, str(int(session)), day, *(_cell(v) for v in values),
            ]
        )  # fmt: skip
    return out


def _long_rows(rows: pd.DataFrame) -> list[list[str]]:
    """One line per measure per session; Total is the system's own sum (not ingested)."""
    out = [list(LONG_HEADER)]
    meta = rows[["record_id", "therapist_code", "session", "session_date"]].to_numpy(dtype=object)
    blocks = [(label, rows[columns].to_numpy(dtype=object)) for label, columns in LONG_MEASURES]
    for i, (client, therapist, session, day) in enumerate(meta):
        us_day = datetime.date.fromisoformat(day).strftime(LONG_DATE_FORMAT)
        for label, values in blocks:
            cells = [_cell(v) for v in values[i]]
            total = str(sum(int(c) for c in cells if c))
            padding = [""] * (WAI_ITEMS - len(cells))
            out.append(
                [client, therapist, str(int(session)), us_day, label, *cells, *padding, total]
            )
    return out


def write_demo_consortium(
    home: Path, seed: int = DEMO_SEED, logical_date: datetime.date = DEMO_LOGICAL_DATE
) -> DemoSummary:
    """Write consortium.yml and one export per site under `home`; return a summary.

    bern exports REDCap "CSV raw" (with the project's data dictionary), leeds a Qualtrics CSV
    with its three header rows, ohio a feedback system's long table (one line per measure per
    session, US dates): the same synthetic data in three layouts.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    config_text = "# Demo consortium written by bordin demo (synthetic data).\n"
    config_text += yaml.safe_dump(_consortium_config(), sort_keys=False, allow_unicode=True)
    (home / "consortium.yml").write_text(config_text, encoding="utf-8")

    frame = generate_clients({s.site_id: s.n_clients for s in DEMO_SITES}, seed, logical_date)
    frame = _plant_bad_rows(frame, seed)
    stamp = logical_date.strftime("%Y%m%d")
    files: list[Path] = []
    for site in DEMO_SITES:
        rows = frame[frame["site_id"] == site.site_id]
        inbox = home / "inbox" / site.site_id
        fmt = SITE_FORMATS.get(site.site_id, "redcap_csv")
        if fmt == "qualtrics_csv":
            target = inbox / f"{site.site_id}_qualtrics_{stamp}.csv"
            _write_csv(target, _qualtrics_rows(rows, site), encoding="utf-8-sig")
        elif fmt == "long_csv":
            target = inbox / f"{site.site_id}_feedback_{stamp}.csv"
            _write_csv(target, _long_rows(rows))
        else:
            target = inbox / f"{site.site_id}_redcap_{stamp}.csv"
            _write_csv(target, _redcap_rows(rows))
            _write_csv(inbox / f"{site.site_id}_DataDictionary_{stamp}.csv", _dictionary_rows())
        files.append(target)

    return DemoSummary(
        sites=[site.site_id for site in DEMO_SITES],
        clients=sum(site.n_clients for site in DEMO_SITES),
        sessions=len(frame),
        files=files,
        planted_bad_rows=2,
    )
