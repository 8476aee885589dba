"""Which bounded view of a mart each expectation type is validated on, and how chunk results
combine into one verdict. The one place that decides what the gate can check at any size.

Why views, not whole marts: the gate's memory must not grow with the consortium (issue 14).
Every supported type has a view on which GX's own verdict equals its verdict on the whole mart:

- row-level checks look at one row at a time, so chunks of rows are exact; their unexpected,
  missing and element counts add up across chunks;
- column min/max: the max of chunk maxima is the max;
- uniqueness: rows with equal keys hash to the same partition, so a duplicate is never split;
- table shape and row count need no rows; distinct-value sets need only the distinct values.

Types with no such view (mean, median, stdev, quantiles, order, z-scores, ...) are refused
when the suite loads, naming the file, mart and id, instead of silently loading a whole mart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SHAPE, COUNT, DISTINCT, ROWS, KEYS = "shape", "count", "distinct", "rows", "keys"

_SHAPE_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_column_to_exist",
    }
)
_COUNT_TYPES = frozenset(
    {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
)
_DISTINCT_TYPES = frozenset(
    {
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
        "expect_column_unique_value_count_to_be_between",
    }
)
_KEY_TYPES = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)
# Column aggregates whose chunk values combine exactly: the aggregate of the chunk aggregates.
EXTREMA: dict[str, str] = {
    "expect_column_max_to_be_between": "max",
    "expect_column_min_to_be_between": "min",
}
_ROW_TYPES = frozenset(
    {
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_null",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_match_json_schema",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_multicolumn_sum_to_equal",
        "expect_multicolumn_values_to_be_equal",
        "expect_select_column_values_to_be_unique_within_record",
        *EXTREMA,
    }
)
SUPPORTED: frozenset[str] = _SHAPE_TYPES | _COUNT_TYPES | _DISTINCT_TYPES | _KEY_TYPES | _ROW_TYPES


def view_for(etype: str, kwargs: Mapping[str, Any]) -> str | None:
    """The view one expectation is validated on. A row count under a row_condition counts the
    rows that meet it: row-local, so it runs on row chunks and the chunk counts add up."""
    if etype in _COUNT_TYPES and kwargs.get("row_condition"):
        return ROWS
    return view_of(etype)


def view_of(etype: str) -> str | None:
    """The view an expectation type is validated on; None: the gate cannot bound it."""
    for view, types in (
        (SHAPE, _SHAPE_TYPES),
        (COUNT, _COUNT_TYPES),
        (DISTINCT, _DISTINCT_TYPES),
        (KEYS, _KEY_TYPES),
        (ROWS, _ROW_TYPES),
    ):
        if etype in types:
            return view
    return None


def _condition_columns(condition: Any) -> Iterable[str]:
    """Column names a GX Condition (dict form, possibly nested and/or) refers to."""
    if isinstance(condition, Mapping):
        column = condition.get("column")
        if isinstance(column, Mapping) and isinstance(column.get("name"), str):
            yield column["name"]
        for value in condition.values():
            if isinstance(value, list | tuple | Mapping):
                yield from _condition_columns(value)
    elif isinstance(condition, list | tuple):
        for item in condition:
            yield from _condition_columns(item)


def columns_of(kwargs: Mapping[str, Any]) -> list[str]:
    """Every column an expectation reads, its row_condition's included, in a stable order."""
    found: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            found.append(kwargs[key])
    for key in ("column_list",):
        found.extend(c for c in kwargs.get(key) or () if isinstance(c, str))
    found.extend(_condition_columns(kwargs.get("row_condition")))
    return list(dict.fromkeys(found))


def key_columns(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The uniqueness key of a KEYS expectation (its row_condition columns come along)."""
    return tuple(columns_of(kwargs))


class Combined:
    """One expectation's verdict over all chunks, shaped like a GX result for `_classify`."""

    def __init__(self) -> None:
        self.success = True
        self.exception_info: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.sites: set[str] = set()
        self.site_known = True  # False once a failing batch could not name its sites

    def add(self, etype: str, result: Any) -> None:
        """Fold one batch's GX result in."""
        info = result.exception_info or {}
        raised = info.get("raised_exception") or any(
            isinstance(v, Mapping) and v.get("raised_exception") for v in info.values()
        )
        if raised:
            if not self.exception_info:
                self.exception_info = dict(info)
            return
        res = dict(result.result or {})
        if etype in _COUNT_TYPES:  # conditional row count over row chunks: counts add up
            self.result["observed_value"] = int(self.result.get("observed_value") or 0) + int(
                res.get("observed_value") or 0
            )
            return
        if etype in EXTREMA:
            value = res.get("observed_value")
            self.result.setdefault("observed_value", None)  # None over no values: n/a
            if value is not None:
                pick = max if EXTREMA[etype] == "max" else min
                old = self.result.get("observed_value")
                self.result["observed_value"] = value if old is None else pick(old, value)
            self.success = self.success and bool(result.success)
            return
        for key in ("element_count", "missing_count", "unexpected_count"):
            if key in res:
                self.result[key] = int(self.result.get(key) or 0) + int(res[key] or 0)
        if "observed_value" in res and "element_count" not in res:
            self.result["observed_value"] = res["observed_value"]
        self.success = self.success and bool(result.success)

    def finish(self, kwargs: Mapping[str, Any], etype: str) -> Combined:
        """Re-decide success where it depends on the totals: `mostly`, and min/max bounds."""
        if self.exception_info:
            return self
        if etype in EXTREMA:
            value = self.result.get("observed_value")
            self.success = value is None or _within(value, kwargs)
        elif etype in _COUNT_TYPES:
            value = self.result.get("observed_value", 0)
            if "value" in kwargs:
                self.success = value == kwargs["value"]
            else:
                self.success = _within(value, kwargs)
        elif kwargs.get("mostly") is not None and "element_count" in self.result:
            applicable = self.result["element_count"] - self.result.get("missing_count", 0)
            unexpected = self.result.get("unexpected_count", 0)
            self.success = applicable == 0 or (applicable - unexpected) / applicable >= float(
                kwargs["mostly"]
            )
        return self


def batch_failed(result: Any) -> bool:
    """A batch result that did not raise but found something wrong: worth naming its sites."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return False
    return not result.success or int((result.result or {}).get("unexpected_count") or 0) > 0


def _within(value: Any, kwargs: Mapping[str, Any]) -> bool:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and (value <= low if kwargs.get("strict_min") else value < low):
        return False
    return high is None or (value < high if kwargs.get("strict_max") else value <= high)
