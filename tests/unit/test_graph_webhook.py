"""``GraphWebhook.handle`` on its own: the handshake, the checks on every
notification (hostile input included, with hypothesis) and lifecycle
dispatch. (Over HTTP against the local Graph server: tests/integration/graph.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.credentials import Secret
from commlink.errors import StoreError
from commlink.providers.microsoft.graph import GraphWebhook, validation_response
from commlink.records import PushSubscription
from commlink.stores.push_memory import MemorySubscriptionStore

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}
TOKEN = "Validation: Testing client application reachability for subscription Request-Id: 1a-2b"


def subscription(channel_id: str, *, provider: str = "graph") -> PushSubscription:
    return PushSubscription(
        str(uuid.uuid4()),
        channel_id,
        provider,
        "me/mailFolders('inbox')/messages",
        NOW + timedelta(days=6),
        secret=Secret(uuid.uuid4().hex + uuid.uuid4().hex),
    )


def note(sub: PushSubscription, **extra: Any) -> dict[str, Any]:
    assert sub.secret is not None
    found: dict[str, Any] = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": "2026-03-08T09:00:00.0000000Z",
        "changeType": "created",
        "resource": "Users/u/Messages/AAk",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": "AAk"},
        "clientState": sub.secret.reveal(),
        "tenantId": str(uuid.uuid4()),
    }
    found.update(extra)
    return {k: v for k, v in found.items() if v is not None}


def body(*notes: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(notes)}).encode()


@attrs.define
class Keeper:
    """Records what the webhook asks of the keeper."""

    asked: list[tuple[str, bool]] = attrs.field(factory=list)

    def refresh(self, subscription_id: str, *, recreate: bool = False) -> object:
        self.asked.append((subscription_id, recreate))
        return None


@attrs.define
class Setup:
    store: MemorySubscriptionStore
    woken: list[str]
    webhook: GraphWebhook
    mail: PushSubscription
    calendar: PushSubscription


def make(keeper: Keeper | None = None) -> Setup:
    store, woken = MemorySubscriptionStore(), list[str]()
    mail, calendar = subscription("mail"), subscription("cal", provider="graph-calendar")
    store.save_subscription(mail)
    store.save_subscription(calendar)
    run_now: Callable[[Callable[[], None]], object] = lambda job: job()  # noqa: E731
    webhook = GraphWebhook(store, woken.append, keeper, defer=run_now, clock=lambda: NOW)
    return Setup(store, woken, webhook, mail, calendar)


@pytest.fixture
def setup() -> Setup:
    return make()


def test_the_handshake_echoes_the_decoded_token_as_text(setup: Setup) -> None:
    for query in ({"validationToken": TOKEN}, {"validationToken": [TOKEN]}):
        assert setup.webhook.handle("POST", query, {}, b"") == (
            200,
            "text/plain; charset=utf-8",
            TOKEN.encode(),
        )
    assert setup.webhook.counts["validated"] == 2
    for hostile in ("", "x" * 2000, "a\r\nSet-Cookie: x", "<script>alert(1)</script>"):
        status, _, _ = setup.webhook.handle("POST", {"validationToken": hostile}, {}, b"")
        assert status == 400
    assert validation_response({}) is None
    assert validation_response({"validationToken": ["abc 123"]}) == (
        200,
        {"Content-Type": "text/plain; charset=utf-8"},
        b"abc 123",
    )


def test_requests_that_are_not_notifications_are_refused(setup: Setup) -> None:
    good = body(note(setup.mail))
    webhook = setup.webhook
    assert webhook.handle("GET", {}, JSON_TYPE, good)[0] == 405
    assert webhook.handle("POST", {}, {"Content-Type": "text/plain"}, good)[0] == 415
    assert webhook.handle("POST", {}, {}, good)[0] == 415
    assert webhook.handle("POST", {}, JSON_TYPE, b"{not json")[0] == 400
    assert webhook.handle("POST", {}, JSON_TYPE, b'{"value": {}}')[0] == 400
    assert webhook.handle("POST", {}, JSON_TYPE, b"[1, 2]")[0] == 400
    assert webhook.handle("POST", {}, JSON_TYPE, b"\xff\xfe")[0] == 400
    big = good + b" " * webhook.max_body
    assert webhook.handle("POST", {}, JSON_TYPE, big)[0] == 413
    many = body(*[note(setup.mail)] * (webhook.max_notifications + 1))
    assert webhook.handle("POST", {}, JSON_TYPE, many)[0] == 413
    assert setup.woken == []
    assert webhook.counts["rejected"] == 9


def test_changes_wake_each_channel_once(setup: Setup) -> None:
    answer = setup.webhook.handle(
        "POST",
        {},
        {"content-type": "application/json"},
        body(note(setup.mail), note(setup.mail, changeType="updated"), note(setup.calendar)),
    )
    assert answer == (202, "text/plain; charset=utf-8", b"")
    assert setup.woken == ["mail", "cal"]
    assert setup.webhook.counts["changes"] == 3


def test_forged_and_unknown_notifications_are_dropped(setup: Setup) -> None:
    gmail = subscription("gmail-channel", provider="gmail")
    setup.store.save_subscription(gmail)
    bare = attrs.evolve(subscription("bare"), secret=None)
    setup.store.save_subscription(bare)
    forged = [
        note(setup.mail, clientState="guessed"),
        note(setup.mail, clientState=None),
        note(setup.mail, subscriptionId=str(uuid.uuid4())),
        note(setup.mail, subscriptionId=None),
        note(setup.mail, lifecycleEvent="missed"),  # both kinds at once
        note(setup.mail, changeType=None),  # neither
        note(gmail),  # another provider's subscription
        note(attrs.evolve(bare, secret=Secret(""))),
        note(setup.mail, clientState=setup.mail.secret.reveal() + "x"),  # type: ignore[union-attr]
        note(setup.mail, lifecycleEvent=["missed"], changeType=None),
        note(setup.mail, lifecycleEvent="somethingNew", changeType=None),
        "not an object",
    ]
    status, _, _ = setup.webhook.handle("POST", {}, JSON_TYPE, body(*forged))  # type: ignore[arg-type]
    assert status == 202
    assert setup.woken == []
    assert setup.webhook.counts["dropped"] == len(forged)


def test_a_failing_store_asks_graph_to_deliver_again(setup: Setup) -> None:
    class Broken(MemorySubscriptionStore):
        def subscription(self, subscription_id: str) -> PushSubscription | None:
            raise StoreError("database is down")

    webhook = GraphWebhook(Broken(), setup.woken.append)
    assert webhook.handle("POST", {}, JSON_TYPE, body(note(setup.mail)))[0] == 503
    assert setup.woken == []


def test_lifecycle_events_go_to_the_keeper_then_wake() -> None:
    keeper = Keeper()
    setup = make(keeper)
    events = [
        note(setup.mail, changeType=None, lifecycleEvent="reauthorizationRequired"),
        note(setup.calendar, changeType=None, lifecycleEvent="subscriptionRemoved"),
        note(setup.mail, changeType=None, lifecycleEvent="missed"),
    ]
    assert setup.webhook.handle("POST", {}, JSON_TYPE, body(*events))[0] == 202
    assert keeper.asked == [(setup.mail.id, False), (setup.calendar.id, True)]
    assert setup.woken == ["mail", "mail", "cal"]  # missed at once, the others after their job
    assert setup.webhook.drain()


def test_a_failing_lifecycle_job_still_wakes(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(Keeper):
        def refresh(self, subscription_id: str, *, recreate: bool = False) -> object:
            raise StoreError("down")

    setup.webhook.keeper = Failing()
    event = note(setup.mail, changeType=None, lifecycleEvent="subscriptionRemoved")
    assert setup.webhook.handle("POST", {}, JSON_TYPE, body(event))[0] == 202
    assert setup.woken == ["mail"]
    assert "could not recreate" in caplog.text
    assert setup.mail.secret is not None
    assert setup.mail.secret.reveal() not in caplog.text


def test_lifecycle_without_a_keeper_leaves_the_subscription_due(setup: Setup) -> None:
    event = note(setup.mail, changeType=None, lifecycleEvent="reauthorizationRequired")
    assert setup.webhook.handle("POST", {}, JSON_TYPE, body(event))[0] == 202
    due = setup.store.subscription(setup.mail.id)
    assert due is not None
    assert due.expires_at == NOW
    assert setup.woken == ["mail"]


def test_background_jobs_by_default() -> None:
    store, woken, keeper = MemorySubscriptionStore(), list[str](), Keeper()
    sub = subscription("mail")
    store.save_subscription(sub)
    webhook = GraphWebhook(store, woken.append, keeper)
    event = note(sub, changeType=None, lifecycleEvent="reauthorizationRequired")
    assert webhook.handle("POST", {}, JSON_TYPE, body(event))[0] == 202
    assert webhook.drain(timeout=10)
    webhook.close()
    assert keeper.asked == [(sub.id, False)]
    assert woken == ["mail"]


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=30,
)
_keys = st.sampled_from(
    ["subscriptionId", "clientState", "changeType", "lifecycleEvent", "resource", "value"]
)
_notes = st.dictionaries(_keys | st.text(max_size=10), _json, max_size=7)


def _hostile_bodies(ids: Sequence[str]) -> st.SearchStrategy[bytes]:
    known = st.fixed_dictionaries(
        {"subscriptionId": st.sampled_from(list(ids)), "clientState": st.text(max_size=80)},
        optional={"changeType": _json, "lifecycleEvent": _json},
    )
    collection = st.fixed_dictionaries({"value": st.lists(_notes | known | _json, max_size=6)})
    as_json = (collection | _json).map(lambda v: json.dumps(v).encode())
    return as_json | st.binary(max_size=200)


_SETUP = make()
_IDS = (_SETUP.mail.id, _SETUP.calendar.id)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    raw=_hostile_bodies(_IDS),
    method=st.sampled_from(["POST", "post", "GET", "PUT"]),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", ""]
    ),
    query=st.dictionaries(
        st.sampled_from(["validationToken", "x"]),
        st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=2),
        max_size=2,
    ),
)
def test_hostile_requests_never_raise_and_never_wake(
    raw: bytes, method: str, content_type: str, query: dict[str, Any]
) -> None:
    _SETUP.woken.clear()
    status, kind, answer = _SETUP.webhook.handle(method, query, {"Content-Type": content_type}, raw)
    assert status in {200, 202, 400, 405, 413, 415}
    assert kind.startswith("text/plain")
    assert isinstance(answer, bytes)
    assert _SETUP.woken == []  # no guessed clientState gets through


@settings(max_examples=100, deadline=None)
@given(forged=st.lists(_notes, max_size=5), genuine=st.booleans(), position=st.integers(0, 5))
def test_one_genuine_notification_among_forged_ones_wakes_its_channel(
    forged: list[dict[str, Any]], genuine: bool, position: int
) -> None:
    _SETUP.woken.clear()
    notes: list[Any] = list(forged)
    if genuine:
        notes.insert(position, note(_SETUP.mail))
    status, _, _ = _SETUP.webhook.handle(
        "POST", {}, JSON_TYPE, json.dumps({"value": notes}).encode()
    )
    assert status == 202
    assert _SETUP.woken == (["mail"] if genuine else [])
