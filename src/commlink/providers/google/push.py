"""The host's side of Google push: endpoints that check a notification and
wake the channels it concerns.

Both are framework-agnostic: hand ``handle(headers, body)`` the request's
headers and raw body, send back the ``(status, body)`` it returns.

* ``GmailPushEndpoint`` receives Cloud Pub/Sub push requests carrying
  Gmail notifications. Each must bear the OIDC token Pub/Sub signs for the
  push subscription's service account: its signature (Google's certs),
  audience, issuer, ``email`` and ``email_verified`` are checked before
  the body is read. The mailbox named in the body routes it to the
  channels subscribed for that account.
* ``CalendarPushEndpoint`` receives Google Calendar channel messages: the
  ``X-Goog-Channel-Token`` must equal the secret kept with the channel's
  subscription (compared in constant time).

Status codes, chosen for how Google retries: Pub/Sub redelivers anything
but 102/200/201/202/204 with back-off until the message expires; Calendar
retries only 500/502/503/504. So a well-formed notification for an account
or channel nobody subscribed is acknowledged (Gmail: 204) or refused
without retry (Calendar: 404); transient trouble on our side (Google's
certs out of reach, ``wake`` failing) is 503 so the notification comes
again.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from ...errors import ConfigError, InvalidInput
from ...ports import SubscriptionStore
from ...records import PushSubscription
from .client import check_endpoint
from .notifications import MAX_NOTIFICATION_BYTES, parse_gmail_notification

__all__ = [
    "GOOGLE_CERTS_URL",
    "GOOGLE_ISSUERS",
    "CalendarPushEndpoint",
    "GmailPushEndpoint",
    "PushAnswer",
    "Wake",
]

log = logging.getLogger("commlink.push")

#: Google's signing certificates for ID tokens, as ``{key id: PEM}``.
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
#: The ``iss`` of the OIDC tokens Pub/Sub signs.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")

#: ``(HTTP status, response body)``.
PushAnswer = tuple[int, bytes]
#: Makes a channel due now: ``Runner.wake``, or a task queue's equivalent.
Wake = Callable[[str], None]

_CALENDAR = "google-calendar"
_STATES = frozenset({"sync", "exists", "not_exists"})


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


class _CertsCache:
    """A google-auth transport that keeps the certs response for its
    ``max-age`` (bounded), so a push costs no request to Google."""

    def __init__(
        self,
        inner: Any,
        *,
        min_ttl: float = 60.0,
        max_ttl: float = 6 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.min_ttl, self.max_ttl = min_ttl, max_ttl
        self.clock = clock
        self._cached: dict[str, tuple[float, float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self.inner(url, method=method, **kwargs)
        with self._lock:  # one fetch at a time, however many pushes wait for it
            now = self.clock()
            hit = self._cached.get(url)
            if hit is not None and now < hit[1]:
                return hit[2]
            response = self.inner(url, method=method, **kwargs)
            if response.status == 200:
                ttl = _max_age(response.headers, self.min_ttl, self.max_ttl)
                self._cached[url] = (now, now + ttl, response)
            return response

    def cached_keys(self, url: str) -> bytes | None:
        with self._lock:
            hit = self._cached.get(url)
        return None if hit is None else bytes(hit[2].data)

    def refresh(self, url: str, not_within: float) -> None:
        """Drop the cached certs (a token names a key they lack), unless
        they were fetched less than ``not_within`` seconds ago."""
        with self._lock:
            hit = self._cached.get(url)
            if hit is not None and self.clock() - hit[0] >= not_within:
                del self._cached[url]


def _max_age(headers: Mapping[str, str], low: float, high: float) -> float:
    control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    for part in str(control).split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return min(max(float(value), low), high)
    return low


@attrs.frozen
class _Response:
    status: int
    headers: Mapping[str, str]
    data: bytes


class _UrllibTransport:
    """A google-auth transport on ``urllib`` for the rare certs fetch: one
    connection per request, nothing left open, no redirects followed."""

    def __init__(self, timeout: float = 10.0, max_bytes: int = 256 * 1024) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        from google.auth.exceptions import TransportError

        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(request, timeout=timeout or self.timeout) as answer:
                data = answer.read(self.max_bytes + 1)
                status, found = int(answer.status), dict(answer.headers.items())
        except urllib.error.HTTPError as error:
            with error:
                return _Response(int(error.code), dict(error.headers.items()), b"")
        except (OSError, ValueError) as exc:
            message = f"cannot fetch {url}: {type(exc).__name__}"
            raise TransportError(message) from None  # type: ignore[no-untyped-call]
        if len(data) > self.max_bytes:
            message = f"{url} answered more than {self.max_bytes} bytes"
            raise TransportError(message)  # type: ignore[no-untyped-call]
        return _Response(status, found, data)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class GmailPushEndpoint:
    """Checks Pub/Sub push requests and wakes the Gmail channels they name.

    ``audience`` is the one set on the push subscription (by default Pub/Sub
    uses the endpoint URL). ``allowed_emails`` are the service accounts the
    push subscription authenticates as: a token any other Google account
    had minted for this audience is refused. ``request`` is a google-auth
    transport for fetching ``certs_url`` (cached for its ``max-age``).
    """

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        wake: Wake,
        audience: str,
        *,
        allowed_emails: Collection[str],
        certs_url: str = GOOGLE_CERTS_URL,
        request: Any = None,
        max_body: int = MAX_NOTIFICATION_BYTES,
        clock_skew_seconds: int = 10,
        key_refetch_seconds: float = 30.0,
    ) -> None:
        if not audience:
            raise ConfigError("a push endpoint needs its audience", field="audience")
        emails = frozenset(e.strip().lower() for e in allowed_emails if e.strip())
        if not emails:
            raise ConfigError(
                "name the push subscription's service account", field="allowed_emails"
            )
        check_endpoint(certs_url, "certs_url")
        self.subscriptions = subscriptions
        self.wake = wake
        self.audience = audience
        self.allowed_emails = emails
        self.certs_url = certs_url
        self.max_body = min(max_body, MAX_NOTIFICATION_BYTES)
        self.clock_skew_seconds = clock_skew_seconds
        self.key_refetch_seconds = key_refetch_seconds
        self.certs = _CertsCache(request if request is not None else _UrllibTransport())
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, headers: Mapping[str, str], body: bytes) -> PushAnswer:
        """Answer one push request (see the module's notes on statuses)."""
        if len(body) > self.max_body:
            return self._count("malformed", 413, b"too large")
        try:
            self._verify(_lower(headers).get("authorization", ""))
        except _Refused as refused:
            return self._count("refused", refused.status, refused.text.encode())
        try:
            note = parse_gmail_notification(body)
        except InvalidInput:
            return self._count("malformed", 400, b"not a Gmail notification")
        subs = self.subscriptions.subscriptions(provider="gmail", account=note.email_address)
        if not subs:
            return self._count("unrouted", 204, b"")
        for channel_id in dict.fromkeys(s.channel_id for s in subs):
            try:
                self.wake(channel_id)
            except Exception:
                log.warning("waking %s failed; Pub/Sub will redeliver", channel_id, exc_info=True)
                return self._count("failed", 503, b"try again")
        with self._lock:
            self.counts["woken"] += len({s.channel_id for s in subs})
        return 204, b""

    def _verify(self, authorization: str) -> Mapping[str, Any]:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 8192:
            raise _Refused(401, "a bearer token is required")
        from google.auth import exceptions, jwt
        from google.oauth2 import id_token

        try:
            self._fresh_keys(jwt.decode_header(token).get("kid"))  # type: ignore[no-untyped-call]
            claims: Mapping[str, Any] = id_token.verify_token(
                token,
                self.certs,  # type: ignore[arg-type]  # a transport.Request in all but name
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=self.clock_skew_seconds,
            )
        except exceptions.TransportError:
            log.warning("Google's signing certificates are out of reach")
            raise _Refused(503, "cannot check the token now") from None
        except Exception as exc:  # any failure to verify is a refusal
            log.info("push token refused: %s", type(exc).__name__)
            raise _Refused(401, "invalid token") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise _Refused(401, "invalid token")
        email = claims.get("email")
        if (
            not isinstance(email, str)
            or email.lower() not in self.allowed_emails
            or claims.get("email_verified") is not True
        ):
            log.info("push token of an unexpected account refused")
            raise _Refused(403, "this account may not push here")
        return claims

    def _fresh_keys(self, kid: object) -> None:
        """Google rotates its keys: fetch the certs again when a token names
        a key they lack (at most every ``key_refetch_seconds``)."""
        cached = self.certs.cached_keys(self.certs_url)
        if not isinstance(kid, str) or cached is None:
            return
        try:
            known = json.loads(cached)
        except ValueError:
            known = {}
        if isinstance(known, dict) and kid not in known:
            self.certs.refresh(self.certs_url, self.key_refetch_seconds)

    def _count(self, what: str, status: int, text: bytes) -> PushAnswer:
        with self._lock:
            self.counts[what] += 1
        return status, text


class CalendarPushEndpoint:
    """Checks Google Calendar channel messages and wakes their channels.

    ``sync`` (sent once when a channel is created) is acknowledged without a
    wake-up, even for a channel not recorded yet: it can arrive before
    ``events.watch`` has returned. ``exists`` and ``not_exists`` wake the
    channel. A change message for a channel id with no subscription is
    answered 404 (Calendar does not retry it); if the channel is still
    unknown ``unknown_grace_seconds`` after its first message (an orphan,
    not one being saved), ``on_unknown(channel_id, resource_id)`` is called
    once, where a host may stop it (``GoogleCalendarProvider.stop_channel``).
    Such a message is unauthenticated: rate-limit what that hook does.
    """

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        wake: Wake,
        *,
        on_unknown: Callable[[str, str], None] | None = None,
        unknown_grace_seconds: float = 60.0,
        max_body: int = MAX_NOTIFICATION_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subscriptions = subscriptions
        self.wake = wake
        self.on_unknown = on_unknown
        self.unknown_grace_seconds = unknown_grace_seconds
        self.max_body = max_body
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._unknown: OrderedDict[str, float | None] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, headers: Mapping[str, str], body: bytes = b"") -> PushAnswer:
        """Answer one channel message (its body is empty and ignored)."""
        if len(body) > self.max_body:
            return self._count("malformed", 413, b"too large")
        found = _lower(headers)
        channel_id = found.get("x-goog-channel-id", "").strip()
        state = found.get("x-goog-resource-state", "").strip()
        resource_id = found.get("x-goog-resource-id", "").strip()
        if not 0 < len(channel_id) <= 64 or state not in _STATES or len(resource_id) > 256:
            return self._count("malformed", 400, b"not a Calendar notification")
        sub = self.subscriptions.subscription(channel_id)
        if (sub is None or sub.provider != _CALENDAR) and state == "sync":
            return self._count("sync", 200, b"")
        if sub is None or sub.provider != _CALENDAR:
            self._unknown_channel(channel_id, resource_id)
            return self._count("unknown", 404, b"unknown channel")
        if not _genuine(sub, found.get("x-goog-channel-token", ""), resource_id):
            log.info("calendar notification with a wrong token for %s refused", sub.channel_id)
            return self._count("refused", 403, b"wrong channel token")
        if state == "sync":
            return self._count("sync", 200, b"")
        try:
            self.wake(sub.channel_id)
        except Exception:
            log.warning("waking %s failed; Calendar will retry", sub.channel_id, exc_info=True)
            return self._count("failed", 503, b"try again")
        return self._count("woken", 200, b"")

    def _unknown_channel(self, channel_id: str, resource_id: str) -> None:
        if self.on_unknown is None or not resource_id:
            return
        now = self.clock()
        with self._lock:
            first = self._unknown.setdefault(channel_id, now)
            while len(self._unknown) > 1024:
                self._unknown.popitem(last=False)
            if first is None or now - first < self.unknown_grace_seconds:
                return  # handed over already, or perhaps still being saved
            self._unknown[channel_id] = None
        try:
            self.on_unknown(channel_id, resource_id)
        except Exception:
            log.warning("handling unknown channel %s failed", channel_id, exc_info=True)

    def _count(self, what: str, status: int, text: bytes) -> PushAnswer:
        with self._lock:
            self.counts[what] += 1
        return status, text


def _genuine(sub: PushSubscription, token: str, resource_id: str) -> bool:
    """The channel token matches the stored secret, and the resource is
    the one the channel was made for."""
    if sub.secret is None or not sub.secret:
        return False
    expected = sub.data.get("resourceId", "")
    if expected and not hmac.compare_digest(_bytes(resource_id), _bytes(expected)):
        return False
    return hmac.compare_digest(_bytes(token), _bytes(sub.secret.reveal()))


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "replace")  # a lone surrogate never matches, never raises
