"""A synthetic four-site consortium for `bordin demo` and the tests.

Why it exists: the pipeline needs realistic inputs whose answer is known in advance. The
generator plants a known alliance-outcome correlation (TRUE_R, close to the meta-analytic
r = .278 of Flückiger et al. 2018) between each site's primary alliance and outcome measures,
so the marts' per-site r and pooled estimate can be checked against the truth. It adds a little
item missingness and two out-of-range values so the demo shows proration and quarantine at
work.

Breadth: the four sites export in the four formats Bordin reads and use all nine registry
instruments, so `make demo` exercises every reader and every scoring rule on one run:

  site     format          alliance (primary first)            outcome (primary first)
  bern     REDCap CSV      WAI-SR client, WAI-SR therapist     PHQ-9, GAD-7
  leeds    Qualtrics CSV   HAq-II                              CORE-10
  ohio     long CSV        SRS (PCOMS, one decimal)            ORS (one decimal)
  utrecht  SPSS .sav       WAI-S                               OQ-45.2

bern also delivers its REDCap data dictionary and codes how each episode ended; utrecht's .sav
carries value labels and the user-missing code 99 = refused. Item ranges, reverse keys and
decimals come from the instrument registry, so the files are valid by the same rules ingestion
checks. Every draw comes from numpy.random.default_rng(seed) and the .sav header's creation
stamp is set to the logical date, so the files are byte-identical for a given seed.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import yaml

from ingestion.registry import Instrument, Registry, default_registry
from warehouse.file_stamps import stamp_sav

TRUE_R: float = 0.28
"""Population Pearson r between early primary alliance and primary outcome improvement, in the
*observed* scores, at every site."""

DEMO_LOGICAL_DATE = datetime.date(2026, 11, 20)
DEMO_SEED = 20261120

# Share of the alliance latent that belongs to the therapist (therapist effects on alliance).
# Improvement follows the whole latent, so this adds realism without changing the true r.
_THERAPIST_SHARE = 0.10

MAX_SESSIONS = 16
# P(number of attended sessions = 1..16): a few early dropouts, most attend 6-14.
_SESSION_WEIGHTS = np.array([4, 4, 3, 3, 4, 7, 8, 9, 10, 10, 9, 8, 7, 6, 4, 4], dtype=float)
_SESSION_WEIGHTS /= _SESSION_WEIGHTS.sum()

# bern's REDCap export codes how each episode ended, on the client's last session: a course
# of at least ENDING_MIN_SESSIONS sessions completed (planned), a shorter one dropped out
# (unplanned); every other session row leaves the field blank.
ENDING_COLUMN = "ending_status"
ENDING_MIN_SESSIONS = 6
ENDING_CONFIG = {"column": ENDING_COLUMN, "planned": ["completed"], "unplanned": ["dropped_out"]}

# utrecht's SPSS file codes a refused item as 99 (declared user-missing in the file, and named
# in the site's missing_codes): about half of its blank items are coded, half system-missing.
SPSS_REFUSED = 99
# A questionnaire gets at most one blank item, with probability missing_rate x items, capped
# here so that a long form (OQ-45.2) is not blank-on-every-page.
_MAX_BLANK_PROBABILITY = 0.5


@dataclass(frozen=True)
class DemoForm:
    """One questionnaire a site administers every session, and how its totals are drawn.

    Alliance: total = level + spread x latent + trend x (session - 1) + noise.
    Outcome: baseline = level + spread x z; improvement at full dose = trend + gain x latent;
    total moves from the baseline by improvement x progress (in the registry's direction), plus
    noise. `mix` is the correlation of this form's latent with the site's primary latent (1 for
    the primary forms; a therapist's view of the alliance, or a second outcome, shares part).
    Totals are rounded to the instrument's grid and clipped to its range before being split
    into items, so the planted correlation survives item scoring.
    """

    instrument: str
    rater_role: str
    column: str  # canonical item columns: f"{column}_{n}"
    level: float
    spread: float
    trend: float
    noise: float
    gain: float = 0.0
    mix: float = 1.0

    def columns(self, n_items: int) -> list[str]:
        return [f"{self.column}_{n}" for n in range(1, n_items + 1)]


@dataclass(frozen=True)
class SiteProfile:
    """One synthetic site: size, export format and forms (sites differ in means, not in r).

    `attenuation` is observed r / latent r for this site's primary pair: session noise, the dose
    scaling of improvement, rounding to the grid and clipping at the scale ends attenuate the
    latent correlation. It was calibrated by simulation (runs of 100,000 and 200,000 clients per
    site) so the observed r lands on TRUE_R; tests/test_demo_consortium.py guards it.
    """

    site_id: str
    name: str
    prefix: str
    n_clients: int
    format: str
    forms: tuple[DemoForm, ...]
    attenuation: float

    @property
    def latent_r(self) -> float:
        return TRUE_R / self.attenuation


# The WAI-SR / PHQ-9 parameters are the reference; the other instruments scale them by their
# range (and PCOMS' SRS sits high on its scale, as it does in practice).
DEMO_SITES: tuple[SiteProfile, ...] = (
    SiteProfile(
        "bern",
        "Bern University Outpatient Clinic (synthetic)",
        "BE",
        90,
        "redcap_csv",
        (
            DemoForm("wai_sr", "client", "wai", 45.0, 6.5, 0.3, 2.5),
            DemoForm("wai_sr", "therapist", "wai_t", 43.0, 5.5, 0.25, 2.5, mix=0.5),
            DemoForm("phq9", "client", "phq9", 14.5, 5.0, 6.0, 2.0, gain=4.5),
            DemoForm("gad7", "client", "gad7", 11.0, 4.0, 4.5, 1.8, gain=3.5, mix=0.7),
        ),
        attenuation=0.705,
    ),
    SiteProfile(
        "leeds",
        "Leeds Community Talking Therapies (synthetic)",
        "LE",
        100,
        "qualtrics_csv",
        (
            DemoForm("haq_ii", "client", "haq", 84.0, 12.0, 0.55, 4.6),
            DemoForm("core10", "client", "core10", 20.0, 7.0, 8.5, 3.0, gain=6.5),
        ),
        attenuation=0.700,
    ),
    SiteProfile(
        "ohio",
        "Ohio University Counseling Clinic (synthetic)",
        "OH",
        80,
        "long_csv",
        (
            DemoForm("srs", "client", "srs", 34.0, 3.2, 0.12, 1.25),
            DemoForm("ors", "client", "ors", 19.0, 6.0, 7.5, 2.4, gain=5.4),
        ),
        attenuation=0.726,
    ),
    SiteProfile(
        "utrecht",
        "Utrecht Psychotherapy Centre (synthetic)",
        "UT",
        90,
        "spss_sav",
        (
            DemoForm("wai_s", "client", "wais", 62.0, 9.5, 0.45, 3.7),
            DemoForm("oq45", "client", "oq45", 82.0, 20.0, 24.0, 8.0, gain=18.0),
        ),
        attenuation=0.734,
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
    administrations: int  # questionnaires offered: sessions x the site's forms, summed


def _profile(site_id: str, n_clients: int) -> SiteProfile:
    """The demo profile of a known site, or a bern-like REDCap one so any site can be made."""
    known = _PROFILES.get(site_id)
    if known is not None:
        return known
    prefix = "".join(ch for ch in site_id.upper() if ch.isalnum())[:2] or "XX"
    bern = _PROFILES["bern"]
    return SiteProfile(
        site_id,
        f"{site_id} (synthetic)",
        prefix,
        n_clients,
        "redcap_csv",
        bern.forms,
        bern.attenuation,
    )


def primary_forms(site: SiteProfile, registry: Registry) -> tuple[DemoForm, DemoForm]:
    """The site's primary alliance (client-rated) and outcome forms: the first of each."""
    alliance = next(
        f
        for f in site.forms
        if registry.get(f.instrument).construct == "alliance" and f.rater_role == "client"
    )
    outcome = next(f for f in site.forms if registry.get(f.instrument).construct == "outcome")
    return alliance, outcome


def _split_totals(
    totals: np.ndarray, n_items: int, lo: int, hi: int, rng: np.random.Generator
) -> np.ndarray:
    """Integer items in [lo, hi] whose row sums equal `totals` exactly.

    Keeping the sum exact means item rounding and clipping cannot erode the planted correlation;
    random one-point transfers between items give realistic item-to-item variation. For a
    one-decimal scale the caller works in tenths.
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


def _blank_one_item(items: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Blank one item in a share `probability` of the questionnaires (NaN = blank)."""
    m, n_items = items.shape
    out = items.astype(float)
    blank = rng.random(m) < probability
    which = rng.integers(0, n_items, m)
    out[np.flatnonzero(blank), which[blank]] = np.nan
    return out


def _items(
    totals: np.ndarray, instrument: Instrument, rng: np.random.Generator, missing_rate: float
) -> np.ndarray:
    """Raw item values (as the export holds them) whose keyed sum is `totals`."""
    scale = 10**instrument.item_decimals
    lo, hi = round(instrument.item_min * scale), round(instrument.item_max * scale)
    units = np.rint(totals * scale).astype(np.int64)
    keyed = _split_totals(units, instrument.items, lo, hi, rng)
    for item in instrument.reverse_items:  # the registry keys back: min + max - raw
        keyed[:, item - 1] = lo + hi - keyed[:, item - 1]
    probability = 0.0
    if instrument.max_missing > 0:  # a VAS form with a blank has no total: PCOMS forbids it
        probability = min(_MAX_BLANK_PROBABILITY, missing_rate * instrument.items)
    return _blank_one_item(keyed, probability, rng) / scale


def _grid_totals(raw: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Totals rounded to the instrument's total grid and clipped to its range.

    A mean-scored form (CORE-10: 10 x item mean) is drawn on its item-sum grid, which for a
    complete form is the clinical score itself.
    """
    scale = 10**instrument.item_decimals
    lo = instrument.items * instrument.item_min
    hi = instrument.items * instrument.item_max
    return np.clip(np.rint(raw * scale) / scale, lo, hi)


def _generate_site(
    site: SiteProfile,
    n: int,
    rng: np.random.Generator,
    logical_date: datetime.date,
    missing_rate: float,
    registry: Registry,
) -> pd.DataFrame:
    """Rows (client x attended session) for one site; see generate_clients."""
    n_therapists = max(4, round(n / 14))
    therapist = rng.permutation(np.arange(n) % n_therapists)
    therapist_effect = rng.standard_normal(n_therapists)[therapist]
    alliance = math.sqrt(_THERAPIST_SHARE) * therapist_effect + math.sqrt(
        1 - _THERAPIST_SHARE
    ) * rng.standard_normal(n)
    latent_r = site.latent_r
    improvement = latent_r * alliance + math.sqrt(1 - latent_r**2) * rng.standard_normal(n)
    baseline_z = rng.standard_normal(n)
    n_sessions = rng.choice(np.arange(1, MAX_SESSIONS + 1), size=n, p=_SESSION_WEIGHTS)
    dose = 1.0 - np.exp(-(n_sessions - 1) / 4.0)
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

    item_blocks: dict[str, np.ndarray] = {}
    for form in site.forms:
        instrument = registry.get(form.instrument)
        own = math.sqrt(1 - form.mix**2)
        if instrument.construct == "alliance":
            latent = form.mix * alliance + own * rng.standard_normal(n)
            level = form.level + form.spread * latent
            slope = form.trend * (1.0 + 0.67 * rng.standard_normal(n))  # 0.3 +- 0.2 on WAI-SR
            raw = level[client] + slope[client] * (session - 1)
        else:
            latent = form.mix * improvement + own * rng.standard_normal(n)
            base_mix = 1.0 if form.mix == 1.0 else 0.6
            base_z = base_mix * baseline_z + math.sqrt(1 - base_mix**2) * rng.standard_normal(n)
            base = form.level + form.spread * base_z
            change = dose * (form.trend + form.gain * latent)
            sign = -1.0 if instrument.direction == "higher_is_worse" else 1.0
            raw = base[client] + sign * change[client] * progress
        raw = raw + form.noise * rng.standard_normal(rows)
        totals = _grid_totals(raw, instrument)
        item_blocks[_block_key(form)] = _items(totals, instrument, rng, missing_rate)

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
    blocks = [frame]
    for form in site.forms:
        columns = form.columns(registry.get(form.instrument).items)
        blocks.append(pd.DataFrame(item_blocks[_block_key(form)], columns=columns))
    return pd.concat(blocks, axis=1)


def _block_key(form: DemoForm) -> str:
    return f"{form.instrument}:{form.rater_role}"


def generate_clients(
    n_per_site: Mapping[str, int],
    seed: int = DEMO_SEED,
    logical_date: datetime.date = DEMO_LOGICAL_DATE,
    missing_rate: float = 0.03,
    registry: Registry | None = None,
) -> pd.DataFrame:
    """Long table, one row per client x attended session, in the export's column layout.

    The demo files and the large-sample test share this one code path, so the test's realized
    correlation is the files' population correlation. Columns: site_id, record_id,
    redcap_event_name, therapist_code, session_date (ISO text), session (int), then each site
    form's raw item columns (`DemoForm.columns`) as floats (NaN = blank; also NaN for the forms
    of other sites). No out-of-range values are planted here.
    """
    registry = registry or default_registry()
    rng = np.random.default_rng(seed)
    frames = [
        _generate_site(_profile(site_id, n), n, rng, logical_date, missing_rate, registry)
        for site_id, n in n_per_site.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _plant_bad_rows(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Two rows with one impossible item each, so the demo shows quarantine working.

    bern: a WAI-SR item of 7 (a 7-point WAI-S form mixed up with the 5-point WAI-SR); leeds: a
    CORE-10 item of 5 (a 1-5 coding instead of 0-4). Drawn from a separate stream so the clean
    data do not depend on the planting.
    """
    rng = np.random.default_rng([seed, 1])
    planted = frame.copy()
    for site_id, column, n_items, value in (("bern", "wai", 12, 7), ("leeds", "core10", 10, 5)):
        rows = np.flatnonzero(planted["site_id"].to_numpy() == site_id)
        row = int(rows[int(rng.integers(0, rows.size))])
        item = f"{column}_{int(rng.integers(1, n_items + 1))}"
        planted.loc[row, item] = value
    return planted


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
QUALTRICS_BLOCKS = {  # instrument -> (question name prefix, QID, question text)
    "haq_ii": ("HAQ", "QID1", "Helping Alliance Questionnaire (HAq-II) - item"),
    "core10": ("CORE", "QID2", "Over the last week (CORE-10) - item"),
}
# The feedback system's long table (PCOMS): per session the ORS (at the start) and the SRS (at
# the end), one line each, items read to one decimal, US dates.
LONG_MEASURES = {"ors": "ORS", "srs": "SRS"}
LONG_ITEMS = 4
LONG_HEADER = ["ClientID", "ClinicianID", "SessionNumber", "SessionDate", "Measure"]
LONG_HEADER += [f"Item{n}" for n in range(1, LONG_ITEMS + 1)] + ["Total"]
LONG_DATE_FORMAT = "%m/%d/%Y"
# SPSS: variable names per form, and the session variable's value labels.
SPSS_TEMPLATES = {"wai_s": "WAIS{n}", "oq45": "OQ{n}"}
SPSS_ITEM_LABELS = {
    "wai_s": {1: "Never", 7: "Always"},
    "oq45": {0: "Never", 4: "Almost always"},
}
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
REDCAP_META = ["record_id", "redcap_event_name", "therapist_code", "session_date"]


def _forms_config(site: SiteProfile, templates: Mapping[str, str] | None = None) -> list[dict]:
    """The site's `forms:` entries; `templates` overrides the canonical item column names."""
    templates = templates or {}
    return [
        {
            "instrument": f.instrument,
            "rater_role": f.rater_role,
            "item_column_template": templates.get(f.instrument, f"{f.column}_{{n}}"),
        }
        for f in site.forms
    ]


def _site_config(site: SiteProfile, registry: Registry) -> dict:
    """One site's consortium.yml entry, in the format that site exports."""
    alliance, outcome = primary_forms(site, registry)
    common = {"site_id": site.site_id, "name": site.name, "format": site.format}
    primary = {"primary_alliance": alliance.instrument, "primary_outcome": outcome.instrument}
    if site.format == "qualtrics_csv":
        import_ids = {
            "externalDataReference": "client_code",
            "therapist": "therapist_code",
            "session": "session",
            "session_date": "session_date",
        }
        for form in site.forms:
            _, qid, _ = QUALTRICS_BLOCKS[form.instrument]
            columns = form.columns(registry.get(form.instrument).items)
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
            "forms": _forms_config(site),
            **primary,
        }
    if site.format == "long_csv":
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
                "measures": {LONG_MEASURES[f.instrument]: f.instrument for f in site.forms},
                "item_column_template": "Item{n}",
                "delimiter": ",",
                "decimal": ".",
                "encoding": "utf-8",
            },
            "forms": _forms_config(site),
            **primary,
        }
    if site.format == "spss_sav":
        return {
            **common,
            "file_glob": "*.sav",
            "columns": {
                "client_code": "ClientID",
                "therapist_code": "Therapist",
                "session_date": "SessDate",
                "event": "Visit",
            },
            "spss": {"event_from_labels": True},
            "session_event_pattern": r"^Session (\d+)$",
            "date_format": "%Y-%m-%d",
            "missing_codes": {str(SPSS_REFUSED): "refused"},
            "forms": _forms_config(site, SPSS_TEMPLATES),
            **primary,
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
        "forms": _forms_config(site),
        **primary,
    }


