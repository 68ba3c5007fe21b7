"""Attachments on demand from Gmail (``messages.get`` format=full, then
``messages.attachments.get``) against the local Google API server."""

from __future__ import annotations

import attrs
import pytest
from gapi_support import OWNER

from attachment_samples import EXPECTED, drain, read_all, rich_message, synced
from commlink.attachments import AttachmentTooLarge
from commlink.errors import NotFound
from commlink.ports import Scope
from commlink.providers.google.attachments import gmail_part_id
from commlink.providers.google.gmail import GmailProvider
from commlink.records import Viewer
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration


def test_every_attachment_comes_back_as_sent(server: GoogleApiServer, gmail: GmailProvider) -> None:
    server.gmail.add_message(OWNER, rich_message())
    store, thread_id = synced(gmail)
    found = read_all(store, gmail, thread_id)
    for name, content in EXPECTED.items():
        assert found[name] == content, name
    assert b"Subject: Earlier note" in found["Earlier note.eml"]


def test_gone_parts_messages_and_limits(server: GoogleApiServer, gmail: GmailProvider) -> None:
    message_id = server.gmail.add_message(OWNER, rich_message())
    store, thread_id = synced(gmail)
    view = store.thread(thread_id, Viewer("u-owner"))
    assert view is not None
    attachments = view.messages[0].attachments
    pdf = [a for a in attachments if a.filename == "report.pdf"]
    gone = [attrs.evolve(pdf[0], part="7")]
    with pytest.raises(NotFound):
        drain(gmail.open_attachment(Scope("gmail"), message_id, gone, 0, 10**6))
    with pytest.raises(AttachmentTooLarge):
        drain(gmail.open_attachment(Scope("gmail"), message_id, pdf, 0, 1000))
    assert (
        drain(gmail.open_attachment(Scope("gmail"), message_id, pdf, 0, 10**6))
        == EXPECTED["report.pdf"]
    )
    server.gmail.delete_message(OWNER, message_id)
    with pytest.raises(NotFound):
        drain(gmail.open_attachment(Scope("gmail"), message_id, pdf, 0, 10**6))


def test_part_numbers_map_from_imap_to_gmail() -> None:
    assert gmail_part_id("2", multipart=True) == "1"
    assert gmail_part_id("1.3", multipart=True) == "0.2"
    assert gmail_part_id("1", multipart=False) == ""
