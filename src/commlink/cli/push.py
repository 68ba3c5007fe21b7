"""Webhook push for the long-running commands: with a ``[push]`` table,
``commlink sync --watch`` and ``commlink watch`` serve the push endpoints
(``commlink.contrib.webhooks``) and keep the channels' subscriptions alive
with a ``PushKeeper`` run as a periodic duty."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

from ..contrib.webhook_server import PushServer, serve_push
from ..contrib.webhooks import PushApp, push_app
from ..errors import ConfigError
from ..model import Channel
from ..ports import CalendarProvider, MailProvider
from ..stores.sql import SqlStore
from ..sync.push import PushKeeper, PushReport
from ..sync.watch_hub import PeriodicDuty
from .output import terminal_safe
from .push_config import PushConfig

__all__ = ["PushService", "serving_push"]

Connect = Callable[[Channel], MailProvider | CalendarProvider]


@attrs.frozen
class PushService:
    """What ``serving_push`` started: the app, its server, the keeper, and
    the duty that runs ``keeper.keep()`` (hand it to the Runner or the
    watch process) and wakes each channel given a new subscription, since
    changes made before it existed were not notified."""

    app: PushApp
    server: PushServer
    keeper: PushKeeper
    duty: PeriodicDuty


@contextmanager
def serving_push(
    push: PushConfig,
    store: SqlStore,
    wake: Callable[[str], None],
    connect: Connect,
    *,
    announce: bool = True,
) -> Iterator[PushService]:
    """Serve the push endpoints on ``push.listen`` until the block ends.

    ``store`` holds the channels and the subscriptions; ``wake`` makes a
    channel sync soon (``Runner.wake``, ``WakeQueue.wake``); ``connect``
    opens a channel's provider for the keeper. ``announce`` prints where
    the endpoints listen to stderr."""
    subscriptions = store.subscription_store()
    keeper = PushKeeper(store, subscriptions, connect)
    app = push_app(
        subscriptions,
        wake,
        gmail_audience=push.gmail_audience,
        gmail_service_accounts=push.gmail_service_accounts,
        keeper=keeper,
        paths=push.paths,
        gmail_certs_url=push.gmail_certs_url,
    )
    try:
        server = serve_push(app, push.listen)
    except ConfigError as exc:  # the address is taken, or not this machine's
        app.close()
        raise ConfigError(str(exc).removeprefix("listen: "), field="push.listen") from None
    if announce:
        shown = f" for {push.public_url}" if push.public_url else ""
        print(terminal_safe(f"commlink: push endpoints on {server.url}{shown}"), file=sys.stderr)

    def keep() -> PushReport:
        report = keeper.keep()
        for outcome in report.channels:
            if outcome.created or outcome.replaced:  # what changed before it was not notified
                wake(outcome.channel_id)
        return report

    try:
        duty = PeriodicDuty("push subscriptions", push.renew_every, keep)
        yield PushService(app, server, keeper, duty)
    finally:
        server.stop()
        app.close()