def _consortium_config(registry: Registry) -> dict:
    """consortium.yml content: one entry per demo site, in its own export format."""
    return {
        "consortium_id": "bordin_demo",
        "name": "Bordin demo consortium (synthetic)",
        "sites": [_site_config(site, registry) for site in DEMO_SITES],
    }


def _cell(value: object, decimals: int) -> str:
    if pd.isna(value):
        return ""
    return f"{float(value):.{decimals}f}" if decimals else str(int(value))


def _write_csv(target: Path, rows: list[list[str]], encoding: str = "utf-8") -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _form_cells(
    rows: pd.DataFrame, site: SiteProfile, registry: Registry
) -> list[tuple[DemoForm, list[str], list[list[str]]]]:
    """Per form: its canonical columns and each row's item cells as export text."""
    out = []
    for form in site.forms:
        instrument = registry.get(form.instrument)
        columns = form.columns(instrument.items)
        values = rows[columns].to_numpy(dtype=float)
        cells = [[_cell(v, instrument.item_decimals) for v in row] for row in values]
        out.append((form, columns, cells))
    return out


def _endings(rows: pd.DataFrame) -> np.ndarray:
    """The ending code per row: set on each client's last session only (no random draws)."""
    n_sessions = rows.groupby("record_id")["session"].transform("max").to_numpy()
    last = rows["session"].to_numpy() == n_sessions
    code = np.where(n_sessions >= ENDING_MIN_SESSIONS, "completed", "dropped_out")
    return np.where(last, code, "").astype(object)


