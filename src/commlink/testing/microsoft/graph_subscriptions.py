"""Change notifications of the local Graph server, as Microsoft documents them.

Creating a subscription validates its ``notificationUrl`` and, when given,
its ``lifecycleNotificationUrl``: each gets a POST with a
``validationToken`` query parameter (URL-encoded, spaces and colons
included, as Graph's tokens have) and ``Content-Type: text/plain``, and
must answer 200 ``text/plain`` with the decoded token within 10 seconds,
or the subscription is refused (400 ``ValidationError``). Subscription ids
are GUIDs; Outlook resources live at most 10,080 minutes, and a
subscription past its ``expirationDateTime`` is gone (404, no more
notifications). ``PATCH`` renews (and reauthorizes), ``DELETE`` removes,
``POST /subscriptions/{id}/reauthorize`` reauthorizes.

Every change to a subscribed folder or calendar is POSTed to the
notification URL from a background thread, batched per URL, with
``subscriptionId``, ``subscriptionExpirationDateTime``, ``changeType``,
``resource``, ``resourceData`` (``@odata.type``, ``@odata.id``,
``@odata.etag``, ``id``), ``clientState`` and ``tenantId``. Tests trigger
lifecycle notifications with ``lifecycle()``: ``reauthorizationRequired``
pauses change notifications until the subscription is renewed or
reauthorized (changes meanwhile are lost, as documented),
``subscriptionRemoved`` deletes it, ``missed`` only tells.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from ...credentials import is_loopback_host
from .graph_calendar import CalendarBackend
from .graph_delta import JSON, GraphError
from .graph_mail import MailBackend

__all__ = ["MAX_LIFETIME", "Delivery", "PushService", "StoredSubscription"]

#: The longest an Outlook (message, event, contact) subscription may live.
MAX_LIFETIME = timedelta(minutes=10080)
#: How long Graph waits for the answer to a validation request.
VALIDATION_TIMEOUT = 10.0
#: How long Graph waits for a notification POST to be acknowledged.
DELIVERY_TIMEOUT = 3.0
_CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
_LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_MAX_CLIENT_STATE = 128
_OWNER = r"(?P<owner>me|users/(?P<user>[^/]+))"
_KEY = r"(?:\('(?P<quoted>(?:[^']|'')+)'\)|/(?P<plain>[^/()]+))"
_RESOURCES = (
    ("message", re.compile(rf"^/?{_OWNER}/mailfolders{_KEY}/messages$", re.IGNORECASE)),
    ("message", re.compile(rf"^/?{_OWNER}/messages$", re.IGNORECASE)),
    ("event", re.compile(rf"^/?{_OWNER}/calendars{_KEY}/events$", re.IGNORECASE)),
    ("event", re.compile(rf"^/?{_OWNER}/events$", re.IGNORECASE)),
)
_ODATA_TYPES = {"message": "#Microsoft.Graph.Message", "event": "#Microsoft.Graph.Event"}
_SEGMENTS = {"message": "Messages", "event": "Events"}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@attrs.define
class StoredSubscription:
    """A subscription as the server keeps it."""

    id: str
    owner: str
    resource: str
    kind: str  # "message" or "event"
    container: str | None  # folder or calendar id; None: the whole mailbox's
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    expires: datetime
    client_state: str | None
    immutable_ids: bool
    paused: bool = False
    created: datetime = attrs.field(factory=_utcnow)

    def render(self, application_id: str) -> JSON:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": application_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _stamp(self.expires),
            "creatorId": self.owner,
            "includeResourceData": None,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@attrs.frozen
class Delivery:
    """One POST the server made to a host endpoint: its URL, the JSON body,
    and the answer's status (0 when the connection failed)."""

    url: str
    body: JSON
    status: int


