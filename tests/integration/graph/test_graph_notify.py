"""Graph subscriptions against the local server, with a real webhook that
answers the validation handshake; routing of notifications by clientState."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from graph_support import OWNER, client

from commlink.errors import InvalidInput, NotFound, ProviderError
from commlink.providers.microsoft.graph import (
    GraphSubscriptions,
    NotificationRouter,
    validation_response,
)
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


class _Webhook(BaseHTTPRequestHandler):
    """A host endpoint: echoes validation tokens, records notifications."""

    received: list[bytes]
    echo = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = validation_response(parse_qs(urlsplit(self.path).query))
        if answer is not None and self.echo:
            status, headers, payload = answer
        else:
            self.received.append(body)
            status, headers, payload = 202, {}, b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _webhook(echo: bool) -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("_Bound", (_Webhook,), {"received": received, "echo": echo})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hooks/graph", received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    yield from _webhook(echo=True)


@pytest.fixture
def silent_webhook() -> Iterator[tuple[str, list[bytes]]]:
    yield from _webhook(echo=False)


@pytest.fixture
def validating_server() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER, validate_subscriptions=True) as running:
        yield running


@pytest.fixture
def subscriptions(validating_server: GraphServer) -> Iterator[GraphSubscriptions]:
    graph = client(validating_server)
    yield GraphSubscriptions(graph, user=OWNER, lifetime=timedelta(days=3))
    graph.close()


def test_create_validates_renews_and_deletes(
    validating_server: GraphServer,
    subscriptions: GraphSubscriptions,
    webhook: tuple[str, list[bytes]],
) -> None:
    url, _ = webhook
    inbox = validating_server.mail.folder_id("inbox")
    created = subscriptions.create(subscriptions.folder_messages(inbox), url)
    stored = validating_server.subscriptions[created.id]
    assert stored["notificationUrl"] == url
    assert stored["resource"] == f"users/{OWNER}/mailFolders('{inbox}')/messages"
    assert stored["clientState"] == created.client_state
    assert len(created.client_state) >= 24
    now = datetime.now(timezone.utc)
    assert timedelta(days=2) < created.expires - now <= timedelta(days=3)
    assert not created.due(now)
    assert created.due(created.expires - timedelta(hours=1))

    subscriptions.clock = lambda: now + timedelta(days=2)
    renewed = subscriptions.renew(created)
    assert renewed.id == created.id
    assert renewed.expires > created.expires
    assert renewed.client_state == created.client_state

    subscriptions.delete(created.id)
    assert created.id not in validating_server.subscriptions
    with pytest.raises(NotFound):
        subscriptions.renew(created)


def test_a_webhook_that_does_not_echo_fails_validation(
    subscriptions: GraphSubscriptions, silent_webhook: tuple[str, list[bytes]]
) -> None:
    url, received = silent_webhook
    with pytest.raises(ProviderError, match="ValidationError"):
        subscriptions.create(subscriptions.events(), url)
    assert len(received) == 1  # the probe came, and was not answered with the token


def test_too_long_a_lifetime_is_refused(server: GraphServer) -> None:
    graph = client(server)
    try:
        subscriptions = GraphSubscriptions(graph, user=OWNER, lifetime=timedelta(days=30))
        assert subscriptions.lifetime == timedelta(minutes=10080)
        subscriptions.clock = lambda: datetime.now(timezone.utc) + timedelta(days=1)
        with pytest.raises(ProviderError, match="InvalidRequest"):
            subscriptions.create(subscriptions.events(), "https://hooks.example/graph")
    finally:
        graph.close()


def test_router_wakes_channels_with_the_right_client_state(
    server: GraphServer,
) -> None:
    graph = client(server)
    try:
        subscriptions = GraphSubscriptions(graph, user=OWNER)
        mail = subscriptions.create(
            subscriptions.folder_messages("inbox"), "https://hooks.example/graph"
        )
        events = subscriptions.create(subscriptions.events(), "https://hooks.example/graph")
    finally:
        graph.close()
    router = NotificationRouter()
    router.add(mail, "mail-channel")
    router.add(events, "calendar-channel")
    body = server.notification(mail.id, "created", "Users/x/Messages/y")
    body["value"] += server.notification(mail.id, "updated", "Users/x/Messages/z")["value"]
    wakes = router.route(body)
    assert [(w.channel_id, w.change_type) for w in wakes] == [("mail-channel", "created")]
    forged = server.notification(events.id, "deleted", "Users/x/Events/e")
    forged["value"][0]["clientState"] = "guessed"
    assert router.route(forged) == []
    assert router.rejected == 1
    router.remove(mail.id)
    assert router.route(server.notification(mail.id, "created", "r")) == []
    with pytest.raises(InvalidInput):
        router.route(b"not json")


def test_validation_response_echoes_the_token() -> None:
    assert validation_response({"validationToken": ["abc 123"]}) == (
        200,
        {"Content-Type": "text/plain; charset=utf-8"},
        b"abc 123",
    )
    assert validation_response({}) is None
