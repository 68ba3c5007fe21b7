"""Attachments in the local EWS server: ``item:Attachments`` of ``GetItem``
and the ``GetAttachment`` operation, from the item's MIME content.

A file attachment's ``Content`` is base64; an item attachment (a forwarded
message) is returned as a ``Message`` with its ``MimeContent`` when the
request's ``AttachmentShape`` asks for it (``IncludeMimeContent``).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from .ews_mailbox import EwsMailbox, MailItem
from .ews_xml import M, T, error_message, sub, success_message
from .mime_attachments import MimeAttachment, attachment_by_id, mime_attachments

__all__ = ["get_attachment", "write_attachments"]


def _element(parent: ET.Element, attachment: MimeAttachment) -> ET.Element:
    tag = "ItemAttachment" if attachment.is_item else "FileAttachment"
    elem = sub(parent, T, tag)
    sub(elem, T, "AttachmentId", Id=attachment.id)
    sub(elem, T, "Name", attachment.name)
    sub(elem, T, "ContentType", attachment.content_type)
    if attachment.content_id:
        sub(elem, T, "ContentId", attachment.content_id)
    sub(elem, T, "Size", str(attachment.size))
    sub(elem, T, "IsInline", "true" if attachment.is_inline else "false")
    return elem


def write_attachments(elem: ET.Element, item: MailItem) -> None:
    """``item:Attachments``: what each attachment is, without its content."""
    found = mime_attachments(item.id, item.mime)
    if found:
        listed = sub(elem, T, "Attachments")
        for attachment in found:
            _element(listed, attachment)


def get_attachment(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    mime = request.findtext(f"{{{M}}}AttachmentShape/{{{T}}}IncludeMimeContent", "false")
    ids = request.find(f"{{{M}}}AttachmentIds")
    for elem in list(ids) if ids is not None else []:
        attachment = _find(mailbox, str(elem.get("Id", "")))
        if attachment is None:
            error_message(
                messages,
                "GetAttachment",
                "ErrorInvalidIdNotAnItemAttachmentId",
                "The attachment id is not valid.",
            )
            continue
        message = success_message(messages, "GetAttachment")
        written = _element(sub(message, M, "Attachments"), attachment)
        content = base64.b64encode(attachment.content).decode()
        if not attachment.is_item:
            sub(written, T, "Content", content)
        elif mime.strip().lower() == "true":
            inner = sub(written, T, "Message")
            sub(inner, T, "MimeContent", content, CharacterSet="UTF-8")


def _find(mailbox: EwsMailbox, attachment_id: str) -> MimeAttachment | None:
    found = attachment_by_id(attachment_id)
    if found is None:
        return None
    item = mailbox.items.get(found[0])
    if not isinstance(item, MailItem):
        return None
    return next((a for a in mime_attachments(item.id, item.mime) if a.id == attachment_id), None)
