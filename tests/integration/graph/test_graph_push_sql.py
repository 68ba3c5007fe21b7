"""``PushKeeper`` and ``GraphWebhook`` on ``SqlSubscriptionStore`` (SQLite and
PostgreSQL): what one process subscribed, a restarted one renews, routes
and removes, with the secrets read back from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from graph_support import OWNER, calendar_channel, client, mail_channel, raw_mail
from sqlalchemy.engine import Engine
from webhook_support import serving, wsgi_app

from commlink.model import Channel, ChannelKind
from commlink.providers.microsoft.graph import (
    GraphCalendarProvider,
    GraphMailProvider,
    GraphWebhook,
)
from commlink.stores.sql import SqlStore
from commlink.sync.push import PushKeeper
from commlink.testing.microsoft import GraphServer
from commlink.testing.postgres import emptied

pytestmark = pytest.mark.integration

Open = Callable[[], SqlStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    """Opens the same database again, as a restarted process would."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/push.sqlite"
        yield lambda: SqlStore(url)
        return
    engine: Engine = request.getfixturevalue("pg_engine")
    emptied(engine)
    yield lambda: SqlStore(engine)


class Endpoint:
    """The host's webhook URL, answered by whichever process is running."""

    def __init__(self) -> None:
        self.webhook: GraphWebhook | None = None

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.webhook is not None
        return wsgi_app(self.webhook)(environ, start_response)


def _connect(server: GraphServer, url: str) -> Callable[[Channel], Any]:
    def connect(channel: Channel) -> GraphMailProvider | GraphCalendarProvider:
        push: dict[str, Any] = {"push_url": f"{url}/graph", "push_lifecycle_url": f"{url}/graph"}
        if channel.kind is ChannelKind.MAIL:
            return GraphMailProvider(client(server), user=OWNER, **push)
        return GraphCalendarProvider(client(server), user=OWNER, **push)

    return connect


def test_subscriptions_survive_a_restart(server: GraphServer, open_store: Open) -> None:
    endpoint = Endpoint()
    with serving(endpoint.app) as url:
        first = open_store()
        woken: list[str] = []
        endpoint.webhook = GraphWebhook(first.subscription_store(), woken.append)
        first.save_channel(mail_channel())
        first.save_channel(calendar_channel())
        keeper = PushKeeper(first, first.subscription_store(), _connect(server, url))
        created = keeper.keep()
        assert created.errors == {}
        assert created.created == len(server.subscriptions) > 2
        first.close()

        # a new process: nothing in memory, everything from the database
        second = open_store()
        subscriptions = second.subscription_store()
        clock_offset = timedelta()
        keeper = PushKeeper(
            second,
            subscriptions,
            _connect(server, url),
            clock=lambda: datetime.now(timezone.utc) + clock_offset,
        )
        endpoint.webhook = GraphWebhook(subscriptions, woken.append, keeper)
        again = keeper.keep()
        assert (again.created, again.renewed, again.removed) == (0, 0, 0)
        assert sum(c.kept for c in again.channels) == created.created

        server.mail.add_message(raw_mail(1), "inbox")
        assert server.push.drain()
        assert woken == ["gr"]  # the stored clientState matched

        before = {s.id: s.expires_at for s in subscriptions.subscriptions()}
        clock_offset = timedelta(days=6)
        renewed = keeper.keep()
        assert renewed.renewed == created.created
        second.close()

        third = open_store()
        stored = {s.id: s for s in third.subscription_store().subscriptions()}
        assert set(stored) == set(before)
        assert all(stored[i].expires_at >= before[i] for i in before)
        assert all(s.secret is not None and len(s.secret.reveal()) >= 40 for s in stored.values())

        mail_ids = {s.id for s in stored.values() if s.channel_id == "gr"}
        keeper = PushKeeper(third, third.subscription_store(), _connect(server, url))
        forgot = keeper.forget_channel("gr")
        third.remove_channel("gr")
        assert forgot.removed == len(mail_ids)
        assert not mail_ids & set(server.subscriptions)
        assert {s.channel_id for s in third.subscription_store().subscriptions()} == {"gr-cal"}
        third.close()
