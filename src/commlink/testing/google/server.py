"""``GoogleApiServer``: a local HTTP server speaking the Gmail and Google
Calendar REST APIs closely enough for google-api-python-client.

It checks bearer tokens, accounts per-user quota units in a sliding window
(429 ``rateLimitExceeded`` with ``Retry-After`` when exceeded), answers the
batch endpoint, and can inject errors. Seed and mutate data through
``.gmail`` and ``.calendar``; never through the client (media uploads go to
https).

Push: ``.pubsub`` is a local Cloud Pub/Sub that Gmail watches publish to
(set its push subscriptions as a GCP administrator would), signing each
push with an OIDC token whose certificates are served at ``certs_url``;
``.channels`` are Calendar's notification channels. Both deliver from a
background thread (``wait_for_pushes`` waits for them).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..local_http import HttpAnswer, Injections, LocalHttpServer
from .batch import Reply, answer_batch
from .calendar_api import CalendarBackend
from .channels import WatchChannels
from .delivery import PushSender
from .errors import ApiError, error_body
from .fields import apply_fields, parse_fields
from .gmail_api import GmailBackend
from .pubsub import PubSub
from .quota import GMAIL_COSTS, QuotaWindow, retry_after_header

__all__ = ["GoogleApiServer"]


_REASONS = {401: "authError", 403: "forbidden", 404: "notFound", 410: "fullSyncRequired"}
_REASONS.update({429: "rateLimitExceeded", 500: "backendError", 503: "backendError"})


class GoogleApiServer(LocalHttpServer):
    """A local Gmail + Calendar API on ``127.0.0.1`` and a free port.

    ``user`` is the account the ``token`` belongs to (``"me"`` resolves to
    it). Use it as a context manager, or ``start()``/``stop()``.
    """

    def __init__(self, user: str = "owner@home.example", token: str = "test-token") -> None:
        self.user = user
        self.token = token
        self._lock = threading.RLock()
        self.sender = PushSender()
        self.pubsub = PubSub(self.sender)
        self.channels = WatchChannels(self.sender)
        self.gmail = GmailBackend(self._lock, self.pubsub)
        self.calendar = CalendarBackend(self._lock, self.channels)
        self.certs_max_age = 300
        self.quota = QuotaWindow()
        self.tokens: dict[str, str] = {token: user}
        self.request_log: list[tuple[str, str]] = []
        self.call_log: list[tuple[str, str]] = []
        #: When set, the JSON body of every API answer is kept in ``answers``.
        self.record_answers = False
        self.answers: list[str] = []
        self.counters: Counter[str] = Counter()
        self.injections = Injections()
        self.gmail.mailbox(user)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``: the Gmail ``api_endpoint``."""
        return self.root_url

    @property
    def calendar_url(self) -> str:
        """The Calendar ``api_endpoint`` (its service path included)."""
        return self.base_url + "calendar/v3/"

    @property
    def certs_url(self) -> str:
        """Where the push tokens' signing certificates are published."""
        return self.base_url + "oauth2/v1/certs"

    def wait_for_pushes(self, timeout: float = 10.0) -> bool:
        """Wait until every queued push is delivered or given up."""
        return self.sender.wait_idle(timeout)

    def stop(self) -> None:
        super().stop()
        self.sender.close()

    # -- control --------------------------------------------------------------

    def revoke_token(self, token: str | None = None) -> None:
        """From now on, requests with this token (default: the user's) get 401."""
        with self._lock:
            self.tokens.pop(token or self.token, None)

    def add_token(self, token: str, user: str) -> None:
        with self._lock:
            self.tokens[token] = user

    def set_quota(self, units_per_minute: int | None, window: float = 60.0) -> None:
        """Enforce ``units_per_minute`` per user (``None``: unlimited)."""
        self.quota.configure(units_per_minute, window)

    def inject_error(
        self,
        path_regex: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls whose path matches with ``status``."""
        self.injections.add(
            path_regex, status, times, reason or _REASONS.get(status, "backendError"), retry_after
        )

    def calls(self, pattern: str) -> list[str]:
        """Paths (with query) of the API calls matching ``pattern``."""
        with self._lock:
            return [p for _, p in self.call_log if re.search(pattern, p)]

    # -- answering ------------------------------------------------------------

    def _user_for(self, headers: Mapping[str, str]) -> str:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "authError", "Invalid Credentials")
        return user

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request (or one part of a batch)."""
        path = urlsplit(target).path
        with self._lock:
            self.call_log.append((method, target))
            self.counters["calls"] += 1
        try:
            user = self._user_for(headers)
            self._maybe_inject(target)
            query = parse_qs(urlsplit(target).query)
            name, result = self._route(user, method, path, query, _json_body(body))
            wait = self.quota.charge(GMAIL_COSTS.get(name, 1))
            if wait is not None:
                self.counters["rate_limited"] += 1
                raise ApiError(
                    429,
                    "rateLimitExceeded",
                    "User-rate limit exceeded.",
                    retry_after_header(wait),
                )
            if result is None:
                return 204, {}, b""
            fields = query.get("fields")
            if fields:
                result = apply_fields(result, parse_fields(fields[-1]))
            payload = json.dumps(result)
            if self.record_answers:
                with self._lock:
                    self.answers.append(payload)
            return 200, {}, payload.encode()
        except ApiError as error:
            extra = {"Retry-After": error.retry_after} if error.retry_after else {}
            if error.status == 401:
                extra["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
            return error.status, extra, json.dumps(error_body(error)).encode()

    def _maybe_inject(self, target: str) -> None:
        injected = self.injections.take(target)
        if injected is not None:
            with self._lock:
                self.counters["injected"] += 1
            retry = injected.retry_after
            raise ApiError(
                injected.status,
                injected.code,
                f"injected {injected.status}",
                retry_after_header(retry) if retry is not None else None,
            )

    def _route(
        self,
        user: str,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: dict[str, Any] | None,
    ) -> tuple[str, dict[str, Any] | None]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:3] == ["gmail", "v1", "users"] and len(parts) > 4:
            if parts[3] not in ("me", user):
                raise ApiError(403, "forbidden", "Delegation denied")
            return self.gmail.handle(user, method, parts[4:], query, body)
        if parts[:2] == ["calendar", "v3"]:
            return self.calendar.handle(user, method, parts[2:], query, body)
        raise ApiError(404, "notFound", f"Not Found: {path}")

    def answer_http(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        """Answer a request on the wire: the batch endpoint or one call."""
        with self._lock:
            self.request_log.append((method, target))
            self.counters["http_requests"] += 1
        if method == "GET" and urlsplit(target).path == "/oauth2/v1/certs":
            with self._lock:
                self.counters["certs"] += 1
            control = f"public, max-age={self.certs_max_age}, must-revalidate, no-transform"
            extra = {"Content-Type": "application/json; charset=UTF-8", "Cache-Control": control}
            return 200, extra, json.dumps(self.pubsub.issuer.certs()).encode()
        if method == "POST" and urlsplit(target).path.startswith("/batch"):
            try:
                self._user_for(headers)
            except ApiError as error:
                extra = {"WWW-Authenticate": "Bearer", "Content-Type": "application/json"}
                return 401, extra, json.dumps(error_body(error)).encode()
            with self._lock:
                self.counters["batches"] += 1
            content_type, payload = answer_batch(
                headers.get("content-type", ""), body, self._batch_call
            )
            return 200, {"Content-Type": content_type}, payload
        status, extra, payload = self.answer(method, target, headers, body)
        return status, {"Content-Type": "application/json; charset=UTF-8", **extra}, payload

    def _batch_call(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        return self.answer(method, target, headers, body)

    def units_spent(self) -> int:
        return self.quota.total

    def message_ids(self, user: str | None = None) -> Sequence[str]:
        return list(self.gmail.mailbox(user or self.user).messages)


def _json_body(body: bytes) -> dict[str, Any] | None:
    """A request's JSON object body (``None`` when there is none)."""
    if not body.strip():
        return None
    try:
        found = json.loads(body)
    except ValueError:
        raise ApiError(400, "parseError", "Parse Error") from None
    if not isinstance(found, dict):
        raise ApiError(400, "invalidArgument", "Invalid JSON payload received.")
    return found