class PushService:
    """Subscriptions of one server; ``changed`` is the delta log's listener."""

    def __init__(
        self,
        lock: threading.RLock,
        mail: MailBackend,
        calendar: CalendarBackend,
        user_id: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._lock = lock
        self.mail = mail
        self.calendar = calendar
        self.user_id = user_id
        self.clock = clock
        self.tenant_id = str(uuid.uuid4())
        self.application_id = str(uuid.uuid4())
        self.subscriptions: dict[str, StoredSubscription] = {}
        self.deliveries: list[Delivery] = []
        self.validations: list[tuple[str, bool]] = []
        self.lost = 0  # change notifications withheld while paused
        self._queue: queue.Queue[tuple[str, JSON] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # -- the API --------------------------------------------------------------

    def answer(
        self,
        user: str,
        method: str,
        rest: list[str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Any]:
        """Answer ``/subscriptions[/{id}[/reauthorize]]``: (status, JSON body)."""
        payload = _json(body) if body else {}
        if not rest:
            if method == "POST":
                prefer = str(headers.get("prefer", "")).lower().replace(" ", "")
                return 201, self.create(user, payload, 'idtype="immutableid"' in prefer)
            if method == "GET":
                with self._lock:
                    mine = [s for s in list(self.subscriptions.values()) if s.owner == user]
                    live = [s.render(self.application_id) for s in mine if self._live(s.id)]
                return 200, {"value": live}
            raise GraphError(405, "BadRequest", f"{method} not allowed")
        found = self._live(rest[0])
        if found is None or found.owner != user:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        if rest[1:] == ["reauthorize"] and method == "POST":
            with self._lock:
                found.paused = False
            return 204, None
        if rest[1:]:
            raise GraphError(400, "BadRequest", f"Unsupported segment: {'/'.join(rest[1:])}")
        if method == "GET":
            return 200, found.render(self.application_id)
        if method == "PATCH":
            if "lifecycleNotificationUrl" in payload:
                raise GraphError(
                    400,
                    "InvalidRequest",
                    "lifecycleNotificationUrl cannot be added to an existing subscription.",
                )
            expires = self._expiry(payload.get("expirationDateTime"))
            with self._lock:
                found.expires = expires
                found.paused = False  # renewing reauthorizes too
            return 200, found.render(self.application_id)
        if method == "DELETE":
            with self._lock:
                self.subscriptions.pop(found.id, None)
            return 204, None
        raise GraphError(405, "BadRequest", f"{method} not allowed")

    def create(self, user: str, payload: JSON, immutable: bool) -> JSON:
        """Check a subscription request, validate its URLs, store it."""
        for field in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not payload.get(field):
                raise GraphError(400, "InvalidRequest", f"{field} is required")
        change_types = frozenset(t.strip() for t in str(payload["changeType"]).split(","))
        if not change_types <= _CHANGE_TYPES:
            raise GraphError(400, "InvalidRequest", "changeType is invalid")
        state = payload.get("clientState")
        if state is not None and (not isinstance(state, str) or len(state) > _MAX_CLIENT_STATE):
            raise GraphError(400, "InvalidRequest", "clientState must be at most 128 characters")
        kind, container = self._resource(user, str(payload["resource"]))
        expires = self._expiry(payload["expirationDateTime"])
        url = _https(payload["notificationUrl"], "notificationUrl")
        lifecycle = payload.get("lifecycleNotificationUrl")
        lifecycle_url = _https(lifecycle, "lifecycleNotificationUrl") if lifecycle else None
        self._validate(url, "Notification")
        if lifecycle_url is not None:
            self._validate(lifecycle_url, "Lifecycle notification")
        stored = StoredSubscription(
            str(uuid.uuid4()),
            user,
            str(payload["resource"]),
            kind,
            container,
            change_types,
            url,
            lifecycle_url,
            expires,
            state,
            immutable,
            created=self.clock(),
        )
        with self._lock:
            self.subscriptions[stored.id] = stored
        return stored.render(self.application_id)

    # -- control (tests) ------------------------------------------------------

    def expire(self, subscription_id: str) -> None:
        """Let a subscription lapse now, as if it had not been renewed."""
        with self._lock:
            self.subscriptions[subscription_id].expires = self.clock() - timedelta(seconds=1)

    def lifecycle(self, subscription_id: str, event: str) -> bool:
        """Send a lifecycle notification (queued like change notifications);
        False when the subscription has no ``lifecycleNotificationUrl``."""
        if event not in _LIFECYCLE_EVENTS:
            raise ValueError(f"not a lifecycle event: {event}")
        with self._lock:
            found = self.subscriptions[subscription_id]
            if event == "reauthorizationRequired":
                found.paused = True
            elif event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
            if found.lifecycle_url is None:
                return False
            note = {
                "subscriptionId": found.id,
                "subscriptionExpirationDateTime": _stamp(found.expires),
                "tenantId": self.tenant_id,
                "clientState": found.client_state,
                "lifecycleEvent": event,
            }
            self._enqueue(found.lifecycle_url, note)
        return True

    def notification(self, subscription_id: str, change_type: str, item_id: str) -> JSON:
        """The body Graph would POST for a change of ``item_id`` (for forging)."""
        with self._lock:
            found = self.subscriptions[subscription_id]
            return {"value": [self._note(found, change_type, item_id)]}

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        worker = self._worker
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout=10)
            self._worker = None

    # -- change notifications -------------------------------------------------

    def changed(self, container: str, key: str, change: str, ids: tuple[str, str] | None) -> None:
        """The delta log's listener: queue a notification for every live
        subscription whose resource holds ``container``."""
        with self._lock:
            if container in self.calendar.calendars:
                kind = "event"
                whole = container == self.calendar.default
            elif container in self.mail.folders:
                kind, whole = "message", True
            else:
                return
            for found in list(self.subscriptions.values()):
                if found.kind != kind or change not in found.change_types:
                    continue
                if found.container != container and not (found.container is None and whole):
                    continue
                if self._live(found.id) is None:
                    continue
                if found.paused:
                    self.lost += 1
                    continue
                note = self._note(found, change, self._id(key, ids, found))
                self._enqueue(found.notification_url, note)

    def _id(self, key: str, ids: tuple[str, str] | None, found: StoredSubscription) -> str:
        """The item id a notification names: immutable when the subscription
        was created with ``Prefer: IdType="ImmutableId"``."""
        if found.kind == "event" or found.immutable_ids:
            return key
        if ids is not None:
            return ids[1]
        message = self.mail.messages.get(key)
        return message.rest_id if message is not None else key

    def _note(self, found: StoredSubscription, change: str, item_id: str) -> JSON:
        path = f"Users/{self.user_id}/{_SEGMENTS[found.kind]}/{item_id}"
        return {
            "subscriptionId": found.id,
            "subscriptionExpirationDateTime": _stamp(found.expires),
            "changeType": change,
            "resource": path,
            "resourceData": {
                "@odata.type": _ODATA_TYPES[found.kind],
                "@odata.id": path,
                "@odata.etag": f'W/"{secrets.token_urlsafe(12)}"',
                "id": item_id,
            },
            "clientState": found.client_state,
            "tenantId": self.tenant_id,
        }

    def _enqueue(self, url: str, note: JSON) -> None:
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._deliver, name="graph-notifications", daemon=True
            )
            self._worker.start()
        self._queue.put((url, note))

    def _deliver(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while True:  # what queued meanwhile goes in the same POSTs
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            by_url: dict[str, list[JSON]] = {}
            for item in batch:
                if item is not None:
                    by_url.setdefault(item[0], []).append(item[1])
            for url, notes in by_url.items():
                body = {"value": notes}
                status = _post(url, json.dumps(body).encode(), "application/json; charset=utf-8")
                with self._lock:
                    self.deliveries.append(Delivery(url, body, status))
            for _ in batch:
                self._queue.task_done()
            if None in batch:
                return

    # -- checks ---------------------------------------------------------------

    def _live(self, subscription_id: str) -> StoredSubscription | None:
        """The subscription, unless it lapsed (then it is deleted)."""
        with self._lock:
            found = self.subscriptions.get(subscription_id)
            if found is not None and found.expires <= self.clock():
                del self.subscriptions[subscription_id]
                return None
            return found

    def _resource(self, user: str, resource: str) -> tuple[str, str | None]:
        for kind, pattern in _RESOURCES:
            match = pattern.match(resource)
            if match is None:
                continue
            owner = match.group("user")
            if owner is not None and owner.lower() not in (user.lower(), self.user_id.lower()):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials.")
            key = match.group("quoted")
            key = key.replace("''", "'") if key is not None else match.group("plain")
            if key is None:
                return kind, None
            if kind == "message":
                return kind, self.mail.folder_id(key)
            return kind, self.calendar.calendar(key).id
        raise GraphError(
            400,
            "InvalidRequest",
            f"The value '{resource}' of parameter 'Resource' is not supported.",
        )

    def _expiry(self, value: object) -> datetime:
        text = str(value or "").replace("Z", "+00:00")
        head, dot, tail = text.partition(".")
        if dot:
            digits = len(tail) - len(tail.lstrip("0123456789"))
            text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is invalid") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        now = self.clock()
        if moment <= now:
            raise GraphError(
                400, "InvalidRequest", "Subscription expiration must be in the future."
            )
        if moment - now > MAX_LIFETIME:
            raise GraphError(
                400,
                "InvalidRequest",
                "Subscription expiration can only be 10080 minutes in the future.",
            )
        return moment.astimezone(timezone.utc)

    def _validate(self, url: str, what: str) -> None:
        """Graph's handshake: POST ``?validationToken=...``, expect the token back."""
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()}"
        )
        probe = f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({'validationToken': token})}"
        request = urllib.request.Request(
            probe, data=b"", method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
        )
        ok = False
        try:
            with urllib.request.urlopen(request, timeout=VALIDATION_TIMEOUT) as answer:
                content_type = str(answer.headers.get("Content-Type") or "")
                echoed = answer.read(4096).decode("utf-8", "replace")
                ok = (
                    answer.status == 200
                    and content_type.split(";")[0].strip().lower() == "text/plain"
                    and echoed == token
                )
        except (OSError, ValueError):
            ok = False
        with self._lock:
            self.validations.append((url, ok))
        if not ok:
            raise GraphError(
                400,
                "ValidationError",
                f"Subscription validation request failed. {what} endpoint must respond "
                "with 200 OK to validation request.",
            )


def _json(body: bytes) -> JSON:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid JSON") from exc
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Invalid JSON")
    return payload


def _https(value: object, field: str) -> str:
    """Graph accepts only https endpoints; http is allowed here for loopback."""
    url = str(value)
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.hostname:
        raise GraphError(400, "InvalidRequest", f"{field} is not a valid URL")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return url
    raise GraphError(400, "InvalidRequest", f"{field} must use https")


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return 0
