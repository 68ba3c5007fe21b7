"""``LocalHttpServer``: the base of the protocol-faithful test servers.

A subclass answers whole requests in ``answer_http``; this class serves it
on ``127.0.0.1`` and a free port from a background thread, and is a context
manager. Requests are answered on their own threads, so ``answer_http``
must be thread-safe. An answer whose body is an iterator of byte strings is
sent chunked, a chunk as each is produced (a long-poll or a stream).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

import attrs

__all__ = ["HttpAnswer", "Injected", "Injections", "LocalHttpServer"]

#: Status, extra response headers and body (bytes, or chunks to stream).
HttpAnswer = tuple[int, Mapping[str, str], bytes | Iterator[bytes]]

S = TypeVar("S", bound="LocalHttpServer")


@attrs.define
class Injected:
    """A failure for the next ``times`` requests whose target matches ``pattern``;
    ``code`` is the error code the server puts in its error body."""

    pattern: re.Pattern[str]
    status: int
    times: int
    code: str
    retry_after: float | None = None


class Injections:
    """Failures a test asks a server to answer with, taken in order."""

    def __init__(self) -> None:
        self._pending: list[Injected] = []
        self._lock = threading.Lock()

    def add(
        self, path_regex: str, status: int, times: int, code: str, retry_after: float | None
    ) -> None:
        with self._lock:
            self._pending.append(Injected(re.compile(path_regex), status, times, code, retry_after))

    def take(self, target: str) -> Injected | None:
        """The failure to answer ``target`` with, if one is due (it is used up)."""
        with self._lock:
            for injected in self._pending:
                if injected.times > 0 and injected.pattern.search(target):
                    injected.times -= 1
                    return injected
        return None


class LocalHttpServer:
    """Serves ``answer_http`` on loopback; use ``with`` or ``start``/``stop``."""

    _httpd: ThreadingHTTPServer | None = None
    _serving: threading.Thread | None = None

    def answer_http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        """Answer one request; ``headers`` have lower-case names."""
        raise NotImplementedError

    def start(self: S) -> S:
        handler = type("_BoundHandler", (_Handler,), {"app": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._httpd, self._serving = httpd, thread
        thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._serving is not None:
            self._serving.join(timeout=5)
            self._serving = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://127.0.0.1:{self.port}/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: LocalHttpServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.app.answer_http(self.command, self.path, headers, body)
        if isinstance(payload, bytes):
            self._write_head(status, {**extra, "Content-Length": str(len(payload))}, payload)
            return
        self._write_head(status, {**extra, "Transfer-Encoding": "chunked"}, b"")
        try:
            for chunk in payload:
                if chunk:
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            self.close_connection = True

    def _write_head(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        # status line, headers and body in one write: a separate small write
        # would wait for the client's delayed ACK on every keep-alive request
        lines = [f"{self.protocol_version} {status} {HTTPStatus(status).phrase}"]
        lines.append(f"Date: {self.date_time_string()}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_REPORT = do_PROPFIND = _serve
    do_PROPPATCH = do_MKCALENDAR = do_MKCOL = do_OPTIONS = do_MOVE = do_COPY = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: servers keep their own request logs."""
