"""Graph push end to end: ``PushKeeper`` subscribes the selected folders and
calendars on the strict local Graph server, which validates the host's
real HTTP endpoint (``GraphWebhook`` behind WSGI) and posts every change
to it; the webhook checks each ``clientState``, wakes the channel and
handles lifecycle notifications."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from graph_support import OWNER, calendar_channel, client, engine, mail_channel, raw_mail
from webhook_support import serving, silent_app, wsgi_app

from commlink.errors import ConfigError, ProviderError
from commlink.model import Channel, ChannelKind, FolderSelection
from commlink.providers.microsoft.graph import (
    GraphCalendarProvider,
    GraphClient,
    GraphMailProvider,
    GraphWebhook,
    StaticToken,
)
from commlink.providers.registry import connect
from commlink.stores.memory import MemoryStore
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.sync.push import PushKeeper, selected_scopes
from commlink.sync.runner import Runner
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Clock:
    """The keeper's time, moved by the tests."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def open_provider(
    server: GraphServer, url: str, channel: Channel
) -> GraphMailProvider | GraphCalendarProvider:
    """What the host's ``connect`` does: the channel's provider, pushing to ``url``."""
    push: dict[str, Any] = {"push_url": f"{url}/hooks/graph", "push_lifecycle_url": f"{url}/life"}
    if channel.kind is ChannelKind.MAIL:
        return GraphMailProvider(client(server), user=OWNER, **push)
    return GraphCalendarProvider(client(server), user=OWNER, **push)


@attrs.define
class Hub:
    """A host: its store, subscriptions, keeper and webhook endpoint."""

    server: GraphServer
    store: MemoryStore
    subscriptions: MemorySubscriptionStore
    keeper: PushKeeper
    webhook: GraphWebhook
    url: str
    woken: list[str]
    clock: Clock

    def provider(self, channel: Channel) -> GraphMailProvider | GraphCalendarProvider:
        return open_provider(self.server, self.url, channel)

    def settle(self) -> None:
        """Wait for the server's deliveries and the webhook's lifecycle jobs."""
        assert self.server.push.drain()
        assert self.webhook.drain(timeout=20)


@pytest.fixture
def hub(server: GraphServer) -> Iterator[Hub]:
    store, subscriptions, clock = MemoryStore(), MemorySubscriptionStore(), Clock()
    woken: list[str] = []
    webhook = GraphWebhook(subscriptions, woken.append)
    with serving(wsgi_app(webhook)) as url:
        keeper = PushKeeper(
            store, subscriptions, lambda c: open_provider(server, url, c), clock=clock
        )
        webhook.keeper = keeper
        store.save_channel(mail_channel())
        store.save_channel(calendar_channel())
        yield Hub(server, store, subscriptions, keeper, webhook, url, woken, clock)
        webhook.close()


def _expected_resources(hub: Hub, channel: Channel) -> set[str]:
    provider = hub.provider(channel)
    try:
        return set(provider.push_resources(selected_scopes(channel, provider)[1]))
    finally:
        provider.close()


def test_keeper_subscribes_each_selected_folder_and_calendar(hub: Hub) -> None:
    server = hub.server
    extra = server.calendar.add_calendar("Team")
    report = hub.keeper.keep()
    assert report.errors == {}
    assert report.reconnect == []
    mail_resources = _expected_resources(hub, mail_channel())
    inbox, junk = server.mail.folder_id("inbox"), server.mail.folder_id("junkemail")
    assert f"users/{OWNER}/mailFolders('{inbox}')/messages" in mail_resources
    assert not any(junk in r for r in mail_resources)  # spam is never synced, nor watched
    assert _expected_resources(hub, calendar_channel()) == {
        f"users/{OWNER}/calendars('{server.calendar.default}')/events",
        f"users/{OWNER}/calendars('{extra}')/events",
    }
    stored = hub.subscriptions.subscriptions()
    assert report.created == len(stored) == len(mail_resources) + 2
    assert {s.resource for s in stored} == mail_resources | _expected_resources(
        hub, calendar_channel()
    )
    live = server.subscriptions
    secrets = set()
    for sub in stored:
        assert GUID.match(sub.id)
        assert sub.secret is not None
        assert len(sub.secret.reveal()) >= 40
        assert sub.secret.reveal() not in repr(sub)
        secrets.add(sub.secret.reveal())
        rendered = live[sub.id]
        assert rendered["clientState"] == sub.secret.reveal()
        assert rendered["changeType"] == "created,deleted,updated"
        assert rendered["notificationUrl"] == f"{hub.url}/hooks/graph"
        assert rendered["lifecycleNotificationUrl"] == f"{hub.url}/life"
        lifetime = sub.expires_at - datetime.now(timezone.utc)
        assert timedelta(days=6) < lifetime <= timedelta(minutes=10080)
    assert len(secrets) == len(stored)  # a fresh secret per subscription
    # both URLs were validated for every subscription, by the endpoint itself
    assert server.push.validations == [
        (url, True) for _ in stored for url in (f"{hub.url}/hooks/graph", f"{hub.url}/life")
    ]
    assert hub.webhook.counts["validated"] == 2 * len(stored)
    again = hub.keeper.keep()
    assert (again.created, again.renewed) == (0, 0)
    assert sum(c.kept for c in again.channels) == len(stored)


