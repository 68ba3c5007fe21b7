"""The connect flow against the local Google authorization server, and the
push endpoints with genuine and forged notifications, through Django's
test client. Each runs on the ORM store and on the reference SQL store."""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse
from host_fixtures import mailbox, mapping

from commlink.contrib.django.conf import get_config, get_store, get_subscription_store
from commlink.contrib.django.store_testing import clear_store
from commlink.contrib.django.wake import take_woken
from commlink.credentials import Secret
from commlink.records import ChannelState, ChannelStatus, PushSubscription
from commlink.testing.google import GoogleApiServer
from commlink.testing.google.pubsub import PUSH_SERVICE_ACCOUNT
from commlink.testing.oauth import GoogleOAuthServer, MicrosoftOAuthServer
from commlink.testing.oauth_browser import consent

ALICE = "alice@northwind.example"
CALLBACK = "http://127.0.0.1:8000/commlink/oauth/callback/"
AUDIENCE = "https://crm.example/commlink/push/gmail"
LATER = datetime.now(timezone.utc) + timedelta(days=3)


@pytest.fixture(scope="module")
def oauth() -> Iterator[GoogleOAuthServer]:
    with GoogleOAuthServer(user=ALICE, redirect_uris=(CALLBACK,)) as server:
        yield server


@pytest.fixture(scope="module")
def microsoft() -> Iterator[MicrosoftOAuthServer]:
    with MicrosoftOAuthServer(user=ALICE, redirect_uris=(CALLBACK,)) as server:
        yield server


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=ALICE) as server:
        yield server


def gmail_channel(server: GoogleOAuthServer, channel_id: str = "alice-gmail", user: str = "alice"):
    return {
        "id": channel_id,
        "user": user,
        "provider": "gmail",
        "owner": ALICE,
        "visibility": "full",
        "options": {
            "oauth": "google",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "auth_uri": server.authorization_endpoint,
            "token_uri": server.token_endpoint,
            "revoke_uri": server.revocation_endpoint,
            "issuer": server.issuer,
        },
    }


@pytest.fixture(params=["orm", "sql"])
def store_setting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "orm":
        pytest.importorskip("commlink.contrib.django.tokens")
        clear_store()
        yield "orm"
        clear_store()
    else:
        yield f"sqlite:///{tmp_path / 'commlink.db'}"


@pytest.fixture
def users() -> Iterator[dict[str, User]]:
    made = {name: User.objects.create_user(name) for name in ("alice", "bob")}  # no hashing
    yield made
    User.objects.filter(pk__in=[u.pk for u in made.values()]).delete()


def graph_channel(server: MicrosoftOAuthServer) -> dict[str, Any]:
    return {
        "id": "alice-graph",
        "user": "alice",
        "provider": "graph",
        "owner": ALICE,
        "options": {
            "oauth": "microsoft",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "tenant": server.tenant_domain,
            "authority_host": server.root_url,
            "oauth_ca_file": server.ca_file,
        },
    }


@pytest.fixture
def site(
    store_setting: str,
    oauth: GoogleOAuthServer,
    microsoft: MicrosoftOAuthServer,
    google: GoogleApiServer,
    users: dict[str, User],
) -> Iterator[dict[str, Any]]:
    settings = {
        "STORE": store_setting,
        "DIRECTORY": mapping(),
        "CHANNELS": [
            mailbox(),
            gmail_channel(oauth),
            gmail_channel(oauth, "bob-gmail", "bob"),
            graph_channel(microsoft),
        ],
        "OAUTH": {"REDIRECT_URI": CALLBACK},
        "PUSH": {
            "public_url": "https://crm.example/commlink",
            "gmail_topic": "projects/crm-test/topics/gmail-changes",
            "gmail_audience": AUDIENCE,
            "gmail_service_accounts": [PUSH_SERVICE_ACCOUNT],
            "gmail_certs_url": google.certs_url,
        },
    }
    with override_settings(COMMLINK=settings):
        yield settings


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def callback_path(answer_uri: str, params: dict[str, str]) -> str:
    return f"{urlsplit(answer_uri).path}?{urlencode(params)}"


def saved_token(channel_id: str) -> Any:
    item = next(c for c in get_config().channels if c.channel.id == channel_id)
    return item.options["token_store"].load_token(channel_id)


# -- connect -------------------------------------------------------------------


