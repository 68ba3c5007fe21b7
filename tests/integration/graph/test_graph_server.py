"""The local Graph server's wire format, checked with plain httpx requests."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from graph_support import OWNER, raw_mail

from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


@pytest.fixture
def http(server: GraphServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        yield client


def _delta_ids(http: httpx.Client, folder: str, headers: dict[str, str]) -> list[str]:
    found = http.get(f"/me/mailFolders/{folder}/messages/delta", headers=headers).json()
    return [item["id"] for item in found["value"]]


def test_ids_survive_a_move_only_when_immutable(server: GraphServer, http: httpx.Client) -> None:
    moved = server.mail.add_message(raw_mail(1))
    [regular] = _delta_ids(http, "inbox", {})
    [immutable] = _delta_ids(http, "inbox", IMMUTABLE)
    assert immutable == moved
    assert regular != moved
    server.mail.move(moved, "archive")
    assert _delta_ids(http, "archive", IMMUTABLE) == [moved]
    assert _delta_ids(http, "archive", {}) != [regular]
    assert http.get(f"/me/messages/{regular}").status_code == 404
    assert http.get(f"/me/messages/{moved}").status_code == 200


def test_delta_paging_select_removed_and_expiry(server: GraphServer, http: httpx.Client) -> None:
    ids = [server.mail.add_message(raw_mail(n)) for n in range(1, 6)]
    headers = {"Prefer": f"{IMMUTABLE['Prefer']}, odata.maxpagesize=2"}
    url = "/me/mailFolders/inbox/messages/delta?$select=subject"
    pages = []
    answer = http.get(url, headers=headers)
    assert answer.headers["Preference-Applied"] == "odata.maxpagesize=2"
    while True:
        page = answer.json()
        pages.append(page)
        if "@odata.deltaLink" in page:
            break
        answer = http.get(page["@odata.nextLink"], headers=headers)
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert set(pages[0]["value"][0]) == {"id", "subject"}
    server.mail.delete(ids[0])
    changes = http.get(pages[-1]["@odata.deltaLink"], headers=headers).json()
    assert changes["value"] == [{"id": ids[0], "@removed": {"reason": "deleted"}}]
    server.expire_delta_tokens()
    gone = http.get(changes["@odata.deltaLink"], headers=headers)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "SyncStateNotFound"


def test_batch_answers_each_request(server: GraphServer, http: httpx.Client) -> None:
    item = server.mail.add_message(raw_mail(1))
    requests = [
        {"id": "1", "method": "GET", "url": f"/users/{OWNER}/messages/{item}/$value"},
        {"id": "2", "method": "GET", "url": "/me/messages/nope"},
        {"id": "3", "method": "GET", "url": "/me/mailFolders/inbox?$select=id"},
    ]
    answer = http.post("/$batch", json={"requests": requests}).json()
    by_id = {r["id"]: r for r in answer["responses"]}
    assert base64.b64decode(by_id["1"]["body"]) == raw_mail(1)
    assert by_id["2"]["status"] == 404
    assert by_id["2"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert by_id["3"]["body"]["id"] == server.mail.folder_id("inbox")
    too_many = [{"id": str(n), "method": "GET", "url": "/me"} for n in range(21)]
    assert http.post("/$batch", json={"requests": too_many}).status_code == 400


def test_auth_throttling_and_other_mailboxes(server: GraphServer, http: httpx.Client) -> None:
    assert http.get("/users/someone@else.example/mailFolders").status_code == 403
    server.set_throttle(2, window=60)
    assert http.get("/me").status_code == 200
    assert http.get("/me").status_code == 200
    throttled = http.get("/me")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    server.set_throttle(None)
    server.revoke_token()
    refused = http.get("/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in refused.headers


def test_calendar_view_delta_needs_a_window(server: GraphServer, http: httpx.Client) -> None:
    url = f"/me/calendars/{server.calendar.default}/calendarView/delta"
    answer = http.get(url)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidParameter"
    window = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}
    assert "@odata.deltaLink" in http.get(url, params=window).json()
