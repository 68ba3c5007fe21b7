"""Showing a message's content: its HTML through commlink's renderer (which
sanitises it again and blocks remote images), else the plain-text body,
which the template escapes; and the links to its attachments."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from commlink.mime.html import render_html
from commlink.records import MessageView


def attachment_url(thread_id: str, message_id: str, **which: str) -> str:
    """Where the CRM serves one attachment of a message (``crm.mail_views.attachment``):
    ``n`` its place in the message's attachments or ``cid`` its Content-ID,
    ``inline="1"`` to show a picture in the page rather than download it."""
    query = {"thread": thread_id, "message": message_id, **which}
    return f"{reverse('attachment')}?{urlencode(query)}"


def safe_html(view: MessageView, thread_id: str) -> str | None:
    """The message's HTML ready to insert in a page, or ``None`` to show its text.

    ``MessageView.html`` is only set for a viewer allowed to see the full
    message; remote images stay blocked (they would tell the sender who
    read the mail, and when). Its inline pictures (``cid:``) come from the
    CRM's attachment page, which serves only plain pictures inline.
    """
    if not view.html:
        return None

    def cid_url(content_id: str) -> str:
        return attachment_url(thread_id, view.message_id, cid=content_id, inline="1")

    return render_html(view.html, remote_images=False, cid_url=cid_url) or None
