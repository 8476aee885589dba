"""The release gate: validate the dbt marts with real Great Expectations before publishing.

GX 1.24 cannot validate DuckDB through SQL (it closes the connection before fetching), and a
whole mart in pandas grows with the consortium. So the gate validates bounded batches pulled
over one read-only connection (expectations/views.py: which batch serves which expectation,
expectations/sources.py: how it is read), through one GX Checkpoint per mart and view, and
combines the batch verdicts. With a results folder, GX's file context stores every validation
result and builds Data Docs there (restricted: stored results may quote values).

The checks live in a declarative YAML suite (`suites/marts.yml`) so a consortium can add its
own without code. Statuses follow OHDSI DataQualityDashboard semantics: an expectation
that errors blocks the release like one that fails, and one with no applicable rows is
'not_applicable', never 'passed'.
"""

from __future__ import annotations

import os

# Set before GX is imported: GX reads these at import/context time, and offline it must not wait.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Mapping  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from expectations import EXTRA_ENV, views  # noqa: E402
from expectations.sources import (  # noqa: E402
    DEFAULT_CHUNK_ROWS,
    SITE_COLUMN,
    DuckDBSource,
    FrameSource,
    MartSource,
    partitions_for,
)
from ingestion.config_errors import ConfigError  # noqa: E402

DEFAULT_SUITE = Path(__file__).resolve().parent / "suites" / "marts.yml"
CHUNK_ROWS_ENV = "BORDIN_GATE_CHUNK_ROWS"
GATE_RUNS_KEPT = 7  # gate runs whose stored GX results and Data Docs pages are kept

# The columns each mart must have (names fixed; dbt may add more). The suite's column checks
# repeat them, and registry ranges apply only to marts with `instrument` and `total`.
MART_COLUMNS: dict[str, tuple[str, ...]] = {
    "fct_alliance_session": (
        "site_id",
        "client_pid",
        "therapist_pid",
        "session_number",
        "instrument",
        "rater_role",
        "total",
        "goal",
        "task",
        "bond",
        "items_answered",
        "pomp_total",
        "rupture_k1",
        "rupture_k2",
        "session_day",
    ),
    "fct_outcome_session": (
        "site_id",
        "client_pid",
        "session_number",
        "instrument",
        "total",
        "severity_band",
        "at_caseness",
        "direction",
    ),
    "fct_episode_outcome": (
        "site_id",
        "client_pid",
        "instrument",
        "baseline_score",
        "final_score",
        "change",
        "reliable_improvement",
        "reliable_deterioration",
        "n_scored_sessions",
        "jt_rci",
        "jt_category",
        "n_sudden_gains",
        "n_sudden_losses",
    ),
    "fct_episode": (
        "site_id",
        "client_pid",
        "therapist_pid",
        "n_sessions_attended",
        "finished_treatment",
        "dropout_early",
        "dropout_below_dose",
        "early_alliance_mean",
        "early_alliance_session",
        "n_ruptures_k1",
        "n_ruptures_k2",
        "nhs_caseness_start",
        "nhs_recovery",
        "nhs_reliable_improvement",
        "nhs_reliable_deterioration",
    ),
    "fct_sudden_gain": (
        "site_id",
        "client_pid",
        "instrument",
        "kind",
        "pregain_session",
        "postgain_session",
        "magnitude",
        "n_pre",
        "n_post",
    ),
    "mart_alliance_outcome_site": (
        "site_id",
        "alliance_instrument",
        "outcome_instrument",
        "n",
        "r",
        "fisher_z",
        "ci_low",
        "ci_high",
        "rater_role",
        "is_primary",
        "r_residualized",
    ),
    "mart_alliance_outcome_pooled": (
        "method",
        "k_sites",
        "n_clients",
        "r",
        "ci_low",
        "ci_high",
        "tau2",
        "i2",
        "q",
        "scope",
        "rater_role",
        "correlation_type",
        "pi_low",
        "pi_high",
    ),
    "mart_alliance_outcome_therapist": (
        "site_id",
        "therapist_pid",
        "n_clients",
        "mean_early_alliance",
        "mean_improvement",
        "site_between_therapist_r",
    ),
    "mart_site_quality": (
        "site_id",
        "small_cell_threshold",
        "n_clients",
        "n_finished_treatment",
        "n_nhs_recovered",
        "nhs_recovery_rate",
        "n_clients_rupture_k1",
        "rupture_rate_k1",
        "n_quarantined",
        "suppressed_cells",
    ),
    "mart_site_intake": (
        "site_id",
        "small_cell_threshold",
        "files_delivered",
        "files_ingested",
        "files_rejected",
        "rows_in",
        "administrations_offered",
        "administrations_accepted",
        "administrations_quarantined",
        "administrations_not_administered",
        "administrations_unaccounted",
        "events_withdrawn",
        "first_logical_date",
        "last_logical_date",
        "suppressed_cells",
    ),
}
MARTS: tuple[str, ...] = tuple(MART_COLUMNS)
CATEGORIES = frozenset({"conformance", "completeness", "plausibility"})
STATUSES: tuple[str, ...] = ("passed", "failed", "error", "not_applicable")

