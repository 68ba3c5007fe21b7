"""Gmail push end to end: the provider watches the mailbox through the real
google-api-python-client, the local Gmail publishes changes to the local
Pub/Sub, Pub/Sub POSTs them with a signed OIDC token to a real HTTP
endpoint running ``GmailPushEndpoint``, which wakes the channel, and the
engine syncs the new mail."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from gapi_support import OWNER, mail, mail_channel
from google.oauth2.credentials import Credentials
from push_support import EndpointServer, Wakes, post, wait_for

from commlink.errors import ConfigError, InvalidInput
from commlink.model import FolderSelection
from commlink.providers.google.gmail import MAILBOX, GmailProvider
from commlink.providers.google.push import GmailPushEndpoint
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT

pytestmark = pytest.mark.integration

TOPIC = "projects/crm-push/topics/gmail"


class Rig:
    """The local Google, the host's endpoint and the host's stores."""

    def __init__(self, server: GoogleApiServer, endpoint_server: EndpointServer) -> None:
        self.server = server
        self.http = endpoint_server
        self.subs = MemorySubscriptionStore()
        self.wakes = Wakes()
        self.endpoint = GmailPushEndpoint(
            self.subs,
            self.wakes,
            audience=endpoint_server.url,
            allowed_emails=[PUSH_SERVICE_ACCOUNT],
            certs_url=server.certs_url,
        )
        endpoint_server.handle = self.endpoint.handle
        server.pubsub.create_push_subscription(TOPIC, endpoint_server.url, name="gmail-push")
        self.providers: list[GmailProvider] = []

    def provider(self, **kwargs: object) -> GmailProvider:
        made = GmailProvider(
            Credentials(token=self.server.token),
            api_endpoint=self.server.base_url,
            base_delay=0.01,
            pubsub_topic=TOPIC,
            **kwargs,  # type: ignore[arg-type]
        )
        self.providers.append(made)
        return made

    def pushes(self) -> list[int]:
        assert self.server.wait_for_pushes()
        return [a.status for a in self.server.sender.attempts_to(self.http.url)]


@pytest.fixture
def rig(server: GoogleApiServer) -> Iterator[Rig]:
    with EndpointServer(lambda headers, body: (500, b"")) as endpoint_server:
        made = Rig(server, endpoint_server)
        yield made
        server.wait_for_pushes()
        for provider in made.providers:
            provider.close()


def _subjects(store: MemoryStore) -> list[str]:
    items = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    return sorted(t.subject or "" for t in items)


def _engine() -> tuple[SyncEngine, MemoryStore]:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    return SyncEngine(store, directory), store


def test_new_mail_is_pushed_woken_and_synced(rig: Rig) -> None:
    rig.server.gmail.add_message(OWNER, mail(1))
    engine, store = _engine()
    channel = mail_channel()
    gmail = rig.provider()
    assert engine.run(channel, gmail).imported == 1
    [resource] = gmail.push_resources(gmail.scopes([]))
    assert resource == MAILBOX
    sub = gmail.subscribe(channel.id, resource, None)
    rig.subs.save_subscription(sub)

    started = time.monotonic()
    rig.server.gmail.add_message(OWNER, mail(2))
    assert wait_for(lambda: rig.wakes.channels == [channel.id])
    latency = time.monotonic() - started
    for channel_id in rig.wakes.take():
        assert channel_id == channel.id
        assert engine.run(channel, gmail).imported == 1
    assert _subjects(store) == ["Subject 1", "Subject 2"]
    assert rig.pushes() == [204]
    assert rig.endpoint.counts["woken"] == 1
    print(f"mail added -> channel woken: {latency * 1000:.0f} ms")


def test_push_request_has_the_pubsub_shape(rig: Rig) -> None:
    gmail = rig.provider()
    rig.subs.save_subscription(gmail.subscribe("gm", MAILBOX, None))
    rig.server.gmail.add_message(OWNER, mail(1))
    assert rig.pushes() == [204]
    [attempt] = rig.server.sender.attempts_to(rig.http.url)
    body = json.loads(attempt.body)
    assert body["subscription"] == "projects/crm-push/subscriptions/gmail-push"
    message = body["message"]
    assert message["messageId"] == message["message_id"]
    assert message["publishTime"].endswith("Z")
    data = json.loads(base64.b64decode(message["data"]))
    assert data["emailAddress"] == OWNER
    assert int(data["historyId"]) > int(gmail.snapshot(gmail.scopes([])[0])) - 1
    assert attempt.headers["Authorization"].startswith("Bearer ey")


def test_subscription_and_its_quota(rig: Rig) -> None:
    gmail = rig.provider()
    before = rig.server.units_spent()
    sub = gmail.subscribe("gm", MAILBOX, None)
    assert rig.server.units_spent() - before == 100 + 1  # watch + getProfile
    assert (sub.id, sub.account, sub.provider, sub.channel_id) == (
        f"gmail:{OWNER}",
        OWNER,
        "gmail",
        "gm",
    )
    week = datetime.now(timezone.utc) + timedelta(days=7)
    assert abs((sub.expires_at - week).total_seconds()) < 60
    assert int(sub.data["historyId"]) > 0
    assert sub.secret is None
    watch = rig.server.gmail.mailbox(OWNER).watch
    assert watch is not None
    assert watch["topicName"] == TOPIC
    assert watch["labelIds"] == []

    before = rig.server.units_spent()
    renewed = gmail.subscribe("gm", MAILBOX, sub)
    assert renewed.id == sub.id
    assert renewed.expires_at >= sub.expires_at
    assert rig.server.units_spent() - before == 100  # the address is remembered

    gmail.unsubscribe(renewed)
    assert rig.server.units_spent() - before == 150
    assert rig.server.gmail.mailbox(OWNER).watch is None
    gmail.unsubscribe(renewed)  # nothing left to stop: still fine
    rig.server.gmail.add_message(OWNER, mail(1))
    assert rig.pushes() == []


def test_push_is_narrowed_to_the_selected_labels(rig: Rig) -> None:
    label = rig.server.gmail.add_label(OWNER, "Clients")
    gmail = rig.provider(folder_selection=FolderSelection(include=frozenset({"inbox"})))
    [resource] = gmail.push_resources(gmail.scopes([]))
    assert resource == "labels:INBOX"
    rig.subs.save_subscription(gmail.subscribe("gm", resource, None))
    watch = rig.server.gmail.mailbox(OWNER).watch
    assert watch is not None
    assert (watch["labelIds"], watch["labelFilterBehavior"]) == (["INBOX"], "include")
    rig.server.gmail.add_message(OWNER, mail(1), labels=[label])
    assert rig.pushes() == []
    rig.server.gmail.add_message(OWNER, mail(2), labels=["INBOX"])
    assert rig.pushes() == [204]
    assert rig.wakes.take() == ["gm"]

    nothing = rig.provider(folder_selection=FolderSelection(include=frozenset({"Label_404"})))
    assert nothing.push_resources(nothing.scopes([])) == []
    with pytest.raises(InvalidInput, match="not a Gmail push resource"):
        gmail.subscribe("gm", "labels:", None)


def test_topic_without_gmail_grant_is_a_config_error(rig: Rig) -> None:
    rig.server.pubsub.deny_gmail_publish(TOPIC)
    gmail = rig.provider()
    with pytest.raises(ConfigError) as caught:
        gmail.subscribe("gm", MAILBOX, None)
    assert caught.value.field == "pubsub_topic"
    bare = GmailProvider(Credentials(token="t"), api_endpoint=rig.server.base_url)
    rig.providers.append(bare)
    with pytest.raises(ConfigError):
        bare.subscribe("gm", MAILBOX, None)


def test_unknown_mailbox_is_acknowledged_not_retried(rig: Rig) -> None:
    rig.provider().subscribe("gm", MAILBOX, None)  # watched, but the host kept no record
    rig.server.gmail.add_message(OWNER, mail(1))
    assert rig.pushes() == [204]  # one attempt: Pub/Sub will not redeliver
    assert rig.wakes.take() == []
    assert rig.endpoint.counts["unrouted"] == 1


def test_failed_wake_is_redelivered(rig: Rig) -> None:
    gmail = rig.provider()
    rig.subs.save_subscription(gmail.subscribe("gm", MAILBOX, None))
    rig.wakes.failures = 1
    rig.server.gmail.add_message(OWNER, mail(1))
    assert rig.pushes() == [503, 204]
    assert rig.wakes.take() == ["gm"]


def test_certs_are_fetched_once_and_again_after_rotation(rig: Rig) -> None:
    gmail = rig.provider()
    rig.subs.save_subscription(gmail.subscribe("gm", MAILBOX, None))
    rig.endpoint.key_refetch_seconds = 0.0
    for n in range(1, 4):
        rig.server.gmail.add_message(OWNER, mail(n))
    assert rig.pushes() == [204, 204, 204]
    assert rig.server.counters["certs"] == 1
    rig.server.pubsub.issuer.rotate()
    rig.server.gmail.add_message(OWNER, mail(4))
    assert rig.pushes()[-1] == 204
    assert rig.server.counters["certs"] == 2
    assert len(rig.wakes.take()) == 4


def test_refused_tokens_wake_nothing(rig: Rig) -> None:
    gmail = rig.provider()
    rig.subs.save_subscription(gmail.subscribe("gm", MAILBOX, None))
    issuer = rig.server.pubsub.issuer
    data = base64.b64encode(json.dumps({"emailAddress": OWNER, "historyId": 5}).encode())
    body = json.dumps({"message": {"data": data.decode(), "messageId": "1"}}).encode()
    url = rig.http.url
    header = {"Content-Type": "application/json"}

    def with_token(token: str) -> dict[str, str]:
        return {**header, "Authorization": f"Bearer {token}"}

    from commlink.testing.google.oidc import OidcIssuer

    other = OidcIssuer()
    now = time.time()
    refused = {
        "no token": (header, 401),
        "not bearer": ({**header, "Authorization": "Basic dTpw"}, 401),
        "garbage": (with_token("not.a.jwt"), 401),
        "forged": (with_token(other.token(url, PUSH_SERVICE_ACCOUNT, key_id=issuer.kid)), 401),
        "unknown key": (with_token(other.token(url, PUSH_SERVICE_ACCOUNT)), 401),
        "expired": (
            with_token(issuer.token(url, PUSH_SERVICE_ACCOUNT, issued_at=now - 7200)),
            401,
        ),
        "wrong audience": (with_token(issuer.token(url + "x", PUSH_SERVICE_ACCOUNT)), 401),
        "wrong issuer": (
            with_token(
                issuer.token(url, PUSH_SERVICE_ACCOUNT, extra={"iss": "https://evil.example"})
            ),
            401,
        ),
        "alg none": (with_token(_unsigned(url)), 401),
        "other account": (with_token(issuer.token(url, "someone@evil.example")), 403),
        "unverified": (
            with_token(issuer.token(url, PUSH_SERVICE_ACCOUNT, email_verified=False)),
            403,
        ),
    }
    for name, (headers, status) in refused.items():
        assert post(url, headers, body) == status, name
    assert rig.wakes.take() == []
    assert rig.endpoint.counts["refused"] == len(refused)
    good = with_token(issuer.token(url, PUSH_SERVICE_ACCOUNT))
    assert post(url, good, b'{"message": {"data": "!!"}}') == 400
    assert post(url, good, body) == 204
    assert rig.wakes.take() == ["gm"]


def _unsigned(audience: str) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {
        "aud": audience,
        "email": PUSH_SERVICE_ACCOUNT,
        "email_verified": True,
        "iss": "https://accounts.google.com",
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_push_keeper_subscribes_renews_and_stops(rig: Rig) -> None:
    from commlink.sync.push import PushKeeper

    store = MemoryStore()
    channel = mail_channel()
    store.save_channel(channel)
    now = [datetime.now(timezone.utc)]
    keeper = PushKeeper(store, rig.subs, lambda c: rig.provider(), clock=lambda: now[0])
    assert keeper.keep().created == 1
    [sub] = rig.subs.subscriptions(provider="gmail", account=OWNER)
    assert (sub.id, sub.channel_id, sub.resource) == (f"gmail:{OWNER}", channel.id, MAILBOX)
    rig.server.gmail.add_message(OWNER, mail(1))
    assert rig.pushes() == [204]
    assert rig.wakes.take() == [channel.id]

    assert keeper.keep().renewed == 0
    now[0] += timedelta(days=6)
    assert keeper.keep().renewed == 1
    [renewed] = rig.subs.subscriptions(provider="gmail")
    assert renewed.id == sub.id
    assert renewed.expires_at > sub.expires_at

    assert keeper.forget_channel(channel.id).removed == 1
    assert rig.server.gmail.mailbox(OWNER).watch is None
    assert rig.subs.subscriptions() == []