def test_connect_signs_in_and_saves_the_grant(site: Any, users: dict[str, User]) -> None:
    # the channel stopped on refused credentials: a new grant lets it sync again
    refused = ChannelState("alice-gmail", ChannelStatus.FAILED_AUTH, failures=3, last_error="401")
    get_store().save_channel_state(refused)
    client = signed_in(users["alice"])
    started = client.get(reverse("commlink:connect", args=["alice-gmail"]))
    assert started.status_code == 302
    assert started["Location"].startswith(site["CHANNELS"][1]["options"]["auth_uri"])
    assert "code_challenge_method=S256" in started["Location"]
    answer = consent(started["Location"])
    assert answer.redirect_uri == CALLBACK
    done = client.get(callback_path(answer.redirect_uri, answer.params))
    assert done.status_code == 200
    assert b"is connected to" in done.content
    token = saved_token("alice-gmail")
    assert token is not None
    assert token.account == ALICE
    assert get_store().channel("alice-gmail") is not None
    state = get_store().channel_state("alice-gmail")
    assert state is not None
    assert state.status is ChannelStatus.ONGOING
    assert state.failures == 0
    assert woken() == ["alice-gmail"]
    # the state is used once: the same answer again is refused
    again = client.get(callback_path(answer.redirect_uri, answer.params))
    assert again.status_code == 400


def test_a_microsoft_form_post_is_relayed_with_the_session(
    site: Any, users: dict[str, User], microsoft: MicrosoftOAuthServer
) -> None:
    client = signed_in(users["alice"])
    started = client.get(reverse("commlink:connect", args=["alice-graph"]))
    assert started.status_code == 302
    answer = consent(started["Location"], ca_file=microsoft.ca_file)
    assert answer.method == "POST"
    path = urlsplit(answer.redirect_uri).path
    # the provider's cross-site POST arrives without the session cookie
    relay = Client(enforce_csrf_checks=True).post(path, {**answer.params, "extra": "<x>"})
    assert relay.status_code == 200
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', relay.content.decode()))
    assert fields.pop("commlink_relayed") == "1"
    assert fields == {k: html.escape(v) for k, v in answer.params.items()}
    assert saved_token("alice-graph") is None
    # the page posts it again from this site, with the cookie
    done = client.post(path, {**answer.params, "commlink_relayed": "1"})
    assert done.status_code == 200, done.content
    token = saved_token("alice-graph")
    assert token is not None
    assert token.account == ALICE
    # signed out, a relayed answer leads to the sign-in page
    signed_out = Client().post(path, {**answer.params, "commlink_relayed": "1"})
    assert signed_out.status_code == 302


def test_connect_needs_a_signed_in_owner(site: Any, users: dict[str, User]) -> None:
    url = reverse("commlink:connect", args=["alice-gmail"])
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]
    assert signed_in(users["bob"]).get(url).status_code == 404
    assert (
        signed_in(users["alice"]).get(reverse("commlink:connect", args=["nope"])).status_code == 404
    )
    # a channel without OAuth has nothing to connect
    assert (
        signed_in(users["alice"]).get(reverse("commlink:connect", args=["alice-mail"])).status_code
        == 400
    )
    assert signed_in(users["alice"]).post(url).status_code == 405


def test_a_forged_or_foreign_answer_is_refused(site: Any, users: dict[str, User]) -> None:
    alice, bob = signed_in(users["alice"]), signed_in(users["bob"])
    started = alice.get(reverse("commlink:connect", args=["alice-gmail"]))
    answer = consent(started["Location"])
    forged = {**answer.params, "state": answer.params["state"][:-2] + "xx"}
    assert alice.get(callback_path(CALLBACK, forged)).status_code == 400
    # another user's session never knew this sign-in
    assert bob.get(callback_path(CALLBACK, answer.params)).status_code == 400
    doubled = f"{urlsplit(CALLBACK).path}?{urlencode(answer.params)}&state=again"
    assert alice.get(doubled).status_code == 400
    assert saved_token("alice-gmail") is None


def test_a_declined_consent_saves_nothing(
    site: Any, users: dict[str, User], oauth: GoogleOAuthServer
) -> None:
    client = signed_in(users["alice"])
    started = client.get(reverse("commlink:connect", args=["alice-gmail"]))
    oauth.deny_next()
    answer = consent(started["Location"])
    assert answer.params.get("error") == "access_denied"
    refused = client.get(callback_path(answer.redirect_uri, answer.params))
    assert refused.status_code == 400
    assert b"not connected" in refused.content
    assert saved_token("alice-gmail") is None


# -- push ----------------------------------------------------------------------


def graph_subscription(channel_id: str = "alice-mail") -> PushSubscription:
    found = PushSubscription(
        str(uuid.uuid4()),
        channel_id,
        "graph",
        "me/mailFolders('inbox')/messages",
        LATER,
        secret=Secret(uuid.uuid4().hex),
    )
    get_subscription_store().save_subscription(found)
    return found


def graph_body(sub: PushSubscription, client_state: str | None = None) -> bytes:
    assert sub.secret is not None
    note = {
        "subscriptionId": sub.id,
        "changeType": "created",
        "resource": "Users/u/Messages/AAk",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": "AAk"},
        "clientState": client_state if client_state is not None else sub.secret.reveal(),
        "tenantId": str(uuid.uuid4()),
    }
    return json.dumps({"value": [note]}).encode()


