"""``push_app``: one WSGI application for every webhook push endpoint.

=================================  ============  ==========================================
path (``PushPaths`` defaults)      methods       answered by
=================================  ============  ==========================================
``/push/gmail``                    POST          ``GmailPushEndpoint`` (Pub/Sub, OIDC token)
``/push/google-calendar``          POST          ``CalendarPushEndpoint`` (channel token)
``/push/graph``                    POST, GET     ``GraphWebhook`` (``validationToken`` too)
``/push/graph/lifecycle``          POST, GET     ``GraphWebhook`` (lifecycle notifications)
=================================  ============  ==========================================

Paths are matched against ``PATH_INFO``, so the app can be mounted under a
prefix (Flask's ``DispatcherMiddleware``, a Django view, a reverse proxy
with ``SCRIPT_NAME``). Any other path is 404; Gmail's path is 404 too
unless ``gmail_audience`` is given. Every endpoint checks its notification
against the secret kept with the subscription before it wakes anything.

A request body is read only once its declared size is known to be within
the endpoint's limit (Gmail and Calendar 64 KiB, Graph 1 MiB): a larger
``Content-Length`` is 413 and a body sent chunked is 411 unless the
server marks the input as terminated (``wsgi.input_terminated``), when at
most the limit plus one byte is read. Nothing in a request (body, query,
headers, tokens) is ever logged; the log says which route answered what.

Pure stdlib WSGI: serve it with any WSGI server (``serve_push`` in
``commlink.contrib.webhook_server`` runs a small threaded one).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import attrs

from ..closing import Closing
from ..errors import ConfigError
from ..ports import SubscriptionStore
from ..providers.google.push import GOOGLE_CERTS_URL, CalendarPushEndpoint, GmailPushEndpoint
from ..providers.microsoft.graph.notify import GraphWebhook, Refresher, validation_response

__all__ = ["PushApp", "PushPaths", "StartResponse", "push_app"]

log = logging.getLogger("commlink.push")

StartResponse = Callable[..., Any]
_TEXT = "text/plain; charset=utf-8"
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
#: Fields taken from a query string: Graph's handshake needs one.
_MAX_QUERY_FIELDS = 20


@attrs.frozen
class PushPaths:
    """Where each endpoint answers, below the app's mount point: absolute
    paths of plain segments (letters, digits, ``.``, ``_``, ``~``, ``-``;
    no ``.`` or ``..`` segment, no trailing slash), all different."""

    gmail: str = "/push/gmail"
    google_calendar: str = "/push/google-calendar"
    graph: str = "/push/graph"
    graph_lifecycle: str = "/push/graph/lifecycle"

    def __attrs_post_init__(self) -> None:
        found = attrs.asdict(self)
        for name, path in found.items():
            if (
                not isinstance(path, str)
                or not _PATH.fullmatch(path)
                or {".", ".."} & set(path.split("/"))
            ):
                raise ConfigError(
                    f"must be a path such as /push/{name.replace('_', '-')}",
                    field=f"paths.{name}",
                )
        if len(set(found.values())) != len(found):
            raise ConfigError("each endpoint needs a path of its own", field="paths")

    def url(self, public_url: str, route: str) -> str:
        """The public URL of a route (``"graph"``, ...) under ``public_url``,
        the address the app is reached at from outside."""
        return public_url.rstrip("/") + str(getattr(self, route))


class _Answer(Exception):
    """A request refused before any endpoint saw it."""

    def __init__(self, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers


class PushApp(Closing):
    """The WSGI application ``push_app`` returns; call it as any WSGI app.

    ``gmail``, ``calendar`` and ``graph`` are the endpoint objects (their
    ``counts`` say what came in); ``counts`` here has one entry per route
    and status, e.g. ``"graph 202"``. ``close()`` waits for Graph
    lifecycle jobs still running.
    """

    def __init__(
        self,
        gmail: GmailPushEndpoint | None,
        calendar: CalendarPushEndpoint,
        graph: GraphWebhook,
        paths: PushPaths,
    ) -> None:
        self.gmail = gmail
        self.calendar = calendar
        self.graph = graph
        self.paths = paths
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._routes = {
            paths.google_calendar: "google_calendar",
            paths.graph: "graph",
            paths.graph_lifecycle: "graph_lifecycle",
        }
        if gmail is not None:
            self._routes[paths.gmail] = "gmail"

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> list[bytes]:
        route = self._routes.get(str(environ.get("PATH_INFO") or "/"))
        if route is None:
            return self._send(start_response, "-", 404, _TEXT, b"not found")
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        try:
            status, content_type, body = self._dispatch(route, method, environ)
        except _Answer as refused:
            return self._send(
                start_response, route, refused.status, _TEXT, refused.text.encode(), refused.headers
            )
        except Exception as exc:  # a bug or the store: the provider delivers again
            log.error("push endpoint %s failed: %s", route, type(exc).__name__)
            return self._send(start_response, route, 500, _TEXT, b"internal error")
        return self._send(start_response, route, status, content_type, body)

    def close(self) -> None:
        """Wait for the Graph lifecycle jobs and stop their threads."""
        self.graph.close()

    # -- routing --------------------------------------------------------------

    def _dispatch(
        self, route: str, method: str, environ: Mapping[str, Any]
    ) -> tuple[int, str, bytes]:
        if route in ("graph", "graph_lifecycle"):
            return self._graph(method, environ)
        if method != "POST":
            raise _Answer(405, "POST only", (("Allow", "POST"),))
        if route == "gmail" and self.gmail is not None:
            body = _body(environ, self.gmail.max_body)
            status, text = self.gmail.handle(_headers(environ), body)
            return status, _TEXT, text
        body = _body(environ, self.calendar.max_body)
        status, text = self.calendar.handle(_headers(environ), body)
        return status, _TEXT, text

    def _graph(self, method: str, environ: Mapping[str, Any]) -> tuple[int, str, bytes]:
        query = _query(environ)
        if method == "GET":  # Graph validates with POST; a GET handshake is answered too
            answer = validation_response(query)
            if answer is None:
                raise _Answer(400, "validationToken expected")
            status, headers, payload = answer
            return status, headers.get("Content-Type", _TEXT), payload
        if method != "POST":
            raise _Answer(405, "POST or GET only", (("Allow", "GET, POST"),))
        if validation_response(query) is not None:
            body = b""  # the handshake's body is ignored: never read it
        else:
            body = _body(environ, self.graph.max_body)
        return self.graph.handle(method, query, _headers(environ), body)

    # -- answering ------------------------------------------------------------

    def _send(
        self,
        start_response: StartResponse,
        route: str,
        status: int,
        content_type: str,
        body: bytes,
        extra: Iterable[tuple[str, str]] = (),
    ) -> list[bytes]:
        with self._lock:
            self.counts[f"{route} {status}"] += 1
        log.debug("push %s answered %d", route, status)
        headers = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), *extra]
        if status in (204, 304) or status < 200:
            body = b""  # no content, and no Content-Length either
        else:
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(f"{status} {_phrase(status)}", headers)
        return [body]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers, by their usual names."""
    found = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            found[name] = str(environ[key])
    return found


