"""Ingest a large export in every format; time, peak memory and the ratio to DuckDB's copy.

Usage: .venv/bin/python -m bench.ingest_gigabyte [--megabytes 1000] [--night-megabytes 200]
                                                 [--only bern,ohio] [--keep] [--reuse DIR]

1. Generates the demo consortium at 20,000 clients (`bordin demo --clients N`'s generator), then
   scales each site's export to `--megabytes` by repeating its records with every client code
   made new per repetition (`C-0001` -> `C-0001~r3`): REDCap CSV (bern), Qualtrics CSV (leeds),
   long CSV (ohio), SPSS .sav (utrecht, written with pyreadstat), and a zip holding bern's
   export (bernzip).
2. Ingests each site in a fresh process: wall time and peak RSS (wait4). For each CSV (and for
   the zip, the CSV it holds), DuckDB's own `COPY (SELECT * FROM read_csv(...)) TO ...
   (FORMAT parquet)` of the same file is timed in its own process right after: the ratio is
   Bordin's time over that.
3. A consortium night: every site's export at `--night-megabytes`, all five sites ingested one
   after another in ONE process (harder than the nightly DAG, whose tasks each get a process):
   wall time and that process's peak RSS.

Nothing is asserted: the figures go into the README and the issue notes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench.ingest_formats import DATE, KEY, measure_sites, print_table, write_consortium
from bench.ingest_large_export import measured

SITES = ("bern", "bernzip", "leeds", "ohio", "utrecht")
NIGHT = (
    "import sys, time; from ingestion.ingest import ingest_site\n"
    "for site in sys.argv[1].split(','):\n"
    "    t = time.perf_counter(); r = ingest_site(site, sys.argv[2])\n"
    "    print(f'  {site}: {r.events_written:,} events in {time.perf_counter() - t:.0f} s')\n"
)


def scale_csv(source: Path, target: Path, header_rows: int, client_at: int, size: int) -> None:
    """Repeat the body, client codes renamed per repetition, until `size` bytes."""
    with source.open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.reader(handle))
    header, body = records[:header_rows], records[header_rows:]
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows(header)
        r = 0
        while out.tell() < size:
            for record in body:
                if r and record[client_at]:
                    record = [*record[:client_at], f"{record[client_at]}~r{r}",
                              *record[client_at + 1 :]]  # fmt: skip
                writer.writerow(record)
            r += 1


def scale_sav(source: Path, target: Path, client: str, size: int) -> None:
    import pandas as pd
    import pyreadstat

    frame, meta = pyreadstat.read_sav(str(source), user_missing=True)
    copies = max(1, math.ceil(size / source.stat().st_size))
    parts = []
    for r in range(copies):
        part = frame.copy()
        if r:
            part[client] = part[client].astype(str) + f"~r{r}"
        parts.append(part)
    pyreadstat.write_sav(
        pd.concat(parts, ignore_index=True),
        str(target),
        variable_value_labels=meta.variable_value_labels,
        missing_ranges=meta.missing_ranges,
        variable_format=meta.original_variable_types,
    )


def generate(home: Path, megabytes: float) -> dict[str, Path]:
    """The 20,000-client consortium, each export scaled to `megabytes`."""
    import yaml

    exports = write_consortium(home, 20_000)
    doc = yaml.safe_load((home / "consortium.yml").read_text(encoding="utf-8"))
    sites = {s["site_id"]: s for s in doc["sites"]}
    # The zip guard's default cap (500 MB uncompressed) would refuse the scaled export.
    sites["bernzip"]["zip"]["max_total_bytes"] = 4 * max(int(megabytes * 1e6), 500_000_000)
    (home / "consortium.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    size = int(megabytes * 1e6)
    for site in ("bern", "leeds", "ohio"):
        source = exports[site]
        with source.open(encoding="utf-8-sig", newline="") as handle:
            names = next(csv.reader(handle))
        header_rows = 3 if site == "leeds" else 1
        column = sites[site]["columns"]["client_code"]
        if site == "leeds":
            ids = {v: k for k, v in sites[site]["qualtrics"]["import_ids"].items()}
            with source.open(encoding="utf-8-sig", newline="") as handle:
                third = list(csv.reader(handle))[2]
            at = next(i for i, c in enumerate(third) if json.loads(c)["ImportId"] == ids[column])
        else:
            at = names.index(column)
        scaled = source.with_suffix(".scaled")
        scale_csv(source, scaled, header_rows, at, size)
        scaled.replace(source)
    scaled = exports["utrecht"].with_suffix(".scaled")
    scale_sav(exports["utrecht"], scaled, sites["utrecht"]["columns"]["client_code"], size)
    scaled.replace(exports["utrecht"])
    archive = exports["bernzip"]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.write(exports["bern"], exports["bern"].name)
    stamp = time.time() - 86_400
    for path in exports.values():
        os.utime(path, (stamp, stamp))
    return exports


def csv_of(site: str, export: Path) -> tuple[Path, int] | None:
    if site == "bernzip":
        return export.parent.parent / "bern" / zipfile.ZipFile(export).namelist()[0], 0
    if export.suffix == ".sav":
        return None
    return export, 2 if site == "leeds" else 0


def prepared(folder: Path, megabytes: float, env: dict[str, str]) -> dict[str, Path]:
    if (folder / "exports.json").exists():  # --reuse: generated by an earlier run
        print(f"reusing the exports generated in {folder}")
        for table in ("eventlog", "restricted", "audit", "locks"):
            shutil.rmtree(folder / table, ignore_errors=True)
        return {k: Path(v) for k, v in json.loads((folder / "exports.json").read_text()).items()}
    started = time.perf_counter()
    code = (
        "import sys, json; from pathlib import Path; from bench.ingest_gigabyte import generate; "
        "e = generate(Path(sys.argv[1]), float(sys.argv[2])); "
        "print(json.dumps({k: str(v) for k, v in e.items()}))"
    )
    argv = [sys.executable, "-c", code, str(folder), str(megabytes)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    listing = out.stdout.splitlines()[-1]
    (folder / "exports.json").write_text(listing)
    exports = {k: Path(v) for k, v in json.loads(listing).items()}
    print(f"generated {megabytes:,.0f} MB per site in {time.perf_counter() - started:.0f} s")
    return exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1000)
    parser.add_argument("--night-megabytes", type=float, default=200)
    parser.add_argument("--only", default=",".join(SITES), help="sites of step 2")
    parser.add_argument("--skip-night", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--reuse", type=Path, help="a folder kept by --keep: skip generating")
    args = parser.parse_args()
    scratch = args.reuse or Path(tempfile.mkdtemp(prefix="bordin-bench-gb-"))
    args.keep = args.keep or args.reuse is not None
    env = {**os.environ, "BORDIN_PSEUDONYM_KEY": KEY, "BORDIN_QUIET_PERIOD_SECONDS": "0"}
    try:
        home = scratch / "large"
        env["BORDIN_HOME"] = str(home)
        exports = prepared(home, args.megabytes, env)
        sites = [(site, exports[site]) for site in args.only.split(",")]
        print_table(measure_sites(sites, env, scratch, csv_of), ",.0f")
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        if args.skip_night:
            return
        home = scratch / "night"
        env["BORDIN_HOME"] = str(home)
        exports = prepared(home, args.night_megabytes, env)
        total = sum(p.stat().st_size for p in exports.values()) / 1e6
        wall, rss = measured([sys.executable, "-c", NIGHT, ",".join(SITES), DATE], env)
        print(
            f"\nconsortium night: {len(exports)} sites, {total:,.0f} MB of exports, one process: "
            f"{wall:.0f} s, peak RSS {rss:,.0f} MiB"
        )
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
