"""Publish a release: immutable files for analysts, appearing whole or not at all.

A release is assembled in a hidden staging folder next to `releases/`, fsynced, and renamed
into place in one step; `releases/latest` is then swapped by renaming a new symlink over it.
Readers therefore see either the previous release or the complete new one, never a half.

Each release also gets one line in the release ledger (`audit/releases.jsonl`, see
warehouse/verify.py), written after the rename and before `latest` moves. Why this order, not
the ledger first: a ledger line must only ever describe a folder that exists, so `bordin verify`
can treat every ledger line as a published release. A crash between the rename and the ledger
write leaves a complete folder that `latest` does not point at and that verify reports as "not in
ledger"; the re-run of the same night takes the no-op path (same content, same id), checks that
folder against its own manifest and against the Parquet hashes it has just recomputed, and only
then appends the missing line and moves `latest`. A folder that fails that check is refused, never
recorded. Release folders and files are made read-only (0555 / 0444) before the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.consortium import load_consortium
from ingestion.crash_points import crash_point
from ingestion.disk_space import named_when_full, tree_bytes
from ingestion.hashing import sha256_file
from ingestion.registry import load_registry
from ingestion.settings import REPO_ROOT, Paths, paths
from warehouse.build import dbt_manifest_path
from warehouse.codebook import (
    DESCRIPTION_KEY,
    Codebook,
    build_codebook,
    comment_statements,
    field_metadata,
    read_dbt_manifest,
)
from warehouse.codebook_files import CSV_NAME, HTML_NAME, write_codebook_csv, write_codebook_html
from warehouse.release_format import RELEASE_FORMAT
from warehouse.report import render_report
from warehouse.verify import read_ledger, record_release, verify_release

MARTS_SCHEMA = "marts"
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
# Date-typed columns any release may carry: the nights deliveries were ingested (the run's
# logical date), which date the data flow, not a participant. A participant's calendar dates
# may appear only in CALENDAR_MARTS, and only when the consortium allows them (`release:
# {calendar_dates: true}`, recorded as parameter release_calendar_dates); every other mart
# carries relative time (session_day, last_session_day).
DELIVERY_DATE_COLUMNS = frozenset({"first_logical_date", "last_logical_date"})
CALENDAR_MARTS = frozenset({"fct_session_calendar"})


class CalendarDateError(RuntimeError):
    """A mart would publish calendar dates the consortium did not allow: nothing is published."""


class UnrecordedReleaseError(RuntimeError):
    """A release folder missing from the ledger does not match what publishing produces now."""


@dataclass(frozen=True)
class ReleaseResult:
    release_id: str
    path: str
    created: bool  # False when an identical release already existed (a recorded no-op)
    content_sha256: str


def code_version() -> str:
    """The git commit the code ran from, marked dirty when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}"


def mart_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "ORDER BY table_name",
        [MARTS_SCHEMA],
    ).fetchall()
    return [r[0] for r in rows]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a mart's columns, in table order."""
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [MARTS_SCHEMA, table],
    ).fetchall()


def _sorted_select(table: str, columns: list[tuple[str, str]]) -> str:
    """A total order over every column, so file bytes do not depend on thread scheduling."""
    order = ", ".join(f'"{c}" NULLS FIRST' for c, _ in columns)
    return f'SELECT * FROM {MARTS_SCHEMA}."{table}" ORDER BY {order}'


def _documented(table: pa.Table, codebook: Codebook, name: str) -> pa.Table:
    """The mart with its codebook entry as Arrow metadata: a description per field (and its
    allowed values), the table's description on the schema."""
    doc = codebook.table(name)
    fields = [f.with_metadata(field_metadata(doc.column(f.name))) for f in table.schema]
    schema = pa.schema(fields, metadata={DESCRIPTION_KEY: doc.description.encode("utf-8")})
    return pa.Table.from_arrays(table.columns, schema=schema)


