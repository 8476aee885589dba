"""Creation stamps of SPSS and Stata files, set to a logical date instead of the wall clock.

ReadStat writes the time of writing into every .sav and .dta header, so the same data written
twice would differ in those bytes. Bordin overwrites the stamp with the run's logical date (the
demo's delivery night, a release's date), so the same input always gives the same file.
"""

from __future__ import annotations

import datetime
from pathlib import Path

# SPSS's and Stata's English month abbreviations, whatever the locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The .sav header: "$FL2", product name (60), layout, case size, compression, weight index,
# case count (4 each), bias (8), then the creation date (9, "dd mmm yy") and time (8).
_SAV_STAMP_OFFSET = 4 + 60 + 4 * 5 + 8
# A .dta (format 117+) header holds <timestamp>, one length byte, then "dd Mon yyyy hh:mm".
_DTA_TAG = b"<timestamp>"


def stamp_sav(target: Path, when: datetime.date) -> None:
    raw = bytearray(target.read_bytes())
    if raw[:4] != b"$FL2":
        raise ValueError(f"{target} is not an SPSS .sav file")
    month = _MONTHS[when.month - 1]
    stamp = f"{when.day:02d} {month} {when.year % 100:02d}00:00:00".encode("ascii")
    raw[_SAV_STAMP_OFFSET : _SAV_STAMP_OFFSET + len(stamp)] = stamp
    target.write_bytes(bytes(raw))


def stamp_dta(target: Path, when: datetime.date) -> None:
    raw = bytearray(target.read_bytes())
    at = raw.find(_DTA_TAG, 0, 512)
    if not raw.startswith(b"<stata_dta>") or at < 0:
        raise ValueError(f"{target} is not a Stata .dta file (format 117 or later)")
    start = at + len(_DTA_TAG)
    stamp = f"{when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} 00:00".encode("ascii")
    if raw[start] != len(stamp):
        raise ValueError(f"{target}: unexpected timestamp length {raw[start]}")
    raw[start + 1 : start + 1 + len(stamp)] = stamp
    target.write_bytes(bytes(raw))
