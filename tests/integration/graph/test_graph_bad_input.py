"""Bad input from Graph is repaired or skipped with a reason; the rest goes on."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from graph_support import engine, mail_channel, raw_mail

from commlink.mime.parse import parse_message
from commlink.model import Detail, Visibility
from commlink.ports import FetchedMessage, Scope, Store
from commlink.providers.microsoft.graph import GraphMailProvider
from commlink.providers.microsoft.graph.headers import headers_from_properties
from commlink.providers.microsoft.graph.mail import truncation
from commlink.records import Reason, Target, TargetKind, Viewer
from commlink.testing.conformance_data import owner_of
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

TRUNCATED = (
    b"From: Ann <ann@client.example>\r\nTo: owner@home.example\r\nSubject: Cut short\r\n"
    b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\nMessage-ID: <cut@test>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"SGVsbG8gd29y"
)
WRONG_CHARSET = (
    b"From: Ann <ann@client.example>\r\nTo: owner@home.example\r\nSubject: Charset\r\n"
    b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\nMessage-ID: <cs@test>\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + "Grüße aus Köln".encode() + b"\r\n"
)
NO_MESSAGE_ID = (
    b"From: Ann <ann@client.example>\r\nTo: owner@home.example\r\nSubject: No id\r\n"
    b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nhello\r\n"
)


def _inbox(server: GraphServer, provider: GraphMailProvider) -> Scope:
    inbox = server.mail.folder_id("inbox")
    return provider.scopes([f for f in provider.folders() if f.id == inbox])[0]


def _fetch_one(provider: GraphMailProvider, scope: Scope, item_id: str) -> FetchedMessage:
    [item] = list(provider.fetch(scope, [item_id], Detail.FULL))
    return item


def _subjects(store: Store) -> list[str]:
    items = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    return sorted(t.subject or "" for t in items)


def test_truncated_mime_is_kept_with_a_warning(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    cut = server.mail.add_message(TRUNCATED)
    good = server.mail.add_message(raw_mail(1))
    item = _fetch_one(mail, _inbox(server, mail), cut)
    assert item.message is not None
    assert "mime-truncated:no-closing-boundary" in item.message.warnings
    assert item.message.body is not None
    assert item.message.body.startswith("Hello wor")
    sync, store = engine()
    report = sync.run(mail_channel(frozenset({"inbox"})), mail)
    assert report.errors == []
    assert store.known_ids("gr", server.mail.folder_id("inbox"), [cut, good]) == {cut, good}
    assert _subjects(store) == ["Cut short", "Subject 1"]


def test_truncation_is_told_apart_from_complete_mime() -> None:
    assert truncation(TRUNCATED) == "mime-truncated:no-closing-boundary"
    assert truncation(TRUNCATED + b"\r\n--b1--\r\n") is None
    assert truncation(b"From: a@b.example\r\nSubject: cut in the hea") == "mime-truncated:no-body"
    assert truncation(raw_mail(1)) is None


def test_a_wrong_charset_is_repaired_with_a_warning(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    item_id = server.mail.add_message(WRONG_CHARSET)
    item = _fetch_one(mail, _inbox(server, mail), item_id)
    assert item.raw is not None
    parsed = parse_message(item.raw, provider_id=item_id)
    assert "charset-repaired:utf-8" in parsed.warnings
    assert parsed.body is not None
    assert "Grüße aus Köln" in parsed.body
    sync, store = engine()
    assert sync.run(mail_channel(frozenset({"inbox"})), mail).errors == []
    assert _subjects(store) == ["Charset"]


@pytest.mark.parametrize("visibility", [Visibility.FULL, Visibility.METADATA])
def test_a_message_without_internet_message_id_is_stored(
    server: GraphServer,
    make_mail: Callable[..., GraphMailProvider],
    visibility: Visibility,
) -> None:
    item_id = server.mail.add_message(NO_MESSAGE_ID, internetMessageId=None)
    provider = make_mail()
    sync, store = engine()
    channel = mail_channel(frozenset({"inbox"}))
    channel = attrs.evolve(channel, settings=attrs.evolve(channel.settings, visibility=visibility))
    report = sync.run(channel, provider)
    assert report.errors == []
    assert report.imported == 1
    assert store.known_ids("gr", server.mail.folder_id("inbox"), [item_id]) == {item_id}
    [fetched] = list(provider.fetch(_inbox(server, provider), [item_id], Detail.METADATA))
    assert fetched.raw is not None
    message = parse_message(fetched.raw, provider_id=item_id, detail=Detail.METADATA)
    assert message.synthetic_id
    assert "missing-message-id" in message.warnings


def test_empty_mime_content_is_skipped_with_a_reason(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    empty = server.mail.add_message(raw_mail(1))
    server.mail.set_raw(empty, b"")
    good = server.mail.add_message(raw_mail(2))
    sync, store = engine()
    assert sync.run(mail_channel(frozenset({"inbox"})), mail).errors == []
    inbox = server.mail.folder_id("inbox")
    assert store.known_ids("gr", inbox, [empty, good]) == {good}
    skips = [s for s in store.skips("gr", owner_of(store, "gr")) if s.provider_id == empty]
    assert [s.reason for s in skips] == [Reason.ERROR]
    assert "no MIME content" in skips[0].detail


def test_header_properties_cannot_inject_headers() -> None:
    block = headers_from_properties(
        {
            "subject": "Hi\r\nBcc: evil@attacker.example",
            "from": {"emailAddress": {"name": "Ann\r\nX-Evil: 1", "address": "ann@client.example"}},
            "toRecipients": [
                {"emailAddress": {"name": "Zoë Müller", "address": "zoe@client.example"}},
                {"emailAddress": {"name": "No address"}},
            ],
            "internetMessageId": "<a@b>\r\nX-Evil: 2",
            "sentDateTime": "2026-03-02T09:00:00Z",
        }
    )
    lines = block.decode().split("\r\n")
    assert not any(line.startswith(("Bcc:", "X-Evil:")) for line in lines)
    message = parse_message(block, provider_id="p", detail=Detail.METADATA)
    assert message.subject == "Hi Bcc: evil@attacker.example"
    assert [a.key for a in message.addresses()] == ["ann@client.example", "zoe@client.example"]
    assert message.addresses()[1].name == "Zoë Müller"
