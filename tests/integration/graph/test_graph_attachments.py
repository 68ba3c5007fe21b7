"""Attachments on demand from Microsoft Graph (the message's attachment list,
then ``attachments/{id}/$value`` streamed) against the local Graph server."""

from __future__ import annotations

import attrs
import pytest

from attachment_samples import EXPECTED, drain, read_all, rich_message, synced
from commlink.attachments import AttachmentTooLarge
from commlink.errors import NotFound
from commlink.ports import Scope
from commlink.providers.microsoft.graph import GraphMailProvider
from commlink.records import Viewer
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


def test_every_attachment_comes_back_as_sent(server: GraphServer, mail: GraphMailProvider) -> None:
    server.mail.add_message(rich_message())
    store, thread_id = synced(mail)
    found = read_all(store, mail, thread_id)
    for name, content in EXPECTED.items():
        assert found[name] == content, name
    assert b"Subject: Earlier note" in found["Earlier note.eml"]


def test_gone_attachments_messages_and_limits(server: GraphServer, mail: GraphMailProvider) -> None:
    message_id = server.mail.add_message(rich_message())
    store, thread_id = synced(mail)
    view = store.thread(thread_id, Viewer("u-owner"))
    assert view is not None
    stored = view.messages[0].attachments
    inbox = Scope("inbox")
    pdf = next(n for n, a in enumerate(stored) if a.filename == "report.pdf")
    assert (
        drain(mail.open_attachment(inbox, message_id, stored, pdf, 10**6)) == EXPECTED["report.pdf"]
    )
    with pytest.raises(AttachmentTooLarge):
        drain(mail.open_attachment(inbox, message_id, stored, pdf, 1000))
    unknown = [attrs.evolve(stored[pdf], filename="other.pdf", content_type="application/x-none")]
    with pytest.raises(NotFound):
        drain(mail.open_attachment(inbox, message_id, unknown, 0, 10**6))
    server.mail.delete(message_id)
    with pytest.raises(NotFound):
        drain(mail.open_attachment(inbox, message_id, stored, pdf, 10**6))
