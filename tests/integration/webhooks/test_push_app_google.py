"""``push_app`` end to end with the local Google: a new Gmail message is
published to Pub/Sub, pushed with a signed OIDC token to the app on a real
HTTP server, which wakes the Runner, which stores the message; the same
for a Calendar event through its notification channel. Requests Google
did not sign, or signed for someone else, wake nothing."""

from __future__ import annotations

import base64
import json
import time

import pytest
from push_app_support import (
    AUDIENCE,
    GMAIL,
    GOOGLE_CALENDAR,
    OWNER,
    Host,
    google_event,
    raw_mail,
    request,
    wait_for,
)

from commlink.testing.google.oidc import OidcIssuer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT

pytestmark = pytest.mark.integration


def _gmail_body(address: str = OWNER) -> bytes:
    data = json.dumps({"emailAddress": address, "historyId": "99"}).encode()
    message = {"data": base64.b64encode(data).decode(), "messageId": "1"}
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


def test_new_gmail_message_is_pushed_through_the_app_and_stored(host: Host) -> None:
    host.google.gmail.add_message(OWNER, raw_mail(1))
    host.run(GMAIL)
    assert host.stored(GMAIL.id) == 1
    [sub] = host.subscriptions.subscriptions(channel_id=GMAIL.id)
    assert (sub.provider, sub.account) == ("gmail", OWNER)

    started = time.monotonic()
    host.google.gmail.add_message(OWNER, raw_mail(2))
    assert wait_for(lambda: host.stored(GMAIL.id) == 2)
    print(f"gmail: delivered -> stored in {(time.monotonic() - started) * 1000:.0f} ms")
    assert host.app.counts["gmail 204"] >= 1
    assert host.app.gmail is not None
    assert host.app.gmail.counts["refused"] == 0
    pushed = host.google.sender.attempts_to(f"{host.url}/push/gmail")
    assert pushed
    assert all(a.status == 204 for a in pushed)


def test_new_calendar_event_is_pushed_through_the_app_and_stored(host: Host) -> None:
    host.google.calendar.add_event(OWNER, google_event("Kick-off", 2))
    host.run(GOOGLE_CALENDAR)
    assert host.stored(GOOGLE_CALENDAR.id) == 1
    assert host.google.wait_for_pushes()
    assert host.app.counts["google_calendar 200"] == 1  # the channel's sync message

    started = time.monotonic()
    host.google.calendar.add_event(OWNER, google_event("Review", 3))
    assert wait_for(lambda: host.stored(GOOGLE_CALENDAR.id) == 2)
    print(f"calendar: added -> stored in {(time.monotonic() - started) * 1000:.0f} ms")
    assert host.app.calendar.counts["woken"] >= 1


def test_tokens_google_did_not_sign_for_us_are_refused(host: Host) -> None:
    host.run(GMAIL)
    woken_before = host.app.counts["gmail 204"]
    url = f"{host.url}/push/gmail"
    body = _gmail_body()
    issuer = host.google.pubsub.issuer
    forger = OidcIssuer()
    cases = {
        "no token": ({}, 401),
        "not bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        "garbage": ({"Authorization": "Bearer not.a.jwt"}, 401),
        "another key": (
            {"Authorization": f"Bearer {forger.token(AUDIENCE, PUSH_SERVICE_ACCOUNT)}"},
            401,
        ),
        "another audience": (
            {"Authorization": "Bearer " + issuer.token("https://evil.x/", PUSH_SERVICE_ACCOUNT)},
            401,
        ),
        "expired": (
            {
                "Authorization": "Bearer "
                + issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT, issued_at=time.time() - 7200)
            },
            401,
        ),
        "another account": (
            {"Authorization": f"Bearer {issuer.token(AUDIENCE, 'someone@evil.example')}"},
            403,
        ),
        "unverified email": (
            {
                "Authorization": "Bearer "
                + issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT, email_verified=False)
            },
            403,
        ),
    }
    for name, (headers, expected) in cases.items():
        sent = {"Content-Type": "application/json", **headers}
        assert request(url, headers=sent, body=body)[0] == expected, name
    assert host.app.counts["gmail 204"] == woken_before
    assert host.runner.due() == []  # nothing was woken

    genuine = {"Authorization": f"Bearer {issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT)}"}
    status, _, _ = request(url, headers={"Content-Type": "application/json", **genuine}, body=body)
    assert status == 204


def test_calendar_messages_with_a_wrong_token_wake_nothing(host: Host) -> None:
    host.run(GOOGLE_CALENDAR)
    [sub] = host.subscriptions.subscriptions(channel_id=GOOGLE_CALENDAR.id)
    url = f"{host.url}/push/google-calendar"
    headers = {
        "X-Goog-Channel-ID": sub.id,
        "X-Goog-Resource-ID": sub.data["resourceId"],
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "7",
    }
    assert request(url, headers=headers)[0] == 403
    assert request(url, headers={**headers, "X-Goog-Channel-Token": "guess"})[0] == 403
    assert host.app.calendar.counts["woken"] == 0
    assert sub.secret is not None
    right = {**headers, "X-Goog-Channel-Token": sub.secret.reveal()}
    assert request(url, headers=right)[0] == 200
    assert host.app.calendar.counts["woken"] == 1
