"""The host's side of Graph change notifications: ``GraphWebhook``.

Graph POSTs to the ``notificationUrl`` (and the ``lifecycleNotificationUrl``)
of each subscription. ``GraphWebhook.handle`` answers such a request, with
no web framework assumed: the host maps its request to
``handle(method, query, headers, body)`` and the returned
``(status, content_type, body)`` back to a response.

* A ``validationToken`` query parameter is Graph's handshake, on both URLs:
  the token is echoed as ``text/plain`` with 200.
* Otherwise the body is a JSON ``changeNotificationCollection``. Each
  notification's ``clientState`` is compared (in constant time) with the
  stored subscription's secret; one for an unknown subscription or with a
  wrong secret is dropped and counted, and never wakes anything. A change
  wakes its channel (once per request).
* Lifecycle notifications: ``reauthorizationRequired`` renews the
  subscription (a ``PATCH`` reauthorizes too), ``subscriptionRemoved``
  creates it anew, both through the ``keeper`` in the background and then
  wake the channel; ``missed`` wakes the channel, whose next step reads
  every change since its delta link. Without a keeper the subscription is
  marked due, for the next ``PushKeeper.keep()``.

The answer is 202 as soon as the channels are woken; bodies over
``max_body`` bytes get 413 and anything but JSON 415.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from datetime import datetime, timezone
from typing import Any, Protocol

import attrs

from ....closing import Closing
from ....ports import SubscriptionStore
from ....records import PushSubscription
from .subscriptions import GRAPH_PROVIDERS

__all__ = [
    "MAX_BODY",
    "MAX_NOTIFICATIONS",
    "GraphWebhook",
    "Refresher",
    "WebhookAnswer",
    "validation_response",
]

log = logging.getLogger("commlink.providers.microsoft.graph")

#: The largest notification body read (1 MiB).
MAX_BODY = 1 << 20
#: The most notifications taken from one request.
MAX_NOTIFICATIONS = 1000
#: The longest validation token echoed (Graph's are about 100 characters).
MAX_TOKEN = 1024

#: ``(status, content type, body)``: what the host sends back.
WebhookAnswer = tuple[int, str, bytes]
_TEXT = "text/plain; charset=utf-8"
_LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


class Refresher(Protocol):
    """What the webhook asks of ``commlink.sync.push.PushKeeper``."""

    def refresh(self, subscription_id: str, *, recreate: bool = False) -> object:
        """Renew one subscription now, or create it anew (``recreate``)."""
        ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _token(query: Mapping[str, Any]) -> str | None:
    value = query.get("validationToken")
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else str(value)


def _echoable(token: str) -> bool:
    """Graph's tokens are short plain text; anything else is not reflected."""
    return 0 < len(token) <= MAX_TOKEN and token.isprintable() and not any(c in token for c in "<>")


