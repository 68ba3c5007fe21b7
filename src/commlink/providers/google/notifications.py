"""Reading Gmail's Pub/Sub notifications: a push request body in, the
mailbox and its new ``historyId`` out.

A Pub/Sub push body is ``{"message": {"data": ..., "messageId": ...},
"subscription": ...}``; Gmail's ``data`` is base64 of
``{"emailAddress": ..., "historyId": ...}``. Pub/Sub writes standard
base64, Gmail's guide shows base64url: both are read, padded or not.
``historyId`` comes as a number or a string of digits. Anything else raises
``InvalidInput`` and nothing else: the body is attacker-controlled until
its token is checked, and malformed even after.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import InvalidInput

__all__ = ["GmailNotification", "notification_history_id", "parse_gmail_notification"]

#: A push body larger than this is refused before it is parsed (a Gmail
#: notification is about 300 bytes).
MAX_NOTIFICATION_BYTES = 64 * 1024

_DIGITS = re.compile(r"[0-9]{1,20}")
_MAX_ADDRESS = 320


@attrs.frozen(slots=True)
class GmailNotification:
    """One Gmail change notification: which mailbox, and its history id then."""

    email_address: str
    history_id: str
    message_id: str = ""
    subscription: str = ""


def _json(text: str | bytes) -> Any:
    if len(text) > MAX_NOTIFICATION_BYTES:
        raise InvalidInput("notification too large")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: [[[[...]]]]
        raise InvalidInput(f"not JSON: {type(exc).__name__}") from None


def _data(message: Mapping[str, Any]) -> Any:
    data = message.get("data")
    if not isinstance(data, str) or not data:
        raise InvalidInput("no message data")
    text = data.strip().rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("message data is not base64") from None
    return _json(raw)


def _history_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput("historyId is not a number")
    text = str(value).strip()
    if not _DIGITS.fullmatch(text) or int(text) <= 0:
        raise InvalidInput("historyId is not a positive number")
    return str(int(text))


def _payload(body: str | bytes | Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    """The decoded Gmail data, with the Pub/Sub message id and subscription
    when ``body`` was a push body or a Pub/Sub message."""
    found: Any = _json(body) if isinstance(body, str | bytes) else body
    message_id = subscription = ""
    if isinstance(found, Mapping) and "message" in found:
        sub = found.get("subscription")
        subscription = sub if isinstance(sub, str) else ""
        found = found["message"]
    if isinstance(found, Mapping) and "data" in found:
        mid = found.get("messageId", found.get("message_id"))
        message_id = mid if isinstance(mid, str) else ""
        found = _data(found)
    if not isinstance(found, Mapping):
        raise InvalidInput("not a Gmail notification")
    return found, message_id, subscription


def parse_gmail_notification(body: str | bytes | Mapping[str, Any]) -> GmailNotification:
    """The mailbox and history id of a Pub/Sub push body (or of its
    ``message``, or of the decoded data); raises ``InvalidInput``."""
    data, message_id, subscription = _payload(body)
    address = data.get("emailAddress")
    if (
        not isinstance(address, str)
        or not 3 <= len(address) <= _MAX_ADDRESS
        or "@" not in address
        or not address.isprintable()
        or any(c.isspace() for c in address)
    ):
        raise InvalidInput("not a Gmail notification: no usable emailAddress")
    history = _history_id(data.get("historyId"))
    return GmailNotification(address, history, message_id[:200], subscription[:500])


def notification_history_id(pubsub_message: str | bytes | Mapping[str, Any]) -> str:
    """The ``historyId`` of a Gmail Pub/Sub notification.

    Accepts a push request body (``{"message": {"data": ...}}``), the
    message itself, or its decoded data; raises ``InvalidInput`` otherwise.
    """
    data, _, _ = _payload(pubsub_message)
    if "historyId" not in data:
        raise InvalidInput("not a Gmail notification: no historyId")
    return _history_id(data["historyId"])