_ENTRY_KEYS = frozenset({"type", "kwargs", "id", "category", "why"})
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
_INSTRUMENT_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
# Kwargs the gate owns: `meta` carries our id, the rest would change how results are reported.
_RESERVED_KWARGS = frozenset(
    {"id", "meta", "batch_id", "rendered_content", "result_format", "catch_exceptions", "windows"}
)
_META_KEY = "bordin_id"


def _expectation_classes() -> dict[str, type[gxe.Expectation]]:
    """Map GX's snake_case expectation type to its class, from GX's own public catalogue."""
    found: dict[str, type[gxe.Expectation]] = {}
    for obj in vars(gxe).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, gxe.Expectation)
            and obj is not gxe.Expectation
            and isinstance(getattr(obj, "expectation_type", None), str)
        ):
            found[obj.expectation_type] = obj
    return found


EXPECTATION_TYPES: dict[str, type[gxe.Expectation]] = _expectation_classes()


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on one mart, in the gate's own terms (not GX's)."""

    mart: str
    id: str
    type: str
    category: str
    status: str  # 'passed' | 'failed' | 'error' | 'not_applicable'
    observed: str | None
    message: str | None
    unexpected: int | None = None  # failed row-level checks: how many rows
    sites: tuple[str, ...] | None = None  # failed checks: the sites whose rows failed, if known

    def release_line(self) -> dict[str, Any]:
        """This outcome as the release may show it: counts and site ids, never row values."""
        return {
            "rule": f"{self.mart}.{self.id}",
            "category": self.category,
            "status": self.status,
            "observed": self.observed,
            "unexpected_rows": self.unexpected,
            "sites_affected": list(self.sites) if self.sites is not None else None,
            "message": self.message,
        }


@dataclass(frozen=True)
class GateResult:
    """All outcomes of one gate run; a release is published only if `success`."""

    outcomes: list[ExpectationOutcome]
    suite_sha256: str | None = None
    gx_version: str = field(default=gx.__version__)
    data_docs: str | None = None  # index.html of the Data Docs (restricted area), if built
    batches: int = 0  # bounded batches validated

    @property
    def success(self) -> bool:
        """No failure and no error; an empty run proves nothing, so it does not pass either."""
        return bool(self.outcomes) and all(
            o.status in ("passed", "not_applicable") for o in self.outcomes
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts for the release record and the run log."""
        by_mart: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            counts = by_mart.setdefault(o.mart, dict.fromkeys(STATUSES, 0))
            counts[o.status] += 1
        status_counts = Counter(o.status for o in self.outcomes)
        return {
            "success": self.success,
            "total": len(self.outcomes),
            "by_status": {s: status_counts.get(s, 0) for s in STATUSES},
            "by_mart": by_mart,
            "problems": [
                {"mart": o.mart, "id": o.id, "status": o.status, "message": o.message}
                for o in self.outcomes
                if o.status in ("failed", "error")
            ],
            "checks": [o.release_line() for o in self.outcomes],
            "batches": self.batches,
            "gx_version": self.gx_version,
            "suite_sha256": self.suite_sha256,
        }


# --------------------------------------------------------------------------- suite loading


def _problem(source: str, mart: str, eid: str, problem: str) -> ValueError:
    return ValueError(f"{source}: {mart}: {eid}: {problem}")


