"""``GraphServer``: a local HTTP server speaking a Microsoft Graph v1.0 subset
(mail folders, messages, calendars, delta queries, JSON batching,
subscriptions) closely enough for commlink's httpx client.

It checks bearer tokens (401 ``InvalidAuthenticationToken`` once revoked),
throttles per mailbox in a sliding window (429 with ``Retry-After``; every
request inside a ``$batch`` counts), expires delta tokens on demand (410)
and injects errors. Seed and change data through ``.mail`` and
``.calendar``. Subscriptions follow Microsoft's webhook rules strictly
(``.push``, see ``graph_subscriptions``): endpoints are validated, every
change is POSTed to them, lifecycle notifications can be triggered.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import attrs

from ..local_http import HttpAnswer, Injections, LocalHttpServer
from .graph_calendar import CalendarBackend
from .graph_delta import JSON, DeltaLog, GraphError, error_body, new_id
from .graph_mail import MailBackend, StoredMessage
from .graph_subscriptions import PushService
from .mime_attachments import MimeAttachment, mime_attachments

__all__ = ["GraphServer"]

#: Graph runs at most 20 requests per JSON batch.
BATCH_LIMIT = 20
_PAGE = re.compile(r"odata\.maxpagesize=(\d+)", re.IGNORECASE)


@attrs.define
class _Reply:
    status: int
    body: Any = None  # JSON value, bytes, or None
    headers: dict[str, str] = attrs.field(factory=dict)


class _Throttle:
    """At most ``limit`` requests within any ``window`` seconds."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.window = 60.0
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def configure(self, limit: int | None, window: float) -> None:
        with self._lock:
            self.limit, self.window = limit, window
            self._times.clear()

    def charge(self) -> float | None:
        """``None`` when allowed, else the seconds until a slot frees."""
        with self._lock:
            now = time.monotonic()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if self.limit is not None and len(self._times) >= self.limit:
                return max(self._times[0] + self.window - now, 0.001)
            self._times.append(now)
            return None


