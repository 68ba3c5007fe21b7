"""The commands that sync and read: ``sync``, ``status``, ``timeline``, ``skipped``.

Loaded only when one of them runs (``commlink --help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigError
from ..model import Channel, Role
from ..providers.registry import Provider, connect
from ..records import ChannelState, PageRequest, SearchQuery, Skip, Target, TargetKind, Viewer
from ..sync.early import EarlyConnections
from ..sync.engine import SyncEngine
from ..sync.runner import Runner
from .config import Config, absent_sqlite_file, load_config
from .output import (
    AliasInEffect,
    aliases_in_effect,
    as_json,
    format_aliases,
    format_skips,
    format_threads,
    terminal_safe,
    when_relative,
)
from .progress import ProgressLine

if TYPE_CHECKING:
    from ..stores.sql import SqlDirectory, SqlStore

__all__ = ["cmd_search", "cmd_skipped", "cmd_status", "cmd_sync", "cmd_timeline"]


def _progress_printer(stream: TextIO) -> ProgressLine | None:
    return ProgressLine(stream) if stream.isatty() else None


@contextmanager
def _opened(config: Config, *, create: bool = True) -> Iterator[tuple[SqlStore, SqlDirectory]]:
    """The configured store, closed when the command is done (a SQLite store
    then folds its log back into the database file); read commands
    (``create=False``) never create a SQLite file that is not there."""
    database = None if create else absent_sqlite_file(config.store_url)
    if database is not None:
        raise ConfigError(
            f"no database at {database}; run `commlink sync` on this configuration first",
            field="store.url",
        )
    # loaded here, not with the commands: a sync's providers start their
    # discovery first (see ``EarlyConnections``), and ``--help`` never needs it
    from ..stores.sql import SqlDirectory, SqlStore

    with SqlStore(config.store_url) as store:
        yield store, SqlDirectory(store)


def cmd_sync(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    options = {c.channel.id: c for c in config.channels}

    def open_provider(channel: Channel) -> Provider:
        return connect(channel, options[channel.id].options)

    early = None
    if not args.watch:  # the providers' discovery overlaps opening the store
        early = EarlyConnections([c.channel for c in config.channels], open_provider)
    try:
        with _opened(config) as (store, directory):
            return _sync(args, config, store, directory, early.connect if early else open_provider)
    finally:
        if early is not None:
            early.close()


def _sync(
    args: argparse.Namespace,
    config: Config,
    store: SqlStore,
    directory: SqlDirectory,
    open_provider: Callable[[Channel], Provider],
) -> int:
    progress = _progress_printer(sys.stderr)
    engine = SyncEngine(store, directory, progress=progress, folder_ttl=timedelta(minutes=5))
    for item in config.channels:
        store.save_channel(item.channel)
    runner = Runner(
        engine,
        open_provider,
        interval=timedelta(seconds=args.interval),
        watch=args.watch,
    )
    if args.watch:
        with ExitStack() as pushing:
            if config.push is not None:  # webhook endpoints, and the subscriptions they need
                from .push import serving_push

                push = pushing.enter_context(
                    serving_push(config.push, store, runner.wake, runner.connect)
                )
                runner.hub.duties.append(push.duty)
            try:
                runner.serve()
            except KeyboardInterrupt:
                runner.stop()
        return 0
    reports = runner.run_once([c.channel for c in config.channels])
    if progress is not None:
        progress.finish()
    failed = False
    for report in reports:
        print(terminal_safe(report.summary()))
        for error in report.errors:
            print(terminal_safe(f"  error: {error}"))
            failed = True
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _opened(config, create=False) as (store, _):
        now = datetime.now(timezone.utc)
        states = [
            store.channel_state(item.channel.id) or ChannelState(item.channel.id)
            for item in config.channels
        ]
        aliases = [
            aliases_in_effect(
                item.channel.settings.aliases, state.aliases, item.channel.settings.owner
            )
            for item, state in zip(config.channels, states, strict=True)
        ]
        if args.json:
            print(as_json([_state_json(s, a) for s, a in zip(states, aliases, strict=True)]))
            return 0
        for state, in_effect in zip(states, aliases, strict=True):
            last = when_relative(state.last_success, now) if state.last_success else "never"
            line = (
                f"{state.channel_id}: {state.status.value}, {state.stage.value}, "
                f"last success {last}"
            )
            if state.failures:
                line += f", {state.failures} failures in a row"
            if state.next_attempt is not None:
                line += f", next attempt {when_relative(state.next_attempt, now)}"
            print(terminal_safe(line))
            if in_effect:
                print(f"  {format_aliases(in_effect)}")
            if state.last_error:
                print(terminal_safe(f"  last error: {state.last_error}"))
        return 0


def _state_json(state: ChannelState, aliases: Sequence[AliasInEffect]) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    return {
        "channel": state.channel_id,
        "status": state.status.value,
        "stage": state.stage.value,
        "failures": state.failures,
        "last_error": state.last_error or None,
        "next_attempt": moment(state.next_attempt),
        "last_success": moment(state.last_success),
        "aliases": [
            {"address": a.address, "configured": a.configured, "discovered": a.discovered}
            for a in aliases
        ],
    }


def cmd_timeline(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _opened(config, create=False) as (store, _):
        if args.person:
            target = Target(TargetKind.PERSON, args.person)
        elif args.company:
            target = Target(TargetKind.COMPANY, args.company)
        else:
            target = Target(TargetKind.OPPORTUNITY, args.opportunity)
        page = store.timeline(target, Viewer(args.viewer), PageRequest(limit=args.limit))
        if args.json:
            print(as_json({"threads": list(page.items), "next": page.next}))
        else:
            print("\n".join(format_threads(page.items)))
        return 0


def _target(args: argparse.Namespace) -> Target | None:
    if args.person:
        return Target(TargetKind.PERSON, args.person)
    if args.company:
        return Target(TargetKind.COMPANY, args.company)
    if args.opportunity:
        return Target(TargetKind.OPPORTUNITY, args.opportunity)
    return None


def cmd_search(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _opened(config, create=False) as (store, _):
        query = SearchQuery(args.text, target=_target(args), participant=args.participant)
        page = store.search(query, Viewer(args.viewer), PageRequest(limit=args.limit))
        if args.json:
            print(as_json({"hits": list(page.items), "next": page.next}))
            return 0
        if not page.items:
            print("  (nothing found)")
        for hit in page.items:
            subject = hit.subject if hit.subject is not None else "(hidden)"
            sender = next((p.address for p in hit.participants if p.role is Role.FROM), None)
            who = (sender.name or sender.email) if sender else "?"
            lines = [f"  {hit.date:%Y-%m-%d %H:%M}  {who}: {subject}  [{hit.visibility.value}]"]
            if hit.snippet:
                lines.append(f"      {' '.join(hit.snippet.split())[:120]}")
            print("\n".join(terminal_safe(line) for line in lines))
        if page.next:
            print("  ... more (--limit)")
        return 0


def cmd_skipped(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    with _opened(config, create=False) as (store, _):
        found: dict[str, list[Skip]] = {}
        for item in config.channels:
            if args.channel and item.channel.id != args.channel:
                continue
            # the operator reads as the channel's owner
            owner = Viewer(item.channel.user_id)
            found[item.channel.id] = list(store.skips(item.channel.id, owner, args.message_id))
        if args.json:
            print(
                as_json(
                    {c: _summary(s) if args.summary else s[: args.limit] for c, s in found.items()}
                )
            )
            return 0
        for channel_id, skips in found.items():
            print(f"{channel_id}: {len(skips)} skipped")
            if args.summary:
                for reason, count in _summary(skips).items():
                    print(f"  {reason:<16} {count}")
                continue
            print("\n".join(format_skips(skips[: args.limit])))
            if len(skips) > args.limit:
                print(f"  ... and {len(skips) - args.limit} more (--limit, --summary)")
        return 0


def _summary(skips: Sequence[Skip]) -> dict[str, int]:
    return dict(Counter(s.reason.value for s in skips).most_common())
