"""`bordin demo`: a synthetic four-site consortium (REDCap, Qualtrics, long CSV and SPSS exports,
nine instruments) through the real nightly DAG, then a summary that shows that breadth."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import yaml

from ingestion.pseudonyms import KEY_ENV, KEY_FILE_ENV, write_new_key
from ingestion.settings import REPO_ROOT, Paths, paths

DEMO_MARKER = ".bordin-demo"
# Folders a demo rewrites. secrets/ (the key) and airflow/ (the migrated metadata DB) are kept.
DEMO_OWNED = ("inbox", "eventlog", "restricted", "build", "releases", "audit")


class NotADemoHomeError(RuntimeError):
    """Refuse to wipe a data root that holds real deliveries."""


def reset_demo_home(where: Paths) -> None:
    marker = where.home / DEMO_MARKER
    has_data = where.inbox.exists() and any(where.inbox.iterdir())
    if has_data and not marker.exists():
        raise NotADemoHomeError(
            f"{where.home} already holds an inbox that `bordin demo` did not write; "
            "point BORDIN_HOME at an empty folder for the demo"
        )
    for name in DEMO_OWNED:
        target = where.home / name
        if target.exists():
            for path in target.rglob("*"):  # releases are 0444 files in 0555 folders
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() else 0o644)
            shutil.rmtree(target)
    where.home.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by bordin demo\n", encoding="utf-8")


def ensure_demo_key(where: Paths) -> None:
    if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV):
        return
    key_file = where.secrets / "pseudonym.key"
    if not key_file.exists():
        write_new_key(key_file)
    os.environ[KEY_FILE_ENV] = str(key_file)


def summarize(where: Paths) -> str:
    """A short, readable ending: what went in, what came out, and how to look at it."""
    release = (where.releases / "latest").resolve()
    db = release / "marts.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    try:
        sites, clients, sessions = con.execute(
            "SELECT count(DISTINCT site_id), count(DISTINCT site_id || client_pid), "
            "count(DISTINCT site_id || client_pid || session_number) "
            "FROM marts.fct_alliance_session"
        ).fetchone()
        pooled = con.execute(
            "SELECT method, k_sites, n_clients, r, ci_low, ci_high, i2 "
            "FROM marts.mart_alliance_outcome_pooled "
            "WHERE scope = 'primary' AND correlation_type = 'raw' ORDER BY method"
        ).fetchall()
        per_site = con.execute(
            "SELECT site_id, alliance_instrument, outcome_instrument, n, r, ci_low, ci_high "
            "FROM marts.mart_alliance_outcome_site WHERE is_primary ORDER BY site_id"
        ).fetchall()
        instruments = con.execute(
            "SELECT site_id, instrument || CASE rater_role WHEN 'client' THEN '' "
            "ELSE ' (' || rater_role || ')' END FROM marts.fct_alliance_session "
            "UNION SELECT site_id, instrument FROM marts.fct_outcome_session ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    events = _event_count(where)
    quarantined = _quarantine_count(where)
    duckdb_cli = REPO_ROOT / ".venv" / "bin" / "duckdb"
    lines = [
        "",
        "Bordin demo: done",
        f"  sites {sites}, clients {clients}, sessions {sessions}, events {events}"
        f" ({quarantined} quarantine record(s) with reasons, see restricted/quarantine)",
    ]
    formats = _site_formats(where)
    measured: dict[str, list[str]] = {}
    for site_id, instrument in instruments:
        measured.setdefault(site_id, []).append(instrument)
    lines.append("  per site: export format, instruments scored; primary alliance -> outcome r")
    for site_id, alliance, outcome, n, r, lo, hi in per_site:
        lines.append(
            f"  {site_id:<8} {formats.get(site_id, '?'):<13} {', '.join(measured.get(site_id, []))}"
        )
        pair = f"{alliance} -> {outcome}"
        lines.append(f"  {'':<8} {pair:<22} n = {n:>3}  r = {_f(r)}  95% CI [{_f(lo)}, {_f(hi)}]")
    for method, k, n, r, lo, hi, i2 in pooled:
        lines.append(
            f"  pooled ({method}, {k} sites, {n} clients): r = {_f(r)}  95% CI "
            f"[{_f(lo)}, {_f(hi)}]  I2 = {i2:.2f}   (generator's true r = 0.28)"
        )
    lines += [
        f"  release: {release}",
        f"  report:  {release / 'report.html'}  (self-contained; open it in a browser)",
        "  query it:",
        f"    {_rel(duckdb_cli)} -readonly {_rel(db)} "
        '-c "SELECT * FROM marts.mart_alliance_outcome_pooled"',
        "",
    ]
    return "\n".join(lines)


def _site_formats(where: Paths) -> dict[str, str]:
    """site_id -> export format, from the consortium file the demo wrote."""
    config = yaml.safe_load(where.consortium_file.read_text(encoding="utf-8"))
    return {site["site_id"]: site["format"] for site in config.get("sites", [])}


def _f(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:+.3f}"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _event_count(where: Paths) -> int:
    from ingestion import delta_store
    from ingestion.events import EVENT_SCHEMA

    return delta_store.read(where.event_log, EVENT_SCHEMA).num_rows


def _quarantine_count(where: Paths) -> int:
    from ingestion import delta_store
    from ingestion.quarantine import QUARANTINE_SCHEMA

    return delta_store.read(where.quarantine, QUARANTINE_SCHEMA).num_rows


def run_demo(seed: int, clients: int | None = None) -> int:
    from warehouse.airflow_runner import run_nightly
    from warehouse.demo_consortium import DEMO_LOGICAL_DATE, write_demo_consortium

    started = time.monotonic()
    where = paths()
    reset_demo_home(where)
    ensure_demo_key(where)
    summary = write_demo_consortium(where.home, seed=seed, clients=clients)
    print(
        f"bordin demo: wrote {len(summary.files)} site export(s) for {summary.clients} clients "
        f"into {where.inbox}; running bordin_nightly for {DEMO_LOGICAL_DATE} ..."
    )
    state = run_nightly(DEMO_LOGICAL_DATE, where)
    if state != "success":
        print(f"bordin demo: the nightly run ended {state}; see {where.airflow_home / 'logs'}")
        return 1
    print(summarize(where))
    print(f"  (make demo / bordin demo took {time.monotonic() - started:.0f} s)")
    return 0
