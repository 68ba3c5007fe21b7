"""Attachments on demand from IMAP (Dovecot and Cyrus): every part type of a
rich message comes back byte for byte, by index and by ``cid:``; a part or a
message that is gone is ``NotFound``; a viewer not shown FULL gets nothing."""

from __future__ import annotations

import quopri
import re

import attrs
import pytest

from attachment_samples import CHANNEL, EXPECTED, drain, read_all, rich_message, synced
from commlink.attachments import AttachmentTooLarge, MemoryAttachmentCache, open_attachment
from commlink.errors import NotFound
from commlink.model import Visibility
from commlink.ports import Scope
from commlink.records import Viewer
from commlink.testing.imap_account import ImapAccount

pytestmark = pytest.mark.integration


def test_every_attachment_comes_back_as_sent(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    store, thread_id = synced(imap.provider)
    found = read_all(store, imap.provider, thread_id)
    for name, content in EXPECTED.items():
        assert found[name] == content, name
    forwarded = found["Earlier note.eml"]
    assert b"Subject: Earlier note" in forwarded
    assert b"The earlier note." in forwarded
    assert set(found) == {*EXPECTED, "Earlier note.eml"}


def test_inline_image_by_content_id_and_a_cache(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    store, thread_id = synced(imap.provider)
    view = store.thread(thread_id, Viewer("u-owner"))
    assert view is not None
    message_id = view.messages[0].message_id
    cache = MemoryAttachmentCache()
    owner = Viewer("u-owner")
    for _ in range(2):
        with open_attachment(
            store, lambda _c: imap.provider, thread_id, message_id, owner, content_id="cid:logo@x"
        ) as content:
            assert content.filename == "logo.png"
            assert content.content_type == "image/png"
            assert b"".join(content.chunks) == EXPECTED["logo.png"]
    with open_attachment(
        store, lambda _c: imap.provider, thread_id, message_id, owner, index=1, cache=cache
    ) as content:
        assert b"".join(content.chunks) == EXPECTED["report.pdf"]
    with open_attachment(
        store, lambda _c: None, thread_id, message_id, owner, index=1, cache=cache
    ) as content:  # served from the cache: the provider is not asked
        assert b"".join(content.chunks) == EXPECTED["report.pdf"]


def test_limits_gone_parts_and_gone_messages(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    store, thread_id = synced(imap.provider)
    owner = Viewer("u-owner")
    view = store.thread(thread_id, owner)
    assert view is not None
    message_id = view.messages[0].message_id
    with (
        pytest.raises(AttachmentTooLarge),  # by its recorded size, before any request
        open_attachment(
            store, lambda _c: None, thread_id, message_id, owner, index=1, max_bytes=1000
        ),
    ):
        pass
    source = store.message_source(thread_id, message_id, owner)
    assert source is not None
    scope, provider_id = source.locations[0]
    bogus = [attrs.evolve(source.attachments[1], part="9.9")]
    with pytest.raises(NotFound):
        drain(imap.provider.open_attachment(Scope(scope), provider_id, bogus, 0, 10**6))
    # a part smaller than recorded but larger than the limit while streaming
    lying = [attrs.evolve(source.attachments[1], size=10)]
    with pytest.raises(AttachmentTooLarge):
        drain(imap.provider.open_attachment(Scope(scope), provider_id, lying, 0, 1000))
    imap.delete("INBOX", "files-1@attachments")
    with (
        pytest.raises(NotFound),
        open_attachment(
            store, lambda _c: imap.provider, thread_id, message_id, owner, index=1
        ) as content,
    ):
        b"".join(content.chunks)


def test_a_colleague_below_full_gets_nothing(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    channel = attrs.evolve(
        CHANNEL, settings=attrs.evolve(CHANNEL.settings, visibility=Visibility.SUBJECT)
    )
    store, thread_id = synced(imap.provider, channel)
    owner_view = store.thread(thread_id, Viewer("u-owner"))
    assert owner_view is not None
    message_id = owner_view.messages[0].message_id
    colleague = Viewer("u-colleague")
    assert store.message_source(thread_id, message_id, colleague) is None
    with (
        pytest.raises(NotFound),
        open_attachment(store, lambda _c: imap.provider, thread_id, message_id, colleague, index=1),
    ):
        pass


def test_a_message_that_is_one_quoted_printable_attachment(imap: ImapAccount) -> None:
    text = "Zoë;Köln;" * 200 + "\r\nend\r\n"
    raw = (
        b"From: Ann Client <ann@client.example>\r\nTo: owner@home.example\r\n"
        b"Subject: One file\r\nMessage-ID: <one@attachments>\r\n"
        b"Date: Mon, 02 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/csv; charset=utf-8; name=one.csv\r\n"
        b"Content-Disposition: attachment; filename=one.csv\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ) + re.sub(rb"\r?\n", b"\r\n", quopri.encodestring(text.encode()))
    imap.add("INBOX", raw)
    store, thread_id = synced(imap.provider)
    found = read_all(store, imap.provider, thread_id)
    assert found == {"one.csv": text.encode()}


def test_a_copy_stored_without_part_numbers_is_numbered_again(imap: ImapAccount) -> None:
    imap.add("INBOX", rich_message())
    store, thread_id = synced(imap.provider)
    owner = Viewer("u-owner")
    source = store.message_source(thread_id, "files-1@attachments", owner)
    assert source is not None
    # as a store written before part numbers were recorded holds it
    old = tuple(attrs.evolve(a, part="") for a in source.attachments)
    unnumbered = attrs.evolve(source, attachments=old)

    class OldStore:
        def message_source(self, *_args: object) -> object:
            return unnumbered

    with open_attachment(
        OldStore(),  # type: ignore[arg-type]
        lambda _c: imap.provider,
        thread_id,
        "files-1@attachments",
        owner,
        index=1,
    ) as content:
        assert b"".join(content.chunks) == EXPECTED["report.pdf"]
    bogus = attrs.evolve(old[1], filename="renamed.pdf")
    with pytest.raises(NotFound):
        drain(
            imap.provider.open_attachment(
                Scope(source.locations[0][0]), source.locations[0][1], [bogus], 0, 10**6
            )
        )
