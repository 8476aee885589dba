"""Ingest a generated ~1 GB feedback-system export and compare with DuckDB's own CSV -> Parquet.

Usage: .venv/bin/python bench/ingest_large_export.py [--gigabytes 1.0] [--repeats 1]

Generates a long table (one line per measure per session: WAI-SR, PHQ-9... here WAI-SR and
GAD-7 plus an ORS line the site skips, a free-text note and a name column that must never be
read) into a scratch data root, then times, side by side, in fresh processes:
  1. baseline: `COPY (SELECT * FROM read_csv(<file>)) TO <x.parquet> (FORMAT parquet)` in DuckDB;
  2. Bordin: `ingest_site` on the file: parse, validate, pseudonymize, diff against the (empty)
     state, write the events and commit them, quarantine and intake to the Delta tables.
Prints wall time and peak RSS (of the measured process, from wait4) of each, and the ratio.
Nothing is asserted; the figures go into the README.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BYTES_PER_LINE = 76  # measured on the generator's output; used only to size it
SITE = "fb"
CONSORTIUM = f"""
consortium_id: bench
name: Large export benchmark
sites:
  - site_id: {SITE}
    format: long_csv
    columns: {{client_code: Client, therapist_code: Therapist, session_date: Datum,
               event: Session}}
    session_event_pattern: '^(\\d+)$'
    date_format: '%d.%m.%Y'
    long_csv:
      measure_column: Measure
      measures: {{WAI-SR: wai_sr, GAD-7: gad7}}
      skip_measures: [ORS]
      item_column_template: "Item{{n}}"
      delimiter: ";"
      encoding: utf-8
    identifier_columns: [Name]
    forms:
      - {{instrument: wai_sr, rater_role: client, item_column_template: "wai_{{n}}"}}
      - {{instrument: gad7, rater_role: client, item_column_template: "gad7_{{n}}"}}
    primary_alliance: wai_sr
    primary_outcome: gad7
"""


def generate(path: Path, lines: int) -> None:
    """Deterministic rows: 60 lines per client (20 sessions x WAI-SR, GAD-7, ORS)."""
    import duckdb

    items = []
    for k in range(1, 13):
        items.append(
            f"CASE WHEN m = 0 THEN (hash(i, {k}) % 5 + 1)::VARCHAR "
            f"WHEN m = 1 AND {k} <= 7 THEN (hash(i, {k}) % 4)::VARCHAR "
            f"WHEN m = 2 AND {k} <= 4 THEN ((hash(i, {k}) % 100) / 10)::VARCHAR "
            f"END AS Item{k}"
        )
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""
        COPY (
            WITH k AS (
                SELECT range AS i, range // 60 AS client, (range % 60) // 3 + 1 AS session,
                       range % 3 AS m
                FROM range({lines})
            )
            SELECT 'C' || lpad(client::VARCHAR, 7, '0') AS Client,
                   'T' || (client % 400)::VARCHAR AS Therapist,
                   session AS Session,
                   strftime(DATE '2024-01-01' + ((client % 500) + session * 7)::INTEGER,
                            '%d.%m.%Y') AS Datum,
                   ['WAI-SR', 'GAD-7', 'ORS'][m + 1] AS Measure,
                   {", ".join(items)},
                   'note ' || (i % 997)::VARCHAR AS Note,
                   'Name ' || client::VARCHAR AS Name
            FROM k
        ) TO '{path}' (FORMAT csv, DELIMITER ';', HEADER true)
        """
    )
    con.close()


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed with status {status}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--source", type=Path, help="reuse (or create) the generated export at this path"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bordin-bench-"))
    try:
        source = args.source or scratch / "export.csv"
        lines = int(args.gigabytes * 1e9 / BYTES_PER_LINE)
        if not source.exists():
            t0 = time.perf_counter()
            generate(source, lines)
            print(f"generated {lines:,} lines in {time.perf_counter() - t0:.1f}s")
        print(f"export: {source.stat().st_size / 1e9:.2f} GB")
        env = {
            **os.environ,
            "BORDIN_PSEUDONYM_KEY": "bench-key-0123456789abcdef",
            "BORDIN_QUIET_PERIOD_SECONDS": "0",  # the export was copied in a moment ago
        }
        for n in range(1, args.repeats + 1):
            baseline = [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(); "
                "c.execute('SET enable_progress_bar = false'); "
                "c.execute(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}')) "
                "TO '{sys.argv[2]}' (FORMAT parquet)\")",
                str(source),
                str(scratch / "baseline.parquet"),
            ]
            base_wall, base_rss = measured(baseline, env)
            home = scratch / f"home{n}"
            inbox = home / "inbox" / SITE
            inbox.mkdir(parents=True)
            (home / "consortium.yml").write_text(CONSORTIUM, encoding="utf-8")
            shutil.copyfile(source, inbox / "export.csv")
            ingest = [
                sys.executable,
                "-c",
                "import logging, sys; logging.basicConfig(level=logging.INFO, "
                "format='  %(message)s'); from ingestion.ingest import ingest_site; "
                "r = ingest_site(sys.argv[1], '2026-11-22'); f = r.files[0]; "
                "print(f'  ingested: {f.rows_in:,} lines, {f.accepted:,} accepted, "
                "{f.not_administered:,} not administered, {f.quarantined:,} quarantined, "
                "{r.events_written:,} events')",
                SITE,
            ]
            wall, rss = measured(ingest, {**env, "BORDIN_HOME": str(home)})
            print(
                f"run {n}: DuckDB COPY {base_wall:.1f}s (peak {base_rss:.0f} MiB) | "
                f"Bordin ingestion {wall:.1f}s (peak {rss:.0f} MiB) | "
                f"ratio {wall / base_wall:.2f}x"
            )
            shutil.rmtree(home)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