def _redcap_rows(rows: pd.DataFrame, site: SiteProfile, registry: Registry) -> list[list[str]]:
    blocks = _form_cells(rows, site, registry)
    header = [*REDCAP_META, *(c for _, columns, _ in blocks for c in columns), ENDING_COLUMN]
    out = [header]
    meta = rows[REDCAP_META].to_numpy(dtype=object)
    for i, (text, ending) in enumerate(zip(meta, _endings(rows), strict=True)):
        out.append([*text, *(c for _, _, cells in blocks for c in cells[i]), ending])
    return out


def _dictionary_rows(site: SiteProfile, registry: Registry) -> list[list[str]]:
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
            ["Seldom", "Sometimes", "Fairly often", "Very often", "Always"], start=1
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
    for form in site.forms:
        instrument = registry.get(form.instrument)
        name = f"{form.instrument}_{form.rater_role}"
        for n, column in enumerate(form.columns(instrument.items), start=1):
            if form.instrument == "wai_sr":
                out.append(field(column, name, "radio", f"WAI-SR item {n}", wai_choices))
            else:
                lo, hi = f"{instrument.item_min:g}", f"{instrument.item_max:g}"
                label = f"{form.instrument} item {n}"
                out.append(field(column, name, "text", label, vtype="integer", lo=lo, hi=hi))
    return out