def validation_response(query: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
    """The answer to Graph's validation request (status, headers, body), or
    ``None`` when ``query`` has no ``validationToken``. ``query`` values may
    be strings or lists of strings (``parse_qs``); an implausible token
    (over 1,024 characters, control characters, angle brackets) gets 400."""
    token = _token(query)
    if token is None:
        return None
    if not _echoable(token):
        return 400, {"Content-Type": _TEXT}, b"invalid validationToken"
    return 200, {"Content-Type": _TEXT}, token.encode("utf-8")


@attrs.frozen
class _Lifecycle:
    subscription: PushSubscription
    event: str


class GraphWebhook(Closing):
    """Answers Graph's POSTs to the host's notification and lifecycle URLs.

    ``subscriptions`` is where ``PushKeeper`` keeps them (the secrets are
    checked against it); ``wake(channel_id)`` makes a channel sync soon
    (``Runner.wake``, a task queue); ``keeper`` (a ``PushKeeper``) handles
    lifecycle notifications, in background threads (``defer`` runs a job
    elsewhere instead, for example on a task queue). ``counts`` says what
    came in: ``validated``, ``changes``, ``woken``, ``dropped``,
    ``rejected`` (requests refused), and one entry per lifecycle event.
    """

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        wake: Callable[[str], object],
        keeper: Refresher | None = None,
        *,
        max_body: int = MAX_BODY,
        max_notifications: int = MAX_NOTIFICATIONS,
        defer: Callable[[Callable[[], None]], object] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.subscriptions = subscriptions
        self.wake = wake
        self.keeper = keeper
        self.max_body = max_body
        self.max_notifications = max_notifications
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._defer = defer
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()

    # -- the endpoint ---------------------------------------------------------

    def handle(
        self,
        method: str,
        query: Mapping[str, Any],
        headers: Mapping[str, str],
        body: bytes,
    ) -> WebhookAnswer:
        """Answer one request to the notification or lifecycle URL.

        ``query`` maps names to a value or a list of values, ``headers``
        names (any case) to values; ``body`` is the raw request body (read
        at most ``max_body + 1`` bytes of it)."""
        if method.upper() != "POST":
            return self._refuse(405, "POST only")
        answer = validation_response(query)
        if answer is not None:
            status, _, payload = answer
            self._count("validated" if status == 200 else "rejected")
            return status, _TEXT, payload
        if len(body) > self.max_body:
            return self._refuse(413, "notification body too large")
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return self._refuse(415, "application/json expected")
        notes = self._notes(body)
        if notes is None:
            return self._refuse(400, "not a Graph change notification collection")
        if len(notes) > self.max_notifications:
            return self._refuse(413, "too many notifications in one request")
        try:
            self._route(notes)
        except Exception:  # the store or the wake-up failed: Graph delivers again
            log.warning("Graph notifications could not be handled", exc_info=True)
            return 503, _TEXT, b"try again"
        return 202, _TEXT, b""

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the lifecycle jobs started so far; False on timeout."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, left = wait_for(pending, timeout=timeout)
        return not left

    def close(self) -> None:
        """Wait for the lifecycle jobs and stop their threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- notifications --------------------------------------------------------

    def _notes(self, body: bytes) -> Sequence[Any] | None:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return None
        values = payload.get("value") if isinstance(payload, dict) else None
        return values if isinstance(values, list) else None

    def _route(self, notes: Sequence[Any]) -> None:
        known: dict[str, PushSubscription | None] = {}
        woken: dict[str, None] = {}
        lifecycle: list[_Lifecycle] = []
        for note in notes:
            found = self._check(note, known)
            if found is None:
                self._count("dropped")
                continue
            event = note.get("lifecycleEvent")
            if event is None:
                self._count("changes")
                woken[found.channel_id] = None
            elif not isinstance(event, str) or event not in _LIFECYCLE_EVENTS:
                self._count("dropped")
            elif event == "missed":
                self._count("missed")
                woken[found.channel_id] = None
            else:
                self._count(event)
                lifecycle.append(_Lifecycle(found, event))
        for channel_id in woken:
            self.wake(channel_id)
            self._count("woken")
        for item in lifecycle:
            self._lifecycle(item)

    def _check(
        self, note: object, known: dict[str, PushSubscription | None]
    ) -> PushSubscription | None:
        """The stored subscription a notification is for, when its
        ``clientState`` matches; else ``None``."""
        if not isinstance(note, dict):
            return None
        subscription_id, state = note.get("subscriptionId"), note.get("clientState")
        if not isinstance(subscription_id, str) or not isinstance(state, str):
            return None
        if not 0 < len(subscription_id) <= 200 or len(state) > 1024:
            return None
        if ("changeType" in note) == ("lifecycleEvent" in note):
            return None  # exactly one of them, as documented
        if subscription_id not in known:
            known[subscription_id] = self.subscriptions.subscription(subscription_id)
        found = known[subscription_id]
        if found is None or found.provider not in GRAPH_PROVIDERS or not found.secret:
            return None
        expected = found.secret.reveal().encode("utf-8")
        if not hmac.compare_digest(expected, state.encode("utf-8", "surrogatepass")):
            return None
        return found

    # -- lifecycle ------------------------------------------------------------

    def _lifecycle(self, item: _Lifecycle) -> None:
        keeper = self.keeper
        if keeper is None:
            # the next PushKeeper.keep() renews it (a removed one: anew)
            due = attrs.evolve(item.subscription, expires_at=self.clock())
            self.subscriptions.save_subscription(due)
            self.wake(item.subscription.channel_id)
            self._count("woken")
            return
        subscription_id = item.subscription.id
        channel_id = item.subscription.channel_id
        recreate = item.event == "subscriptionRemoved"

        def job() -> None:
            try:
                keeper.refresh(subscription_id, recreate=recreate)
            except Exception:
                log.warning(
                    "could not %s Graph subscription %s of %s",
                    "recreate" if recreate else "renew",
                    subscription_id,
                    channel_id,
                    exc_info=True,
                )
            finally:
                # changes between the event and now came with no notification
                self.wake(channel_id)
                self._count("woken")

        self._start(job)

    def _start(self, job: Callable[[], None]) -> None:
        if self._defer is not None:
            self._defer(job)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="graph-lifecycle")
            future = self._pool.submit(job)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _refuse(self, status: int, why: str) -> WebhookAnswer:
        self._count("rejected")
        return status, _TEXT, why.encode()

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1
