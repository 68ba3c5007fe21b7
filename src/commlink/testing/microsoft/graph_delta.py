"""What the local Graph server's mail and calendar sides share: errors in
Graph's JSON shape, opaque ids, and delta rounds with server-side state.

A delta round is rendered whole at its first request (a snapshot), then
served page by page through ``$skiptoken`` links; its last page carries a
``$deltatoken`` link recording the change-log position. Changes since a
position are read from a per-container log. Listeners (the change
notifications) hear of every change as it is logged.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["DeltaLog", "GraphError", "Listener", "Round", "error_body", "new_id"]

JSON = dict[str, Any]
#: Hears ``(container, key, change, removed ids)``; ``change`` is ``created``,
#: ``updated`` or ``deleted``. Called with the server's lock held: it must not block.
Listener = Callable[[str, str, str, "tuple[str, str] | None"], None]


class GraphError(Exception):
    """An error answer: HTTP status, Graph error ``code`` and message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(error: GraphError) -> JSON:
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {"request-id": secrets.token_hex(8), "date": "2026-01-01T00:00:00"},
        }
    }


def new_id(prefix: str = "AAMkAG") -> str:
    """An opaque, URL-safe id in the style of Exchange ids."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")


@attrs.define
class Round:
    """The rendered entries of a delta round still to be served."""

    container: str
    entries: list[JSON]
    position: int
    state: JSON
    offset: int = 0


@attrs.define
class _Entry:
    seq: int
    container: str
    key: str
    removed_ids: tuple[str, str] | None  # (immutable id, id as it was) for removals


class DeltaLog:
    """Change positions per container, delta rounds and delta tokens."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.seq = 0
        self._log: list[_Entry] = []
        self._rounds: dict[str, Round] = {}
        self._tokens: dict[str, tuple[str, int, JSON]] = {}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` on every change from now on."""
        with self._lock:
            self._listeners.append(listener)

    def changed(self, container: str, key: str, change: str = "updated") -> None:
        """Item ``key`` was added to (``change="created"``) or changed in ``container``."""
        with self._lock:
            self.seq += 1
            self._log.append(_Entry(self.seq, container, key, None))
            for listener in self._listeners:
                listener(container, key, change, None)

    def removed(self, container: str, key: str, ids: tuple[str, str]) -> None:
        """Item ``key`` left ``container``; ``ids``: its (immutable, regular) id."""
        with self._lock:
            self.seq += 1
            self._log.append(_Entry(self.seq, container, key, ids))
            for listener in self._listeners:
                listener(container, key, "deleted", ids)

    def since(self, container: str, position: int) -> list[tuple[str, tuple[str, str] | None]]:
        """(key, removal ids or None) of items changed in ``container`` after
        ``position``, last state of each, in change order."""
        with self._lock:
            latest: dict[str, tuple[str, str] | None] = {}
            for entry in self._log:
                if entry.seq > position and entry.container == container:
                    latest.pop(entry.key, None)
                    latest[entry.key] = entry.removed_ids
            return list(latest.items())

    def start(self, container: str, entries: list[JSON], state: JSON) -> str:
        """Register a rendered round; returns its skip token."""
        with self._lock:
            token = secrets.token_urlsafe(12)
            self._rounds[token] = Round(container, entries, self.seq, state)
            return token

    def round(self, token: str) -> Round | None:
        with self._lock:
            return self._rounds.get(token)

    def page(
        self, token: str, size: int, link: Callable[[str, str], str]
    ) -> tuple[list[JSON], JSON]:
        """The next ``size`` entries of a round, and its link (next or delta)."""
        with self._lock:
            current = self._rounds[token]
            chunk = current.entries[current.offset : current.offset + size]
            current.offset += len(chunk)
            if current.offset < len(current.entries):
                return chunk, {"@odata.nextLink": link("$skiptoken", token)}
            del self._rounds[token]
            delta = secrets.token_urlsafe(16)
            self._tokens[delta] = (current.container, current.position, current.state)
            return chunk, {"@odata.deltaLink": link("$deltatoken", delta)}

    def token(self, token: str) -> tuple[str, int, JSON] | None:
        with self._lock:
            return self._tokens.get(token)

    def expire(self) -> None:
        """Forget every delta and skip token: clients get 410 and resync."""
        with self._lock:
            self._tokens.clear()
            self._rounds.clear()

    def keys(self) -> Sequence[str]:
        with self._lock:
            return list(self._tokens)


def expired() -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found. The delta token is expired "
        "and data must be synchronized again.",
    )


def serve_delta(
    log: DeltaLog,
    container: str,
    query: Mapping[str, str],
    page_size: int,
    link_base: str,
    initial: Callable[[], list[JSON]],
    incremental: Callable[[int, JSON], list[JSON]],
    state: JSON,
) -> JSON:
    """Answer one delta request: a new round, its next page, or the changes
    since a delta token."""
    if "$skiptoken" in query:
        skip = query["$skiptoken"]
        if log.round(skip) is None:
            raise expired()
    elif "$deltatoken" in query:
        found = log.token(query["$deltatoken"])
        if found is None or found[0] != container:
            raise expired()
        skip = log.start(container, incremental(found[1], found[2]), found[2])
    else:
        skip = log.start(container, initial(), state)

    def link(name: str, token: str) -> str:
        return f"{link_base}?{name}={token}"

    chunk, links = log.page(skip, page_size, link)
    return {"value": chunk, **links}
