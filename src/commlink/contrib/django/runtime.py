"""What the management commands run: the configured store, directory and
channels put together into a ``Runner``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ...errors import ConfigError
from ...model import Channel
from ...ports import CalendarProvider, MailProvider
from ...providers.registry import connect
from ...sync.engine import SyncEngine
from ...sync.push import PushKeeper
from ...sync.runner import Runner
from ...sync.watch_hub import PeriodicDuty
from .conf import get_config, get_directory, get_store, get_subscription_store
from .signals import relay_events
from .wake import take_woken

__all__ = ["build_runner", "configured_channels", "printable", "watch_duties"]


def printable(text: str) -> str:
    """``text`` with control and format characters (terminal escapes, bidi
    overrides, line breaks) shown as escapes: errors quote mail and servers."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def configured_channels(only: Sequence[str] = ()) -> list[Channel]:
    """The channels of ``COMMLINK["CHANNELS"]`` (those named in ``only``),
    saved in the store so that workers and views find them."""
    config = get_config()
    known = {item.channel.id: item.channel for item in config.channels}
    missing = sorted(set(only) - known.keys())
    if missing:
        names = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"no channel {missing[0]!r} in COMMLINK['CHANNELS'] (channels: {names})")
    store = get_store()
    for channel in known.values():
        store.save_channel(channel)
    return [c for c in known.values() if not only or c.id in only]


def open_provider(channel: Channel) -> MailProvider | CalendarProvider:
    """A channel's provider, from its ``COMMLINK["CHANNELS"]`` options."""
    for item in get_config().channels:
        if item.channel.id == channel.id:
            return connect(channel, item.options)
    raise ConfigError(f"channel {channel.id!r} is not in COMMLINK['CHANNELS']")


def build_runner(*, watch: bool, interval: timedelta = timedelta(minutes=5)) -> Runner:
    """A ``Runner`` over the configured store and directory."""
    engine = SyncEngine(get_store(), get_directory(), folder_ttl=timedelta(minutes=5))
    return Runner(engine, open_provider, interval=interval, watch=watch)


def watch_duties(runner: Runner, tick: timedelta) -> list[PeriodicDuty]:
    """What the watch process does besides syncing: wake the channels push
    views flagged, relay host events, and keep push subscriptions alive
    (with ``COMMLINK["PUSH"]``)."""
    store = get_store()

    def wake_flagged() -> None:
        for channel_id in take_woken(store, [c.id for c in store.channels()]):
            runner.wake(channel_id)

    duties = [
        PeriodicDuty("woken channels", tick, wake_flagged),
        PeriodicDuty("host events", tick, lambda: relay_events(store)),
    ]
    push = get_config().push
    if push is not None:
        keeper = PushKeeper(store, get_subscription_store(), open_provider)

        def keep() -> object:
            report = keeper.keep()
            for outcome in report.channels:
                if outcome.created or outcome.replaced:  # earlier changes were not notified
                    runner.wake(outcome.channel_id)
            return report

        duties.append(PeriodicDuty("push subscriptions", push.renew_every, keep))
    return duties
