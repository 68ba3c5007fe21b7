"""``serve_push``: a small threaded HTTP server for the push WSGI app.

For a process of its own (``commlink sync --watch`` and ``commlink watch``
with a ``[push]`` table): stdlib ``wsgiref`` with a thread per request,
listening on loopback by default. Put it behind the host's reverse proxy,
which terminates TLS: Google and Microsoft call only ``https`` URLs.

Each connection gets ``timeout`` seconds of socket inactivity and at most
``max_connections`` are served at once (more are closed unanswered), so
slow or numerous clients cannot pile up threads. Requests are not logged:
a query string may carry a validation token.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from ..errors import ConfigError

__all__ = ["PushServer", "parse_listen", "serve_push"]

log = logging.getLogger("commlink.push")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_listen(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:8080"`` for IPv6) as ``(host, port)``;
    ``ConfigError`` (field ``listen``) for anything else."""
    value = text.strip() if isinstance(text, str) else ""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    elif ":" in host:
        host = ""  # an IPv6 address goes in brackets
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, not {text!r}", field="listen")
    number = int(port)
    if not 0 < number < 65536:
        raise ConfigError(f"port {number} is out of range", field="listen")
    return host, number


class _Handler(WSGIRequestHandler):
    timeout = 15.0

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (a query may carry a token)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    max_connections = 64

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("push server busy: a connection was closed unanswered")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("push connection failed", exc_info=False)


class PushServer:
    """Serves a WSGI app from a background thread; ``with`` or
    ``start()``/``stop()``. ``url`` is where it listens
    (``http://HOST:PORT``, the port chosen when ``port`` is 0)."""

    def __init__(
        self,
        app: WsgiApp,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        timeout: float = 15.0,
        max_connections: int = 64,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_connections = max_connections
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> PushServer:
        """Listen and serve; ``ConfigError`` when the address is taken or invalid."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        handler = type("_BoundHandler", (_Handler,), {"timeout": self.timeout})
        server_class = type("_BoundServer", (_Server,), {"max_connections": self.max_connections})
        try:
            httpd = server_class((self.host, self.port), family)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}", field="listen"
            ) from None
        httpd.RequestHandlerClass = handler
        httpd.set_app(self.app)
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="push-server"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("push endpoints listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop listening; requests under way finish on their own threads."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PushServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_push(app: WsgiApp, listen: str = "127.0.0.1:8080", **options: Any) -> PushServer:
    """Start serving ``app`` on ``listen`` (``HOST:PORT``) and return the
    running ``PushServer`` (``stop()`` it when done)."""
    host, port = parse_listen(listen)
    return PushServer(app, host, port, **options).start()
