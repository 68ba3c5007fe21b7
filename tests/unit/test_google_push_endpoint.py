"""The Google push endpoints on hostile input: the Gmail notification
parser raises only ``InvalidInput``, and neither endpoint wakes a channel
for anything but a genuine notification. Tokens are signed and their
certificates served by the local Google server."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.credentials import Secret
from commlink.errors import ConfigError, InvalidInput
from commlink.providers.google.notifications import (
    GmailNotification,
    notification_history_id,
    parse_gmail_notification,
)
from commlink.providers.google.push import CalendarPushEndpoint, GmailPushEndpoint
from commlink.records import PushSubscription
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT

OWNER = "owner@home.example"
AUDIENCE = "https://crm.example/push/gmail"
LATER = datetime.now(timezone.utc) + timedelta(days=1)


def _push(data: bytes, *, urlsafe: bool = False, pad: bool = True) -> bytes:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    message = {"data": encoded if pad else encoded.rstrip("="), "messageId": "42"}
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


# -- the parser ----------------------------------------------------------------


@given(
    st.emails(),
    st.integers(1, 2**63),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_notification_round_trips(
    address: str, history: int, as_text: bool, urlsafe: bool, pad: bool
) -> None:
    data = json.dumps({"emailAddress": address, "historyId": str(history) if as_text else history})
    found = parse_gmail_notification(_push(data.encode(), urlsafe=urlsafe, pad=pad))
    assert found == GmailNotification(address, str(history), "42", "projects/p/subscriptions/s")
    assert notification_history_id(_push(data.encode())) == str(history)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def _shaped(value: object) -> bytes:
    """Hostile values in every place of a push body."""
    data = base64.b64encode(json.dumps({"emailAddress": value, "historyId": value}).encode())
    return json.dumps({"message": {"data": data.decode()}, "x": value}).encode()


@given(st.binary(max_size=2000) | _JSON.map(_shaped) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_the_parser_raises_only_invalid_input(body: bytes) -> None:
    try:
        found = parse_gmail_notification(body)
    except InvalidInput:
        return
    assert "@" in found.email_address
    assert int(found.history_id) > 0


def test_the_parser_survives_deep_nesting_and_size() -> None:
    for body in (b"[" * 50_000, b'{"message":' * 20_000, b" " * 70_000):
        with pytest.raises(InvalidInput):
            parse_gmail_notification(body)
    with pytest.raises(InvalidInput):
        parse_gmail_notification(_push(b'{"emailAddress": "a@b", "historyId": true}'))
    with pytest.raises(InvalidInput):
        parse_gmail_notification(_push(b'{"emailAddress": "a b@c", "historyId": 1}'))


# -- the Gmail endpoint ----------------------------------------------------------


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=OWNER) as server:
        yield server


def _gmail_endpoint(
    google: GoogleApiServer, woken: list[str]
) -> tuple[GmailPushEndpoint, MemorySubscriptionStore]:
    subs = MemorySubscriptionStore()
    subs.save_subscription(
        PushSubscription(f"gmail:{OWNER}", "gm", "gmail", "mailbox", LATER, account=OWNER)
    )
    endpoint = GmailPushEndpoint(
        subs,
        woken.append,
        AUDIENCE,
        allowed_emails=[PUSH_SERVICE_ACCOUNT],
        certs_url=google.certs_url,
    )
    return endpoint, subs


def test_gmail_endpoint_wakes_only_on_a_genuine_notification(google: GoogleApiServer) -> None:
    woken: list[str] = []
    endpoint, _ = _gmail_endpoint(google, woken)
    token = google.pubsub.issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT)
    headers = {"AUTHORIZATION": f"Bearer {token}"}

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=500) | _JSON.map(_shaped))
    def hostile(body: bytes) -> None:
        status, _ = endpoint.handle(headers, body)
        assert status in (204, 400)

    hostile()
    assert woken == []
    data = json.dumps({"emailAddress": OWNER.upper(), "historyId": 77}).encode()
    assert endpoint.handle(headers, _push(data)) == (204, b"")
    assert woken == ["gm"]
    other = json.dumps({"emailAddress": "else@home.example", "historyId": 77}).encode()
    assert endpoint.handle(headers, _push(other)) == (204, b"")
    assert woken == ["gm"]
    assert endpoint.handle(headers, b"x" * 70_000)[0] == 413


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=80), max_size=4))
def test_gmail_endpoint_refuses_without_a_token(headers: dict[str, str]) -> None:
    woken: list[str] = []
    endpoint = GmailPushEndpoint(
        MemorySubscriptionStore(),
        woken.append,
        AUDIENCE,
        allowed_emails=[PUSH_SERVICE_ACCOUNT],
        certs_url="http://127.0.0.1:9/certs",
    )
    data = json.dumps({"emailAddress": OWNER, "historyId": 1}).encode()
    headers.pop("authorization", None)
    status, _ = endpoint.handle(headers, _push(data))
    assert status in (401, 503)
    assert woken == []


def test_gmail_endpoint_settings(google: GoogleApiServer) -> None:
    subs = MemorySubscriptionStore()
    with pytest.raises(ConfigError):
        GmailPushEndpoint(subs, print, AUDIENCE, allowed_emails=[])
    with pytest.raises(ConfigError):
        GmailPushEndpoint(subs, print, "", allowed_emails=[PUSH_SERVICE_ACCOUNT])
    with pytest.raises(ConfigError):
        GmailPushEndpoint(
            subs,
            print,
            AUDIENCE,
            allowed_emails=[PUSH_SERVICE_ACCOUNT],
            certs_url="http://certs.example/v1",
        )


def test_unreachable_certs_ask_pubsub_to_come_back(google: GoogleApiServer) -> None:
    woken: list[str] = []
    endpoint = GmailPushEndpoint(
        MemorySubscriptionStore(),
        woken.append,
        AUDIENCE,
        allowed_emails=[PUSH_SERVICE_ACCOUNT],
        certs_url="http://127.0.0.1:9/oauth2/v1/certs",
    )
    token = google.pubsub.issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT)
    data = json.dumps({"emailAddress": OWNER, "historyId": 1}).encode()
    assert endpoint.handle({"Authorization": f"Bearer {token}"}, _push(data))[0] == 503
    assert woken == []


# -- the Calendar endpoint -------------------------------------------------------

SECRET = "s3cret-channel-token"


def _calendar_endpoint(
    woken: list[str], unknown: list[tuple[str, str]], now: list[float]
) -> CalendarPushEndpoint:
    subs = MemorySubscriptionStore()
    subs.save_subscription(
        PushSubscription(
            "chan-1",
            "gc",
            "google-calendar",
            OWNER,
            LATER,
            secret=Secret(SECRET),
            data={"resourceId": "res-1", "calendarId": OWNER},
        )
    )
    return CalendarPushEndpoint(
        subs,
        woken.append,
        on_unknown=lambda c, r: unknown.append((c, r)),
        unknown_grace_seconds=60.0,
        clock=lambda: now[0],
    )


def _headers(**changes: str) -> dict[str, str]:
    headers = {
        "X-Goog-Channel-ID": "chan-1",
        "X-Goog-Channel-Token": SECRET,
        "X-Goog-Resource-ID": "res-1",
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "2",
    }
    headers.update({k.replace("_", "-"): v for k, v in changes.items()})
    return headers


_HEADER_NAMES = st.sampled_from(
    [
        "X-Goog-Channel-ID",
        "x-goog-channel-token",
        "X-GOOG-RESOURCE-ID",
        "X-Goog-Resource-State",
        "X-Goog-Message-Number",
        "Content-Type",
    ]
)
_VALUES = st.sampled_from(["chan-1", "res-1", "exists", "sync", "not_exists", SECRET[:-1], ""])


@given(st.dictionaries(_HEADER_NAMES, _VALUES | st.text(max_size=300), max_size=6))
def test_calendar_endpoint_never_wakes_without_the_token(headers: dict[str, str]) -> None:
    woken: list[str] = []
    unknown: list[tuple[str, str]] = []
    endpoint = _calendar_endpoint(woken, unknown, [0.0])
    status, _ = endpoint.handle(headers, b"")
    assert status in (200, 400, 403, 404)
    assert woken == []


def test_calendar_endpoint_states_and_unknown_channels() -> None:
    woken: list[str] = []
    unknown: list[tuple[str, str]] = []
    now = [100.0]
    endpoint = _calendar_endpoint(woken, unknown, now)
    lowered = {k.lower(): v for k, v in _headers(X_Goog_Resource_State="sync").items()}
    assert endpoint.handle(lowered) == (200, b"")
    assert woken == []
    assert endpoint.handle(_headers())[0] == 200
    assert endpoint.handle(_headers(X_Goog_Resource_State="not_exists"))[0] == 200
    assert woken == ["gc", "gc"]
    assert endpoint.handle(_headers(X_Goog_Channel_Token="s3cret-channel-tokeN"))[0] == 403
    assert endpoint.handle(_headers(X_Goog_Resource_ID="res-2"))[0] == 403
    assert endpoint.handle(_headers(), b"x" * 70_000)[0] == 413
    # a sync for a channel not saved yet is fine; changes for an orphan are 404
    stray = _headers(X_Goog_Channel_ID="stray", X_Goog_Resource_State="sync")
    assert endpoint.handle(stray)[0] == 200
    stray = _headers(X_Goog_Channel_ID="stray")
    assert endpoint.handle(stray)[0] == 404
    now[0] += 30
    assert endpoint.handle(stray)[0] == 404
    assert unknown == []  # perhaps still being saved
    now[0] += 31
    assert endpoint.handle(stray)[0] == 404
    assert endpoint.handle(stray)[0] == 404
    assert unknown == [("stray", "res-1")]  # once
    assert woken == ["gc", "gc"]
    assert endpoint.counts["refused"] == 2


def test_tokens_never_reach_the_log(
    google: GoogleApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    woken: list[str] = []
    endpoint = _calendar_endpoint(woken, [], [0.0])
    endpoint.handle(_headers(X_Goog_Channel_Token="almost-" + SECRET))
    endpoint.handle(_headers())
    gmail, _ = _gmail_endpoint(google, woken)
    forged = google.pubsub.issuer.token(AUDIENCE + "/other", PUSH_SERVICE_ACCOUNT)
    gmail.handle({"Authorization": f"Bearer {forged}"}, b"{}")
    assert woken == ["gc"]
    assert SECRET not in caplog.text
    assert forged not in caplog.text
    assert forged.split(".")[1] not in caplog.text
