"""A message's part tree as ``format=full`` shows it, and its attachments.

Gmail numbers parts from ``"0"`` (nested: ``"1.0"``), the top-level payload
having ``partId`` ``""``. A part with a file name, or a forwarded message,
carries ``body.attachmentId`` for ``users.messages.attachments.get``; other
leaves carry their decoded content in ``body.data`` (base64url).
``body.size`` is the decoded size.
"""

from __future__ import annotations

import base64
import binascii
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from .errors import ApiError

__all__ = ["attachment_json", "payload_json"]

JSON = dict[str, Any]
_MAX_DEPTH = 32


def _parse(raw: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(raw)


def _content(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
        return b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _attachment_id(message_id: str, part_id: str) -> str:
    return "ANGj" + base64.urlsafe_b64encode(f"{message_id}/{part_id}".encode()).decode()


def _node(message_id: str, part: Message, part_id: str, depth: int) -> JSON:
    headers = [{"name": k, "value": " ".join(str(v).split())} for k, v in part.items()]
    filename = part.get_filename() or ""
    node: JSON = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": str(filename),
        "headers": headers,
    }
    children = part.get_payload() if part.is_multipart() else None
    if part.get_content_maintype() == "multipart" and isinstance(children, list):
        node["body"] = {"size": 0}
        if depth < _MAX_DEPTH:
            prefix = f"{part_id}." if part_id else ""
            node["parts"] = [
                _node(message_id, child, f"{prefix}{n}", depth + 1)
                for n, child in enumerate(children)
            ]
        return node
    data = _content(part)
    if filename or part.get_content_maintype() == "message":
        node["body"] = {"attachmentId": _attachment_id(message_id, part_id), "size": len(data)}
    else:
        node["body"] = {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}
    return node


def payload_json(message_id: str, raw: bytes) -> JSON:
    """The ``payload`` of ``format=full``."""
    return _node(message_id, _parse(raw), "", 0)


def attachment_json(message_id: str, raw: bytes, attachment_id: str) -> JSON:
    """``users.messages.attachments.get``: ``{"size", "data"}`` (base64url)."""
    try:
        text = base64.urlsafe_b64decode(attachment_id.removeprefix("ANGj")).decode()
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalidArgument", "Invalid attachment token") from None
    owner, _, part_id = text.partition("/")
    if owner != message_id:
        raise ApiError(400, "invalidArgument", "Invalid attachment token")
    part = _parse(raw)
    if part_id:
        for number in part_id.split("."):
            children = part.get_payload() if part.is_multipart() else None
            if not isinstance(children, list) or not number.isdigit():
                raise ApiError(400, "invalidArgument", "Invalid attachment token")
            child = children[int(number)] if int(number) < len(children) else None
            if not isinstance(child, Message):
                raise ApiError(400, "invalidArgument", "Invalid attachment token")
            part = child
    data = _content(part)
    return {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}