def export_marts(build_db: Path, folder: Path, registry_dir: Path) -> list[dict]:
    """One Parquet file per mart, a standalone marts.duckdb and the codebook, all from one
    read-only view of the build; descriptions come from the build's dbt manifest and the
    registry it scored with (`registry_dir`)."""
    files: list[dict] = []
    parquet_dir = folder / "parquet"
    parquet_dir.mkdir(parents=True)
    release_db = folder / "marts.duckdb"
    con = duckdb.connect(str(build_db), read_only=True)
    try:
        names = mart_names(con)
        if not names:
            raise RuntimeError(f"{build_db} has no tables in schema {MARTS_SCHEMA}")
        columns = {name: _columns(con, name) for name in names}
        codebook = build_codebook(
            read_dbt_manifest(dbt_manifest_path(build_db)), columns, load_registry(registry_dir)
        )
        for name in names:
            table = con.execute(_sorted_select(name, columns[name])).fetch_arrow_table()
            table = _documented(table, codebook, name)
            target = parquet_dir / f"{name}.parquet"
            pq.write_table(table, target, **PARQUET_OPTIONS)
            files.append(
                {
                    "path": f"parquet/{name}.parquet",
                    "mart": name,
                    "rows": table.num_rows,
                    "sha256": sha256_file(target),
                }
            )
    finally:
        con.close()
    # Tables go in the file's main schema: the file is named marts.duckdb, so its catalog is
    # `marts` and analysts' `SELECT * FROM marts.fct_...` resolves with no ambiguity.
    out = duckdb.connect(str(release_db))
    try:
        for entry in files:
            out.execute(
                f'CREATE TABLE main."{entry["mart"]}" AS '
                f"SELECT * FROM read_parquet('{folder / entry['path']}')"
            )
            for statement in comment_statements(codebook.table(entry["mart"])):
                out.execute(statement)
        out.execute("CHECKPOINT")
    finally:
        out.close()
    files.append(
        {
            "path": "marts.duckdb",
            "rows": None,
            "sha256": sha256_file(release_db),
            "tables": [e["mart"] for e in files],
        }
    )
    for written in (
        write_codebook_csv(codebook, folder / CSV_NAME),
        write_codebook_html(codebook, folder / HTML_NAME),
    ):
        files.append({"path": written.name, "rows": None, "sha256": sha256_file(written)})
    return files


def date_columns(folder: Path, files: list[dict]) -> list[tuple[str, str]]:
    """(mart, column) of every date- or timestamp-typed column of the exported Parquet files."""
    found = []
    for entry in files:
        if "mart" not in entry:
            continue
        for field in pq.read_schema(folder / entry["path"]):
            if pa.types.is_date(field.type) or pa.types.is_timestamp(field.type):
                found.append((entry["mart"], field.name))
    return found


def check_calendar_dates(folder: Path, files: list[dict], allowed: bool) -> None:
    """Refuse a release whose marts carry a participant's calendar date it may not carry."""
    offending = [
        f"{mart}.{column}"
        for mart, column in date_columns(folder, files)
        if column not in DELIVERY_DATE_COLUMNS and not (allowed and mart in CALENDAR_MARTS)
    ]
    if offending:
        raise CalendarDateError(
            "refusing to publish calendar dates ("
            + ", ".join(offending)
            + "): releases carry relative time unless the consortium file allows dates "
            "(release: {calendar_dates: true}), and then only in "
            + ", ".join(sorted(CALENDAR_MARTS))
        )


POLICY_FILE = "scoring_policy.json"


def scoring_policy_in_force(build_info: dict, where: Paths) -> list[dict]:
    """Per instrument, the missing-item rule and rounding the marts were scored with: the
    registry's defaults with the consortium's scoring_policy applied, and who set each."""
    registry = load_registry(where.resolve(build_info["registry_dir"]))
    consortium = load_consortium(where.resolve(build_info["consortium_file"]), registry)
    return consortium.scoring_policy.in_force(registry)