def _qualtrics_rows(rows: pd.DataFrame, site: SiteProfile, registry: Registry) -> list[list[str]]:
    """Three header rows, then one finished response per session (anonymous link: no names)."""
    blocks = _form_cells(rows, site, registry)
    items = []
    for form, columns, _ in blocks:
        prefix, qid, text = QUALTRICS_BLOCKS[form.instrument]
        items += [
            (f"{prefix}_{n}", f"{text} {n}", f"{qid}_{n}") for n in range(1, len(columns) + 1)
        ]
    header = QUALTRICS_META + items
    out = [[h[0] for h in header], [h[1] for h in header]]
    out.append([json.dumps({"ImportId": h[2]}, separators=(",", ":")) for h in header])
    meta = rows[["record_id", "therapist_code", "session", "session_date"]].to_numpy(dtype=object)
    for k, (client, therapist, session, day) in enumerate(meta):
        values = [c for _, _, cells in blocks for c in cells[k]]
        out.append(
            [
                f"{day} 10:00:00", f"{day} 10:07:00", "IP Address", "", "100", "420", "1",
                f"{day} 10:07:01", f"R_{site.prefix}{k + 1:08d}", "", "", "", client, "", "",
                "anonymous", "EN", therapist, str(int(session)), day, *values,
            ]
        )  # fmt: skip
    return out


