"""The IMAP provider: any IMAP4rev1 server, faster with CONDSTORE/QRESYNC.

One scope per folder, one connection reused across folders. Provider ids
are ``"{uidvalidity}:{uid}"``, so ids from before a UIDVALIDITY change can
never alias new messages. The mailbox is never changed: folders are opened
with EXAMINE and bodies fetched with ``BODY.PEEK``, so nothing becomes
\\Seen.

Incremental sync (``changes``) starts with one STATUS per folder; an
unchanged folder costs that single round trip, and so does one whose only
change is flags (same UIDNEXT, same count): flags are not stored, so a flag
change is not new content. New messages are the UIDs from the cursor's
UIDNEXT on (``UID SEARCH UID uidnext:*``). With QRESYNC (RFC 7162) expunges
of the UIDs the cursor knew come from
``UID FETCH 1:<uidnext-1> (UID) (CHANGEDSINCE m VANISHED)``: an explicit
range, since a server may read ``*`` as the highest UID still present and
then never report the expunge of the newest messages (Cyrus does). Without
QRESYNC any expunge (the message count does not add up) raises
``CursorExpired`` so the engine reconciles with a listing. A HIGHESTMODSEQ
or UIDNEXT lower than the cursor's under the same UIDVALIDITY (a rebuilt
index) raises ``CursorExpired`` as well.

Fetching streams (``fetcher``, ``fetch_stream``): messages are read off the
socket one literal at a time on a worker thread (``prefetch``) and handed
over as each is complete, while the caller parses and commits; when a whole
listed page is fetched, the next page is fetched ahead, within
``Limits.fetch_batch_bytes`` of messages waiting.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ...closing import Closing
from ...errors import ConfigError, CursorExpired
from ...model import Attachment, Detail, Folder, FolderKind, Limits
from ...ports import ChangeSet, FetchedMessage, IdPage, Scope
from ..sizing import DEFAULT_LIMITS
from .connection import ImapConnection, ImapSettings, OAuth2Token, Selected
from .fetch_stream import Vanished
from .fetcher import FetchJob, MessageFetcher
from .prefetch import Prefetcher
from .responses import ImapCursor, folder_from_list, make_id, parse_id, parse_vanished

__all__ = ["ImapProvider"]

log = logging.getLogger("commlink.imap")


class ImapProvider(Closing):
    """A ``MailProvider`` for an IMAP account.

    Log in with ``password`` or an OAuth2 access token (XOAUTH2). TLS from
    the start (``ssl=True``, port 993) or upgraded with ``starttls``;
    certificates are verified unless ``verify=False``. A login without TLS
    (``ssl=False`` and no ``starttls``) raises ``ConfigError`` unless the
    host is loopback (``localhost``, 127.0.0.0/8, ``::1``) or
    ``allow_plaintext=True`` says so explicitly. ``page_size`` UIDs
    make one listing page and at most one FETCH; a full fetch learns the
    sizes first (``RFC822.SIZE``) and keeps each FETCH of bodies within
    ``limits.fetch_batch_bytes``, a message above ``limits.max_message_bytes``
    being fetched headers only. Fetching runs on a worker thread that reads
    ahead by at most ``limits.fetch_batch_bytes`` of messages.

    Push: ``watch_scopes`` watches every selected folder, through NOTIFY
    (RFC 5465) on one connection where the server offers it and ``notify``
    is set, otherwise with IDLE on one connection per folder for at most
    ``max_idle_connections`` folders (the inbox and sent mail first; the
    rest are left to polling). ``notify_flags`` also wakes on flag changes.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        username: str,
        password: str | None = None,
        oauth2_token: OAuth2Token | None = None,
        ssl: bool = True,
        starttls: bool = False,
        verify: bool = True,
        timeout: float = 30,
        page_size: int = 500,
        limits: Limits = DEFAULT_LIMITS,
        allow_plaintext: bool = False,
        notify: bool = True,
        notify_flags: bool = False,
        max_idle_connections: int = 5,
    ) -> None:
        if page_size < 1:
            raise ConfigError("must be positive", field="page_size")
        if max_idle_connections < 1:
            raise ConfigError("must be positive", field="max_idle_connections")
        self.settings = ImapSettings(
            host,
            port if port is not None else (993 if ssl else 143),
            username,
            password,
            oauth2_token,
            ssl,
            starttls,
            verify,
            float(timeout),
            allow_plaintext,
        )
        self.limits = limits
        self.notify = notify
        self.notify_flags = notify_flags
        self.max_idle_connections = max_idle_connections
        self.conn = ImapConnection(self.settings)
        self._fetcher = MessageFetcher(self.conn, limits, page_size)
        self._prefetch: Prefetcher[FetchJob] = Prefetcher(
            self._fetcher.messages, limits.fetch_batch_bytes
        )
        self._listing: tuple[str, int, list[int]] | None = None
        #: the page just listed and the one after it: (folder, UIDVALIDITY, page, next)
        self._listed: tuple[str, int, frozenset[int], tuple[int, ...]] | None = None

    @property
    def page_size(self) -> int:
        """UIDs per listing page and per FETCH."""
        return self._fetcher.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        if value < 1:
            raise ConfigError("must be positive", field="page_size")
        self._fetcher.page_size = value

    @property
    def round_trips(self) -> int:
        """IMAP commands sent so far (login excluded)."""
        return self.conn.round_trips

    @property
    def bytes_fetched(self) -> int:
        """Bytes of messages (bodies and headers) received so far."""
        return self.conn.literal_bytes

    def _quiet(self) -> None:
        """Take the connection back from the fetch worker (dropping what it
        fetched ahead) before any other command."""
        self._prefetch.cancel()

    # -- folders ---------------------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """Selectable folders, kinds from SPECIAL-USE attributes or well-known names."""
        self._quiet()
        rows = self.conn.call(lambda c: c.list_folders())
        found: dict[str, Folder] = {}
        for flags, delimiter, name in rows:
            folder = folder_from_list(flags, delimiter, str(name))
            if folder is not None and folder.id not in found:
                found[folder.id] = folder
        return list(found.values())

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """One scope per folder, the inbox first (a runner watches the first scope)."""
        ordered = sorted(folders, key=lambda f: f.kind is not FolderKind.INBOX)
        return [Scope(f.id, f) for f in ordered]

    # -- full listing ----------------------------------------------------------

    def snapshot(self, scope: Scope) -> str:
        """EXAMINE the folder and record UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, count."""
        self._quiet()
        state = self.conn.examine(scope.id)
        modseq = state.highestmodseq if self._condstore else 0
        return ImapCursor(state.uidvalidity, state.uidnext, modseq, state.exists).encode()

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """UIDs newest first; the page token is ``"{uidvalidity}:{upper bound}"``.
        One UID SEARCH per listing: later pages reuse its result (and send
        no command, so a fetch ahead goes on)."""
        parsed = parse_id(page) if page is not None else None
        cached = self._listing
        upper: int | None
        if parsed is not None and cached is not None and cached[:2] == (scope.id, parsed[0]):
            validity, upper, uids = parsed[0], parsed[1], cached[2]
        else:
            self._quiet()
            state = self._selected(scope.id)
            validity = state.uidvalidity
            # a token of another UIDVALIDITY: list again from the top; the
            # snapshot's cursor then expires and the engine reconciles
            upper = parsed[1] if parsed is not None and parsed[0] == validity else None
            uids = self._uids(scope.id, validity, upper)
        end = len(uids) if upper is None else bisect.bisect_left(uids, upper)
        start = max(0, end - self.page_size)
        chunk = uids[start:end]
        following = tuple(reversed(uids[max(0, start - self.page_size) : start]))
        self._listed = (scope.id, validity, frozenset(chunk), following)
        ids = tuple(make_id(validity, uid) for uid in reversed(chunk))
        token = make_id(validity, chunk[0]) if start > 0 else None
        return IdPage(ids, token)

    def _uids(self, folder: str, uidvalidity: int, upper: int | None) -> list[int]:
        """The folder's UIDs below ``upper`` (all when ``None``), sorted."""
        if upper is not None and upper <= 1:
            return []
        criteria = ["ALL"] if upper is None else ["UID", f"1:{upper - 1}"]
        found = self.conn.call(lambda c: c.search(criteria), folder=folder)
        uids = sorted(int(u) for u in found if upper is None or int(u) < upper)
        self._listing = (folder, uidvalidity, uids)
        return uids

    def _selected(self, folder: str) -> Selected:
        current = self.conn.selected
        if current is not None and current.name == folder and self.conn.client is not None:
            return current
        return self.conn.examine(folder)

    # -- fetching --------------------------------------------------------------

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """Ids that no longer exist are left out. Metadata: one UID FETCH of
        headers per ``page_size`` ids. Full: one FETCH of ``RFC822.SIZE`` per
        ``page_size`` ids, then bodies in FETCHes within the byte budget; a
        message above ``max_message_bytes`` comes with its headers only
        (``oversize``). Messages come as they arrive; when ``ids`` are the
        whole page ``list_page`` just returned, the next page is fetched
        ahead while these are being used."""
        job, wanted = self._fetched_ahead(scope.id, ids, detail)
        if job is None:
            self._quiet()
            state = self._selected(scope.id)
            wanted = _uids_of(ids, state.uidvalidity)
            if not wanted:
                return
            job = FetchJob(scope.id, state.uidvalidity, tuple(wanted), detail)
            self._prefetch.submit(job)
        self._fetch_next_page(job, wanted)
        keep = set(wanted)
        for fetched in self._prefetch.take(job):
            parsed = parse_id(fetched.provider_id)
            if parsed is not None and parsed[1] in keep:
                yield fetched
            del fetched  # let go of it before the next is read

    def _fetched_ahead(
        self, folder: str, ids: Sequence[str], detail: Detail
    ) -> tuple[FetchJob | None, list[int]]:
        """A job already submitted that covers ``ids``, and their UIDs."""
        for job in self._prefetch.pending():
            if job.folder != folder or job.detail is not detail:
                continue
            wanted = _uids_of(ids, job.uidvalidity)
            if wanted and set(wanted) <= set(job.uids):
                return job, wanted
        return None, []

    def _fetch_next_page(self, job: FetchJob, wanted: Sequence[int]) -> None:
        """Fetch the next listing page ahead when this fetch is the whole page
        just listed (a first import: a page of mail already stored is not
        fetched, so neither is the page after it)."""
        listed = self._listed
        if listed is None or listed[:2] != (job.folder, job.uidvalidity) or not listed[3]:
            return
        if len(wanted) != len(listed[2]) or not listed[2].issuperset(wanted):
            return
        self._listed = None
        self._prefetch.submit(FetchJob(job.folder, job.uidvalidity, listed[3], job.detail))

    # -- incremental -----------------------------------------------------------

    @property
    def _condstore(self) -> bool:
        return self.conn.has("CONDSTORE") or self.conn.has("QRESYNC")

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """STATUS first: an unchanged folder, or one whose only change is
        flags, costs one round trip and no SELECT."""
        self._quiet()
        before = ImapCursor.decode(cursor)
        condstore = self._condstore and before.highestmodseq > 0
        items = ["UIDNEXT", "MESSAGES", "UIDVALIDITY"] + (["HIGHESTMODSEQ"] if condstore else [])

        def status_of(client: Any) -> Any:
            if self.conn.selected is not None and self.conn.selected.name == scope.id:
                self.conn.deselect(client)
            return client.folder_status(scope.id, items)

        status = self.conn.call(status_of)
        uidvalidity = int(status.get(b"UIDVALIDITY", 0))
        if uidvalidity != before.uidvalidity:
            raise CursorExpired(
                f"UIDVALIDITY of {scope.id!r} changed ({before.uidvalidity} -> {uidvalidity})"
            )
        now = ImapCursor(
            uidvalidity,
            int(status.get(b"UIDNEXT", 0)),
            int(status.get(b"HIGHESTMODSEQ", 0)) if condstore else 0,
            int(status.get(b"MESSAGES", 0)),
        )
        if now == before:
            return ChangeSet((), (), cursor)
        _check_not_rebuilt(scope.id, before, now.uidnext, now.highestmodseq if condstore else 0)
        if now.uidnext == before.uidnext and now.messages == before.messages:
            # nothing added (UIDNEXT did not move), so nothing expunged (the
            # count did not move): flags changed, and flags are not stored
            return ChangeSet((), (), now.encode())
        state = self.conn.examine(scope.id)
        if state.uidvalidity != before.uidvalidity:
            raise CursorExpired(f"UIDVALIDITY of {scope.id!r} changed")
        _check_not_rebuilt(scope.id, before, state.uidnext, state.highestmodseq if condstore else 0)
        if condstore and state.highestmodseq and self.conn.has("QRESYNC"):
            return self._qresync(scope.id, before, state)
        return self._plain(scope.id, before, state, condstore)

    def _qresync(self, folder: str, before: ImapCursor, state: Selected) -> ChangeSet:
        """Expunges of the UIDs the cursor knew, asked over that explicit
        range: servers may take ``*`` for the highest UID still present
        (Cyrus does), and would then never report an expunge of the newest
        messages. Flag changes below the cursor's UIDNEXT are not new
        content; new UIDs are listed apart, whatever their modseq."""
        gone: set[int] = set()
        if before.uidnext > 1:
            known = f"1:{before.uidnext - 1}"
            since = f"(CHANGEDSINCE {before.highestmodseq} VANISHED)"

            def run(client: Any) -> list[bytes]:
                responses = self.conn.stream_uid(
                    client, "FETCH", known, "(UID)", since, max_literal=0
                )
                return [r.text for r in responses if isinstance(r, Vanished)]

            lines = self.conn.call(run, folder=folder, counted=False)
            gone = set(parse_vanished(lines, below=state.uidnext))
        upserted = self._new_uids(folder, before, state) - gone
        after = ImapCursor(state.uidvalidity, state.uidnext, state.highestmodseq, state.exists)
        return ChangeSet(
            tuple(make_id(state.uidvalidity, u) for u in sorted(upserted, reverse=True)),
            tuple(make_id(state.uidvalidity, u) for u in sorted(gone)),
            after.encode(),
        )

    def _new_uids(self, folder: str, before: ImapCursor, state: Selected) -> set[int]:
        """UIDs from the cursor's UIDNEXT up to the folder's (``UID SEARCH``):
        new mail is found by UID, never by a modseq a rebuilt index may reuse."""
        if state.uidnext <= before.uidnext:
            return set()
        found = self.conn.call(lambda c: c.search(["UID", f"{before.uidnext}:*"]), folder=folder)
        return {int(u) for u in found if before.uidnext <= int(u) < state.uidnext}

    def _plain(
        self, folder: str, before: ImapCursor, state: Selected, condstore: bool
    ) -> ChangeSet:
        """Without QRESYNC: the new UIDs; an expunge shows as a count that
        does not add up."""
        new = self._new_uids(folder, before, state)
        if before.messages + len(new) != state.exists:
            raise CursorExpired(
                f"{folder!r}: {before.messages} + {len(new)} new != {state.exists} messages"
                " (something was expunged)"
            )
        modseq = state.highestmodseq if condstore else 0
        after = ImapCursor(state.uidvalidity, state.uidnext, modseq, state.exists)
        ids = tuple(make_id(state.uidvalidity, u) for u in sorted(new, reverse=True))
        return ChangeSet(ids, (), after.encode())

    # -- push ------------------------------------------------------------------

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """IDLE on a separate connection; ``None`` when the server has no IDLE."""
        self._quiet()
        if not self.conn.has("IDLE"):
            return None
        from .idle import IdleWatch

        return IdleWatch(self.settings, scope.id)

    def watch_scopes(self, scopes: Sequence[Scope]) -> AbstractContextManager[Iterator[str]] | None:
        """NOTIFY, or IDLE per folder (see the class); yields the folder that
        changed. ``None`` when the server has no IDLE or there is nothing to watch."""
        if not scopes:
            return None
        self._quiet()
        if not self.conn.has("IDLE"):
            return None
        from .notify import FolderWatch

        ordered = sorted(scopes, key=_watch_rank)
        return FolderWatch(
            self.settings,
            [s.id for s in ordered],
            notify=self.notify and self.conn.has("NOTIFY"),
            flags=self.notify_flags,
            max_idle=self.max_idle_connections,
        )

    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """One attachment's decoded content, streamed on a connection of its own
        (``AttachmentSource``; see ``imap.attachments``)."""
        from .attachments import open_imap_attachment

        return open_imap_attachment(
            self.settings, scope.id, provider_id, attachments, index, max_bytes
        )

    def close(self) -> None:
        """LOGOUT."""
        self._quiet()
        self._listing = self._listed = None
        self.conn.close()


