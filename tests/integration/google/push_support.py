"""A host's push endpoint for the tests: a real local HTTP server whose
requests go through ``GmailPushEndpoint`` / ``CalendarPushEndpoint``."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from commlink.providers.google.push import PushAnswer
from commlink.testing.local_http import HttpAnswer, LocalHttpServer


class EndpointServer(LocalHttpServer):
    """Serves ``handle(headers, body)`` at ``url`` (any path)."""

    def __init__(self, handle: Callable[[Mapping[str, str], bytes], PushAnswer]) -> None:
        self.handle = handle
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.root_url + "push/google"

    def answer_http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        if method != "POST":
            return 405, {"Allow": "POST"}, b""
        status, text = self.handle(headers, body)
        with self._lock:
            self.statuses.append(status)
        return status, {"Content-Type": "text/plain"}, text


class Wakes:
    """A ``wake`` that records channel ids (a Runner would sync them)."""

    def __init__(self) -> None:
        self.channels: list[str] = []
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self, channel_id: str) -> None:
        with self._lock:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("task queue down")
            self.channels.append(channel_id)

    def take(self) -> list[str]:
        with self._lock:
            taken, self.channels = self.channels, []
        return taken


def post(url: str, headers: Mapping[str, str], body: bytes = b"") -> int:
    """POST as Google would; the status that came back."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        error.read()
        error.close()
        return int(error.code)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
