"""The local Graph server refuses what Microsoft Graph refuses about
subscriptions, and answers well-known folder names (``msgfolderroot``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from graph_support import OWNER, client
from webhook_support import serving, wsgi_app

from commlink.errors import NotFound, ProviderError
from commlink.providers.microsoft.graph import GraphClient, GraphWebhook
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


def _stamp(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


@pytest.fixture
def graph(server: GraphServer) -> Iterator[GraphClient]:
    made = client(server, max_retries=0)
    yield made
    made.close()


@pytest.fixture
def hook() -> Iterator[str]:
    webhook = GraphWebhook(MemorySubscriptionStore(), lambda channel_id: None)
    with serving(wsgi_app(webhook)) as url:
        yield f"{url}/graph"


def _request(url: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": "me/mailFolders('inbox')/messages",
        "expirationDateTime": _stamp(timedelta(days=2)),
        "clientState": "s" * 40,
    }
    # times are taken now, not when the parameters were collected minutes ago
    body.update({k: _stamp(v) if isinstance(v, timedelta) else v for k, v in changes.items()})
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"notificationUrl": "http://crm.example/graph"}, "must use https"),
        ({"lifecycleNotificationUrl": "ftp://crm.example/life"}, "must use https"),
        ({"expirationDateTime": timedelta(minutes=10090)}, "10080 minutes"),
        ({"expirationDateTime": -timedelta(minutes=1)}, "in the future"),
        ({"expirationDateTime": None}, "expirationDateTime is required"),
        ({"clientState": "x" * 129}, "at most 128"),
        ({"changeType": "created,moved"}, "changeType is invalid"),
        ({"resource": "me/mailFolders('inbox')"}, "is not supported"),
        ({"resource": "users/someone.else@home.example/events"}, "Access is denied"),
    ],
)
def test_bad_subscription_requests_are_refused(
    graph: GraphClient, hook: str, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ProviderError, match=message):
        graph.call("POST", "/subscriptions", body=_request(hook, **changes))


def test_a_missing_folder_or_calendar_is_not_found(graph: GraphClient, hook: str) -> None:
    for resource in ("me/mailFolders('AAMkAGnone')/messages", "me/calendars('nope')/events"):
        with pytest.raises(NotFound):
            graph.call("POST", "/subscriptions", body=_request(hook, resource=resource))


def test_expiry_renewal_reauthorization_and_deletion(
    server: GraphServer, graph: GraphClient, hook: str
) -> None:
    created = graph.call("POST", "/subscriptions", body=_request(hook)).json
    sub_id = str(created["id"])
    assert created["clientState"] == "s" * 40
    assert created["resource"] == "me/mailFolders('inbox')/messages"
    path = f"/subscriptions/{sub_id}"
    with pytest.raises(ProviderError, match="cannot be added"):
        graph.call("PATCH", path, body={"lifecycleNotificationUrl": hook})
    later = _stamp(timedelta(days=5))
    assert (
        graph.call("PATCH", path, body={"expirationDateTime": later}).json["expirationDateTime"]
        == later
    )
    server.push.lifecycle(sub_id, "reauthorizationRequired")
    assert server.push.subscriptions[sub_id].paused
    assert graph.call("POST", f"{path}/reauthorize").status == 204
    assert not server.push.subscriptions[sub_id].paused
    listed = graph.get("/subscriptions")
    assert [s["id"] for s in listed["value"]] == [sub_id]
    server.push.expire(sub_id)
    for method in ("GET", "PATCH", "DELETE"):
        with pytest.raises(NotFound):
            graph.call(method, path, body={"expirationDateTime": later})
    again = graph.call("POST", "/subscriptions", body=_request(hook)).json
    assert graph.call("DELETE", f"/subscriptions/{again['id']}").status == 204
    assert server.subscriptions == {}


def test_msgfolderroot_and_well_known_names_in_any_case(
    server: GraphServer, graph: GraphClient
) -> None:
    root = graph.get(f"/users/{OWNER}/mailFolders/msgfolderroot")
    assert root["id"] == server.mail.root
    assert root["displayName"] == "Top of Information Store"
    children = graph.get(f"/users/{OWNER}/mailFolders/MsgFolderRoot/childFolders")
    names = {f["displayName"] for f in children["value"]}
    assert {"Inbox", "Sent Items", "Archive"} <= names
    inbox = graph.get("/me/mailFolders/Inbox")
    assert inbox["id"] == server.mail.folder_id("inbox")
    assert inbox["parentFolderId"] == server.mail.root
