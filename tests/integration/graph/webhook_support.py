"""A host's webhook endpoint for the push tests: ``GraphWebhook`` behind a
small threaded WSGI server, the way a host maps it into its framework."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from commlink.providers.microsoft.graph import GraphWebhook

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wsgi_app(webhook: GraphWebhook) -> WsgiApp:
    """``webhook.handle`` as a WSGI application."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > webhook.max_body:
            start_response("413 Payload Too Large", [("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(length) if length else b""
        status, content_type, payload = webhook.handle(
            environ["REQUEST_METHOD"],
            parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            {"Content-Type": environ.get("CONTENT_TYPE", "")},
            body,
        )
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def serving(app: WsgiApp) -> Iterator[str]:
    """Serve ``app`` on loopback; yields its base URL."""
    httpd = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def silent_app(received: list[bytes]) -> WsgiApp:
    """An endpoint that records what comes and never echoes a validation token."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        received.append(environ["wsgi.input"].read(length) if length else b"")
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]

    return app