def test_renewal_patches_and_a_lapsed_subscription_is_created_anew(hub: Hub) -> None:
    hub.keeper.keep()
    before = {s.id: s for s in hub.subscriptions.subscriptions()}
    lapsed = next(iter(before))
    hub.server.push.expire(lapsed)
    hub.clock.offset = timedelta(days=6)  # inside the two days' renew margin
    report = hub.keeper.keep()
    assert report.errors == {}
    assert report.renewed == len(before) - 1
    assert sum(c.replaced for c in report.channels) == 1
    after = {s.id: s for s in hub.subscriptions.subscriptions()}
    assert lapsed not in after
    assert lapsed not in hub.server.subscriptions
    assert len(after) == len(before)
    for sub_id, sub in before.items():
        if sub_id != lapsed:
            assert after[sub_id].expires_at >= sub.expires_at
            assert after[sub_id].secret == sub.secret
    patched = [t for m, t in hub.server.call_log if m == "PATCH"]
    assert len(patched) == len(before)  # the lapsed one answered 404, then POST


def test_an_endpoint_that_does_not_answer_the_handshake_fails_clearly(server: GraphServer) -> None:
    received: list[bytes] = []
    with serving(silent_app(received)) as url:
        mail = GraphMailProvider(client(server), user=OWNER, push_url=f"{url}/hooks")
        try:
            resource = mail.push_resources(selected_scopes(mail_channel(), mail)[1])[0]
            with pytest.raises(ProviderError, match="could not validate the push endpoint") as err:
                mail.subscribe("gr", resource, None)
        finally:
            mail.close()
    assert "validationToken" in str(err.value)
    assert "text/plain" in str(err.value)
    assert server.subscriptions == {}
    assert len(received) == 1  # the probe came and got no token back


def test_a_lifecycle_url_that_does_not_answer_fails_too(hub: Hub) -> None:
    with serving(silent_app([])) as silent:
        mail = GraphMailProvider(
            client(hub.server),
            user=OWNER,
            push_url=f"{hub.url}/hooks/graph",
            push_lifecycle_url=f"{silent}/life",
        )
        try:
            resource = mail.push_resources(selected_scopes(mail_channel(), mail)[1])[0]
            with pytest.raises(ProviderError, match="ValidationError"):
                mail.subscribe("gr", resource, None)
        finally:
            mail.close()
    assert hub.server.subscriptions == {}


def test_keeper_reports_a_failing_endpoint_per_channel(server: GraphServer) -> None:
    store, subscriptions = MemoryStore(), MemorySubscriptionStore()
    store.save_channel(mail_channel())
    with serving(silent_app([])) as url:

        def connect(channel: Channel) -> GraphMailProvider:
            return GraphMailProvider(client(server), user=OWNER, push_url=f"{url}/h")

        report = PushKeeper(store, subscriptions, connect).keep()
    assert set(report.errors) == {"gr"}
    assert "could not validate the push endpoint" in report.errors["gr"]
    assert subscriptions.subscriptions() == []


def test_mail_delivered_wakes_the_channel_and_the_runner_syncs_it(hub: Hub) -> None:
    sync, _ = engine(hub.store)
    runner = Runner(sync, hub.provider, watch=False)
    hub.webhook.wake = runner.wake
    assert [r.complete for r in runner.run_once()] == [True, True]
    hub.keeper.keep()
    assert runner.due() == []
    hub.server.mail.add_message(raw_mail(1), "inbox")
    hub.settle()
    delivered = [d for d in hub.server.push.deliveries if d.url.endswith("/hooks/graph")]
    assert [d.status for d in delivered] == [202]
    [note] = delivered[0].body["value"]
    message_id = hub.server.mail.find("<m1@test>")
    assert note["changeType"] == "created"
    assert GUID.match(note["subscriptionId"])
    assert GUID.match(note["tenantId"])
    assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
    assert note["resourceData"]["id"] == message_id
    assert note["resourceData"]["@odata.id"].endswith(f"/Messages/{message_id}")
    assert note["subscriptionExpirationDateTime"].endswith("Z")
    assert [c.id for c in runner.due()] == ["gr"]
    [report] = runner.run_once()
    assert report.imported == 1
    assert hub.webhook.counts["changes"] == 1
    assert hub.webhook.counts["dropped"] == 0