def woken() -> list[str]:
    return take_woken(get_store(), ["alice-mail", "alice-gmail", "bob-gmail"])


def test_graph_validation_is_echoed_without_csrf(site: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    url = reverse("commlink:push_graph")
    answer = client.post(f"{url}?validationToken=Validation%3A+reachable+1a")
    assert answer.status_code == 200
    assert answer.content == b"Validation: reachable 1a"
    assert answer["Content-Type"].startswith("text/plain")
    lifecycle = client.post(f"{reverse('commlink:push_graph_lifecycle')}?validationToken=t2")
    assert lifecycle.content == b"t2"
    assert client.get(url).status_code == 400  # a GET without a token
    assert client.put(url).status_code == 405


def test_graph_notifications_wake_only_with_the_client_state(site: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    url = reverse("commlink:push_graph")
    sub = graph_subscription()
    forged = client.post(url, graph_body(sub, "not-the-secret"), content_type="application/json")
    assert forged.status_code == 202
    assert woken() == []
    genuine = client.post(url, graph_body(sub), content_type="application/json")
    assert genuine.status_code == 202
    assert woken() == ["alice-mail"]
    assert woken() == []  # the mark is taken once
    too_big = client.post(
        url, b"{}", content_type="application/json", headers={"Content-Length": "99999999"}
    )
    assert too_big.status_code == 413


def test_calendar_notifications_need_the_channel_token(site: Any) -> None:
    get_subscription_store().save_subscription(
        PushSubscription(
            "chan-1",
            "alice-mail",
            "google-calendar",
            ALICE,
            LATER,
            secret=Secret("s3cret-channel-token"),
            data={"resourceId": "res-1", "calendarId": ALICE},
        )
    )
    headers = {
        "X-Goog-Channel-ID": "chan-1",
        "X-Goog-Channel-Token": "s3cret-channel-token",
        "X-Goog-Resource-ID": "res-1",
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "2",
    }
    client = Client(enforce_csrf_checks=True)
    url = reverse("commlink:push_calendar")
    wrong = client.post(url, headers={**headers, "X-Goog-Channel-Token": "guess"})
    assert wrong.status_code in (400, 403)
    assert woken() == []
    assert client.post(url, headers=headers).status_code == 200
    assert woken() == ["alice-mail"]
    assert client.get(url).status_code == 405


def gmail_push(address: str) -> bytes:
    data = json.dumps({"emailAddress": address, "historyId": 77}).encode()
    message = {"data": base64.b64encode(data).decode(), "messageId": "42"}
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()


def test_gmail_pushes_need_a_pubsub_token(site: Any, google: GoogleApiServer) -> None:
    get_subscription_store().save_subscription(
        PushSubscription(f"gmail:{ALICE}", "alice-gmail", "gmail", "mailbox", LATER, account=ALICE)
    )
    client = Client(enforce_csrf_checks=True)
    url = reverse("commlink:push_gmail")
    unsigned = client.post(url, gmail_push(ALICE), content_type="application/json")
    assert unsigned.status_code == 401
    token = google.pubsub.issuer.token("https://elsewhere.example/push", PUSH_SERVICE_ACCOUNT)
    wrong_audience = client.post(
        url,
        gmail_push(ALICE),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert wrong_audience.status_code in (401, 403)
    assert woken() == []
    token = google.pubsub.issuer.token(AUDIENCE, PUSH_SERVICE_ACCOUNT)
    genuine = client.post(
        url,
        gmail_push(ALICE.upper()),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert genuine.status_code == 204
    assert woken() == ["alice-gmail"]


def test_push_channels_get_the_public_urls(site: Any) -> None:
    gmail = next(c for c in get_config().channels if c.channel.id == "alice-gmail")
    assert gmail.options["pubsub_topic"] == "projects/crm-test/topics/gmail-changes"


WOKEN_BY_HOST: list[str] = []


def host_wake(channel_id: str) -> None:
    """A host's own wake-up (``COMMLINK["WAKE"]``), e.g. queueing a task."""
    WOKEN_BY_HOST.append(channel_id)


def test_a_host_wake_callable_replaces_the_store_mark(site: Any) -> None:
    WOKEN_BY_HOST.clear()
    sub = graph_subscription()
    with override_settings(COMMLINK={**site, "WAKE": f"{__name__}.host_wake"}):
        answer = Client().post(
            reverse("commlink:push_graph"), graph_body(sub), content_type="application/json"
        )
    assert answer.status_code == 202
    assert WOKEN_BY_HOST == ["alice-mail"]
    assert woken() == []