def _long_rows(rows: pd.DataFrame, site: SiteProfile, registry: Registry) -> list[list[str]]:
    """One line per measure per session (ORS first, SRS last, as PCOMS runs a session); Total
    is the system's own sum (not ingested)."""
    blocks = sorted(
        _form_cells(rows, site, registry), key=lambda b: list(LONG_MEASURES).index(b[0].instrument)
    )
    out = [list(LONG_HEADER)]
    meta = rows[["record_id", "therapist_code", "session", "session_date"]].to_numpy(dtype=object)
    for i, (client, therapist, session, day) in enumerate(meta):
        us_day = datetime.date.fromisoformat(day).strftime(LONG_DATE_FORMAT)
        for form, _, cells in blocks:
            decimals = registry.get(form.instrument).item_decimals
            items = cells[i]
            total = f"{sum(float(c) for c in items if c):.{decimals}f}"
            padding = [""] * (LONG_ITEMS - len(items))
            label = LONG_MEASURES[form.instrument]
            out.append(
                [client, therapist, str(int(session)), us_day, label, *items, *padding, total]
            )
    return out


def _write_sav(
    target: Path,
    rows: pd.DataFrame,
    site: SiteProfile,
    registry: Registry,
    seed: int,
    logical_date: datetime.date,
) -> None:
    """utrecht's SPSS file: one case per client x session, value labels on the session and
    item variables, 99 = "Refused" declared user-missing on every item variable.

    About half of the blank items are coded 99 (a separate random stream, so the clean data do
    not depend on it), the rest stay system-missing. ReadStat stamps the file with the wall
    clock; the stamp is overwritten with the logical date so the bytes depend on the seed only.
    """
    rng = np.random.default_rng([seed, 2])
    data = pd.DataFrame(
        {
            "ClientID": rows["record_id"].to_numpy(dtype=object),
            "Therapist": rows["therapist_code"].to_numpy(dtype=object),
            "Visit": rows["session"].to_numpy(dtype=float),
            "SessDate": [datetime.date.fromisoformat(d) for d in rows["session_date"]],
        }
    )
    labels: dict[str, dict] = {"Visit": {float(s): f"Session {s}" for s in range(1, 17)}}
    missing: dict[str, list] = {}
    variable_labels = ["Client code", "Therapist code", "Session", "Session date"]
    for form in site.forms:
        instrument = registry.get(form.instrument)
        template = SPSS_TEMPLATES[form.instrument]
        values = rows[form.columns(instrument.items)].to_numpy(dtype=float).copy()
        coded = np.isnan(values) & (rng.random(values.shape) < 0.5)
        values[coded] = SPSS_REFUSED
        for n in range(1, instrument.items + 1):
            name = template.format(n=n)
            data[name] = values[:, n - 1]
            item_labels = {float(k): v for k, v in SPSS_ITEM_LABELS[form.instrument].items()}
            labels[name] = item_labels | {float(SPSS_REFUSED): "Refused"}
            missing[name] = [SPSS_REFUSED]
            variable_labels.append(f"{instrument.name} item {n}")
    target.parent.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_sav(
        data,
        str(target),
        file_label="Utrecht psychotherapy outcome monitoring (synthetic)",
        column_labels=variable_labels,
        variable_value_labels=labels,
        missing_ranges=missing,
        variable_format={"SessDate": "DATE11"},
    )
    stamp_sav(target, logical_date)