def _check_entry(entry: Any, source: str, mart: str, index: int) -> dict[str, Any]:
    """Validate one expectation entry, including building it in GX, so bad config fails on load."""
    if not isinstance(entry, Mapping):
        raise _problem(source, mart, f"#{index}", "entry must be a mapping")
    eid = entry.get("id")
    if not isinstance(eid, str) or not _ID_RE.match(eid):
        shown = f"#{index}" if not isinstance(eid, str) else eid
        raise _problem(source, mart, shown, f"id must match {_ID_RE.pattern}, got {eid!r}")
    missing = sorted(_ENTRY_KEYS - set(entry))
    if missing:
        raise _problem(source, mart, eid, f"missing field(s) {missing}")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise _problem(source, mart, eid, f"unknown field(s) {unknown}")
    etype, kwargs = entry["type"], entry["kwargs"]
    if etype not in EXPECTATION_TYPES:
        raise _problem(source, mart, eid, f"unknown expectation type {etype!r}")
    if views.view_of(etype) is None:
        raise _problem(
            source,
            mart,
            eid,
            f"{etype} cannot be checked in bounded memory by the gate (it needs the whole "
            "column at once); use a row-level, uniqueness, min/max, distinct-set or table check",
        )
    if entry["category"] not in CATEGORIES:
        raise _problem(
            source,
            mart,
            eid,
            f"category must be one of {sorted(CATEGORIES)}, got {entry['category']!r}",
        )
    if not isinstance(entry["why"], str) or not entry["why"].strip():
        raise _problem(source, mart, eid, "why must be a non-empty string")
    if not isinstance(kwargs, Mapping):
        raise _problem(source, mart, eid, "kwargs must be a mapping")
    reserved = sorted(_RESERVED_KWARGS & set(kwargs))
    if reserved:
        raise _problem(source, mart, eid, f"kwargs {reserved} are set by the gate")
    fields = EXPECTATION_TYPES[etype].__fields__
    required = sorted(n for n, f in fields.items() if f.required and n not in kwargs)
    if required:
        raise _problem(source, mart, eid, f"{etype} is missing required kwargs {required}")
    not_fields = sorted(set(kwargs) - set(fields))
    if not_fields:
        raise _problem(source, mart, eid, f"{etype} has no kwargs {not_fields}")
    try:
        _build(etype, dict(kwargs), eid)
    except Exception as exc:  # GX's own validation: wrong types, contradictory bounds, ...
        raise _problem(source, mart, eid, f"invalid kwargs: {_one_line(exc)}") from exc
    return {
        "type": etype,
        "kwargs": dict(kwargs),
        "id": eid,
        "category": entry["category"],
        "why": entry["why"].strip(),
    }