class GraphServer(LocalHttpServer):
    """A local Graph v1.0 on ``127.0.0.1`` and a free port.

    ``user`` is the mailbox's principal name; ``token`` is accepted for it.
    ``base_url`` (``http://127.0.0.1:PORT/v1.0``) is the client's base URL.
    ``clock`` is the time subscriptions expire by.
    """

    def __init__(
        self,
        user: str = "owner@home.example",
        token: str = "graph-test-token",
        *,
        aliases: tuple[str, ...] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.user = user
        self.user_id = new_id("user-")
        self.token = token
        self.aliases = aliases
        self._lock = threading.RLock()
        self.log = DeltaLog(self._lock)
        self.mail = MailBackend(self._lock, self.log)
        self.calendar = CalendarBackend(self._lock, self.log)
        self.tokens: dict[str, str] = {token: user}
        self.throttle = _Throttle()
        self.request_log: list[tuple[str, str]] = []
        self.call_log: list[tuple[str, str]] = []
        self.counters: Counter[str] = Counter()
        self.push = PushService(
            self._lock,
            self.mail,
            self.calendar,
            self.user_id,
            **({"clock": clock} if clock is not None else {}),
        )
        self.log.listen(self.push.changed)
        self.injections = Injections()

    def stop(self) -> None:
        super().stop()
        self.push.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1.0``: the client's base URL."""
        return self.root_url + "v1.0"

    # -- control --------------------------------------------------------------

    def revoke_token(self, token: str | None = None) -> None:
        """From now on, requests with this token (default: the user's) get 401."""
        with self._lock:
            self.tokens.pop(token or self.token, None)

    def add_token(self, token: str, user: str | None = None) -> None:
        with self._lock:
            self.tokens[token] = user or self.user

    def set_throttle(self, limit: int | None, window: float = 60.0) -> None:
        """Allow ``limit`` requests per ``window`` seconds (``None``: no limit)."""
        self.throttle.configure(limit, window)

    def expire_delta_tokens(self) -> None:
        """Every delta and next link now answers 410 ``SyncStateNotFound``."""
        self.log.expire()

    def inject_error(
        self,
        path_regex: str,
        status: int,
        times: int = 1,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` calls whose path matches with ``status``."""
        self.injections.add(
            path_regex,
            status,
            times,
            code or _CODES.get(status, "ServiceUnavailable"),
            retry_after,
        )

    def calls(self, pattern: str) -> list[str]:
        """Targets of the API calls (batched ones included) matching ``pattern``."""
        with self._lock:
            return [t for _, t in self.call_log if re.search(pattern, t)]

    @property
    def requests(self) -> int:
        """HTTP requests received (a batch counts once)."""
        with self._lock:
            return len(self.request_log)

    @property
    def subscriptions(self) -> dict[str, JSON]:
        """The live subscriptions as Graph renders them, by id."""
        with self._lock:
            ids = list(self.push.subscriptions)
            found = [self.push.subscriptions.get(i) for i in ids]
            return {
                s.id: s.render(self.push.application_id)
                for s in found
                if s is not None and s.expires > self.push.clock()
            }

    # -- answering ------------------------------------------------------------

    def answer_http(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        with self._lock:
            self.request_log.append((method, target))
        path = urlsplit(target).path
        if method == "POST" and path.rstrip("/").endswith("/$batch"):
            reply = self._batch(headers, body)
        else:
            reply = self.answer(method, target, headers, body)
        return _encode(reply)

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Reply:
        """Answer one API call (alone or inside a batch)."""
        with self._lock:
            self.call_log.append((method, target))
        try:
            user = self._user_for(headers)
            wait = self.throttle.charge()
            if wait is not None:
                self.counters["throttled"] += 1
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            self._maybe_inject(target)
            return self._route(user, method, target, headers, body)
        except GraphError as error:
            extra = dict(error.headers)
            if error.status == 401:
                extra["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return _Reply(error.status, error_body(error), extra)

    def _user_for(self, headers: Mapping[str, str]) -> str:
        scheme, _, token = str(headers.get("authorization", "")).partition(" ")
        with self._lock:
            user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        return user

    def _maybe_inject(self, target: str) -> None:
        injected = self.injections.take(target)
        if injected is None:
            return
        with self._lock:
            self.counters["injected"] += 1
        extra = {}
        if injected.retry_after is not None:
            extra["Retry-After"] = str(max(0, math.ceil(injected.retry_after)))
        raise GraphError(injected.status, injected.code, f"injected {injected.status}", extra)

    def _batch(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        try:
            self._user_for(headers)
            payload = json.loads(body or b"{}")
            requests = payload.get("requests")
            if not isinstance(requests, list) or not requests:
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            if len(requests) > BATCH_LIMIT:
                raise GraphError(400, "BadRequest", "The number of batch requests exceeds 20.")
        except GraphError as error:
            return _Reply(error.status, error_body(error))
        except ValueError:
            return _Reply(400, error_body(GraphError(400, "BadRequest", "Invalid JSON")))
        with self._lock:
            self.counters["batches"] += 1
        root = urlsplit(self.base_url).path
        responses = []
        for request in requests:
            inner = {str(k).lower(): str(v) for k, v in (request.get("headers") or {}).items()}
            inner["authorization"] = str(headers.get("authorization", ""))
            url = str(request.get("url") or "")
            target = root + (url if url.startswith("/") else "/" + url)
            reply = self.answer(str(request.get("method") or "GET"), target, inner, b"")
            item_body = reply.body
            content_type = reply.headers.get("Content-Type", "application/json")
            if isinstance(item_body, bytes):
                item_body = base64.b64encode(item_body).decode()
            responses.append(
                {
                    "id": request.get("id"),
                    "status": reply.status,
                    "headers": {**reply.headers, "Content-Type": content_type},
                    "body": item_body,
                }
            )
        return _Reply(200, {"responses": responses})

    def _route(
        self, user: str, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if parts[:1] != ["v1.0"]:
            raise GraphError(400, "BadRequest", f"Invalid version: {split.path}")
        parts = parts[1:]
        if parts[:1] == ["subscriptions"]:
            status, answer = self.push.answer(user, method, parts[1:], headers, body)
            return _Reply(status, answer)
        if parts[:1] == ["me"]:
            parts = ["users", user, *parts[1:]]
        if len(parts) < 2 or parts[0] != "users":
            raise GraphError(400, "BadRequest", f"Resource not found for the segment {parts[:1]}")
        if parts[1].lower() not in (user.lower(), self.user_id.lower()):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials.")
        if method != "GET":
            raise GraphError(405, "Request_BadRequest", f"{method} is not supported here")
        prefer = str(headers.get("prefer", ""))
        immutable = 'idtype="immutableid"' in prefer.lower().replace(" ", "")
        size_match = _PAGE.search(prefer)
        page_size = int(size_match.group(1)) if size_match else None
        link_base = self.base_url + "/" + "/".join(quote(p, safe="@$") for p in parts)
        rest = parts[2:]
        return self._mailbox(rest, query, immutable, page_size, link_base)

    def _mailbox(
        self,
        rest: list[str],
        query: Mapping[str, str],
        immutable: bool,
        page_size: int | None,
        link_base: str,
    ) -> _Reply:
        mail, calendar = self.mail, self.calendar
        hidden = query.get("includeHiddenFolders", "").lower() == "true"
        if not rest:
            proxies = [f"SMTP:{self.user}", *(f"smtp:{a}" for a in self.aliases), "SIP:x@y"]
            return _Reply(200, {"id": self.user_id, "mail": self.user, "proxyAddresses": proxies})
        head = rest[0]
        if head == "mailFolders" and len(rest) == 1:
            return _Reply(200, _paged(mail.children(mail.root, hidden), query, link_base))
        if head == "mailFolders" and len(rest) == 2:
            return _Reply(200, mail.render_folder(mail.folders[mail.folder_id(rest[1])]))
        if head == "mailFolders" and rest[2:] == ["childFolders"]:
            folder_id = mail.folder_id(rest[1])
            return _Reply(200, _paged(mail.children(folder_id, hidden), query, link_base))
        if head == "mailFolders" and rest[2:] == ["messages", "delta"]:
            return _Reply(
                200,
                mail.delta(rest[1], query, immutable, page_size, link_base),
                _applied(page_size),
            )
        if head == "messages" and len(rest) == 2:
            select = [s for s in query.get("$select", "").split(",") if s]
            expand = query.get("$expand", "")
            return _Reply(200, mail.render(mail.get(rest[1]), immutable, select, expand))
        if head == "messages" and rest[2:] == ["$value"]:
            return _Reply(200, mail.get(rest[1]).raw, {"Content-Type": "text/plain"})
        if head == "messages" and len(rest) >= 3 and rest[2] == "attachments":
            return _attachments(mail.get(rest[1]), rest[3:], query, link_base)
        if head == "calendars" and len(rest) == 1:
            return _Reply(200, _paged(calendar.list(), query, link_base))
        if head == "calendars" and rest[2:] == ["calendarView", "delta"]:
            return _Reply(
                200, calendar.delta(rest[1], query, page_size, link_base), _applied(page_size)
            )
        if head == "events" and len(rest) == 2:
            event = calendar.get(rest[1])
            select = [s for s in query.get("$select", "").split(",") if s]
            if select:  # Graph always returns the id (and the etag)
                keep = {*select, "id", "@odata.etag"}
                event = {k: v for k, v in event.items() if k in keep}
            return _Reply(200, event)
        raise GraphError(400, "BadRequest", f"Unsupported resource: {'/'.join(rest)}")


_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    410: "SyncStateNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def _attachments(
    message: StoredMessage, rest: list[str], query: Mapping[str, str], link_base: str
) -> _Reply:
    """``attachments``, ``attachments/{id}`` and ``attachments/{id}/$value`` of a message."""
    found = mime_attachments(message.immutable_id, message.raw)
    if not rest:
        select = [s for s in query.get("$select", "").split(",") if s]
        return _Reply(200, _paged([_attachment_json(a, select) for a in found], query, link_base))
    chosen = next((a for a in found if a.id == rest[0]), None)
    if chosen is None or len(rest) > 2 or rest[1:] not in ([], ["$value"]):
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found.")
    if rest[1:] == ["$value"]:
        return _Reply(200, chosen.content, {"Content-Type": chosen.content_type})
    return _Reply(200, _attachment_json(chosen, []))


def _attachment_json(attachment: MimeAttachment, select: list[str]) -> JSON:
    kind = "itemAttachment" if attachment.is_item else "fileAttachment"
    body: JSON = {
        "@odata.type": f"#microsoft.graph.{kind}",
        "id": attachment.id,
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "isInline": attachment.is_inline,
    }
    if not attachment.is_item:
        body["contentId"] = attachment.content_id or None
        body["contentBytes"] = base64.b64encode(attachment.content).decode()
    if select:  # Graph always returns the id (and the type)
        keep = {*select, "id", "@odata.type"}
        body = {k: v for k, v in body.items() if k in keep}
    return body


def _applied(page_size: int | None) -> dict[str, str]:
    return {"Preference-Applied": f"odata.maxpagesize={page_size}"} if page_size else {}


def _paged(values: list[JSON], query: Mapping[str, str], link_base: str) -> JSON:
    """A collection page honouring ``$top``/``$skip`` and ``$select``."""
    top = int(query.get("$top") or 10)
    skip = int(query.get("$skip") or 0)
    select = [s for s in query.get("$select", "").split(",") if s]
    chunk = values[skip : skip + top]
    if select:
        chunk = [{k: v.get(k) for k in ("id", *select)} for v in chunk]
    page: JSON = {"value": chunk}
    if skip + top < len(values):
        rest = {k: v for k, v in query.items() if k != "$skip"}
        page["@odata.nextLink"] = f"{link_base}?{urlencode({**rest, '$skip': skip + top})}"
    return page


def _encode(reply: _Reply) -> tuple[int, dict[str, str], bytes]:
    headers = dict(reply.headers)
    if reply.body is None:
        return reply.status, headers, b""
    if isinstance(reply.body, bytes):
        headers.setdefault("Content-Type", "text/plain")
        return reply.status, headers, reply.body
    headers["Content-Type"] = "application/json; odata.metadata=minimal; charset=utf-8"
    return reply.status, headers, json.dumps(reply.body).encode()
