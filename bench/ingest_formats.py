"""Ingest every export format of a generated consortium; time and peak memory per format.

Usage: .venv/bin/python -m bench.ingest_formats [--clients 20000] [--keep]

Writes the demo consortium at `--clients` clients (`bordin demo --clients N`'s generator: bern
REDCap CSV, leeds Qualtrics CSV, ohio long CSV, utrecht SPSS .sav) plus a zip site holding
bern's REDCap export, then ingests each site in a fresh process and prints, per format: the
file's size, lines, wall time and peak RSS (from wait4), and the ratio to DuckDB's own
`COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet)` of the same file (CSV formats:
DuckDB reads no .sav, and a zip is compared with the copy of the CSV it holds). Nothing is
asserted; the figures go into the README and the issue notes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

from bench.ingest_large_export import measured

KEY = "bench-key-0123456789abcdef"
DATE = "2026-11-20"
INGEST = (
    "import sys; from ingestion.ingest import ingest_site; r = ingest_site(sys.argv[1], "
    "sys.argv[2]); f = [f for f in r.files if f.kind == 'export'][0]; "
    "print(f'  {sys.argv[1]}: {f.status}, {f.rows_in:,} rows, {f.accepted:,} accepted, "
    "{f.quarantined:,} quarantined, {r.events_written:,} events')"
)
COPY = (
    "import duckdb, sys; c = duckdb.connect(); c.execute('SET enable_progress_bar = false'); "
    "c.execute(f\"COPY (SELECT * FROM read_csv('{sys.argv[1]}', all_varchar = true, "
    "skip = {sys.argv[3]})) TO '{sys.argv[2]}' (FORMAT parquet)\")"
)


def write_consortium(home: Path, clients: int) -> dict[str, Path]:
    """The scaled demo consortium plus `bernzip` (bern's export in a zip); site -> export."""
    from warehouse.demo_consortium import write_demo_consortium

    summary = write_demo_consortium(home, clients=clients)
    exports = {path.parent.name: path for path in summary.files}
    doc = yaml.safe_load((home / "consortium.yml").read_text(encoding="utf-8"))
    bern = next(site for site in doc["sites"] if site["site_id"] == "bern")
    # Not carried into the zip: REDCap-only settings (ending, the data dictionary).
    zipped = {k: v for k, v in bern.items() if k not in ("file_glob", "redcap", "ending")}
    zipped.update({"site_id": "bernzip", "format": "zip", "zip": {"format": "redcap_csv"}})
    doc["sites"].append(zipped)
    (home / "consortium.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    archive = home / "inbox" / "bernzip" / "bern_export.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.write(exports["bern"], exports["bern"].name)
    stamp = time.time() - 86_400  # delivered yesterday: outside the quiet period
    os.utime(archive, (stamp, stamp))
    exports["bernzip"] = archive
    return exports


def csv_of(site: str, export: Path, home: Path) -> tuple[Path, int] | None:
    """The CSV DuckDB copies for the baseline, and the header rows it skips (None: no CSV)."""
    if site == "bernzip":
        return home / "inbox" / "bern" / zipfile.ZipFile(export).namelist()[0], 0
    if export.suffix == ".sav":
        return None
    return export, 2 if site == "leeds" else 0  # Qualtrics: two more header rows


def measure_sites(sites, env: dict[str, str], scratch: Path, baseline_of) -> list[tuple]:
    """Per (site, export): wall time and peak RSS of ingesting it in a fresh process, and of
    DuckDB's copy of its CSV (`baseline_of(site, export)`: (csv, header rows to skip) or None)."""
    rows = []
    for site, export in sites:
        wall, rss = measured([sys.executable, "-c", INGEST, site, DATE], env)
        copy_wall = None
        if (baseline := baseline_of(site, export)) is not None:
            source, skip = baseline
            argv = [sys.executable, "-c", COPY, str(source), str(scratch / "x.parquet"), skip]
            copy_wall, _ = measured([str(a) for a in argv], env)
        rows.append((site, export, wall, rss, copy_wall))
    return rows


def print_table(rows: list[tuple], size_format: str) -> None:
    print()
    print("| site | format | file | wall | peak RSS | DuckDB copy | ratio |")
    print("|---|---|---|---|---|---|---|")
    for site, export, wall, rss, copy_wall in rows:
        ratio = f"{wall / copy_wall:.1f}x" if copy_wall else "n/a"
        copy = f"{copy_wall:.1f} s" if copy_wall else "n/a (no .sav reader)"
        size = export.stat().st_size / 1e6
        print(
            f"| {site} | {export.suffix[1:]} | {size:{size_format}} MB | {wall:.1f} s | "
            f"{rss:,.0f} MiB | {copy} | {ratio} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bordin-bench-formats-"))
    home = scratch / "home"
    env = {
        **os.environ,
        "BORDIN_HOME": str(home),
        "BORDIN_PSEUDONYM_KEY": KEY,
        "BORDIN_QUIET_PERIOD_SECONDS": "0",
    }
    try:
        started = time.perf_counter()
        # Generated in a child: a forked child's peak RSS counts the parent's pages until it
        # execs, so the parent must stay small for the per-format peaks to mean anything.
        generate = [
            sys.executable,
            "-c",
            "import sys, json; from pathlib import Path; from bench.ingest_formats import "
            "write_consortium; e = write_consortium(Path(sys.argv[1]), int(sys.argv[2])); "
            "print(json.dumps({k: str(v) for k, v in e.items()}))",
            str(home),
            str(args.clients),
        ]
        out = subprocess.run(generate, env=env, check=True, capture_output=True, text=True)
        exports = {k: Path(v) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}
        print(f"generated {args.clients:,} clients in {time.perf_counter() - started:.0f} s")
        rows = measure_sites(sorted(exports.items()), env, scratch, lambda s, e: csv_of(s, e, home))
        print_table(rows, ",.1f")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
