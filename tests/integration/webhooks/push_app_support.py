"""A CRM host for the push app tests: its store, subscriptions, keeper and
``Runner``, with ``push_app`` served by ``PushServer`` on loopback, and
channels on the local Google and Graph servers opened through the
registry, as a configuration file would."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import TracebackType
from typing import Any

from commlink.contrib.webhook_server import PushServer
from commlink.contrib.webhooks import push_app
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.registry import connect
from commlink.stores.memory import MemoryStore
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.sync.engine import SyncEngine
from commlink.sync.push import PushKeeper
from commlink.sync.runner import Runner
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT
from commlink.testing.microsoft import GraphServer

OWNER = "owner@home.example"
TOPIC = "projects/crm-push/topics/gmail"
#: Set explicitly on the push subscription, as the Google guide advises.
AUDIENCE = "https://crm.example.com/commlink/push/gmail"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def raw_mail(n: int) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: Ann <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Subject {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <m{n}@push.test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello {n}\r\n"
    ).encode()


def google_event(title: str, day: int) -> dict[str, Any]:
    return {
        "summary": title,
        "start": {"dateTime": f"2026-03-{day:02d}T10:00:00Z"},
        "end": {"dateTime": f"2026-03-{day:02d}T11:00:00Z"},
        "organizer": {"email": OWNER, "self": True},
        "attendees": [{"email": "ann@client.example", "responseStatus": "accepted"}],
    }


def graph_event(title: str, day: int) -> dict[str, Any]:
    return {
        "subject": title,
        "start": {"dateTime": f"2026-03-{day:02d}T10:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-03-{day:02d}T11:00:00.0000000", "timeZone": "UTC"},
        "organizer": {"emailAddress": {"name": "Owner", "address": OWNER}},
        "attendees": [
            {
                "type": "required",
                "status": {"response": "accepted", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": "Ann", "address": "ann@client.example"},
            }
        ],
    }


def channel(channel_id: str, provider: str) -> Channel:
    kind = ChannelKind.MAIL if provider in ("gmail", "graph") else ChannelKind.CALENDAR
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    return Channel(channel_id, "u-owner", kind, provider, settings)


GMAIL = channel("gm", "gmail")
GOOGLE_CALENDAR = channel("gc", "google-calendar")
GRAPH_MAIL = channel("gr", "graph")
GRAPH_CALENDAR = channel("grc", "graph-calendar")


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def request(
    url: str,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: status, headers (lower-case names), body."""
    parts = url.split("/", 3)
    host, path = parts[2], "/" + (parts[3] if len(parts) > 3 else "")
    connection = http.client.HTTPConnection(host, timeout=5)
    try:
        connection.request(method, path, body=body or None, headers=dict(headers or {}))
        answer = connection.getresponse()
        found = {k.lower(): v for k, v in answer.getheaders()}
        return answer.status, found, answer.read()
    finally:
        connection.close()


class Woken:
    """``wake`` for tests that need no sync: the channel ids, in order."""

    def __init__(self) -> None:
        self.channels: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, channel_id: str) -> None:
        with self._lock:
            self.channels.append(channel_id)


class Host:
    """The host: ``push_app`` on a real HTTP server, a ``PushKeeper``, and a
    ``Runner`` (an hour's interval: only a wake-up syncs) once ``run()``."""

    def __init__(self, google: GoogleApiServer, graph: GraphServer) -> None:
        self.google = google
        self.graph_server = graph
        self.store = MemoryStore()
        self.subscriptions = MemorySubscriptionStore()
        self.directory = InMemoryDirectory()
        self.directory.add_person("p-ann", "Ann", ["ann@client.example"])
        self.runner = Runner(
            SyncEngine(self.store, self.directory),
            self.open,
            interval=timedelta(hours=1),
            watch=False,
        )
        self.keeper = PushKeeper(self.store, self.subscriptions, self.open)
        self.app = push_app(
            self.subscriptions,
            self.runner.wake,
            gmail_audience=AUDIENCE,
            gmail_service_accounts=[PUSH_SERVICE_ACCOUNT],
            keeper=self.keeper,
            gmail_certs_url=google.certs_url,
        )
        self.server = PushServer(self.app, "127.0.0.1", 0)
        self._serving: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def options(self, channel: Channel) -> dict[str, Any]:
        """What a configuration file would give each channel."""
        google = {"token": self.google.token}
        graph = {
            "token": self.graph_server.token,
            "base_url": self.graph_server.base_url,
            "user": OWNER,
            "push_url": f"{self.url}/push/graph",
            "push_lifecycle_url": f"{self.url}/push/graph/lifecycle",
        }
        return {
            "gmail": {**google, "api_endpoint": self.google.base_url, "pubsub_topic": TOPIC},
            "google-calendar": {
                **google,
                "api_endpoint": self.google.calendar_url,
                "push_url": f"{self.url}/push/google-calendar",
            },
            "graph": graph,
            "graph-calendar": graph,
        }[channel.provider]

    def open(self, channel: Channel) -> Any:
        return connect(channel, self.options(channel))

    def run(self, *channels: Channel) -> None:
        """Save the channels, subscribe them, serve the Runner and wait for
        their first sync."""
        for item in channels:
            self.store.save_channel(item)
        report = self.keeper.keep()
        assert report.errors == {}, report.errors
        self._serving = threading.Thread(
            target=self.runner.serve, kwargs={"tick": timedelta(hours=1)}, daemon=True
        )
        self._serving.start()
        assert wait_for(lambda: all(self.synced(c.id) for c in channels), 15)

    def synced(self, channel_id: str) -> bool:
        state = self.store.channel_state(channel_id)
        return state is not None and state.last_success is not None

    def stored(self, channel_id: str) -> int:
        return self.store.count_associations(channel_id)

    def __enter__(self) -> Host:
        self.server.start()
        self.google.pubsub.create_push_subscription(
            TOPIC, f"{self.url}/push/gmail", audience=AUDIENCE, name="gmail-push"
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.runner.stop()
        if self._serving is not None:
            self._serving.join(timeout=10)
        self.google.wait_for_pushes(5)
        self.graph_server.push.drain()
        self.app.close()
        self.server.stop()