def check_suite(doc: Any, source: str) -> dict[str, list[dict[str, Any]]]:
    """Validate a suite document ({mart: [entry, ...]}); `source` names it in every error."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ValueError(f"{source}: the suite must be a mapping of mart name to expectations")
    suite: dict[str, list[dict[str, Any]]] = {}
    for mart, entries in doc.items():
        if mart not in MART_COLUMNS:
            raise ValueError(f"{source}: {mart}: unknown mart (known: {', '.join(MARTS)})")
        if not isinstance(entries, list):
            raise ValueError(f"{source}: {mart}: expectations must be a list")
        suite[mart] = [_check_entry(e, source, mart, i) for i, e in enumerate(entries)]
    return suite


def merge_suites(
    base: Mapping[str, list[dict[str, Any]]],
    extra: Mapping[str, list[dict[str, Any]]],
    source: str,
) -> dict[str, list[dict[str, Any]]]:
    """Append `extra`'s expectations to `base`'s; ids stay unique so every outcome is traceable."""
    seen = {e["id"] for entries in base.values() for e in entries}
    merged = {mart: list(entries) for mart, entries in base.items()}
    for mart, entries in extra.items():
        for entry in entries:
            if entry["id"] in seen:
                raise _problem(source, mart, entry["id"], "duplicate expectation id")
            seen.add(entry["id"])
            merged.setdefault(mart, []).append(entry)
    return merged


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read suite: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {_one_line(exc)}") from exc


def load_suite(path: Path | None = None, extra: Path | None = None) -> dict[str, list[dict]]:
    """Load and validate the suite, then append a second file's expectations if one is named.

    `extra` defaults to the file in $BORDIN_EXTRA_EXPECTATIONS: consortia add checks (and tests
    plant failing ones) without editing the shipped suite.
    """
    path = Path(path) if path is not None else DEFAULT_SUITE
    suite = merge_suites({}, check_suite(_read_yaml(path), str(path)), str(path))
    if not any(suite.values()):
        raise ValueError(f"{path}: the suite has no expectations")
    if extra is None and os.environ.get(EXTRA_ENV):
        extra = Path(os.environ[EXTRA_ENV])
    if extra is not None:
        extra = Path(extra)
        suite = merge_suites(suite, check_suite(_read_yaml(extra), str(extra)), str(extra))
    return suite


def registry_range_expectations(
    ranges: Mapping[str, Mapping[str, tuple[float, float]]],
) -> dict[str, list[dict[str, Any]]]:
    """Suite entries bounding `total` per instrument, from the scoring registry's min/max.

    The suite cannot know the instruments, so these are generated: one between-check per
    mart + instrument, restricted by a GX 1.x Condition (`Column("instrument") == id`, stored as
    its dict form). String row_conditions with condition_parser='pandas' are deprecated since
    GX 1.9 and would bypass GX's own parsing.
    """
    suite: dict[str, list[dict[str, Any]]] = {}
    for mart in sorted(ranges):
        columns = MART_COLUMNS.get(mart, ())
        if "total" not in columns or "instrument" not in columns:
            raise ValueError(f"range_expectations: {mart}: not a mart with instrument and total")
        for instrument in sorted(ranges[mart]):
            low, high = ranges[mart][instrument]
            if not _INSTRUMENT_RE.match(instrument):
                raise ValueError(f"range_expectations: {mart}: bad instrument id {instrument!r}")
            if not low <= high:
                raise ValueError(f"range_expectations: {mart}: {instrument}: min > max")
            suite.setdefault(mart, []).append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {
                        "column": "total",
                        "min_value": float(low),
                        "max_value": float(high),
                        "row_condition": {
                            "type": "comparison",
                            "column": {"name": "instrument"},
                            "operator": "==",
                            "parameter": instrument,
                        },
                    },
                    "id": f"range_total_{mart}_{instrument}",
                    "category": "plausibility",
                    "why": f"{instrument} totals lie in the registry's scoring range "
                    f"[{low:g}, {high:g}]",
                }
            )
    return suite


# --------------------------------------------------------------------------- validation


def _build(etype: str, kwargs: dict[str, Any], eid: str) -> gxe.Expectation:
    return EXPECTATION_TYPES[etype](**kwargs, meta={_META_KEY: eid})


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """numpy scalars -> Python, so observed values print as 3 and not np.int64(3)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, list | tuple | dict) else value


