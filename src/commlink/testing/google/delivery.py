"""Push delivery for the local Google servers: POSTs from a background
thread, retried with back-off as Google retries.

Only loopback addresses are ever contacted: a push URL elsewhere is
recorded as refused (status 0), never sent.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import attrs

from ...credentials import is_loopback_host

__all__ = ["ACKNOWLEDGED", "Attempt", "PushSender"]

#: The statuses Google takes as a delivered notification.
ACKNOWLEDGED = frozenset({102, 200, 201, 202, 204})


@attrs.frozen
class Attempt:
    """One POST: where, what status came back (0: no answer), which try."""

    url: str
    status: int
    attempt: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class _Job:
    url: str
    headers: Mapping[str, str]
    body: bytes
    retry: Callable[[int], bool]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # Google does not follow redirects from a push endpoint


class PushSender:
    """Sends queued pushes in order; a failed one is tried ``attempts``
    times with delays doubling from ``first_delay`` while ``retry(status)``
    says so."""

    def __init__(self, *, attempts: int = 4, first_delay: float = 0.05, timeout: float = 5.0):
        self.attempts = max(1, attempts)
        self.first_delay = first_delay
        self.timeout = timeout
        self.log: list[Attempt] = []
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        retry: Callable[[int], bool],
    ) -> None:
        """Queue a POST of ``body`` to ``url``."""
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="push-sender", daemon=True)
                self._thread.start()
        self._queue.put(_Job(url, dict(headers), body, retry))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued push is delivered or given up."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def attempts_to(self, url: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.log if a.url == url]

    def close(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._deliver(job)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, job: _Job) -> None:
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            status = self._post(job)
            with self._lock:
                self.log.append(Attempt(job.url, status, attempt, job.headers, job.body))
            if status in ACKNOWLEDGED or not job.retry(status):
                return
            time.sleep(delay)
            delay *= 2

    def _post(self, job: _Job) -> int:
        host = urlsplit(job.url).hostname or ""
        if not is_loopback_host(host):
            return 0
        request = urllib.request.Request(job.url, data=job.body, method="POST")
        for name, value in job.headers.items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                answer.read()
                return int(answer.status)
        except urllib.error.HTTPError as error:
            error.read()
            error.close()
            return int(error.code)
        except (OSError, ValueError):
            return 0
