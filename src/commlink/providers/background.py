"""A call made by a thread of its own, whose answer is taken later, once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundCall"]

log = logging.getLogger("commlink.providers.background")
T = TypeVar("T")


class BackgroundCall(Generic[T]):
    """Runs ``call`` in a daemon thread named ``name`` right away.

    ``take()`` waits for it and returns its answer or raises its error (so
    a server that does not answer costs one timeout, not two), or returns
    ``None`` when it finished more than ``fresh_for`` seconds ago: the
    caller then asks again. The call may use its owner's state: the owner
    touches that state only after ``take()`` or ``join()``.
    """

    def __init__(self, call: Callable[[], T], name: str, fresh_for: float = 60.0) -> None:
        self._call = call
        self._fresh_for = fresh_for
        self._answer: T | None = None
        self._error: Exception | None = None
        self._done_at = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._answer = self._call()
        except Exception as exc:  # raised by take(), in the caller's thread
            log.debug("%s failed in the background: %s", self._thread.name, type(exc).__name__)
            self._error = exc
        self._done_at = time.monotonic()

    def join(self) -> None:
        """Wait for the call to end (its answer is dropped)."""
        self._thread.join()

    def take(self) -> T | None:
        """The answer, once (or the call's error); ``None`` if it is stale
        or was taken already."""
        self._thread.join()
        answer, self._answer = self._answer, None
        error, self._error = self._error, None
        if time.monotonic() - self._done_at > self._fresh_for:
            return None
        if error is not None:
            raise error
        return answer