def _classify(result: Any, entry: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(status, observed, message) for one GX result.

    Observed never echoes row values: a failing pid check would otherwise copy a leaked
    identifier into the release log. It reports counts, or aggregate numbers and column names.
    """
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return "error", None, _one_line(info.get("exception_message") or "GX raised")
    # GX keys exception_info by metric when several metrics raised.
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return "error", None, _one_line(value.get("exception_message") or "GX raised")
    res = dict(result.result or {})
    observed: str | None = None
    applicable: int | None = None
    if "element_count" in res:
        applicable = int(res["element_count"] or 0) - int(res.get("missing_count") or 0)
        unexpected = int(res.get("unexpected_count") or 0)
        observed = f"{unexpected} unexpected of {applicable} applicable rows"
    elif "unexpected_count" in res:  # set-style aggregates (GX 1.24 leaves observed_value None)
        observed = (
            f"{int(res['unexpected_count'] or 0)} unexpected, "
            f"{int(res.get('missing_count') or 0)} missing value(s)"
        )
    elif "observed_value" in res:
        value = _plain(res["observed_value"])
        if value is None:  # an aggregate (max, mean, ...) over no non-null values
            applicable = 0
        elif isinstance(value, bool | int | float):
            observed = f"observed {value!r}"
        elif entry["type"].startswith("expect_table_columns"):
            observed = f"observed columns {sorted(map(str, value))}"
        elif isinstance(value, list | tuple | set):
            observed = f"observed {len(value)} value(s)"
    if applicable == 0:
        return "not_applicable", observed, "no applicable rows"
    if result.success:
        return "passed", observed, None
    return "failed", observed, entry["why"]


def _quiet_gx_loggers() -> None:
    """Raise GX's loggers to WARNING: several set themselves to INFO at import."""
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("great_expectations")]
    for name in ["great_expectations", *names]:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _context(results_dir: Path | None) -> Any:
    """A GX context with no progress bars: file-backed under `results_dir` (suites, checkpoints,
    stored validation results and Data Docs persist there), or in memory when None."""
    _quiet_gx_loggers()
    if results_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        results_dir.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(results_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _suite_sha256(suite: Mapping[str, Any]) -> str:
    canonical = json.dumps(suite, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Runner:
    """One gate run: one GX Checkpoint per mart and view, run once per bounded batch.

    Every batch's validation result is stored by GX (in the file context: under
    uncommitted/validations/), each under its own run name, so nothing overwrites another.
    """

    def __init__(self, context: Any, chunk_rows: int, run_name: str) -> None:
        self.context = context
        self.chunk_rows = chunk_rows
        self.run_name = run_name
        # One run time for every batch of this gate run: stored results group by it.
        self.run_time = datetime.now(UTC)
        self.datasource = context.data_sources.add_or_update_pandas(name="bordin_marts")
        self.batches = 0
        self._probe: Any = None

    def checkpoint(self, name: str, built: list[gxe.Expectation]) -> Any:
        suite = self.context.suites.add_or_update(
            gx.ExpectationSuite(name=name, expectations=[e.copy() for e in built])
        )
        batch_definition = self.datasource.add_dataframe_asset(
            name=name
        ).add_batch_definition_whole_dataframe(name)
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        return self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name, validation_definitions=[definition], actions=[], result_format="BASIC"
            )
        )

    def validate_one(self, expectation: gxe.Expectation, frame: pd.DataFrame) -> Any:
        """One expectation on one frame, not stored: used only to name the failing sites."""
        if self._probe is None:
            self._probe = self.datasource.add_dataframe_asset(
                name="bordin_site_probe"
            ).add_batch_definition_whole_dataframe("bordin_site_probe")
        batch = self._probe.get_batch(batch_parameters={"dataframe": frame})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return batch.validate(expectation, result_format="BASIC")

    def run(self, checkpoint: Any, frame: pd.DataFrame, label: str) -> dict[str, Any]:
        """Validate one batch; results keyed by the gate's expectation id."""
        self.batches += 1
        run_id = RunIdentifier(run_name=f"{self.run_name}:{label}", run_time=self.run_time)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            outcome = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        found: dict[str, Any] = {}
        for validation in outcome.run_results.values():
            for res in validation.results:
                found[(res.expectation_config.meta or {}).get(_META_KEY)] = res
        return found


