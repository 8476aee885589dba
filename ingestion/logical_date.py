"""The run's logical date: the only date business logic uses (never the wall clock)."""

from __future__ import annotations

from datetime import date, datetime


def parse_logical_date(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
