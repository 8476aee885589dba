"""A site's night in a few lines: the one place its per-site counts are summed and worded.

`bordin nightly`, `bordin ingest`, `bordin reprocess` and the DAG's ingest task all print or log
these lines, so every view of a night says the same thing. Only counts, rule ids and file names
appear here: never a raw value or a participant code.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Counted per file; `quarantine_by_rule` is summed across files.
COUNTS = ("rows_in", "accepted", "quarantined", "recorded", "amended", "retracted")
READ = ("ingested", "rejected")  # a file read tonight (not already ingested, not waiting)


def rule_counts(table: pa.Table | None, parquet_file: Path | None = None) -> dict[str, int]:
    """Quarantine records per rule id of one file: its file-level records plus the row records
    the intake engine wrote to `parquet_file` (only the rule column is read)."""
    counts: Counter[str] = Counter()
    if table is not None and table.num_rows:
        counts.update(table.column("rule_id").to_pylist())
    if parquet_file is not None and parquet_file.exists():
        counts.update(pq.read_table(parquet_file, columns=["rule_id"]).column(0).to_pylist())
    return dict(sorted(counts.items()))


def site_totals(result: dict) -> dict:
    """A site's night summed over the files it read: `SiteIngestResult.as_dict()` in."""
    files = [f for f in result.get("files", []) if f.get("status") in READ]
    totals: dict = {name: sum(int(f.get(name) or 0) for f in files) for name in COUNTS}
    totals["files"] = len(files)
    totals["rejected_files"] = sum(f.get("status") == "rejected" for f in files)
    totals["waiting_files"] = sum(f.get("status") == "waiting" for f in result.get("files", []))
    by_rule: Counter[str] = Counter()
    for f in files:
        by_rule.update(f.get("quarantine_by_rule") or {})
    totals["quarantine_by_rule"] = dict(sorted(by_rule.items()))
    return totals


def by_rule_text(by_rule: dict[str, int]) -> str:
    return ", ".join(f"{rule} {n}" for rule, n in by_rule.items()) or "-"


def site_summary_lines(result: dict) -> list[str]:
    """Two lines for one site's ingest result (the DAG's ingest task logs exactly these)."""
    site = result.get("site_id", "?")
    t = site_totals(result)
    head = (
        f"site {site}: {t['files']} files read ({t['rejected_files']} rejected"
        + (f", {t['waiting_files']} still arriving" if t["waiting_files"] else "")
        + f"), {t['rows_in']} rows, {t['accepted']} accepted, {t['quarantined']} quarantined; "
        f"events {t['recorded']} recorded, {t['amended']} amended, {t['retracted']} retracted"
    )
    if not t["files"]:
        head = f"site {site}: nothing new" + (
            f" ({t['waiting_files']} still arriving)" if t["waiting_files"] else ""
        )
    lines = [head]
    if t["quarantine_by_rule"]:
        lines.append(f"site {site}: quarantined by rule: {by_rule_text(t['quarantine_by_rule'])}")
    return lines


def summary_table(results: list[dict]) -> list[str]:
    """The per-site table `bordin nightly` ends with: one row per site, then the rules."""
    header = (
        f"{'site':<14}{'files':>6}{'rows':>8}{'accepted':>10}{'quarant.':>10}"
        f"{'recorded':>10}{'amended':>9}{'retracted':>11}  quarantined by rule"
    )
    lines = [header]
    for result in sorted(results, key=lambda r: r.get("site_id", "")):
        if result.get("failed"):
            lines.append(f"{result.get('site_id', '?'):<14}FAILED: {result['failed']}")
            continue
        t = site_totals(result)
        lines.append(
            f"{result.get('site_id', '?'):<14}{t['files']:>6}{t['rows_in']:>8}"
            f"{t['accepted']:>10}{t['quarantined']:>10}{t['recorded']:>10}"
            f"{t['amended']:>9}{t['retracted']:>11}  {by_rule_text(t['quarantine_by_rule'])}"
        )
    return lines