def test_a_calendar_change_wakes_the_calendar_channel(hub: Hub) -> None:
    hub.keeper.keep()
    start = datetime.now(timezone.utc) + timedelta(days=1)
    end = start + timedelta(hours=1)
    hub.server.calendar.add_event(
        hub.server.calendar.default,
        {
            "subject": "Review",
            "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        },
    )
    hub.settle()
    assert hub.woken == ["gr-cal"]
    [delivery] = hub.server.push.deliveries
    assert delivery.body["value"][0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"


def _post(url: str, body: object) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def test_forged_notifications_are_dropped_and_never_wake(hub: Hub) -> None:
    hub.keeper.keep()
    sub = hub.subscriptions.subscriptions(channel_id="gr")[0]
    forged = hub.server.push.notification(sub.id, "created", "AAkALgforged")
    forged["value"][0]["clientState"] = "guessed"
    unknown = hub.server.push.notification(sub.id, "created", "AAkALgother")
    unknown["value"][0]["subscriptionId"] = str(uuid.uuid4())
    assert _post(f"{hub.url}/hooks/graph", forged) == 202
    assert _post(f"{hub.url}/hooks/graph", unknown) == 202
    assert hub.woken == []
    assert hub.webhook.counts["dropped"] == 2
    genuine = hub.server.push.notification(sub.id, "updated", "AAkALgreal")
    assert _post(f"{hub.url}/hooks/graph", genuine) == 202
    assert hub.woken == ["gr"]


def test_reauthorization_required_renews_and_wakes(hub: Hub) -> None:
    hub.keeper.keep()
    inbox = hub.server.mail.folder_id("inbox")
    [sub] = [s for s in hub.subscriptions.subscriptions(channel_id="gr") if inbox in s.resource]
    assert hub.server.push.lifecycle(sub.id, "reauthorizationRequired")
    hub.server.mail.add_message(raw_mail(2), "inbox")  # withheld while unauthorized
    hub.settle()
    assert hub.server.push.lost == 1
    assert hub.webhook.counts["reauthorizationRequired"] == 1
    assert hub.woken == ["gr"]  # after the renewal: the withheld change is fetched by sync
    assert not hub.server.push.subscriptions[sub.id].paused
    assert [m for m, t in hub.server.call_log if t.endswith(sub.id)] == ["PATCH"]
    renewed = hub.subscriptions.subscription(sub.id)
    assert renewed is not None
    assert renewed.expires_at >= sub.expires_at


def test_subscription_removed_is_created_anew(hub: Hub) -> None:
    hub.keeper.keep()
    sub = hub.subscriptions.subscriptions(channel_id="gr-cal")[0]
    assert hub.server.push.lifecycle(sub.id, "subscriptionRemoved")
    hub.settle()
    assert hub.subscriptions.subscription(sub.id) is None
    [fresh] = [s for s in hub.subscriptions.subscriptions() if s.resource == sub.resource]
    assert fresh.id != sub.id
    assert fresh.secret != sub.secret
    assert fresh.id in hub.server.subscriptions
    assert hub.woken == ["gr-cal"]


def test_missed_wakes_for_a_full_changes_pass(hub: Hub) -> None:
    hub.keeper.keep()
    sub = hub.subscriptions.subscriptions(channel_id="gr")[0]
    assert hub.server.push.lifecycle(sub.id, "missed")
    hub.settle()
    assert hub.woken == ["gr"]
    assert hub.webhook.counts["missed"] == 1
    assert hub.subscriptions.subscription(sub.id) == sub  # nothing else to do


def test_lifecycle_without_a_keeper_marks_the_subscription_due(hub: Hub) -> None:
    hub.keeper.keep()
    hub.webhook.keeper = None
    sub = hub.subscriptions.subscriptions(channel_id="gr")[0]
    hub.server.push.lifecycle(sub.id, "subscriptionRemoved")
    hub.settle()
    due = hub.subscriptions.subscription(sub.id)
    assert due is not None
    assert due.expires_at <= datetime.now(timezone.utc)
    report = hub.keeper.keep()
    assert sum(c.replaced for c in report.channels) == 1
    assert hub.subscriptions.subscription(sub.id) is None


def test_a_deselected_folder_and_a_removed_channel_are_unsubscribed(hub: Hub) -> None:
    archive = hub.server.mail.folder_id("archive")
    hub.keeper.keep()
    assert any(archive in s["resource"] for s in hub.server.subscriptions.values())
    narrowed = attrs.evolve(
        mail_channel(),
        settings=attrs.evolve(
            mail_channel().settings, folders=FolderSelection(exclude=frozenset({archive}))
        ),
    )
    hub.store.save_channel(narrowed)
    report = hub.keeper.keep()
    assert report.removed == 1
    assert not any(archive in s["resource"] for s in hub.server.subscriptions.values())
    calendar_ids = {s.id for s in hub.subscriptions.subscriptions(channel_id="gr-cal")}
    forgot = hub.keeper.forget_channel("gr-cal")
    assert forgot.removed == len(calendar_ids)
    assert forgot.ok
    assert not calendar_ids & set(hub.server.subscriptions)
    assert hub.subscriptions.subscriptions(channel_id="gr-cal") == []


def test_a_channel_removed_without_forgetting_is_cleaned_up_at_the_server(hub: Hub) -> None:
    hub.keeper.keep()
    mail_ids = {s.id for s in hub.subscriptions.subscriptions(channel_id="gr")}
    hub.store.remove_channel("gr")
    report = hub.keeper.keep()
    assert report.removed == len(mail_ids)
    assert not mail_ids & set(hub.server.subscriptions)
    assert hub.subscriptions.subscriptions(channel_id="gr") == []
    assert hub.subscriptions.subscriptions(channel_id="gr-cal") != []


def test_refused_credentials_skip_the_channel_and_others_go_on(hub: Hub) -> None:
    def connect(channel: Channel) -> GraphMailProvider | GraphCalendarProvider:
        if channel.id == "gr":
            graph = GraphClient(StaticToken("revoked"), base_url=hub.server.base_url)
            return GraphMailProvider(graph, user=OWNER, push_url=f"{hub.url}/hooks/graph")
        return hub.provider(channel)

    keeper = PushKeeper(hub.store, hub.subscriptions, connect)
    report = keeper.keep()
    assert report.reconnect == ["gr"]
    assert "AuthError" in report.errors["gr"]
    assert report.created == 1  # the calendar channel's default calendar
    assert {s.channel_id for s in hub.subscriptions.subscriptions()} == {"gr-cal"}


def test_no_push_url_watches_nothing_and_drops_what_was_watched(hub: Hub) -> None:
    hub.keeper.keep()
    held = {s.id for s in hub.subscriptions.subscriptions(channel_id="gr")}

    def connect(channel: Channel) -> GraphMailProvider | GraphCalendarProvider:
        if channel.kind is ChannelKind.MAIL:
            return GraphMailProvider(client(hub.server), user=OWNER)
        return hub.provider(channel)

    report = PushKeeper(hub.store, hub.subscriptions, connect).keep()
    assert report.removed == len(held)
    assert not held & set(hub.server.subscriptions)
    provider = GraphMailProvider(client(hub.server), user=OWNER, push_url="http://crm.example/h")
    try:
        with pytest.raises(ConfigError, match="https"):
            provider.subscribe("gr", "me/mailFolders('inbox')/messages", None)
    finally:
        provider.close()


def test_registry_options_turn_push_on(hub: Hub) -> None:
    options = {
        "token": hub.server.token,
        "base_url": hub.server.base_url,
        "user": OWNER,
        "push_url": f"{hub.url}/hooks/graph",
        "push_lifecycle_url": f"{hub.url}/life",
    }
    store = MemoryStore()
    store.save_channel(attrs.evolve(mail_channel(), id="m365"))
    store.save_channel(attrs.evolve(calendar_channel(), id="m365-cal", provider="graph-calendar"))
    keeper = PushKeeper(store, hub.subscriptions, lambda c: connect(c, options))
    report = keeper.keep()
    assert report.errors == {}
    assert report.created == len(hub.server.subscriptions)
    providers = {s.channel_id: s.provider for s in hub.subscriptions.subscriptions()}
    assert providers == {"m365": "graph", "m365-cal": "graph-calendar"}
    assert {s["lifecycleNotificationUrl"] for s in hub.server.subscriptions.values()} == {
        f"{hub.url}/life"
    }
