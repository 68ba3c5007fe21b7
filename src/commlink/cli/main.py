"""The ``commlink`` command: demo, sync, status, timeline, skipped."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TextIO

from ..credentials import install_log_redaction
from ..errors import CommlinkError
from ..providers.registry import connect
from ..records import ChannelState, PageRequest, Target, TargetKind, Viewer
from ..stores.sql import SqlDirectory, SqlStore
from ..sync.engine import SyncEngine
from ..sync.report import Progress
from ..sync.runner import Runner
from .config import Config, load_config
from .output import format_skips, format_threads, terminal_safe

__all__ = ["main"]


def _progress_printer(stream: TextIO) -> Callable[[Progress], None] | None:
    if not stream.isatty():
        return None

    def show(event: Progress) -> None:
        stream.write(
            f"\r{event.channel_id} {event.scope_id}: {event.done} listed, {event.imported} imported"
        )
        stream.flush()

    return show


def _open(config: Config) -> tuple[SqlStore, SqlDirectory]:
    store = SqlStore(config.store_url)
    return store, SqlDirectory(store)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout, db=args.db, data=args.data)


def cmd_sync(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, directory = _open(config)
    progress = _progress_printer(sys.stderr)
    engine = SyncEngine(store, directory, progress=progress, folder_ttl=timedelta(minutes=5))
    options = {c.channel.id: c for c in config.channels}
    for item in config.channels:
        store.save_channel(item.channel)
    runner = Runner(
        engine,
        lambda channel: connect(channel, options[channel.id].options),
        interval=timedelta(seconds=args.interval),
    )
    if args.watch:
        try:
            runner.serve()
        except KeyboardInterrupt:
            runner.stop()
        return 0
    reports = runner.run_once([c.channel for c in config.channels])
    if progress is not None:
        sys.stderr.write("\n")
    failed = False
    for report in reports:
        print(terminal_safe(report.summary()))
        for error in report.errors:
            print(terminal_safe(f"  error: {error}"))
            failed = True
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _open(config)
    for item in config.channels:
        state = store.channel_state(item.channel.id) or ChannelState(item.channel.id)
        last = state.last_success.isoformat(timespec="seconds") if state.last_success else "never"
        line = f"{item.channel.id}: {state.status.value}, {state.stage.value}, last success {last}"
        if state.failures:
            line += f", {state.failures} failures, next attempt {state.next_attempt}"
        print(line)
        if state.last_error:
            print(terminal_safe(f"  last error: {state.last_error}"))
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _open(config)
    if args.person:
        target = Target(TargetKind.PERSON, args.person)
    elif args.company:
        target = Target(TargetKind.COMPANY, args.company)
    else:
        target = Target(TargetKind.OPPORTUNITY, args.opportunity)
    page = store.timeline(target, Viewer(args.viewer), PageRequest(limit=args.limit))
    print("\n".join(format_threads(page.items)))
    return 0


def cmd_skipped(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store, _ = _open(config)
    for item in config.channels:
        if args.channel and item.channel.id != args.channel:
            continue
        print(f"{item.channel.id}:")
        print("\n".join(format_skips(store.skips(item.channel.id, args.message_id))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commlink", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build a demo CRM in SQLite and sync a demo mailbox")
    demo.add_argument("--db", help="SQLite file to write (default: ./commlink-demo.sqlite)")
    demo.add_argument("--data", help="folder with demo.mbox and demo.ics")
    demo.set_defaults(func=cmd_demo)

    sync = sub.add_parser("sync", help="sync the channels a config file declares")
    sync.add_argument("config")
    sync.add_argument("--watch", action="store_true", help="keep running and stay current")
    sync.add_argument("--interval", type=float, default=300, help="seconds between passes")
    sync.set_defaults(func=cmd_sync)

    status = sub.add_parser("status", help="show each channel's sync status")
    status.add_argument("config")
    status.set_defaults(func=cmd_status)

    timeline = sub.add_parser("timeline", help="show a CRM record's email threads")
    timeline.add_argument("config")
    group = timeline.add_mutually_exclusive_group(required=True)
    group.add_argument("--person")
    group.add_argument("--company")
    group.add_argument("--opportunity")
    timeline.add_argument("--viewer", required=True, help="the CRM user id reading")
    timeline.add_argument("--limit", type=int, default=20)
    timeline.set_defaults(func=cmd_timeline)

    skipped = sub.add_parser("skipped", help="explain why messages were left out")
    skipped.add_argument("config")
    skipped.add_argument("--channel")
    skipped.add_argument("--message-id")
    skipped.set_defaults(func=cmd_skipped)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    install_log_redaction()
    try:
        return int(args.func(args))
    except CommlinkError as exc:
        print(terminal_safe(f"commlink: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
