"""The instrument registry: scoring constants as data, read by ingestion and by dbt alike.

Each instrument is one YAML file in `ingestion/instruments/`; adding an instrument adds a file,
not code. Files are validated on load so a wrong constant fails loudly, naming file and key.
"""

from __future__ import annotations

import hashlib
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
SCORINGS = {"sum"}
MISSING_METHODS = {"prorate_mean"}
RATER_ROLES = {"client", "therapist", "observer"}
CASENESS_OPERATORS = {">=", "<"}


@dataclass(frozen=True)
class Band:
    band: str
    min: float


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

    @property
    def total_min(self) -> float:
        return self.items * self.item_min

    @property
    def total_max(self) -> float:
        return self.items * self.item_max


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
    item_min = float(_require(doc, "item_min", file, (int, float)))
    item_max = float(_require(doc, "item_max", file, (int, float)))
    if item_max <= item_min:
        raise ConfigError(file, "item_max", "must be greater than item_min")
    step = float(_require(doc, "item_step", file, (int, float)))
    if step <= 0:
        raise ConfigError(file, "item_step", "must be positive")
    subscales_doc = doc.get("subscales") or {}
    if not isinstance(subscales_doc, dict):
        raise ConfigError(file, "subscales", "must map subscale name to item numbers")
    subscales = {
        str(name): _item_numbers(items, n_items, file, f"subscales.{name}")
        for name, items in subscales_doc.items()
    }
    missing = _require(doc, "missing", file, dict)
    max_missing = _require(missing, "max_missing", file, int)
    if not 0 <= max_missing < n_items:
        raise ConfigError(file, "missing.max_missing", f"must be in 0..{n_items - 1}")
    subscale_max_missing = missing.get("subscale_max_missing", 0)
    if not isinstance(subscale_max_missing, int) or subscale_max_missing < 0:
        raise ConfigError(file, "missing.subscale_max_missing", "must be a whole number >= 0")
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
    roles = _require(doc, "rater_roles", file, list)
    for role in roles:
        _one_of(role, RATER_ROLES, file, "rater_roles")
    provenance = _require(doc, "provenance", file, dict)
    return Instrument(
        instrument_id=iid,
        name=_require(doc, "name", file, str),
        construct=_one_of(doc.get("construct"), CONSTRUCTS, file, "construct"),
        rater_roles=tuple(roles),
        items=n_items,
        item_min=item_min,
        item_max=item_max,
        item_step=step,
        reverse_items=_item_numbers(doc.get("reverse_items") or [], n_items, file, "reverse_items"),
        scoring=_one_of(doc.get("scoring"), SCORINGS, file, "scoring"),
        subscales=subscales,
        max_missing=max_missing,
        subscale_max_missing=subscale_max_missing,
        missing_method=_one_of(missing.get("method"), MISSING_METHODS, file, "missing.method"),
        direction=_one_of(doc.get("direction"), DIRECTIONS, file, "direction"),
        caseness_operator=caseness["operator"] if caseness else None,
        caseness_threshold=float(caseness["threshold"]) if caseness else None,
        severity_bands=bands,
        reliable_change=float(rc) if rc is not None else None,
        provenance={str(k): str(v) for k, v in provenance.items()},
    )


def load_registry(directory: Path = INSTRUMENTS_DIR) -> Registry:
    """Read every instrument file; the hash goes into release manifests as the rule-set version."""
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
    return Registry(instruments=instruments, sha256=digest.hexdigest())


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
            "total_min": i.total_min,
            "total_max": i.total_max,
            "scoring": i.scoring,
            "max_missing": i.max_missing,
            "subscale_max_missing": i.subscale_max_missing,
            "missing_method": i.missing_method,
            "direction": i.direction,
            "caseness_operator": i.caseness_operator,
            "caseness_threshold": i.caseness_threshold,
            "reliable_change": i.reliable_change,
        }
        for i in registry.instruments.values()
    ]
    return pa.Table.from_pylist(rows, schema=_INSTRUMENTS_SCHEMA)


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
        ("total_min", pa.float64()),
        ("total_max", pa.float64()),
        ("scoring", pa.string()),
        ("max_missing", pa.int32()),
        ("subscale_max_missing", pa.int32()),
        ("missing_method", pa.string()),
        ("direction", pa.string()),
        ("caseness_operator", pa.string()),
        ("caseness_threshold", pa.float64()),
        ("reliable_change", pa.float64()),
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
