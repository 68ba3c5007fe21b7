"""The attachments Exchange makes of a MIME message, for the local Graph and EWS servers.

Every single part but the message's body text (its first ``text/plain``
and first ``text/html`` not marked as attachments) is an attachment, in
part order: a file attachment, or an item attachment for a forwarded
message (named by its subject). Ids are opaque and tied to the message.
"""

from __future__ import annotations

import base64
import binascii
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import attrs

__all__ = ["MimeAttachment", "attachment_by_id", "mime_attachments"]


@attrs.frozen
class MimeAttachment:
    id: str
    name: str
    content_type: str
    is_inline: bool
    content_id: str
    is_item: bool
    content: bytes = attrs.field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)


def _leaves(message: Message) -> list[Message]:
    found: list[Message] = []
    stack = [message]
    while stack:
        part = stack.pop()
        children = part.get_payload() if part.is_multipart() else None
        if part.get_content_maintype() == "multipart" and isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, Message)]))
        else:
            found.append(part)
    return found


def mime_attachments(message_id: str, raw: bytes) -> list[MimeAttachment]:
    """The attachments of ``raw`` (the message ``message_id``), in part order."""
    body_seen: set[str] = set()
    found: list[MimeAttachment] = []
    for n, part in enumerate(_leaves(BytesParser(policy=compat32).parsebytes(raw))):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        name = str(part.get_filename() or "")
        is_text = ctype in ("text/plain", "text/html")
        if is_text and disposition != "attachment" and not name and ctype not in body_seen:
            body_seen.add(ctype)
            continue
        is_item = part.get_content_maintype() == "message"
        if is_item:
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner else None
            content = inner_message.as_bytes() if isinstance(inner_message, Message) else b""
            if isinstance(inner_message, Message):
                name = name or str(inner_message.get("subject", "") or "")
        else:
            data = part.get_payload(decode=True)
            content = data if isinstance(data, bytes) else b""
        token = base64.urlsafe_b64encode(f"{message_id}\x00{n}".encode()).decode()
        found.append(
            MimeAttachment(
                id="AAMkAtt" + token,
                name=name,
                content_type=ctype,
                is_inline=disposition == "inline",
                content_id=str(part.get("content-id", "") or "").strip().strip("<>"),
                is_item=is_item,
                content=content,
            )
        )
    return found


def attachment_by_id(attachment_id: str) -> tuple[str, int] | None:
    """The message id and part position an attachment id stands for."""
    try:
        text = base64.urlsafe_b64decode(attachment_id.removeprefix("AAMkAtt")).decode()
    except (binascii.Error, ValueError):
        return None
    message_id, _, n = text.rpartition("\x00")
    return (message_id, int(n)) if n.isdigit() and message_id else None
