"""The consortium's scoring policy: per-instrument overrides of the registry's missing-item rules.

The registry (`ingestion/instruments/*.yml`) holds each instrument's published rule as the
default. A consortium whose protocol differs (no missing item allowed on an alliance measure,
PHQ-9 prorated and rounded half up) says so in `consortium.yml` under `scoring_policy:`, per
instrument, and the policy in force is the registry with those overrides applied. Intake
(`too_many_missing`) and dbt (`stg_registry__instruments`) both read that one merged registry,
so an administration is never accepted under one rule and scored under another, and the
release records it (`rules/scoring_policy.json`, manifest `scoring_policy`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestion.config_errors import ConfigError
from ingestion.registry import ROUNDINGS, Instrument, Registry, missing_rule

# The keys an instrument's entry may set; `source` cites the protocol (free text, never scored).
POLICY_KEYS = ("max_missing", "subscale_max_missing", "method", "rounding", "source")
REGISTRY, CONSORTIUM = "registry", "consortium"


@dataclass(frozen=True)
class Override:
    """What the consortium changes for one instrument; None keeps the registry's value."""

    max_missing: int | None = None
    subscale_max_missing: int | None = None
    method: str | None = None
    rounding: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ScoringPolicy:
    overrides: dict[str, Override] = dataclasses.field(default_factory=dict)

    def apply(self, registry: Registry) -> Registry:
        """The registry in force: every override applied (already validated on load)."""
        if not self.overrides:
            return registry
        instruments = dict(registry.instruments)
        for iid, o in self.overrides.items():
            base = instruments[iid]
            max_missing, sub, method = _merged(base, o)
            instruments[iid] = dataclasses.replace(
                base,
                max_missing=max_missing,
                subscale_max_missing=sub,
                missing_method=method,
                rounding=_pick(o.rounding, base.rounding),
            )
        return dataclasses.replace(registry, instruments=instruments)

    def in_force(self, registry: Registry) -> list[dict[str, Any]]:
        """Per instrument, the rule scoring uses and who set it: what a release records."""
        applied = self.apply(registry)
        rows = []
        for iid in sorted(applied.instruments):
            inst = applied.get(iid)
            override = self.overrides.get(iid)
            rows.append(
                {
                    "instrument": iid,
                    "max_missing": inst.max_missing,
                    "subscale_max_missing": inst.subscale_max_missing,
                    "method": inst.missing_method,
                    "rounding": inst.rounding,
                    "set_by": CONSORTIUM if override else REGISTRY,
                    "overridden": sorted(
                        k
                        for k in POLICY_KEYS
                        if k != "source" and override and getattr(override, k) is not None
                    ),
                    "source": (override.source if override else None)
                    or registry.get(iid).provenance.get("missing"),
                }
            )
        return rows


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _merged(base: Instrument, o: Override) -> tuple[Any, Any, Any]:
    """(max_missing, subscale_max_missing, method) in force. `method: none` alone means no
    blank anywhere; a subscale the consortium does not set never allows more blanks than the
    whole form (a protocol allowing no missing WAI-SR item scores no subscale with one)."""
    method = _pick(o.method, base.missing_method)
    max_missing = _pick(o.max_missing, 0 if o.method == "none" else base.max_missing)
    sub = o.subscale_max_missing
    if sub is None:
        sub = 0 if o.method == "none" else base.subscale_max_missing
        if isinstance(max_missing, int) and not isinstance(max_missing, bool):
            sub = min(sub, max_missing)
    return max_missing, sub, method


def parse_scoring_policy(doc: Any, file: Path, registry: Registry) -> ScoringPolicy:
    """`scoring_policy: {<instrument>: {max_missing, subscale_max_missing, method, rounding,
    source}}`; each entry is checked as the registry checks its own `missing` block, so a
    policy that cannot score (prorating a VAS, a subscale fill with too many blanks) is an
    error naming the key."""
    if doc is None:
        return ScoringPolicy()
    if not isinstance(doc, dict):
        raise ConfigError(file, "scoring_policy", "must map instrument ids to their rules")
    overrides: dict[str, Override] = {}
    for iid, entry in doc.items():
        where = f"scoring_policy.{iid}"
        if iid not in registry.instruments:
            known = sorted(registry.instruments)
            near = difflib.get_close_matches(str(iid), known, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`? " if near else ""
            raise ConfigError(
                file, where, f"is not in the instrument registry; {hint}(known: {', '.join(known)})"
            )
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(file, where, f"must set one or more of {', '.join(POLICY_KEYS)}")
        unknown = sorted(str(k) for k in entry if k not in POLICY_KEYS)
        if unknown:
            near = difflib.get_close_matches(unknown[0], POLICY_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`? " if near else ""
            raise ConfigError(
                file,
                f"{where}.{unknown[0]}",
                f"is not a known key; {hint}(known: {', '.join(POLICY_KEYS)})",
            )
        overrides[str(iid)] = _check(registry, str(iid), _override(entry, file, where), file, where)
    return ScoringPolicy(overrides)


def _override(entry: dict[str, Any], file: Path, where: str) -> Override:
    rounding = entry.get("rounding")
    if rounding is not None and rounding not in ROUNDINGS:
        raise ConfigError(
            file, f"{where}.rounding", f"must be one of {sorted(ROUNDINGS)}, got {rounding!r}"
        )
    source = entry.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise ConfigError(file, f"{where}.source", "must cite the protocol as text")
    return Override(
        max_missing=entry.get("max_missing"),
        subscale_max_missing=entry.get("subscale_max_missing"),
        method=entry.get("method"),
        rounding=rounding,
        source=source.strip() if source else None,
    )


def _check(registry: Registry, iid: str, o: Override, file: Path, where: str) -> Override:
    """The merged rule must pass the registry's own missing-rule checks."""
    base = registry.get(iid)
    max_missing, sub, method = _merged(base, o)
    merged = {"max_missing": max_missing, "method": method}
    if base.subscales or sub:
        merged["subscale_max_missing"] = sub
    try:
        missing_rule({"missing": merged}, base.items, base.subscales, file)
    except ConfigError as exc:
        key = exc.key.removeprefix("missing.").replace("subscales", "method")
        raise ConfigError(file, f"{where}.{key}", f"{exc.problem} (for {iid})") from None
    return o
