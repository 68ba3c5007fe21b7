"""An attachment's content from Gmail: ``users.messages.attachments.get``.

The part is found in the message's structure (``messages.get`` with
``format=full``, only the part fields asked for): Gmail numbers parts from
0 where IMAP numbers them from 1 (IMAP ``"2"`` is Gmail ``"1"``, ``"1.3"``
is ``"0.2"``; a message that is not multipart is the payload itself).
A part with an ``attachmentId`` is fetched with ``attachments.get``; a
small one carries its data inline. The API answers with the whole part as
base64url in one JSON document; it is read as it arrives and decoded a
slice at a time (``google.streaming``), so neither the answer nor the
decoded part is held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ...errors import AttachmentTooLarge, NotFound
from ...mime.parts import valid_part
from ...model import Attachment
from ..attachment_streams import CHUNK_BYTES, capped
from .streaming import base64url_decoded, data_text, streamed_answer

__all__ = ["gmail_part_id", "open_gmail_attachment"]

_PART_FIELDS = "payload(mimeType,partId,body,parts)"
#: Base64 characters of inline data decoded at a time (a multiple of 4).
_SLICE = CHUNK_BYTES // 3 * 4
# The cost of messages.get and of attachments.get in quota units.
_COST_GET = 5


def gmail_part_id(section: str, multipart: bool) -> str:
    """The Gmail ``partId`` of an IMAP section path."""
    if not multipart:
        return "" if section == "1" else section.partition(".")[2]
    return ".".join(str(int(n) - 1) for n in section.split("."))


@contextmanager
def open_gmail_attachment(
    execute: Callable[[Any, int], Any],
    messages: Any,
    user_id: str,
    message_id: str,
    attachments: Sequence[Attachment],
    index: int,
    max_bytes: int,
) -> Iterator[Iterator[bytes]]:
    """The decoded content of ``attachments[index]`` of Gmail message
    ``message_id``; ``execute(request, cost)`` runs a request."""
    if not 0 <= index < len(attachments) or not valid_part(attachments[index].part):
        raise NotFound("the attachment has no readable part number")
    found = execute(
        messages.get(userId=user_id, id=message_id, format="full", fields=_PART_FIELDS),
        _COST_GET,
    )
    payload = found.get("payload") if isinstance(found, Mapping) else None
    if not isinstance(payload, Mapping):
        raise NotFound(f"Gmail message {message_id} has no structure")
    multipart = str(payload.get("mimeType", "")).lower().startswith("multipart/")
    part = _part(payload, gmail_part_id(attachments[index].part, multipart))
    body = part.get("body") if isinstance(part.get("body"), Mapping) else {}
    assert isinstance(body, Mapping)
    size = body.get("size")
    if isinstance(size, int) and size > max_bytes:
        raise AttachmentTooLarge(max_bytes)
    data = body.get("data")
    if not isinstance(data, str) and body.get("attachmentId"):
        request = messages.attachments().get(
            userId=user_id, messageId=message_id, id=str(body["attachmentId"])
        )
        with streamed_answer(execute, request, _COST_GET, max_bytes) as answer:
            yield capped(base64url_decoded(data_text(answer)), max_bytes)
        return
    inline = data.encode("ascii", "replace") if isinstance(data, str) else b""
    slices = (inline[start : start + _SLICE] for start in range(0, len(inline), _SLICE))
    yield capped(base64url_decoded(slices), max_bytes)


def _part(payload: Mapping[str, Any], part_id: str) -> Mapping[str, Any]:
    """The part of ``payload`` whose ``partId`` is ``part_id``, walking down by number."""
    node: Mapping[str, Any] = payload
    if not part_id:
        return node
    numbers = part_id.split(".")
    for depth in range(1, len(numbers) + 1):
        wanted = ".".join(numbers[:depth])
        children = node.get("parts")
        chosen = None
        if isinstance(children, list):
            chosen = next(
                (c for c in children if isinstance(c, Mapping) and c.get("partId") == wanted),
                None,
            )
        if chosen is None:
            raise NotFound(f"the message has no part {part_id}")
        node = chosen
    return node
