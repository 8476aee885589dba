"""`bordin`: drive by hand everything the nightly DAG does."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime

from ingestion.config_errors import ConfigError
from ingestion.pseudonyms import MissingKeyError


def _today_utc() -> str:
    # The CLI is the boundary where a person's "now" becomes the run's logical date.
    return datetime.now(UTC).date().isoformat()


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def cmd_nightly(args: argparse.Namespace) -> int:
    from warehouse.airflow_runner import run_nightly

    state = run_nightly(date.fromisoformat(args.date))
    print(f"bordin_nightly {args.date}: {state}")
    return 0 if state == "success" else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    from warehouse.pipeline import ingest_step, site_ids

    for site in args.site or site_ids():
        _print(ingest_step(site, args.date))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from warehouse.pipeline import build_step

    _print(build_step(threads=args.threads))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from warehouse.pipeline import check_step

    _print(check_step())
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from warehouse.pipeline import release_step

    _print(release_step(args.date))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from warehouse.demo import run_demo

    return run_demo(seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bordin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write a synthetic consortium and run the nightly DAG")
    demo.add_argument("--seed", type=int, default=20261120)
    demo.set_defaults(func=cmd_demo)
    for name, func, helptext in (
        ("nightly", cmd_nightly, "run the bordin_nightly DAG once, as the scheduler would"),
        ("ingest", cmd_ingest, "ingest new deliveries of one or all sites"),
        ("release", cmd_release, "publish the gated build as a release"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--date", default=_today_utc(), help="logical date (YYYY-MM-DD)")
        p.set_defaults(func=func)
        if name == "ingest":
            p.add_argument("--site", action="append", help="site id (repeatable); default all")
    build = sub.add_parser("build", help="run dbt over the event log into the build warehouse")
    build.add_argument("--threads", type=int, default=None)
    build.set_defaults(func=cmd_build)
    check = sub.add_parser("check", help="run the data-quality gate over the built marts")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        code = args.func(args)
    except (ConfigError, MissingKeyError) as exc:
        print(f"bordin: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("BORDIN_TIMING"):
        print(f"[{args.command} took {time.monotonic() - started:.1f} s]", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
