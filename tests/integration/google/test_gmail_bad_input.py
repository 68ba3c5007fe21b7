"""Bad input from Gmail is skipped or repaired with a reason; the rest goes on."""

from __future__ import annotations

import base64
import json

import pytest
from gapi_support import OWNER, mail, mail_channel

from commlink.errors import InvalidInput
from commlink.model import Detail
from commlink.providers.google.gmail import GmailProvider, notification_history_id
from commlink.records import Reason, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.conformance_data import owner_of
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration


def _run(provider: GmailProvider) -> tuple[MemoryStore, SyncEngine]:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    engine = SyncEngine(store, directory)
    report = engine.run(mail_channel(), provider)
    assert report.errors == []
    return store, engine


def test_truncated_and_malformed_messages_do_not_stop_the_sync(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    good = server.gmail.add_message(OWNER, mail(1))
    truncated = server.gmail.add_message(OWNER, mail(2)[:60])
    garbage = server.gmail.add_message(OWNER, b"\x00\xff\xfe not a message \x80\r\n")
    store, _ = _run(gmail)
    stored = store.known_ids("gm", "gmail", [good, truncated, garbage])
    assert good in stored
    skipped = {s.provider_id: s for s in store.skips("gm", owner_of(store, "gm"))}
    # each bad one is either kept (repaired by the parser) or skipped with a reason
    for bad in (truncated, garbage):
        assert bad in stored or skipped[bad].detail


def test_raw_that_is_not_base64url_is_skipped_with_a_reason(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    good = server.gmail.add_message(OWNER, mail(1))
    bad = server.gmail.add_message(OWNER, mail(2))
    server.gmail.corrupt_raw(OWNER, bad, "abc$%^")
    [item] = list(gmail.fetch(gmail.scopes([])[0], [bad], Detail.FULL))
    assert item.raw is None
    assert item.error is not None
    assert "base64" in item.error
    store, _ = _run(gmail)
    assert store.known_ids("gm", "gmail", [good, bad]) == {good}
    assert [s.reason for s in store.skips("gm", owner_of(store, "gm")) if s.provider_id == bad] == [
        Reason.ERROR
    ]


def test_an_unknown_label_in_history_is_harmless(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    first = server.gmail.add_message(OWNER, mail(1))
    store, engine = _run(gmail)
    server.gmail.modify_labels(OWNER, first, add=["Label_404"])
    report = engine.run(mail_channel(), gmail)
    assert report.errors == []
    assert store.known_ids("gm", "gmail", [first]) == {first}
    items = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    assert [t.subject for t in items] == ["Subject 1"]


def test_metadata_headers_with_line_breaks_cannot_inject_headers(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    raw = mail(1).replace(b"Subject: Subject 1", b"Subject: Subject 1\r\n\tBcc: x@evil.example")
    message_id = server.gmail.add_message(OWNER, raw)
    [item] = list(gmail.fetch(gmail.scopes([])[0], [message_id], Detail.METADATA))
    assert item.raw is not None
    assert b"\r\nBcc:" not in item.raw
    assert b"Subject: Subject 1 Bcc: x@evil.example\r\n" in item.raw


def test_aliases_and_watch(server: GoogleApiServer, gmail: GmailProvider) -> None:
    server.gmail.add_alias(OWNER, "sales@home.example")
    assert gmail.aliases() == (OWNER, "sales@home.example")
    started = gmail.start_watch("projects/p/topics/gmail")
    assert int(started["historyId"]) > 0
    assert int(started["expiration"]) > 0
    assert gmail.watch(gmail.scopes([])[0]) is None


def test_notification_history_id() -> None:
    data = base64.urlsafe_b64encode(
        json.dumps({"emailAddress": OWNER, "historyId": 9876}).encode()
    ).decode()
    push = {"message": {"data": data.rstrip("="), "messageId": "1"}, "subscription": "s"}
    assert notification_history_id(push) == "9876"
    assert notification_history_id(json.dumps(push)) == "9876"
    assert notification_history_id(push["message"]) == "9876"
    assert notification_history_id(b'{"historyId": "12"}') == "12"
    for bad in ("{}", "not json", {"message": {"data": "!!"}}, {"historyId": "x"}):
        with pytest.raises(InvalidInput):
            notification_history_id(bad)
