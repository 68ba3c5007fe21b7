"""Receiving the OAuth redirect on a loopback address (RFC 8252 §7.3), for
sign-ins started from a terminal or a desktop app.

``LoopbackReceiver`` listens on ``http://127.0.0.1:<random port>/`` (never
on another interface), answers the browser's redirect with a short page,
and hands the query parameters to the waiting thread. Only a redirect that
carries the expected ``state`` counts; anything else gets an error page and
is ignored, so another local process cannot end the wait with a code of
its choosing.
"""

from __future__ import annotations

import hmac
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ..errors import AuthError, InvalidInput
from .identity import redirect_params

__all__ = ["LoopbackReceiver"]

_DONE = "<!doctype html><title>Connected</title><p>Done: you can close this window."
_FAILED = "<!doctype html><title>Not connected</title><p>The sign-in did not complete ({}). "
_FAILED += "You can close this window and try again."
_MAX_FORM = 65_536
_KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "consent_required",
        "interaction_required",
        "login_required",
    }
)


class LoopbackReceiver:
    """Waits for one authorization response on ``redirect_uri``.

    Use it as a context manager: ``redirect_uri`` is known once it is
    entered; call ``expect(state)`` before sending the user to the
    authorization URL, then ``wait(timeout)``.
    """

    def __init__(self, path: str = "/") -> None:
        if not path.startswith("/") or "?" in path or "#" in path:
            raise InvalidInput("the redirect path must start with / and have no query")
        self.path = path
        self._state: str | None = None
        self._lock = threading.Lock()
        self._answers: queue.Queue[dict[str, str]] = queue.Queue()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def redirect_uri(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the receiver is not listening")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.path}"

    def expect(self, state: str) -> None:
        """The state of the sign-in whose redirect is awaited."""
        with self._lock:
            self._state = state

    def start(self) -> LoopbackReceiver:
        handler = type("_Handler", (_RedirectHandler,), {"receiver": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LoopbackReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters (``code`` and ``state``, or
        ``error``); ``AuthError`` when none came within ``timeout`` seconds."""
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AuthError(
                f"no answer from the browser within {timeout:g} s: connect the account again"
            ) from None

    def _receive(self, target: str, form: str | None = None) -> tuple[int, str]:
        """Status and page for one request to the listener: the response in
        the query of a GET, or in the ``form`` body of a POST (form_post)."""
        if urlsplit(target).path != self.path:
            return 404, "<!doctype html><title>Not found</title>"
        try:
            params = redirect_params(target if form is None else form)
        except InvalidInput:
            return 400, _FAILED.format("malformed response")
        given = params.get("state", "").encode("utf-8", "surrogateescape")
        with self._lock:
            expected = self._state
            if not expected or not hmac.compare_digest(expected.encode(), given):
                return 400, _FAILED.format("unexpected sign-in")
            self._state = None  # one answer per sign-in
        self._answers.put(params)
        error = params.get("error")
        if error:
            return 200, _FAILED.format(error if error in _KNOWN_ERRORS else "refused")
        return 200, _DONE


class _RedirectHandler(BaseHTTPRequestHandler):
    receiver: LoopbackReceiver
    timeout = 30  # a browser's idle pre-connection is dropped, not waited on

    def do_GET(self) -> None:
        self._answer(*self.receiver._receive(self.path))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        kind = self.headers.get("Content-Type", "")
        if not kind.startswith("application/x-www-form-urlencoded") or length > _MAX_FORM:
            self._answer(400, _FAILED.format("malformed response"))
            return
        form = self.rfile.read(length).decode("utf-8", "replace")
        self._answer(*self.receiver._receive(self.path, "?" + form))

    def _answer(self, status: int, page: str) -> None:
        body = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the authorization code."""
