"""UID FETCH of messages, streamed: sizes first, then bodies within the
byte budget (without large file attachments, see ``bodystructure``), each
message handed out as soon as its literals are complete.

A connection that drops in the middle of a FETCH is opened again once and
the FETCH asked again for the messages not yet handed out, so a message is
never lost nor handed out twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ...errors import ProviderError, TransientError
from ...model import Detail, Limits
from ...ports import FetchedMessage
from ..sizing import plan_fetch
from . import bodystructure
from .bodystructure import LeanPlan, plan, read_structure
from .connection import DROPPED, ImapConnection
from .fetch_stream import Fetch, String, Value
from .responses import compress_uids, from_sections, from_stream, make_id

__all__ = ["FetchJob", "MessageFetcher"]

log = logging.getLogger("commlink.imap")

#: The largest literal kept in a ``BODYSTRUCTURE`` (a part's description,
#: a file name): servers send them as quoted strings or short literals.
MAX_STRUCTURE_LITERAL = 64 * 1024


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
        ``RFC822.SIZE`` per ``page_size`` UIDs and one of the
        ``BODYSTRUCTURE`` of those of ``LEAN_MIN_BYTES`` or more, then bodies
        in FETCHes within ``fetch_batch_bytes``: whole messages, or their
        sections without the content of file attachments
        (``bodystructure``). A message whose fetch would pass
        ``max_message_bytes`` comes with its headers only (``oversize``)."""
        gmail = self.conn.has("X-GM-EXT-1")
        for start in range(0, len(job.uids), self.page_size):
            chunk = job.uids[start : start + self.page_size]
            if stopped():
                return
            if job.detail is Detail.METADATA:
                yield from self._whole(job, chunk, Detail.METADATA, gmail)
                continue
            sizes = self._sizes(job, chunk)
            lean = self._plans(job, sizes)
            plan = plan_fetch(
                (
                    (uid, lean[uid].fetch_bytes if uid in lean else sizes[uid])
                    for uid in chunk
                    if uid in sizes
                ),
                self.limits,
                max_count=self.page_size,
            )
            if plan.oversize:
                big = sorted(plan.oversize)
                for fetched in self._whole(job, big, Detail.METADATA, gmail):
                    uid = int(fetched.provider_id.rpartition(":")[2])
                    yield attrs.evolve(fetched, oversize=sizes.get(uid) or plan.oversize.get(uid))
            for batch in plan.batches:
                if stopped():
                    return
                whole = [uid for uid in batch if uid not in lean]
                if whole:
                    yield from self._whole(job, whole, Detail.FULL, gmail)
                sections = {uid: lean[uid] for uid in batch if uid in lean}
                if sections:
                    yield from self._sections(job, sections, gmail)

    def _request(self, item: str, gmail: bool) -> str:
        """A FETCH request for ``item`` (one or more), with the metadata every
        message comes with."""
        extra = " INTERNALDATE" + (" X-GM-THRID X-GM-LABELS" if gmail else "")
        return f"({item}{extra})"

    def _sizes(self, job: FetchJob, uids: Sequence[int]) -> dict[int, int | None]:
        """UID -> ``RFC822.SIZE`` (``None`` when unreadable); UIDs gone are left out."""
        sizes: dict[int, int | None] = {}
        for uid, items in self._items(job, uids, "(RFC822.SIZE)", 0):
            if "RFC822.SIZE" in items:
                sizes[uid] = _number(items["RFC822.SIZE"])
        return sizes

    def _plans(self, job: FetchJob, sizes: dict[int, int | None]) -> dict[int, LeanPlan]:
        """The messages to fetch without their files, from the ``BODYSTRUCTURE``
        of those large enough for it to pay (none in most pages of mail)."""
        least = bodystructure.LEAN_MIN_BYTES
        large = [uid for uid, size in sizes.items() if size is not None and size >= least]
        lean: dict[int, LeanPlan] = {}
        if not large:
            return lean
        try:
            answers = self._items(job, large, "(BODYSTRUCTURE)", MAX_STRUCTURE_LITERAL)
        except ProviderError as exc:
            _only_refused(exc)
            log.info("IMAP BODYSTRUCTURE failed (%s): fetching those messages whole", _said(exc))
            return lean
        for uid, items in answers:
            size = sizes.get(uid)
            root = read_structure(items.get("BODYSTRUCTURE"))
            found = plan(root, size) if root is not None and size is not None else None
            if found is not None:
                lean[uid] = found
        return lean

    def _items(
        self, job: FetchJob, uids: Sequence[int], request: str, max_literal: int
    ) -> list[tuple[int, dict[str, Value]]]:
        """UID and items of each message's response to a small ``UID FETCH``."""
        for attempt in (1, 2):
            found: list[tuple[int, dict[str, Value]]] = []
            try:
                client = self._open(job)
                for response in self.conn.stream_uid(
                    client, "FETCH", compress_uids(uids), request, max_literal=max_literal
                ):
                    if isinstance(response, Fetch) and response.uid is not None:
                        found.append((response.uid, response.items))
                return found
            except DROPPED as exc:
                self._lost(exc, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sections(
        self, job: FetchJob, lean: dict[int, LeanPlan], gmail: bool
    ) -> Iterator[FetchedMessage]:
        """Messages fetched without their file parts: one FETCH per set of
        sections. One whose pieces do not assemble, or that the server left
        out of its answer (a section it did not send), is fetched whole after
        them: only a message gone from the folder is left out."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for uid, found in lean.items():
            groups.setdefault(found.sections, []).append(uid)
        again: list[int] = []
        for sections, uids in groups.items():
            request = self._request(" ".join(f"BODY.PEEK[{s}]" for s in sections), gmail)

            def build(uid: int, items: dict[str, Value]) -> FetchedMessage | None:
                return from_sections(job.uidvalidity, uid, items, lean[uid], gmail=gmail)

            handed: set[int] = set()
            try:
                for fetched in self._stream(job, uids, request, build, isolate=False):
                    uid = int(fetched.provider_id.rpartition(":")[2])
                    handed.add(uid)
                    if fetched.raw is None and fetched.error is None:  # did not assemble
                        again.append(uid)
                    else:
                        yield fetched
            except ProviderError as exc:
                _only_refused(exc)
                log.info("IMAP FETCH of sections failed (%s): fetching the rest whole", _said(exc))
            again.extend(uid for uid in uids if uid not in handed)
        if again:
            log.info("%d message(s) fetched whole: their sections did not read back", len(again))
            yield from self._whole(job, sorted(again), Detail.FULL, gmail)

    def _whole(
        self, job: FetchJob, uids: Sequence[int], detail: Detail, gmail: bool
    ) -> Iterator[FetchedMessage]:
        """One UID FETCH of whole messages (``FULL``) or headers."""
        item = "BODY.PEEK[]" if detail is Detail.FULL else "BODY.PEEK[HEADER]"
        request = self._request(item, gmail)

        def build(uid: int, items: dict[str, Value]) -> FetchedMessage | None:
            return from_stream(job.uidvalidity, uid, items, detail, gmail=gmail)

        return self._stream(job, uids, request, build)

    def _stream(
        self,
        job: FetchJob,
        uids: Sequence[int],
        request: str,
        build: Callable[[int, dict[str, Value]], FetchedMessage | None],
        isolate: bool = True,
    ) -> Iterator[FetchedMessage]:
        """One UID FETCH; each message is handed out once ``build`` finds its
        response complete. Items a server sends in an earlier response of the
        same message (flags, a date) are merged into the later ones.

        A FETCH the server refuses after some messages (Gmail: "Some messages
        could not be FETCHed") is asked again for the rest, in halves, down
        to each message it will not send, which is handed out with that
        reason (``isolate``; else the refusal is raised): one message never
        holds up the others."""
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
                    fetched = build(uid, items)
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
            except ProviderError as exc:
                _only_refused(exc)
                if not isolate:
                    raise
                yield from self._refused(job, sorted(left), request, build, exc)
                return

    def _refused(
        self,
        job: FetchJob,
        uids: Sequence[int],
        request: str,
        build: Callable[[int, dict[str, Value]], FetchedMessage | None],
        exc: ProviderError,
    ) -> Iterator[FetchedMessage]:
        """The messages a refused FETCH did not hand out (see ``_stream``)."""
        if len(uids) == 1:
            said = _said(exc)
            log.warning("IMAP server refused to send UID %d of %r: %s", uids[0], job.folder, said)
            yield FetchedMessage(
                make_id(job.uidvalidity, uids[0]), error=f"the server refused to send it: {said}"
            )
            return
        half = len(uids) // 2
        yield from self._stream(job, uids[:half], request, build)
        yield from self._stream(job, uids[half:], request, build)

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


def _only_refused(exc: ProviderError) -> None:
    """Re-raise ``exc`` unless it is a command the server refused or an
    answer it could not send readably (a plain ``ProviderError``): for a
    fetch in sections, those only mean fetching the messages whole. A lost
    connection, a folder gone or a login refused go on as they are."""
    if type(exc) is not ProviderError:
        raise exc


def _said(exc: ProviderError) -> str:
    """What a server's refusal says, cut to what a log line or a skip
    reason keeps (a response line may be a megabyte)."""
    return str(exc)[:400]


def _number(value: Value) -> int | None:
    raw = value.data if isinstance(value, String) else value
    return int(raw) if isinstance(raw, bytes) and raw.isdigit() else None
