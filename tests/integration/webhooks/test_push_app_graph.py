"""``push_app`` end to end with the strict local Graph server: the keeper's
subscriptions are validated through the app (both URLs), a new message
or event is notified to the app, which wakes the Runner, which stores it;
lifecycle notifications reach the keeper through the app; notifications
without the subscription's ``clientState`` wake nothing."""

from __future__ import annotations

import json
import time

import pytest
from push_app_support import (
    GRAPH_CALENDAR,
    GRAPH_MAIL,
    Host,
    graph_event,
    raw_mail,
    request,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_graph_mail_and_events_are_notified_through_the_app_and_stored(host: Host) -> None:
    host.run(GRAPH_MAIL, GRAPH_CALENDAR)
    server = host.graph_server
    subs = host.subscriptions.subscriptions()
    assert {s.channel_id for s in subs} == {GRAPH_MAIL.id, GRAPH_CALENDAR.id}
    urls = {f"{host.url}/push/graph", f"{host.url}/push/graph/lifecycle"}
    assert {url for url, _ in server.push.validations} == urls
    assert all(ok for _, ok in server.push.validations)
    assert host.app.counts["graph 200"] == host.app.counts["graph_lifecycle 200"] == len(subs)

    started = time.monotonic()
    server.mail.add_message(raw_mail(1), "inbox")
    assert wait_for(lambda: host.stored(GRAPH_MAIL.id) == 1)
    print(f"graph mail: added -> stored in {(time.monotonic() - started) * 1000:.0f} ms")

    started = time.monotonic()
    server.calendar.add_event(server.calendar.default, graph_event("Review", 3))
    assert wait_for(lambda: host.stored(GRAPH_CALENDAR.id) == 1)
    print(f"graph event: added -> stored in {(time.monotonic() - started) * 1000:.0f} ms")
    assert server.push.drain()
    assert host.app.counts["graph 202"] >= 2
    assert host.app.graph.counts["dropped"] == 0


def test_lifecycle_notifications_reach_the_keeper_through_the_app(host: Host) -> None:
    host.run(GRAPH_MAIL)
    server = host.graph_server
    removed = host.subscriptions.subscriptions(channel_id=GRAPH_MAIL.id)[0]
    assert server.push.lifecycle(removed.id, "subscriptionRemoved")
    assert server.push.drain()
    assert host.app.graph.drain(timeout=10)
    assert host.subscriptions.subscription(removed.id) is None  # replaced by a new one
    again = {s.resource for s in host.subscriptions.subscriptions(channel_id=GRAPH_MAIL.id)}
    assert removed.resource in again
    assert host.app.counts["graph_lifecycle 202"] == 1


def test_notifications_without_the_client_state_wake_nothing(host: Host) -> None:
    host.run(GRAPH_MAIL)
    sub = host.subscriptions.subscriptions(channel_id=GRAPH_MAIL.id)[0]
    note = {
        "subscriptionId": sub.id,
        "changeType": "created",
        "resource": sub.resource,
        "clientState": "a guess",
        "tenantId": "t",
    }
    body = json.dumps({"value": [note]}).encode()
    status, _, _ = request(
        f"{host.url}/push/graph", headers={"Content-Type": "application/json"}, body=body
    )
    assert status == 202  # a prober learns nothing
    assert host.app.graph.counts["dropped"] == 1
    assert host.app.graph.counts["woken"] == 0
    assert host.runner.due() == []
