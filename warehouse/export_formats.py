"""The formats `bordin export` writes, named once for the command line and the writers.

Kept apart from warehouse/exports.py so that `bordin -h` does not import pandas and pyreadstat.
"""

from __future__ import annotations

EXPORT_FORMATS: dict[str, str] = {
    "sav": "SPSS .sav",
    "dta": "Stata .dta (format 118: Stata 14 or later)",
    "csv": "CSV, formula-like text neutralized",
}