def _batches(
    source: MartSource, mart: str, view: str, columns: tuple[str, ...], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Bounded frames for one view of one mart (expectations/sources.py). Row and key batches
    carry site_id too, so a failure can be traced to its sites."""
    if view == views.SHAPE:
        yield source.shape(mart)
    elif view == views.COUNT:
        yield pd.DataFrame(index=pd.RangeIndex(source.row_count(mart)))
    elif view == views.DISTINCT:
        yield source.distinct(mart, columns)
    elif view == views.ROWS:
        yield from source.rows(mart, _with_site(columns))
    else:  # KEYS: rows with equal keys hash to the same partition
        parts = partitions_for(source.row_count(mart), chunk_rows)
        yield from source.key_partitions(mart, _with_site(columns), columns, parts)


def _with_site(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*columns, SITE_COLUMN)))


def _failing_sites(
    runner: _Runner, view: str, entry: dict, built: Any, frame: pd.DataFrame
) -> set[str] | None:
    """The sites whose rows fail `entry` in this batch: GX re-run on each site's rows.

    Only for failing batches, so a passing gate pays nothing. None when the batch has no
    site_id, or for a key without site_id (a duplicate may span sites: no one site to name).
    """
    if SITE_COLUMN not in frame.columns or view not in (views.ROWS, views.KEYS):
        return None
    if view == views.KEYS and SITE_COLUMN not in views.key_columns(entry["kwargs"]):
        return None
    sites: set[str] = set()
    for site, rows in frame.groupby(SITE_COLUMN, dropna=False, sort=True):
        result = runner.validate_one(built, rows)
        if views.batch_failed(result):
            sites.add("(no site)" if pd.isna(site) else str(site))
    return sites


def _plan(entries: list[dict[str, Any]]) -> dict[tuple[str, tuple[str, ...]], list[dict]]:
    """Group a mart's expectations by the view (and columns) they are validated on."""
    rows_columns: list[str] = []
    plan: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for entry in entries:
        view = views.view_for(entry["type"], entry["kwargs"]) or views.ROWS
        if view == views.ROWS:
            rows_columns.extend(views.columns_of(entry["kwargs"]))
            plan.setdefault((views.ROWS, ()), []).append(entry)
        elif view in (views.KEYS, views.DISTINCT):
            plan.setdefault((view, views.key_columns(entry["kwargs"])), []).append(entry)
        else:
            plan.setdefault((view, ()), []).append(entry)
    if (views.ROWS, ()) in plan:
        plan[(views.ROWS, tuple(dict.fromkeys(rows_columns)))] = plan.pop((views.ROWS, ()))
    return plan


def _validate_mart(
    runner: _Runner, mart: str, frame: Any, entries: list[dict[str, Any]]
) -> list[ExpectationOutcome]:
    """Validate one in-memory mart (validate_frames); the same bounded path as run_gate."""
    if not isinstance(frame, pd.DataFrame):
        reason = f"mart {mart!r} not found in the database"
        if frame is not None:
            reason = f"mart {mart!r} is a {type(frame).__name__}, not a DataFrame"
        return [_outcome(mart, e, "error", None, reason) for e in entries]
    return _validate_source_mart(
        runner, mart, FrameSource({mart: frame}, runner.chunk_rows), entries
    )


def _outcome(
    mart: str,
    entry: dict[str, Any],
    status: str,
    observed: str | None,
    message: str | None,
    unexpected: int | None = None,
    sites: tuple[str, ...] | None = None,
) -> ExpectationOutcome:
    return ExpectationOutcome(
        mart,
        entry["id"],
        entry["type"],
        entry["category"],
        status,
        observed,
        message,
        unexpected,
        sites,
    )


def _validate_source_mart(
    runner: _Runner, mart: str, source: MartSource, entries: list[dict[str, Any]]
) -> list[ExpectationOutcome]:
    """Run one mart's expectations view by view, batch by batch, and combine the verdicts."""
    if not source.has(mart):
        reason = f"mart {mart!r} not found in the database"
        return [_outcome(mart, e, "error", None, reason) for e in entries]

    built: dict[str, gxe.Expectation] = {}
    errors: dict[str, str] = {}
    for entry in entries:
        try:
            built[entry["id"]] = _build(entry["type"], dict(entry["kwargs"]), entry["id"])
        except Exception as exc:  # a hand-built suite can hold anything
            errors[entry["id"]] = f"cannot build expectation: {_one_line(exc)}"

    combined: dict[str, views.Combined] = {}
    for (view, columns), group in _plan([e for e in entries if e["id"] in built]).items():
        shown = f"__{'_'.join(columns)}" if columns and view != views.ROWS else ""
        name = f"bordin_{mart}__{view}{shown}"
        name = (
            name if len(name) <= 120 else name[:100] + hashlib.sha256(name.encode()).hexdigest()[:8]
        )
        try:
            checkpoint = runner.checkpoint(name, [built[e["id"]] for e in group])
            acc = {e["id"]: views.Combined() for e in group}
            for index, frame in enumerate(_batches(source, mart, view, columns, runner.chunk_rows)):
                found = runner.run(checkpoint, frame, f"{name}:{index}")
                for entry in group:
                    if entry["id"] not in found:
                        raise RuntimeError("GX returned no result")
                    acc[entry["id"]].add(entry["type"], found[entry["id"]])
                    if views.batch_failed(found[entry["id"]]):
                        sites = _failing_sites(runner, view, entry, built[entry["id"]], frame)
                        if sites is None:
                            acc[entry["id"]].site_known = False
                        else:
                            acc[entry["id"]].sites |= sites
            combined.update(acc)
        except Exception as exc:
            for entry in group:
                errors[entry["id"]] = f"GX run failed: {_one_line(exc)}"

    outcomes = []
    for entry in entries:
        eid = entry["id"]
        if eid in errors:
            outcomes.append(_outcome(mart, entry, "error", None, errors[eid]))
            continue
        result = combined[eid].finish(entry["kwargs"], entry["type"])
        status, observed, message = _classify(result, entry)
        unexpected = result.result.get("unexpected_count") if status == "failed" else None
        sites = None
        if status == "failed" and result.site_known and result.sites:
            sites = tuple(sorted(result.sites))
        outcomes.append(_outcome(mart, entry, status, observed, message, unexpected, sites))
    return outcomes


def _prune_stored_runs(uncommitted: Path, keep: int) -> None:
    """Keep the stored results (and their Data Docs pages) of the last `keep` gate runs only,
    so the restricted area and the Data Docs build stay bounded night after night.

    GX stores them as .../<suite>/<run name>/<run time>/...; run times sort as text."""
    folders = [
        run_time
        for base in (
            uncommitted / "validations",
            uncommitted / "data_docs" / "local_site" / "validations",
        )
        if base.is_dir()
        for run_time in base.glob("*/*/*")
        if run_time.is_dir()
    ]
    kept = set(sorted({f.name for f in folders})[-keep:])
    for folder in folders:
        if folder.name not in kept:
            shutil.rmtree(folder, ignore_errors=True)


def _validate(
    source_for: Any,
    suite: Mapping[str, list],
    chunk_rows: int,
    results_dir: Path | None,
) -> GateResult:
    context = _context(results_dir)
    run_name = f"bordin_gate_{_suite_sha256(suite)[:12]}"
    runner = _Runner(context, chunk_rows, run_name)
    outcomes: list[ExpectationOutcome] = []
    for mart, entries in suite.items():
        outcomes.extend(source_for(runner, mart, list(entries)))
    docs = None
    if results_dir is not None:
        _prune_stored_runs(results_dir / "gx" / "uncommitted", GATE_RUNS_KEPT)
        context.build_data_docs()
        index = results_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        docs = str(index) if index.exists() else None
    return GateResult(
        outcomes=outcomes, suite_sha256=_suite_sha256(suite), data_docs=docs, batches=runner.batches
    )


def validate_frames(
    frames: Mapping[str, pd.DataFrame],
    suite: Mapping[str, list],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> GateResult:
    """Validate in-memory marts against a loaded suite; pure, so tests need no database.

    A mart the suite names but `frames` lacks yields 'error' for each of its expectations.
    """
    return _validate(
        lambda runner, mart, entries: _validate_mart(runner, mart, frames.get(mart), entries),
        suite,
        chunk_rows,
        None,
    )


def run_gate(
    db_path: Path,
    suite_path: Path | None = None,
    extra: Path | None = None,
    range_expectations: dict | None = None,
    results_dir: Path | None = None,
    chunk_rows: int | None = None,
) -> GateResult:
    """Validate the marts in a built DuckDB file; publish the release only if `.success`.

    Marts are read in bounded batches over one read-only connection, closed before returning.
    `range_expectations` is the output of registry_range_expectations(), appended to the suite.
    `results_dir` holds GX's file context (checkpoints, stored results, Data Docs); restricted,
    as stored results may quote values. `chunk_rows` defaults to $BORDIN_GATE_CHUNK_ROWS.
    """
    suite = load_suite(suite_path, extra)
    if range_expectations:
        suite = merge_suites(
            suite,
            check_suite(range_expectations, "range_expectations"),
            "range_expectations",
        )
    rows = chunk_rows or gate_chunk_rows()
    with DuckDBSource(db_path, rows) as source:
        return _validate(
            lambda runner, mart, entries: _validate_source_mart(runner, mart, source, entries),
            suite,
            rows,
            results_dir,
        )


def gate_chunk_rows() -> int:
    """Rows per batch ($BORDIN_GATE_CHUNK_ROWS, default 200,000): the gate's memory knob."""
    raw = os.environ.get(CHUNK_ROWS_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_ROWS
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000_000:
        raise ConfigError("environment", CHUNK_ROWS_ENV, f"{raw!r} is not a whole number 1..1e7")
    return int(raw)