def _delivered_on(inbox: Path, logical_date: datetime.date) -> None:
    """Date the exports as delivered on the logical date, as a site's upload would be: files
    written a moment ago are still inside the inbox's quiet period (ingestion/arrival.py)."""
    midnight = datetime.datetime.combine(logical_date, datetime.time(), datetime.UTC)
    stamp = min(midnight.timestamp(), time.time() - 86_400)
    for path in sorted(inbox.rglob("*")):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def site_sizes(clients: int | None = None) -> dict[str, int]:
    """Clients per demo site: the default 360, or `clients` split in the same proportions
    (largest remainders, so the sizes add up to exactly `clients`)."""
    default = {s.site_id: s.n_clients for s in DEMO_SITES}
    if clients is None:
        return default
    if clients < len(DEMO_SITES):
        raise ValueError(f"--clients must be at least {len(DEMO_SITES)} (one per site)")
    total = sum(default.values())
    exact = {site: clients * n / total for site, n in default.items()}
    sizes = {site: math.floor(share) for site, share in exact.items()}
    by_remainder = sorted(exact, key=lambda site: (sizes[site] - exact[site], site))
    for site in by_remainder[: clients - sum(sizes.values())]:
        sizes[site] += 1
    return sizes


def write_demo_consortium(
    home: Path,
    seed: int = DEMO_SEED,
    logical_date: datetime.date = DEMO_LOGICAL_DATE,
    clients: int | None = None,
) -> DemoSummary:
    """Write consortium.yml and one export per site under `home`; return a summary.

    `clients` scales the consortium (e.g. 100,000 for a scale test); the default is the 360
    clients the README's figures and the tests describe.

    bern exports REDCap "CSV raw" (with the project's data dictionary), leeds a Qualtrics CSV
    with its three header rows, ohio a PCOMS feedback system's long table (one line per measure
    per session, US dates, one-decimal VAS items), utrecht an SPSS .sav file.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    registry = default_registry()
    config_text = "# Demo consortium written by bordin demo (synthetic data).\n"
    config_text += yaml.safe_dump(_consortium_config(registry), sort_keys=False, allow_unicode=True)
    (home / "consortium.yml").write_text(config_text, encoding="utf-8")

    sizes = site_sizes(clients)
    frame = generate_clients(sizes, seed, logical_date, registry=registry)
    frame = _plant_bad_rows(frame, seed)
    stamp = logical_date.strftime("%Y%m%d")
    files: list[Path] = []
    administrations = 0
    for site in DEMO_SITES:
        rows = frame[frame["site_id"] == site.site_id].reset_index(drop=True)
        administrations += len(rows) * len(site.forms)
        inbox = home / "inbox" / site.site_id
        if site.format == "qualtrics_csv":
            target = inbox / f"{site.site_id}_qualtrics_{stamp}.csv"
            _write_csv(target, _qualtrics_rows(rows, site, registry), encoding="utf-8-sig")
        elif site.format == "long_csv":
            target = inbox / f"{site.site_id}_feedback_{stamp}.csv"
            _write_csv(target, _long_rows(rows, site, registry))
        elif site.format == "spss_sav":
            target = inbox / f"{site.site_id}_spss_{stamp}.sav"
            _write_sav(target, rows, site, registry, seed, logical_date)
        else:
            target = inbox / f"{site.site_id}_redcap_{stamp}.csv"
            _write_csv(target, _redcap_rows(rows, site, registry))
            dictionary = inbox / f"{site.site_id}_DataDictionary_{stamp}.csv"
            _write_csv(dictionary, _dictionary_rows(site, registry))
        files.append(target)
    _delivered_on(home / "inbox", logical_date)

    return DemoSummary(
        sites=[site.site_id for site in DEMO_SITES],
        clients=sum(sizes.values()),
        sessions=len(frame),
        files=files,
        planted_bad_rows=2,
        administrations=administrations,
    )