def copy_rules(build_info: dict, folder: Path, where: Paths, policy: list[dict]) -> list[dict]:
    """The registry and consortium file the marts were scored with, so a rebuild can use them,
    and the scoring policy in force read from both (`rules/scoring_policy.json`)."""
    files = []
    rules = folder / "rules"
    (rules / "instruments").mkdir(parents=True)
    target = rules / POLICY_FILE
    target.write_text(json.dumps(policy, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files.append({"path": f"rules/{POLICY_FILE}", "rows": None, "sha256": sha256_file(target)})
    sources = [where.resolve(build_info["consortium_file"])]
    sources += sorted(where.resolve(build_info["registry_dir"]).glob("*.yml"))
    for source in sources:
        relative = "consortium.yml" if source == sources[0] else f"instruments/{source.name}"
        target = rules / relative
        shutil.copyfile(source, target)
        files.append({"path": f"rules/{relative}", "rows": None, "sha256": sha256_file(target)})
    return files


def reproducible(path: str) -> bool:
    """A release file a rebuild reproduces byte for byte: the Parquet files and the codebook
    (DuckDB files embed no stable bytes; rules/ are copies of the inputs)."""
    return path.endswith(".parquet") or path in (CSV_NAME, HTML_NAME)


def content_sha256(files: list[dict]) -> str:
    """Identity of the release's content: the hashes of its reproducible files."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda e: e["path"]):
        if reproducible(entry["path"]):
            digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _point_latest(releases: Path, release_id: str) -> None:
    tmp = releases / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(release_id)
    os.replace(tmp, releases / "latest")


def _make_read_only(folder: Path) -> None:
    """Files 0444, folders 0555 (the folder itself last): nothing can be added or replaced
    without first changing permissions (root ignores them: `bordin verify` catches that)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_symlink():
            continue
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


def _remove_tree(folder: Path) -> None:
    """Remove a (possibly read-only) staging folder, whoever runs the publish."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def reproducible_hashes(files: list[dict]) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in files if reproducible(f["path"])}


def _record_existing(where: Paths, final: Path, content: str, files: list[dict]) -> None:
    """Ledger line for a release folder a crashed publish renamed but did not record.

    Recorded only when the folder matches its own manifest and that manifest lists exactly the
    Parquet and codebook hashes this publish has just recomputed from the same build."""
    report = verify_release(final.name, where)
    if any(p.kind != "not in ledger" for p in report.problems):
        found = "; ".join(f"{p.path}: {p.kind}" for p in report.problems)
        raise UnrecordedReleaseError(f"release {final.name} is not in the ledger and {found}")
    manifest = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    recorded = reproducible_hashes(manifest["files"])
    if manifest.get("content_sha256") != content or recorded != reproducible_hashes(files):
        raise UnrecordedReleaseError(
            f"release {final.name} is not in the ledger and its Parquet and codebook hashes "
            "differ from the ones this build produces: not recording it"
        )
    record_release(where, final.name, manifest["logical_date"], final / "manifest.json")


GATE_SUMMARY_FILE = "gate_summary.json"
# Kept out of the manifest's "gx" record: the per-check lines go to gate_summary.json instead.
GATE_DETAIL_KEYS = frozenset({"checks"})


def write_gate_summary(gate_summary: dict, folder: Path) -> dict:
    """The gate's verdict as the release may show it: one line per check (rule, category,
    status, observed count, sites affected, why), counts only. The restricted Data Docs and
    stored GX results keep the detail. Returns its manifest entry."""
    doc = {
        "success": gate_summary.get("success"),
        "by_status": gate_summary.get("by_status"),
        "gx_version": gate_summary.get("gx_version"),
        "suite_sha256": gate_summary.get("suite_sha256"),
        "checks": gate_summary.get("checks", []),
    }
    path = folder / GATE_SUMMARY_FILE
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {"path": GATE_SUMMARY_FILE, "rows": len(doc["checks"]), "sha256": sha256_file(path)}


def publish(
    logical_date: date,
    build_info: dict,
    gate_summary: dict,
    where: Paths | None = None,
    extra_manifest: dict | None = None,
) -> ReleaseResult:
    """Write releases/<id>/ atomically; an identical existing release is a recorded no-op."""
    where = where or paths()
    # A release holds the marts twice (Parquet and marts.duckdb), each about the build's size.
    needed = 2 * tree_bytes(where.resolve(build_info["build_db"]))
    with named_when_full(where.releases, needed, "publishing the release"):
        return _publish(logical_date, build_info, gate_summary, where, extra_manifest)


def _publish(
    logical_date: date,
    build_info: dict,
    gate_summary: dict,
    where: Paths,
    extra_manifest: dict | None,
) -> ReleaseResult:
    where.releases.mkdir(parents=True, exist_ok=True)
    for leftover in where.releases.glob(".staging-*"):  # from a killed publish; never visible
        _remove_tree(leftover)
    staging = where.releases / f".staging-{os.getpid()}"
    staging.mkdir()
    try:
        files = export_marts(
            where.resolve(build_info["build_db"]),
            staging,
            where.resolve(build_info["registry_dir"]),
        )
        allowed = bool(build_info["dbt_vars"].get("release_calendar_dates", False))
        check_calendar_dates(staging, files, allowed)
        content = content_sha256(files)
        policy = scoring_policy_in_force(build_info, where)
        files += copy_rules(build_info, staging, where, policy)
        files.append(write_gate_summary(gate_summary, staging))
        version = build_info["event_log_version"]
        release_id = f"{logical_date.isoformat()}_v{version}_{content[:8]}"
        final = where.releases / release_id
        if final.exists():
            _remove_tree(staging)
            if release_id not in read_ledger(where):
                _record_existing(where, final, content, files)
            _point_latest(where.releases, release_id)
            return ReleaseResult(release_id, str(final), False, content)
        manifest = {
            "release_id": release_id,
            "logical_date": logical_date.isoformat(),
            "event_log_version": version,
            "quarantine_version": build_info.get("quarantine_version"),
            "intake_version": build_info.get("intake_version"),
            "code_version": code_version(),
            "release_format": RELEASE_FORMAT,
            "content_sha256": content,
            "registry_sha256": build_info["registry_sha256"],
            "consortium_sha256": build_info["consortium_sha256"],
            "scoring_policy": policy,
            "parameters": build_info["dbt_vars"],
            "files": files,
            "dbt": build_info["dbt"],
            "gx": {k: v for k, v in gate_summary.items() if k not in GATE_DETAIL_KEYS},
            **(extra_manifest or {}),
        }
        report = render_report(staging / "marts.duckdb", manifest, staging / "report.html")
        manifest["files"].append(
            {"path": "report.html", "rows": None, "sha256": sha256_file(report)}
        )
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        _make_read_only(staging)
        _fsync_tree(staging)
        crash_point("release.before_rename")
        os.rename(staging, final)
        _fsync_tree_dir(where.releases)
        crash_point("release.after_rename_before_latest")  # also: before the ledger line
        record_release(where, release_id, logical_date.isoformat(), final / "manifest.json")
        _point_latest(where.releases, release_id)
        return ReleaseResult(release_id, str(final), True, content)
    except BaseException:
        if staging.exists():
            _remove_tree(staging)
        raise