def _check_not_rebuilt(folder: str, before: ImapCursor, uidnext: int, modseq: int) -> None:
    """``CursorExpired`` when UIDNEXT or HIGHESTMODSEQ went down under the same
    UIDVALIDITY: the server rebuilt its index (Dovecot does after losing its
    index files), so changes since the cursor's modseq would miss mail; a
    reconciling pass lists the folder instead."""
    if uidnext and uidnext < before.uidnext:
        raise CursorExpired(f"UIDNEXT of {folder!r} went down ({before.uidnext} -> {uidnext})")
    if modseq and before.highestmodseq and modseq < before.highestmodseq:
        raise CursorExpired(
            f"HIGHESTMODSEQ of {folder!r} went down ({before.highestmodseq} -> {modseq}):"
            " the server rebuilt its index"
        )


def _watch_rank(scope: Scope) -> int:
    """The inbox first, then sent mail: the folders IDLE covers when capped."""
    kind = scope.folder.kind if scope.folder is not None else None
    if kind is FolderKind.INBOX or scope.id.upper() == "INBOX":
        return 0
    return 1 if kind is FolderKind.SENT else 2


def _uids_of(ids: Iterable[str], uidvalidity: int) -> list[int]:
    """The UIDs of the provider ids under ``uidvalidity`` (others are left
    out: they belong to messages that no longer exist), without repeats."""
    uids: dict[int, None] = {}
    for provider_id in ids:
        parsed = parse_id(provider_id)
        if parsed is not None and parsed[0] == uidvalidity:
            uids[parsed[1]] = None
    return list(uids)
