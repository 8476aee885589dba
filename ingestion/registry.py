"""The instrument registry: scoring constants as data, read by ingestion and by dbt alike.

Each instrument is one YAML file in `ingestion/instruments/`; adding an instrument adds a file,
not code. Files are validated on load so a wrong constant fails loudly, naming file and key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from ingestion.config_errors import ConfigError
from ingestion.settings import INSTRUMENTS_DIR

CONSTRUCTS = {"alliance", "outcome"}
DIRECTIONS = {"higher_is_better", "higher_is_worse"}
# How keyed items combine into a score (dbt's int_administrations_scored interprets these):
#   sum   total = sum of the items, blanks filled by the missing-item method;
#   mean  total = score_multiplier x sum / answered (CORE-10 clinical score: 10 x mean item).
SCORINGS = {"sum", "mean"}
# What a blank item becomes, while blanks stay within missing.max_missing:
#   none                   no blank allowed (max_missing must be 0): SRS, ORS;
#   prorate_mean           the mean of the answered items (score = mean x items): PHQ-9, GAD-7;
#   subscale_mean_rounded  the answered items' mean of ITS subscale, rounded to the item step
#                          (half up): OQ-45.2. Every item must then sit in one subscale.
MISSING_NONE = "none"
MISSING_PRORATE = "prorate_mean"
MISSING_SUBSCALE_ROUNDED = "subscale_mean_rounded"
MISSING_METHODS = {MISSING_NONE, MISSING_PRORATE, MISSING_SUBSCALE_ROUNDED}
# How a score is rounded once computed (missing.rounding; a consortium's scoring_policy may
# override it): none keeps it as computed (PHQ-9 prorated 6.43 stays 6.43); half_up rounds it
# half up to the response grid's step (6.43 -> 6, 6.5 -> 7; VAS step 0.1: 23.25 -> 23.3).
ROUNDING_NONE, ROUNDING_HALF_UP = "none", "half_up"
ROUNDINGS = {ROUNDING_NONE, ROUNDING_HALF_UP}
# Item steps finer than this many decimals are not a questionnaire's response scale.
MAX_STEP_DECIMALS = 6
RATER_ROLES = {"client", "therapist", "observer"}
CASENESS_OPERATORS = {">=", "<"}
NHS_TT_ROLES = {"depression", "anxiety"}
JT_SAMPLE = "sample"
JT_CASENESS = "caseness"


@dataclass(frozen=True)
class Band:
    band: str
    min: float


@dataclass(frozen=True)
class AllianceConcern:
    """An alliance instrument's own concern rule (e.g. SRS: total < 36, or a drop of >= 1)."""

    below: float | None
    drop_from_previous: float | None


@dataclass(frozen=True)
class JacobsonTruax:
    """Jacobson & Truax (1991) constants: S_diff = sqrt(2) * sd_pre * sqrt(1 - reliability).

    sd_pre None means "the consortium's own baseline SD" (computed in dbt); the cutoff is the
    point between the dysfunctional and functional range, on the side `cutoff_operator` names
    as dysfunctional (score <operator> cutoff).
    """

    reliability: float
    sd_pre: float | None
    cutoff: float
    cutoff_operator: str
    cutoff_method: str


@dataclass(frozen=True)
class Instrument:
    instrument_id: str
    name: str
    construct: str
    rater_roles: tuple[str, ...]
    items: int
    item_min: float
    item_max: float
    item_step: float
    reverse_items: tuple[int, ...]
    scoring: str
    subscales: dict[str, tuple[int, ...]]
    max_missing: int
    subscale_max_missing: int
    missing_method: str
    direction: str
    caseness_operator: str | None
    caseness_threshold: float | None
    severity_bands: tuple[Band, ...]
    reliable_change: float | None
    provenance: dict[str, str]
    alliance_concern: AllianceConcern | None = None
    jacobson_truax: JacobsonTruax | None = None
    nhs_talking_therapies: str | None = None
    score_multiplier: float = 1.0
    rounding: str = ROUNDING_NONE

    @property
    def item_decimals(self) -> int:
        """Decimals of the response grid: sums of complete forms are rounded to it (VAS 0.1)."""
        return _decimals(self.item_step)

    @property
    def total_min(self) -> float:
        return self._score_of_all(self.item_min)

    @property
    def total_max(self) -> float:
        return self._score_of_all(self.item_max)

    def _score_of_all(self, value: float) -> float:
        """The score when every item is `value`: the range the gate checks totals against."""
        if self.scoring == "mean":
            return self.score_multiplier * value
        return round(self.items * value, self.item_decimals)


