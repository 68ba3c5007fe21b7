"""UID FETCH of messages, streamed: sizes first, then bodies within the
byte budget, each message handed out as soon as its literal is complete.

A connection that drops in the middle of a FETCH is opened again once and
the FETCH asked again for the messages not yet handed out, so a message is
never lost nor handed out twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ...errors import TransientError
from ...model import Detail, Limits
from ...ports import FetchedMessage
from ..sizing import plan_fetch
from .connection import DROPPED, ImapConnection
from .fetch_stream import Fetch, String, Value
from .responses import compress_uids, from_stream

__all__ = ["FetchJob", "MessageFetcher"]

log = logging.getLogger("commlink.imap")


@attrs.frozen(slots=True, cache_hash=True)
class FetchJob:
    """Messages of one folder to fetch, with the UIDVALIDITY their UIDs belong to.

    Its hash is kept: the prefetcher looks jobs up once per queued message,
    and a job's UIDs may be thousands."""

    folder: str
    uidvalidity: int
    uids: tuple[int, ...]
    detail: Detail


class MessageFetcher:
    """Runs ``FetchJob``s on a connection (one at a time: the caller sees to it)."""

    def __init__(self, conn: ImapConnection, limits: Limits, page_size: int) -> None:
        self.conn = conn
        self.limits = limits
        self.page_size = page_size

    def messages(
        self, job: FetchJob, stopped: Callable[[], bool] = lambda: False
    ) -> Iterator[FetchedMessage]:
        """The job's messages as they arrive (UIDs gone from the folder are
        left out); ``stopped`` is asked before each command. Metadata: one
        FETCH of headers per ``page_size`` UIDs. Full: one FETCH of
        ``RFC822.SIZE`` per ``page_size`` UIDs, then bodies in FETCHes within
        ``fetch_batch_bytes``; a message above ``max_message_bytes`` comes
        with its headers only (``oversize``)."""
        gmail = self.conn.has("X-GM-EXT-1")
        extra = ["INTERNALDATE"] + (["X-GM-THRID", "X-GM-LABELS"] if gmail else [])
        headers = "(" + " ".join(["BODY.PEEK[HEADER]", *extra]) + ")"
        bodies = "(" + " ".join(["BODY.PEEK[]", *extra]) + ")"
        for start in range(0, len(job.uids), self.page_size):
            chunk = job.uids[start : start + self.page_size]
            if stopped():
                return
            if job.detail is Detail.METADATA:
                yield from self._stream(job, chunk, headers, Detail.METADATA, gmail)
                continue
            sizes = self._sizes(job, chunk)
            plan = plan_fetch(
                ((uid, sizes[uid]) for uid in chunk if uid in sizes),
                self.limits,
                max_count=self.page_size,
            )
            if plan.oversize:
                big = sorted(plan.oversize)
                for fetched in self._stream(job, big, headers, Detail.METADATA, gmail):
                    uid = int(fetched.provider_id.rpartition(":")[2])
                    yield attrs.evolve(fetched, oversize=plan.oversize.get(uid))
            for batch in plan.batches:
                if stopped():
                    return
                yield from self._stream(job, batch, bodies, Detail.FULL, gmail)

    def _sizes(self, job: FetchJob, uids: Sequence[int]) -> dict[int, int | None]:
        """UID -> ``RFC822.SIZE`` (``None`` when unreadable); UIDs gone are left out."""
        for attempt in (1, 2):
            sizes: dict[int, int | None] = {}
            try:
                client = self._open(job)
                for response in self.conn.stream_uid(
                    client, "FETCH", compress_uids(uids), "(RFC822.SIZE)", max_literal=0
                ):
                    if isinstance(response, Fetch) and response.uid is not None:
                        size = response.items.get("RFC822.SIZE")
                        if size is not None:
                            sizes[response.uid] = _number(size)
                return sizes
            except DROPPED as exc:
                self._lost(exc, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _stream(
        self, job: FetchJob, uids: Sequence[int], request: str, detail: Detail, gmail: bool
    ) -> Iterator[FetchedMessage]:
        """One UID FETCH; each message is handed out once its response is
        complete. Items a server sends in an earlier response of the same
        message (flags, a date) are merged into the one with the body."""
        left = set(uids)
        for attempt in (1, 2):
            partial: dict[int, dict[str, Value]] = {}
            try:
                client = self._open(job)
                responses = self.conn.stream_uid(
                    client,
                    "FETCH",
                    compress_uids(left),
                    request,
                    max_literal=self.limits.max_message_bytes,
                )
                for response in responses:
                    uid = response.uid if isinstance(response, Fetch) else None
                    if uid is None or uid not in left or not isinstance(response, Fetch):
                        continue  # unsolicited, or already handed out
                    items = response.items
                    if uid in partial:
                        items = {**partial.pop(uid), **items}
                    fetched = from_stream(job.uidvalidity, uid, items, detail, gmail=gmail)
                    if fetched is None:
                        partial[uid] = items
                        continue
                    left.discard(uid)
                    del items, response
                    yield fetched
                    del fetched  # let go of it before the next is read
                return
            except DROPPED as exc:
                self._lost(exc, attempt)

    def _open(self, job: FetchJob) -> Any:
        """The client, with the job's folder selected under the same UIDVALIDITY."""
        client = self.conn.open()
        selected = self.conn.selected
        if selected is None or selected.name != job.folder:
            selected = self.conn.examine(job.folder)
            client = self.conn.client
        if selected.uidvalidity != job.uidvalidity:
            raise TransientError(
                f"UIDVALIDITY of {job.folder!r} changed during a fetch"
                f" ({job.uidvalidity} -> {selected.uidvalidity})"
            )
        return client

    def _lost(self, exc: BaseException, attempt: int) -> None:
        self.conn.drop()
        if attempt == 2:
            raise TransientError(f"IMAP connection lost: {exc}") from exc
        log.info("IMAP connection lost during a fetch (%s); reconnecting", exc)


def _number(value: Value) -> int | None:
    raw = value.data if isinstance(value, String) else value
    return int(raw) if isinstance(raw, bytes) and raw.isdigit() else None