def _query(environ: Mapping[str, Any]) -> dict[str, list[str]]:
    try:
        return parse_qs(
            str(environ.get("QUERY_STRING") or ""),
            keep_blank_values=True,
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except ValueError:
        raise _Answer(400, "too many query parameters") from None


def _body(environ: Mapping[str, Any], limit: int) -> bytes:
    """The request body, read only when it is known to fit ``limit``."""
    stream = environ.get("wsgi.input")
    encoding = str(environ.get("HTTP_TRANSFER_ENCODING") or "").strip().lower()
    if encoding and encoding != "identity":
        if not environ.get("wsgi.input_terminated") or stream is None:
            raise _Answer(411, "a Content-Length is required")
        data = _read(stream, limit + 1)
        if len(data) > limit:
            raise _Answer(413, "request body too large")
        return data
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not declared:
        return b""
    if not declared.isascii() or not declared.isdigit():
        raise _Answer(400, "invalid Content-Length")
    length = int(declared) if len(declared) <= 15 else limit + 1
    if length > limit:
        raise _Answer(413, "request body too large")
    if length == 0 or stream is None:
        return b""
    data = _read(stream, length)
    if len(data) < length:
        raise _Answer(400, "request body shorter than its Content-Length")
    return data


def _read(stream: Any, most: int) -> bytes:
    parts: list[bytes] = []
    left = most
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        parts.append(bytes(chunk))
        left -= len(chunk)
    return b"".join(parts)


def push_app(
    subscriptions: SubscriptionStore,
    wake: Callable[[str], None],
    *,
    gmail_audience: str | None = None,
    gmail_service_accounts: Collection[str] = (),
    keeper: Refresher | None = None,
    paths: PushPaths | None = None,
    gmail_certs_url: str = GOOGLE_CERTS_URL,
    on_unknown_calendar: Callable[[str, str], None] | None = None,
    graph_defer: Callable[[Callable[[], None]], object] | None = None,
) -> PushApp:
    """One WSGI app answering Gmail, Google Calendar and Graph pushes.

    ``subscriptions`` is the ``SubscriptionStore`` that ``PushKeeper``
    writes (the endpoints find each subscription's channel and secret
    there); ``wake(channel_id)`` makes a channel sync soon
    (``Runner.wake``, ``WakeQueue.wake``). Gmail is served when
    ``gmail_audience`` (the audience of the Pub/Sub push subscription's
    token, by default its endpoint URL) and ``gmail_service_accounts``
    (the accounts it authenticates as) are given. ``keeper`` renews or
    recreates Graph subscriptions on lifecycle notifications (in
    background threads, or through ``graph_defer``). ``on_unknown_calendar``
    is ``CalendarPushEndpoint``'s ``on_unknown``; ``gmail_certs_url`` is
    where Google's token certificates are fetched (a local server's in
    tests).
    """
    if gmail_service_accounts and not gmail_audience:
        raise ConfigError("Gmail push needs the token audience", field="gmail_audience")
    gmail = None
    if gmail_audience:
        gmail = GmailPushEndpoint(
            subscriptions,
            wake,
            gmail_audience,
            allowed_emails=gmail_service_accounts,
            certs_url=gmail_certs_url,
        )
    calendar = CalendarPushEndpoint(subscriptions, wake, on_unknown=on_unknown_calendar)
    graph = GraphWebhook(subscriptions, wake, keeper, defer=graph_defer)
    return PushApp(gmail, calendar, graph, paths or PushPaths())
