"""Benchmark: the gate's wall time and peak memory on one large alliance mart.

Usage, from the repository root:

    .venv/bin/python bench/gate_memory.py --rows 5000000 [--chunk-rows 200000] [--keep]

Writes a DuckDB file whose `marts.fct_alliance_session` has ROWS valid rows over six sites
(every suite check on that mart passes), then runs the gate on it in a child process, with the
shipped suite's checks for that mart (18) and a file-backed GX context, and prints the wall
time, the child's peak RSS and the number of batches. The child is a fresh interpreter, so its
peak is the gate's own (imports included).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

MART = "fct_alliance_session"
SITES = 6


def write_mart(db: Path, rows: int) -> None:
    """Valid alliance rows: unique keys, pseudonym-shaped pids, totals in range."""
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            f"""
            CREATE TABLE marts.{MART} AS
            SELECT
                'site' || (i % {SITES})::VARCHAR AS site_id,
                md5('c' || (i // 10)::VARCHAR) AS client_pid,
                md5('t' || (i // 1000)::VARCHAR) AS therapist_pid,
                (i % 10 + 1)::INTEGER AS session_number,
                'wai_sr' AS instrument,
                'client' AS rater_role,
                (12 + i % 49)::DOUBLE AS total,
                (4 + i % 17)::DOUBLE AS goal,
                (4 + i % 17)::DOUBLE AS task,
                (4 + i % 17)::DOUBLE AS bond,
                12 AS items_answered,
                ((i % 49) / 48.0 * 100)::DOUBLE AS pomp_total,
                (i % 97 = 0) AS rupture_k1,
                (i % 194 = 0) AS rupture_k2,
                (i % 10) * 7 AS session_day
            FROM range({rows}) t(i)
            """
        )
    finally:
        con.close()


CHILD = """
import json, resource, sys, time
from pathlib import Path
from expectations.gate import run_gate
db, suite, results, chunk = sys.argv[1:5]
started = time.monotonic()
result = run_gate(Path(db), suite_path=Path(suite), results_dir=Path(results),
                  chunk_rows=int(chunk))
print("GATE_FIGURES", json.dumps({
    "wall_s": round(time.monotonic() - started, 1),
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    "batches": result.batches,
    "statuses": sorted({o.status for o in result.outcomes}),
    "checks": len(result.outcomes),
}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the mart")
    parser.add_argument("--chunk-rows", type=int, default=200_000, help="rows per gate batch")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bordin-gate-bench-"))
    try:
        db = tmp / "warehouse.duckdb"
        started = time.monotonic()
        write_mart(db, args.rows)
        print(f"wrote {args.rows:,} rows in {time.monotonic() - started:.1f} s ({db})")
        shipped = yaml.safe_load(
            (Path(__file__).resolve().parent.parent / "expectations/suites/marts.yml").read_text()
        )
        suite = tmp / "suite.yml"
        suite.write_text(yaml.safe_dump({MART: shipped[MART]}), encoding="utf-8")
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(db),
                str(suite),
                str(tmp / "restricted"),
                str(args.chunk_rows),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in out.stdout.splitlines() if "GATE_FIGURES " in x)
        figures = json.loads(line.split("GATE_FIGURES ", 1)[1])
        print(f"gate: {json.dumps(figures)}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
