"""Google Calendar notification channels for the local server:
``events.watch``, ``channels.stop`` and the messages they send.

A new channel gets a ``sync`` message (number 1); each change to its
calendar then sends ``exists``, with the documented headers and an empty
body. Channels expire (``params.ttl`` seconds, else a week); an expired
channel sends nothing. Calendar retries a message answered 500, 502, 503
or 504; any other failure is dropped.

Google accepts only ``https`` addresses; this server also takes ``http``
on a loopback host, so a test needs no certificate.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from ...credentials import is_loopback_host
from .delivery import PushSender
from .errors import ApiError

__all__ = ["DEFAULT_TTL", "MAX_TTL", "WatchChannels"]

#: Seconds a channel lives when the request does not say.
DEFAULT_TTL = 7 * 86400
#: The longest lifetime this server grants.
MAX_TTL = 30 * 86400

JSON = dict[str, Any]
_ID = re.compile(r"[A-Za-z0-9\-_+/=]{1,64}")
_RETRIED = frozenset({500, 502, 503, 504})


@attrs.define
class Channel:
    """One open channel."""

    id: str
    resource_id: str
    resource_uri: str
    calendar_id: str
    owner: str
    address: str
    token: str | None
    expiration_ms: int
    number: int = 0


def _address(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, "required", "Required: address")
    parts = urlsplit(value)
    if parts.scheme == "https" or (
        parts.scheme == "http" and is_loopback_host(parts.hostname or "")
    ):
        return value
    raise ApiError(400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {value}")


def _ttl_ms(body: Mapping[str, Any], now_ms: int) -> int:
    params = body.get("params") if isinstance(body.get("params"), Mapping) else {}
    assert isinstance(params, Mapping)
    seconds = DEFAULT_TTL
    if "ttl" in params:
        try:
            seconds = int(str(params["ttl"]))
        except ValueError:
            raise ApiError(400, "invalidArgument", "Invalid value for ttl") from None
    elif body.get("expiration"):
        try:
            seconds = (int(str(body["expiration"])) - now_ms) // 1000
        except ValueError:
            raise ApiError(400, "invalidArgument", "Invalid expiration") from None
    return now_ms + max(1, min(seconds, MAX_TTL)) * 1000


class WatchChannels:
    """Open channels by id; ``sender`` delivers their messages."""

    def __init__(self, sender: PushSender, clock: Callable[[], float] = time.time) -> None:
        self.sender = sender
        self.clock = clock
        self._channels: dict[str, Channel] = {}
        self._resources: dict[str, str] = {}
        self._lock = threading.Lock()

    def open(self, owner: str, calendar_id: str, body: Mapping[str, Any]) -> JSON:
        """``events.watch``: open a channel on a calendar's events."""
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not _ID.fullmatch(channel_id):
            raise ApiError(400, "invalidArgument", "Invalid channel id")
        if body.get("type") not in ("web_hook", "webhook"):
            raise ApiError(400, "invalidArgument", "Unsupported channel type")
        address = _address(body.get("address"))
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise ApiError(400, "invalidArgument", "Invalid channel token")
        now_ms = int(self.clock() * 1000)
        with self._lock:
            self._expire(now_ms)
            if channel_id in self._channels:
                raise ApiError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique")
            resource_id = self._resources.setdefault(calendar_id, secrets.token_urlsafe(14))
            uri = (
                "https://www.googleapis.com/calendar/v3/calendars/"
                f"{quote(calendar_id, safe='')}/events?alt=json"
            )
            channel = Channel(
                channel_id,
                resource_id,
                uri,
                calendar_id,
                owner,
                address,
                token,
                _ttl_ms(body, now_ms),
            )
            self._channels[channel_id] = channel
            self._send(channel, "sync")
        answer: JSON = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration_ms),
        }
        if token is not None:
            answer["token"] = token
        return answer

    def stop(self, owner: str, body: Mapping[str, Any]) -> None:
        """``channels.stop``: by id and resource id; 404 when there is none."""
        with self._lock:
            found = self._channels.get(str(body.get("id", "")))
            if found is None or found.owner != owner or found.resource_id != body.get("resourceId"):
                raise ApiError(404, "notFound", f"Channel '{body.get('id')}' not found")
            del self._channels[found.id]

    def changed(self, calendar_id: str) -> None:
        """A calendar's events changed: tell its live channels."""
        with self._lock:
            self._expire(int(self.clock() * 1000))
            for channel in self._channels.values():
                if channel.calendar_id == calendar_id:
                    self._send(channel, "exists")

    def open_channels(self) -> list[Channel]:
        with self._lock:
            self._expire(int(self.clock() * 1000))
            return list(self._channels.values())

    def _expire(self, now_ms: int) -> None:
        for channel_id in [c.id for c in self._channels.values() if c.expiration_ms <= now_ms]:
            del self._channels[channel_id]

    def _send(self, channel: Channel, state: str) -> None:
        channel.number = 1 if state == "sync" else channel.number + 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        self.sender.send(channel.address, headers, b"", retry=lambda status: status in _RETRIED)