def _decimals(step: float) -> int:
    """Decimals needed to write `step` exactly (0.1 -> 1, 0.25 -> 2, 1 -> 0)."""
    for decimals in range(MAX_STEP_DECIMALS + 1):
        if abs(round(step, decimals) - step) < 1e-9:
            return decimals
    return MAX_STEP_DECIMALS + 1


@dataclass(frozen=True)
class Registry:
    instruments: dict[str, Instrument]
    sha256: str

    def get(self, instrument_id: str) -> Instrument:
        return self.instruments[instrument_id]


def _require(doc: dict[str, Any], key: str, file: Path, kind: type | tuple[type, ...]) -> Any:
    if key not in doc:
        raise ConfigError(file, key, "is required")
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(file, key, f"must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _one_of(value: Any, allowed: set[str], file: Path, key: str) -> str:
    if value not in allowed:
        raise ConfigError(file, key, f"must be one of {sorted(allowed)}, got {value!r}")
    return value


def _item_numbers(value: Any, n_items: int, file: Path, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
        raise ConfigError(file, key, f"must be a list of item numbers, got {value!r}")
    bad = [i for i in value if not 1 <= i <= n_items]
    if bad:
        raise ConfigError(file, key, f"item numbers {bad} are outside 1..{n_items}")
    if len(set(value)) != len(value):
        raise ConfigError(file, key, "lists an item twice")
    return tuple(value)


def _number(doc: dict[str, Any], key: str, file: Path, where: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(file, f"{where}.{key}", f"must be a number, got {value!r}")
    return float(value)


def _require_provenance(provenance: dict[str, Any], key: str, file: Path) -> None:
    if not str(provenance.get(key) or "").strip():
        raise ConfigError(file, f"provenance.{key}", f"is required when {key} is set")


def _alliance_concern(doc: Any, construct: str, file: Path) -> AllianceConcern | None:
    """Optional concern rule of an alliance measure; null for instruments without one."""
    if doc is None:
        return None
    key = "alliance_concern"
    if construct != "alliance":
        raise ConfigError(file, key, "applies only to alliance instruments")
    if not isinstance(doc, dict):
        raise ConfigError(file, key, "must be null or {below, drop_from_previous}")
    unknown = sorted(set(doc) - {"below", "drop_from_previous"})
    if unknown:
        raise ConfigError(file, key, f"unknown field(s) {unknown}")
    below = _number(doc, "below", file, key)
    drop = _number(doc, "drop_from_previous", file, key)
    if below is None and drop is None:
        raise ConfigError(file, key, "needs below, drop_from_previous or both")
    if drop is not None and drop <= 0:
        raise ConfigError(file, f"{key}.drop_from_previous", "must be positive")
    return AllianceConcern(below, drop)


def _jacobson_truax(
    doc: Any, construct: str, direction: str, caseness: dict | None, file: Path
) -> JacobsonTruax | None:
    """Optional JT constants; the cutoff is the caseness threshold or criterion c from norms."""
    if doc is None:
        return None
    key = "jacobson_truax"
    if construct != "outcome":
        raise ConfigError(file, key, "applies only to outcome instruments")
    if not isinstance(doc, dict):
        raise ConfigError(file, key, "must be null or {reliability, sd_pre, cutoff}")
    reliability = _number(doc, "reliability", file, key)
    if reliability is None or not 0 < reliability < 1:
        raise ConfigError(file, f"{key}.reliability", "must be a number in (0, 1)")
    sd_doc = doc.get("sd_pre", JT_SAMPLE)
    if sd_doc == JT_SAMPLE:
        sd_pre = None
    else:
        sd_pre = _number(doc, "sd_pre", file, key)
        if sd_pre is None or sd_pre <= 0:
            raise ConfigError(file, f"{key}.sd_pre", f"must be {JT_SAMPLE!r} or a positive number")
    cutoff_doc = doc.get("cutoff")
    if cutoff_doc == JT_CASENESS:
        if caseness is None:
            raise ConfigError(file, f"{key}.cutoff", "is 'caseness' but the instrument has none")
        return JacobsonTruax(
            reliability, sd_pre, float(caseness["threshold"]), caseness["operator"], JT_CASENESS
        )
    if not isinstance(cutoff_doc, dict):
        raise ConfigError(
            file,
            f"{key}.cutoff",
            "must be 'caseness' or {clinical_mean, clinical_sd, functional_mean, functional_sd}",
        )
    where = f"{key}.cutoff"
    norms: dict[str, float] = {}
    for name in ("clinical_mean", "clinical_sd", "functional_mean", "functional_sd"):
        value = _number(cutoff_doc, name, file, where)
        if value is None or name.endswith("_sd") and value <= 0:
            raise ConfigError(file, f"{where}.{name}", "must be a number (SDs positive)")
        norms[name] = value
    m_clin, sd_clin = norms["clinical_mean"], norms["clinical_sd"]
    m_func, sd_func = norms["functional_mean"], norms["functional_sd"]
    worse_is_higher = direction == "higher_is_worse"
    if (m_clin > m_func) != worse_is_higher:
        raise ConfigError(file, where, f"clinical_mean is on the wrong side for {direction}")
    # Jacobson & Truax criterion c: weighted midpoint of the two norm means.
    c = (sd_clin * m_func + sd_func * m_clin) / (sd_clin + sd_func)
    return JacobsonTruax(reliability, sd_pre, c, ">=" if worse_is_higher else "<", "c")


def _item_grid(doc: dict[str, Any], file: Path) -> tuple[float, float, float]:
    """Response scale: min < max, and a positive step that lands on max (0-10 by 0.1: VAS)."""
    item_min = float(_require(doc, "item_min", file, (int, float)))
    item_max = float(_require(doc, "item_max", file, (int, float)))
    if item_max <= item_min:
        raise ConfigError(file, "item_max", "must be greater than item_min")
    step = float(_require(doc, "item_step", file, (int, float)))
    if step <= 0:
        raise ConfigError(file, "item_step", "must be positive")
    if _decimals(step) > MAX_STEP_DECIMALS:
        raise ConfigError(file, "item_step", f"must have at most {MAX_STEP_DECIMALS} decimals")
    n_steps = (item_max - item_min) / step
    if abs(n_steps - round(n_steps)) > 1e-9:
        raise ConfigError(
            file, "item_step", f"{step:g} does not divide the range {item_min:g}-{item_max:g}"
        )
    return item_min, item_max, step


def _subscales(doc: Any, n_items: int, file: Path) -> dict[str, tuple[int, ...]]:
    """Subscale name -> item numbers; an item belongs to at most one subscale."""
    doc = doc or {}
    if not isinstance(doc, dict):
        raise ConfigError(file, "subscales", "must map subscale name to item numbers")
    subscales: dict[str, tuple[int, ...]] = {}
    owner: dict[int, str] = {}
    for name, items in doc.items():
        key = f"subscales.{name}"
        numbers = _item_numbers(items, n_items, file, key)
        if not numbers:
            raise ConfigError(file, key, "lists no items")
        for n in numbers:
            if n in owner:
                raise ConfigError(file, key, f"item {n} is already in subscale {owner[n]!r}")
            owner[n] = str(name)
        subscales[str(name)] = numbers
    return subscales


def _scoring(doc: dict[str, Any], file: Path) -> tuple[str, float]:
    """The scoring method and, for 'mean', its multiplier (CORE-10: 10 x mean item score)."""
    scoring = _one_of(doc.get("scoring"), SCORINGS, file, "scoring")
    multiplier = doc.get("score_multiplier")
    if multiplier is None:
        return scoring, 1.0
    if scoring != "mean":
        raise ConfigError(file, "score_multiplier", "applies only to scoring: mean")
    if not isinstance(multiplier, int | float) or isinstance(multiplier, bool) or multiplier <= 0:
        raise ConfigError(
            file, "score_multiplier", f"must be a positive number, got {multiplier!r}"
        )
    return scoring, float(multiplier)


def missing_rule(
    doc: dict[str, Any], n_items: int, subscales: dict[str, tuple[int, ...]], file: Path
) -> tuple[int, int, str]:
    """missing.{max_missing, subscale_max_missing, method}, checked against each other (also
    for a consortium's scoring_policy override, ingestion/scoring_policy.py)."""
    missing = _require(doc, "missing", file, dict)
    unknown = sorted(set(missing) - {"max_missing", "subscale_max_missing", "method", "rounding"})
    if unknown:
        raise ConfigError(file, "missing", f"unknown field(s) {unknown}")
    method = _one_of(missing.get("method"), MISSING_METHODS, file, "missing.method")
    max_missing = missing.get("max_missing")
    if not isinstance(max_missing, int) or isinstance(max_missing, bool):
        raise ConfigError(file, "missing.max_missing", f"must be int, got {max_missing!r}")
    if not 0 <= max_missing < n_items:
        raise ConfigError(file, "missing.max_missing", f"must be in 0..{n_items - 1}")
    sub_max = missing.get("subscale_max_missing", 0)
    if not isinstance(sub_max, int) or isinstance(sub_max, bool) or sub_max < 0:
        raise ConfigError(file, "missing.subscale_max_missing", "must be a whole number >= 0")
    if sub_max and not subscales:
        raise ConfigError(file, "missing.subscale_max_missing", "the instrument has no subscales")
    smallest = min((len(items) for items in subscales.values()), default=0)
    if subscales and sub_max >= smallest:
        raise ConfigError(
            file,
            "missing.subscale_max_missing",
            f"must be below the smallest subscale's {smallest} items",
        )
    if method == MISSING_NONE and (max_missing or sub_max):
        raise ConfigError(
            file,
            "missing.max_missing" if max_missing else "missing.subscale_max_missing",
            f"must be 0 when missing.method is {MISSING_NONE!r}",
        )
    if method == MISSING_SUBSCALE_ROUNDED:
        covered = {n for items in subscales.values() for n in items}
        loose = [n for n in range(1, n_items + 1) if n not in covered]
        if loose:
            raise ConfigError(
                file,
                "subscales",
                f"items {loose} are in no subscale, but missing.method "
                f"{MISSING_SUBSCALE_ROUNDED!r} fills a blank from its subscale",
            )
        if max_missing >= smallest:
            raise ConfigError(
                file,
                "missing.max_missing",
                f"must be below the smallest subscale's {smallest} items: a subscale left "
                f"blank has no mean to fill from under {MISSING_SUBSCALE_ROUNDED!r}",
            )
    return max_missing, sub_max, method


def _rater_roles(doc: dict[str, Any], file: Path) -> tuple[str, ...]:
    roles = _require(doc, "rater_roles", file, list)
    if not roles:
        raise ConfigError(file, "rater_roles", "must name at least one rater role")
    for role in roles:
        _one_of(role, RATER_ROLES, file, "rater_roles")
    if len(set(roles)) != len(roles):
        raise ConfigError(file, "rater_roles", "lists a role twice")
    return tuple(roles)


def parse_instrument(doc: Any, file: Path) -> Instrument:
    """Validate one instrument document; every problem names its key."""
    if not isinstance(doc, dict):
        raise ConfigError(file, "<root>", "must be a mapping")
    iid = _require(doc, "instrument_id", file, str)
    if file.stem != iid:
        raise ConfigError(file, "instrument_id", f"{iid!r} must equal the file name {file.stem!r}")
    n_items = _require(doc, "items", file, int)
    if n_items < 1:
        raise ConfigError(file, "items", "must be at least 1")
    item_min, item_max, step = _item_grid(doc, file)
    subscales = _subscales(doc.get("subscales"), n_items, file)
    max_missing, subscale_max_missing, missing_method = missing_rule(doc, n_items, subscales, file)
    rounding = _one_of(
        doc["missing"].get("rounding", ROUNDING_NONE), ROUNDINGS, file, "missing.rounding"
    )
    scoring, multiplier = _scoring(doc, file)
    caseness = doc.get("caseness")
    if caseness is not None:
        if not isinstance(caseness, dict):
            raise ConfigError(file, "caseness", "must be null or {operator, threshold}")
        _one_of(caseness.get("operator"), CASENESS_OPERATORS, file, "caseness.operator")
        if not isinstance(caseness.get("threshold"), int | float):
            raise ConfigError(file, "caseness.threshold", "must be a number")
    bands = tuple(
        Band(str(_require(b, "band", file, str)), float(_require(b, "min", file, (int, float))))
        for b in (doc.get("severity_bands") or [])
    )
    if [b.min for b in bands] != sorted({b.min for b in bands}):
        raise ConfigError(file, "severity_bands", "band minimums must be strictly increasing")
    rc = doc.get("reliable_change")
    if rc is not None and (not isinstance(rc, int | float) or rc <= 0):
        raise ConfigError(file, "reliable_change", "must be null or a positive number")
    roles = _rater_roles(doc, file)
    provenance = _require(doc, "provenance", file, dict)
    construct = _one_of(doc.get("construct"), CONSTRUCTS, file, "construct")
    direction = _one_of(doc.get("direction"), DIRECTIONS, file, "direction")
    concern = _alliance_concern(doc.get("alliance_concern"), construct, file)
    jt = _jacobson_truax(doc.get("jacobson_truax"), construct, direction, caseness, file)
    nhs_role = doc.get("nhs_talking_therapies")
    if nhs_role is not None:
        _one_of(nhs_role, NHS_TT_ROLES, file, "nhs_talking_therapies")
        if construct != "outcome" or caseness is None or rc is None:
            raise ConfigError(
                file,
                "nhs_talking_therapies",
                "needs an outcome instrument with caseness and reliable_change",
            )
    reverse_items = _item_numbers(doc.get("reverse_items") or [], n_items, file, "reverse_items")
    # Every constant a consortium may need to correct says where it comes from.
    for key, value in (
        ("alliance_concern", concern),
        ("jacobson_truax", jt),
        ("caseness", caseness),
        ("reliable_change", rc),
        ("reverse_items", reverse_items or None),
        ("missing", missing_method),
        ("scoring", None if scoring == "sum" else scoring),
    ):
        if value is not None:
            _require_provenance(provenance, key, file)
    return Instrument(
        instrument_id=iid,
        name=_require(doc, "name", file, str),
        construct=construct,
        rater_roles=roles,
        items=n_items,
        item_min=item_min,
        item_max=item_max,
        item_step=step,
        reverse_items=reverse_items,
        scoring=scoring,
        subscales=subscales,
        max_missing=max_missing,
        subscale_max_missing=subscale_max_missing,
        missing_method=missing_method,
        direction=direction,
        caseness_operator=caseness["operator"] if caseness else None,
        caseness_threshold=float(caseness["threshold"]) if caseness else None,
        severity_bands=bands,
        reliable_change=float(rc) if rc is not None else None,
        provenance={str(k): str(v) for k, v in provenance.items()},
        alliance_concern=concern,
        jacobson_truax=jt,
        nhs_talking_therapies=nhs_role,
        score_multiplier=multiplier,
        rounding=rounding,
    )


def load_registry(directory: Path | None = None) -> Registry:
    """Read every instrument file; the hash goes into release manifests as the rule-set version.

    $BORDIN_REGISTRY_DIR points a rebuild at the registry copy an old release carries.
    """
    directory = directory or Path(os.environ.get("BORDIN_REGISTRY_DIR", INSTRUMENTS_DIR))
    digest = hashlib.sha256()
    instruments: dict[str, Instrument] = {}
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise ConfigError(directory, "<directory>", "holds no instrument files (*.yml)")
    for file in files:
        raw = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(file, "<yaml>", f"is not valid YAML: {exc}") from exc
        instrument = parse_instrument(doc, file)
        instruments[instrument.instrument_id] = instrument
    _check_nhs_roles(instruments, directory)
    return Registry(instruments=instruments, sha256=digest.hexdigest())


def _check_nhs_roles(instruments: dict[str, Instrument], directory: Path) -> None:
    """NHS Talking Therapies pairs one depression and one anxiety measure: never two of a role."""
    seen: dict[str, str] = {}
    for iid, inst in sorted(instruments.items()):
        role = inst.nhs_talking_therapies
        if role is None:
            continue
        if role in seen:
            raise ConfigError(
                directory / f"{iid}.yml",
                "nhs_talking_therapies",
                f"{role!r} is already the role of {seen[role]}",
            )
        seen[role] = iid


@cache
def default_registry() -> Registry:
    return load_registry()


def instruments_table(registry: Registry) -> pa.Table:
    """One row per instrument: the constants dbt's scoring models join to."""
    rows = [
        {
            "instrument": i.instrument_id,
            "instrument_name": i.name,
            "construct": i.construct,
            "n_items": i.items,
            "item_min": i.item_min,
            "item_max": i.item_max,
            "item_step": i.item_step,
            "item_decimals": i.item_decimals,
            "total_min": i.total_min,
            "total_max": i.total_max,
            "scoring": i.scoring,
            "score_multiplier": i.score_multiplier,
            "max_missing": i.max_missing,
            "subscale_max_missing": i.subscale_max_missing,
            "missing_method": i.missing_method,
            "rounding": i.rounding,
            "direction": i.direction,
            "caseness_operator": i.caseness_operator,
            "caseness_threshold": i.caseness_threshold,
            "reliable_change": i.reliable_change,
            **_science_columns(i),
        }
        for i in registry.instruments.values()
    ]
    return pa.Table.from_pylist(rows, schema=_INSTRUMENTS_SCHEMA)


def _science_columns(i: Instrument) -> dict[str, Any]:
    """The optional science constants, flattened; null where the instrument has none."""
    concern, jt = i.alliance_concern, i.jacobson_truax
    return {
        "concern_below": concern.below if concern else None,
        "concern_drop_from_previous": concern.drop_from_previous if concern else None,
        "jt_reliability": jt.reliability if jt else None,
        "jt_sd_pre": jt.sd_pre if jt else None,
        "jt_cutoff": jt.cutoff if jt else None,
        "jt_cutoff_operator": jt.cutoff_operator if jt else None,
        "jt_cutoff_method": jt.cutoff_method if jt else None,
        "nhs_tt_role": i.nhs_talking_therapies,
    }


def items_table(registry: Registry) -> pa.Table:
    """One row per instrument item with its reverse key and subscale (null when none)."""
    rows = []
    for i in registry.instruments.values():
        subscale_of = {n: name for name, items in i.subscales.items() for n in items}
        for n in range(1, i.items + 1):
            rows.append(
                {
                    "instrument": i.instrument_id,
                    "item_number": n,
                    "is_reversed": n in i.reverse_items,
                    "subscale": subscale_of.get(n),
                }
            )
    return pa.Table.from_pylist(rows, schema=_ITEMS_SCHEMA)


def bands_table(registry: Registry) -> pa.Table:
    """Severity bands as half-open score intervals [min_score, next band's min)."""
    rows = []
    for i in registry.instruments.values():
        for rank, band in enumerate(i.severity_bands, start=1):
            upper = i.severity_bands[rank].min if rank < len(i.severity_bands) else None
            rows.append(
                {
                    "instrument": i.instrument_id,
                    "band_rank": rank,
                    "band": band.band,
                    "min_score": band.min,
                    "max_score_exclusive": upper,
                }
            )
    return pa.Table.from_pylist(rows, schema=_BANDS_SCHEMA)


_INSTRUMENTS_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("instrument_name", pa.string()),
        ("construct", pa.string()),
        ("n_items", pa.int32()),
        ("item_min", pa.float64()),
        ("item_max", pa.float64()),
        ("item_step", pa.float64()),
        ("item_decimals", pa.int32()),
        ("total_min", pa.float64()),
        ("total_max", pa.float64()),
        ("scoring", pa.string()),
        ("score_multiplier", pa.float64()),
        ("max_missing", pa.int32()),
        ("subscale_max_missing", pa.int32()),
        ("missing_method", pa.string()),
        ("rounding", pa.string()),
        ("direction", pa.string()),
        ("caseness_operator", pa.string()),
        ("caseness_threshold", pa.float64()),
        ("reliable_change", pa.float64()),
        ("concern_below", pa.float64()),
        ("concern_drop_from_previous", pa.float64()),
        ("jt_reliability", pa.float64()),
        ("jt_sd_pre", pa.float64()),
        ("jt_cutoff", pa.float64()),
        ("jt_cutoff_operator", pa.string()),
        ("jt_cutoff_method", pa.string()),
        ("nhs_tt_role", pa.string()),
    ]
)
_ITEMS_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("item_number", pa.int32()),
        ("is_reversed", pa.bool_()),
        ("subscale", pa.string()),
    ]
)
_BANDS_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("band_rank", pa.int32()),
        ("band", pa.string()),
        ("min_score", pa.float64()),
        ("max_score_exclusive", pa.float64()),
    ]
)
