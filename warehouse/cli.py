"""`bordin`: drive by hand everything the nightly DAG does."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

from ingestion.config_errors import ConfigError
from ingestion.disk_space import DiskFullError
from ingestion.pseudonyms import MissingKeyError
from ingestion.settings import paths
from warehouse.airflow_runner import NightlyBusyError
from warehouse.cli_environment import epilog
from warehouse.export_formats import EXPORT_FORMATS
from warehouse.step_errors import GateFailedError

DESCRIPTION_WIDTH = 88


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown on every option that has one; the environment block kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _TopHelp(_Help):
    """`bordin -h`: the command column wide enough for the longest name (`reprocess`)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        self._action_max_length = 15


def _command(
    sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand: one line in `bordin -h`, its description and environment in its own -h."""
    return sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description or help, DESCRIPTION_WIDTH),
        epilog=epilog(name),
        formatter_class=_Help,
    )


def _today_utc() -> str:
    # The CLI is the boundary where a person's "now" becomes the run's logical date.
    return datetime.now(UTC).date().isoformat()


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def cmd_nightly(args: argparse.Namespace) -> int:
    from ingestion.site_summary import summary_table
    from warehouse import progress
    from warehouse.airflow_runner import run_nightly

    print(f"bordin_nightly {args.date}: ingest each site, build, check, release")
    airflow_log = paths().airflow_home / "logs" / f"bordin-nightly-{args.date}.log"
    with progress.terminal_only(airflow_log) as terminal, progress.watching(terminal) as night:
        state = run_nightly(date.fromisoformat(args.date))
    if night.ingested:
        print("\nper site (files read tonight; quarantine records by rule):")
        for line in summary_table(night.ingested):
            print(line)
    if state != "success":
        what = night.failure or "a task failed (see the Airflow task logs)"
        print(f"\nbordin_nightly {args.date} FAILED at {what}", file=sys.stderr)
        for line in night.failure_detail:
            print(f"  {line}", file=sys.stderr)
        print(f"Airflow's log of this run: {airflow_log}", file=sys.stderr)
        return 1
    latest = paths().releases / "latest"
    release = night.release or {}
    release_id = release.get("release_id") or (os.readlink(latest) if latest.is_symlink() else None)
    print(f"\nbordin_nightly {args.date}: success")
    if release_id:
        print(f"release {release_id}: {paths().releases / release_id} (latest: {latest})")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from ingestion.config_check import check_consortium, format_checks

    _, checks = check_consortium(date.fromisoformat(args.date))
    for line in format_checks(paths().consortium_file, checks):
        print(line)
    return 1 if any(c.error for c in checks) else 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from ingestion.reprocess import ReprocessRefusedError, reprocess_site
    from ingestion.site_summary import site_summary_lines

    try:
        result = reprocess_site(args.site, args.date)
    except ReprocessRefusedError as exc:
        print(f"bordin reprocess: {exc}", file=sys.stderr)
        return 1
    for night, replayed in zip(result.nights, result.replay, strict=True):
        print(f"replayed night {night[0]}: {', '.join(night[1])}")
        for line in site_summary_lines(replayed):
            print(f"  {line}")
    if result.not_yet_ingested:
        print(f"not yet ingested (left for the next ingest): {', '.join(result.not_yet_ingested)}")
    if result.no_op:
        print(f"site {args.site}: nothing differs from the event log; no-op recorded")
    else:
        print(
            f"site {args.site}: reprocessed into event log version {result.event_log_version}: "
            f"{result.recorded} recorded, {result.amended} amended, {result.retracted} retracted, "
            f"{result.withdrawn} withdrawn (reason 'reprocessed', batch {result.batch_id})"
        )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from warehouse.pipeline import ingest_step, site_ids

    for site in args.site or site_ids():
        _print(ingest_step(site, args.date))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from warehouse.pipeline import build_step

    _print(build_step(threads=args.threads, force=args.force))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from warehouse.pipeline import check_step

    _print(check_step())
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from warehouse.pipeline import release_step

    _print(release_step(args.date))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from warehouse.rebuild import rebuild

    report = rebuild(args.release_id, threads=args.threads)
    for check in report.checks:
        mark = "ok      " if check.matches else "MISMATCH"
        print(f"{mark} {check.path}  {check.rebuilt or '-'}")
    for problem in report.disk_problems:
        print(f"ON DISK  {problem.path}: {problem.kind} ({problem.detail})")
    if report.problem:
        print(f"cannot rebuild {report.release_id}: {report.problem}")
    verdict = "reproduced" if report.reproduced else "NOT reproduced"
    print(
        f"release {report.release_id} (event log v{report.event_log_version}): {verdict}, "
        f"{sum(c.matches for c in report.checks)}/{len(report.checks)} files identical"
        + (f", {len(report.disk_problems)} differ on disk" if report.disk_problems else "")
    )
    return 0 if report.reproduced else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from warehouse.verify import format_report, verify_release

    try:
        report = verify_release(args.release)
    except FileNotFoundError as exc:
        print(f"bordin verify: {exc}")
        return 1
    for line in format_report(report):
        print(line)
    return 0 if report.ok else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from warehouse.release_diff import diff_releases

    rows = diff_releases(args.release_a, args.release_b)
    print(f"{'mart':<34} {'rows a':>8} {'rows b':>8} {'added':>7} {'removed':>8} {'changed':>8}")
    for d in rows:
        print(
            f"{d.mart:<34} {d.rows_a:>8} {d.rows_b:>8} {d.added:>7} {d.removed:>8} {d.changed:>8}"
        )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from warehouse.history import client_history, format_history

    versions = client_history(
        args.site, args.client, session=args.session, instrument=args.instrument
    )
    print(format_history(versions))
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from warehouse.erasure import UnknownClientError, erase_client

    try:
        report = erase_client(
            args.site,
            args.client,
            reason=args.reason,
            operator=args.operator,
            on=date.fromisoformat(args.date),
        )
    except UnknownClientError as exc:
        print(f"bordin: {exc}", file=sys.stderr)
        return 2
    _print(report.__dict__)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from warehouse.exports import ExportError, export_release

    try:
        result = export_release(args.format, args.release, args.out)
    except (ExportError, FileNotFoundError) as exc:
        print(f"bordin export: {exc}", file=sys.stderr)
        return 1
    for name, rows in result.files:
        print(f"{result.folder / name}" + ("" if rows is None else f"  ({rows} rows)"))
    for mart, renamed in sorted(result.renamed.items()):
        for column, short in renamed.items():
            print(f"{mart}: column {column} is named {short} (name length limit)")
    print(f"release {result.release_id}: {len(result.files)} files in {result.folder}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from warehouse.demo import run_demo

    return run_demo(seed=args.seed, clients=args.clients)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bordin", description=__doc__, epilog=epilog(), formatter_class=_TopHelp
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = _command(
        sub,
        "demo",
        help="write a synthetic consortium and run the nightly DAG",
        description="Write a synthetic four-site consortium (one site per export format) into "
        "$BORDIN_HOME, with its own pseudonym key unless one is set, and run the nightly DAG "
        "on it; prints per-site and pooled r and the release it published.",
    )
    demo.add_argument("--seed", type=int, default=20261120, help="random seed of the data")
    demo.add_argument(
        "--clients",
        type=int,
        default=None,
        help="consortium size, split over the four sites in the demo's proportions "
        "(default 360; e.g. 100000 for a scale test)",
    )
    demo.set_defaults(func=cmd_demo)
    for name, func, helptext in (
        ("nightly", cmd_nightly, "run the bordin_nightly DAG once, as the scheduler would"),
        ("ingest", cmd_ingest, "ingest new deliveries of one or all sites"),
        ("release", cmd_release, "publish the gated build as a release"),
    ):
        p = _command(sub, name, helptext)
        p.add_argument(
            "--date",
            default=_today_utc(),
            metavar="YYYY-MM-DD",
            help="the run's logical date; today in UTC when omitted",
        )
        p.set_defaults(func=func)
        if name == "ingest":
            p.add_argument(
                "--site",
                action="append",
                metavar="SITE",
                help="site id (repeatable); every site when omitted",
            )
    config = _command(
        sub,
        "config",
        help="validate the consortium file, then dry-run each site on its newest delivery",
        description="Validate the consortium file (every key, at every level), then dry-run "
        "each site's newest export through the real intake into a throwaway folder with a "
        "throwaway key: nothing is written to $BORDIN_HOME and no pseudonym key is needed. "
        "Prints per site the files found, rows, administrations accepted and quarantined, and "
        "the quarantine records by rule with one example each (row and column, never a value).",
    )
    config.add_argument("action", choices=["check"], help="check: validate and dry-run")
    config.add_argument(
        "--date",
        default=_today_utc(),
        metavar="YYYY-MM-DD",
        help="the logical date the dry run uses (future-date checks); today in UTC when omitted",
    )
    config.set_defaults(func=cmd_config)
    reprocess = _command(
        sub,
        "reprocess",
        help="re-derive a site from its retained deliveries under the current configuration",
        description="Replay every delivery the site's inbox still holds, night by night in "
        "the order they were first ingested, under the current configuration and rules "
        "(files rejected under an earlier configuration are read again), then append what "
        "differs from the event log as recorded / amended / retracted events with reason "
        "'reprocessed', and an audit record. Running it again with no change records a no-op.",
    )
    reprocess.add_argument("--site", required=True, help="the site id, as in consortium.yml")
    reprocess.add_argument(
        "--date",
        default=_today_utc(),
        metavar="YYYY-MM-DD",
        help="the logical date the new events carry; today in UTC when omitted",
    )
    reprocess.set_defaults(func=cmd_reprocess)
    build = _command(sub, "build", help="run dbt over the event log into the build warehouse")
    build.add_argument(
        "--threads",
        type=int,
        default=None,
        help="dbt threads (default: $BORDIN_DBT_THREADS, else every core)",
    )
    build.add_argument(
        "--force",
        action="store_true",
        help="run dbt even when nothing changed since the last gated build (default: no-op)",
    )
    build.set_defaults(func=cmd_build)
    check = _command(sub, "check", help="run the data-quality gate over the built marts")
    check.set_defaults(func=cmd_check)
    rebuild = _command(sub, "rebuild", help="rebuild a release and verify its content hashes")
    rebuild.add_argument("release_id", help="the release folder's name under releases/")
    rebuild.add_argument(
        "--threads",
        type=int,
        default=None,
        help="dbt threads (default: $BORDIN_DBT_THREADS, else every core)",
    )
    rebuild.set_defaults(func=cmd_rebuild)
    verify = _command(
        sub,
        "verify",
        help="check every file of a release against its manifest, and the manifest against "
        "the release ledger (exit 0 only when nothing differs)",
    )
    verify.add_argument(
        "release", nargs="?", default="latest", help="release id under $BORDIN_HOME/releases"
    )
    verify.set_defaults(func=cmd_verify)
    diff = _command(sub, "diff", help="rows added, removed and changed per mart between releases")
    diff.add_argument("release_a", help="the earlier release id")
    diff.add_argument("release_b", help="the later release id")
    diff.set_defaults(func=cmd_diff)
    history = _command(sub, "history", help="every version of a client's administrations")
    history.add_argument("--site", required=True, help="the site id, as in consortium.yml")
    history.add_argument("--client", required=True, help="the site's client code")
    history.add_argument(
        "--session", type=int, help="only this session number (default: every session)"
    )
    history.add_argument(
        "--instrument", help="only this instrument id, e.g. phq9 (default: every instrument)"
    )
    history.set_defaults(func=cmd_history)
    erase = _command(sub, "erase", help="erase a client's data from the store, with a record")
    erase.add_argument("--site", required=True, help="the site id, as in consortium.yml")
    erase.add_argument("--client", required=True, help="the site's client code")
    erase.add_argument(
        "--reason", required=True, help="why, kept in the erasure record (e.g. the request id)"
    )
    erase.add_argument("--operator", required=True, help="who performs the erasure")
    erase.add_argument(
        "--date",
        default=_today_utc(),
        metavar="YYYY-MM-DD",
        help="date of the erasure record; today in UTC when omitted",
    )
    erase.set_defaults(func=cmd_erase)
    export = _command(
        sub,
        "export",
        help="write every mart of a release as SPSS, Stata or CSV files with labels",
        description="Write every mart of a release as one file per mart, with the release's "
        "codebook.csv and codebook.html beside them. sav and dta carry variable labels (the "
        "column descriptions) and value labels (categories coded 1..k, booleans 0/1); csv "
        "holds the values as released, with text that a spreadsheet would run as a formula "
        "prefixed by a single quote. Only a release that verifies is exported; the same "
        "release always gives the same bytes.",
    )
    export.add_argument(
        "--format",
        required=True,
        choices=sorted(EXPORT_FORMATS),
        help="; ".join(f"{name}: {what}" for name, what in EXPORT_FORMATS.items()),
    )
    export.add_argument(
        "--release",
        default="latest",
        metavar="RELEASE_ID",
        help="release id under $BORDIN_HOME/releases",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output folder (default: $BORDIN_HOME/exports/<release_id>/<format>)",
    )
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = args.func(args)
    except (ConfigError, MissingKeyError, NightlyBusyError, DiskFullError) as exc:
        print(f"bordin: {exc}", file=sys.stderr)
        return 2
    except GateFailedError as exc:
        print(f"bordin {args.command}: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("BORDIN_TIMING"):
        print(f"[{args.command} took {time.monotonic() - started:.1f} s]", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
