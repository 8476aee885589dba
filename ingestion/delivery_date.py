"""The date a site delivered a file, read from its name: the bound of the future-date check.

A session dated after the day the site wrote the export is one the site could not have known.
The night's logical date is a looser bound: a catch-up night ingests files delivered days
earlier. A site that writes its delivery date into its file names (`ohio_20261128.csv`) says
how to read it (`delivery_date: {pattern, format}`); each file's sessions are then checked
against that date, and never against a later one than the night's logical date.

A name that does not match, or whose date cannot be read, falls back to the logical date with
a note (in the run's result and the task log), rather than quarantining the file: the file's
rows are as valid as any, the fallback is the check every site had before, and a rejected file
could not be fixed by renaming it, since a re-delivery of the same bytes is a recorded no-op.
Deterministic: only the file name and the run's logical date are read, never the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

# A date a format must round-trip to prove it holds year, month and day (day > 12, so a
# swapped day and month cannot pass).
PROBE = date(2031, 12, 27)


@dataclass(frozen=True)
class DeliveryDateOptions:
    """`delivery_date: {pattern, format}`: a regex with a group named `date`, searched in the
    file name, and the strptime format of that group's text."""

    pattern: re.Pattern[str]
    format: str


@dataclass(frozen=True)
class DateBound:
    """The latest session date a file may carry, what it is, and why a name was not used."""

    day: date
    basis: str  # "the delivery date 2026-11-28 (from the file name)" / "the night's logical ..."
    note: str | None = None


def format_problem(fmt: str) -> str | None:
    """Why a strptime format cannot read a delivery date, or None."""
    try:
        back = datetime.strptime(PROBE.strftime(fmt), fmt).date()
    except ValueError as exc:
        return f"{fmt!r} does not read back what it writes ({exc})"
    if back != PROBE:
        return f"{fmt!r} must hold a year, a month and a day (e.g. %Y%m%d or %Y-%m-%d)"
    return None


def future_bound(options: DeliveryDateOptions | None, file_name: str, logical: date) -> DateBound:
    """The bound for one file: its delivery date when the name gives one, else the logical
    date; the earlier of the two, so no file accepts a date after the night it is read."""
    fallback = f"the night's logical date {logical.isoformat()}"
    if options is None:
        return DateBound(logical, fallback)
    found = options.pattern.search(file_name)
    if found is None or not found.group("date"):
        note = (
            f"file name does not match delivery_date.pattern {options.pattern.pattern!r}; "
            f"future dates checked against {fallback}"
        )
        return DateBound(logical, fallback, note)
    text = found.group("date")
    try:
        day = datetime.strptime(text, options.format).date()
    except ValueError:
        note = (
            f"date {text!r} in the file name is not a date in format {options.format!r}; "
            f"future dates checked against {fallback}"
        )
        return DateBound(logical, fallback, note)
    if day > logical:
        note = (
            f"date {day.isoformat()} in the file name is after the night's logical date; "
            f"future dates checked against {fallback}"
        )
        return DateBound(logical, fallback, note)
    return DateBound(day, f"the delivery date {day.isoformat()} (from the file name)")
