"""The ``commlink`` command: demo, check, sync, watch, connect, status,
timeline, skipped, db.

Only the arguments are defined here; each command's module is imported when
that command runs, so ``commlink --help`` loads no database or provider code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


def _run(target: str) -> Command:
    """A command implemented by ``module:function`` of this package, imported on use."""

    def run(args: argparse.Namespace) -> int:
        module, _, name = target.partition(":")
        found: Command = getattr(importlib.import_module(f"commlink.cli.{module}"), name)
        return found(args)

    return run


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the TOML configuration file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commlink", description="Email and calendars into a CRM, with policy and visibility."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action="version", version=f"commlink {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="build a demo CRM in SQLite and sync a demo mailbox")
    demo.add_argument("--db", help="SQLite file to write (default: ./commlink-demo.sqlite)")
    demo.add_argument("--data", help="folder with demo.mbox and demo.ics")
    demo.set_defaults(func=_run("demo:cmd_demo"))

    check = sub.add_parser("check", help="connect to every channel and show what it would sync")
    _config(check)
    check.add_argument("--channel", action="append", help="only this channel (repeatable)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=_run("check:cmd_check"))

    sync = sub.add_parser("sync", help="sync the channels a config file declares")
    _config(sync)
    sync.add_argument("--watch", action="store_true", help="keep running and stay current")
    sync.add_argument("--interval", type=float, default=300, help="seconds between passes")
    sync.set_defaults(func=_run("commands:cmd_sync"))

    watch = sub.add_parser(
        "watch", help="hold push connections and queue Celery syncs for channels that change"
    )
    _config(watch)
    watch.add_argument(
        "--app",
        required=True,
        help="MODULE:ATTR of the tasks commlink.contrib.celery.install() returned",
    )
    watch.add_argument("--tick", type=float, default=2.0, help="seconds between store checks")
    watch.add_argument(
        "--max-watch-threads",
        type=int,
        default=5,
        help="watch() threads per channel for providers without watch_scopes",
    )
    watch.set_defaults(func=_run("watch:cmd_watch"))

    connect = sub.add_parser(
        "connect", help="sign in to a channel's account (OAuth) and save the grant"
    )
    _config(connect)
    connect.add_argument("channel", help="the id of a channel with oauth in its options")
    connect.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    connect.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the sign-in"
    )
    connect.set_defaults(func=_run("connect:cmd_connect"))

    status = sub.add_parser("status", help="show each channel's sync status")
    _config(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_run("commands:cmd_status"))

    timeline = sub.add_parser("timeline", help="show a CRM record's email threads")
    _config(timeline)
    group = timeline.add_mutually_exclusive_group(required=True)
    group.add_argument("--person")
    group.add_argument("--company")
    group.add_argument("--opportunity")
    timeline.add_argument("--viewer", required=True, help="the CRM user id reading")
    timeline.add_argument("--limit", type=int, default=20)
    timeline.add_argument("--json", action="store_true", help="print JSON")
    timeline.set_defaults(func=_run("commands:cmd_timeline"))

    search = sub.add_parser("search", help="search synced mail as a CRM user may see it")
    _config(search)
    search.add_argument("text", help='words, all required, and "quoted phrases"')
    scope = search.add_mutually_exclusive_group()
    scope.add_argument("--person", help="only the threads on this person's timeline")
    scope.add_argument("--company")
    scope.add_argument("--opportunity")
    search.add_argument("--participant", help="only mail this address takes part in")
    search.add_argument("--viewer", required=True, help="the CRM user id reading")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(func=_run("commands:cmd_search"))

    skipped = sub.add_parser("skipped", help="explain why messages were left out")
    _config(skipped)
    skipped.add_argument("--channel")
    skipped.add_argument("--message-id")
    skipped.add_argument("--limit", type=int, default=50, help="show at most this many")
    skipped.add_argument("--summary", action="store_true", help="counts by reason only")
    skipped.add_argument("--json", action="store_true", help="print JSON")
    skipped.set_defaults(func=_run("commands:cmd_skipped"))

    db = sub.add_parser("db", help="check, upgrade or print the database schema")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_check = actions.add_parser("check", help="exit 1 unless the schema is current")
    _config(db_check)
    db_check.set_defaults(func=_run("db:cmd_check"))
    upgrade = actions.add_parser("upgrade", help="create or migrate the schema")
    _config(upgrade)
    upgrade.set_defaults(func=_run("db:cmd_upgrade"))
    reindex = actions.add_parser(
        "reindex",
        help="build a SQLite store's search index again (without a text copy on SQLite 3.43+)",
    )
    _config(reindex)
    reindex.add_argument(
        "--portable",
        action="store_true",
        help="keep a copy of the text, so SQLite older than 3.43 can open the database",
    )
    reindex.add_argument(
        "--vacuum", action="store_true", help="then VACUUM, returning the freed space to disk"
    )
    reindex.set_defaults(func=_run("db:cmd_reindex"))
    keep = actions.add_parser(
        "search-index",
        help="keep the search index (on: build it from the stored mail; headers: from "
        "people and subjects only) or not (off: empty it)",
    )
    _config(keep)
    keep.add_argument("state", choices=("on", "headers", "off"))
    keep.set_defaults(func=_run("db:cmd_search_index"))
    sql = actions.add_parser("sql", help="print the DDL of a fresh schema")
    sql.add_argument("--dialect", choices=("postgresql", "sqlite"), default="postgresql")
    sql.set_defaults(func=_run("db:cmd_sql"))
    return parser


def _safe(text: str) -> str:
    from .output import terminal_safe

    return terminal_safe(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..credentials import install_log_redaction
    from ..errors import CommlinkError

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    install_log_redaction()
    try:
        return int(args.func(args))
    except CommlinkError as exc:
        if args.verbose:
            logging.getLogger("commlink.cli").exception("failed")
        print(_safe(f"commlink: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        return 0
    except Exception as exc:  # unexpected: one line, the traceback with -v
        if args.verbose:
            raise
        print(
            _safe(f"commlink: {type(exc).__name__}: {exc} (run with -v for details)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
