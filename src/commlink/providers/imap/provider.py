"""The IMAP provider: any IMAP4rev1 server, faster with CONDSTORE/QRESYNC.

One scope per folder, one connection reused across folders. Provider ids
are ``"{uidvalidity}:{uid}"``, so ids from before a UIDVALIDITY change can
never alias new messages. The mailbox is never changed: folders are opened
with EXAMINE and bodies fetched with ``BODY.PEEK``, so nothing becomes
\\Seen.

Incremental sync (``changes``) starts with one STATUS per folder; an
unchanged folder costs that single round trip. New messages always come
from ``UID SEARCH UID uidnext:*``. With QRESYNC (RFC 7162) flag changes and
expunges of the UIDs the cursor knew come from
``UID FETCH 1:<uidnext-1> (FLAGS) (CHANGEDSINCE m VANISHED)``: an explicit
range, since a server may read ``*`` as the highest UID still present and
then never report the expunge of the newest messages (Cyrus does). Without
QRESYNC any expunge (the message count does not add up) raises
``CursorExpired`` so the engine reconciles with a listing; flag changes are
not detected without CONDSTORE (there is no cheap way to see them). A
HIGHESTMODSEQ or UIDNEXT lower than the cursor's under the same
UIDVALIDITY (a rebuilt index) raises ``CursorExpired`` as well.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import attrs

from ...errors import ConfigError, CursorExpired, ProviderError
from ...model import Detail, Folder, FolderKind, Limits
from ...ports import ChangeSet, FetchedMessage, IdPage, Scope
from ..sizing import DEFAULT_LIMITS, plan_fetch
from .connection import ImapConnection, ImapSettings, OAuth2Token, Selected
from .responses import (
    ImapCursor,
    compress_uids,
    fetched_message,
    folder_from_list,
    make_id,
    parse_id,
    parse_vanished,
)

__all__ = ["ImapProvider"]

log = logging.getLogger("commlink.imap")


class ImapProvider:
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
    being fetched headers only.

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
        self.page_size = page_size
        self.limits = limits
        self.notify = notify
        self.notify_flags = notify_flags
        self.max_idle_connections = max_idle_connections
        self.conn = ImapConnection(self.settings)
        self._listing: tuple[str, int, list[int]] | None = None

    @property
    def round_trips(self) -> int:
        """IMAP commands sent so far (login excluded)."""
        return self.conn.round_trips

    # -- folders ---------------------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """Selectable folders, kinds from SPECIAL-USE attributes or well-known names."""
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
        state = self.conn.examine(scope.id)
        modseq = state.highestmodseq if self._condstore else 0
        return ImapCursor(state.uidvalidity, state.uidnext, modseq, state.exists).encode()

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """UIDs newest first; the page token is ``"{uidvalidity}:{upper bound}"``."""
        state = self._selected(scope.id)
        upper: int | None = None
        if page is not None:
            parsed = parse_id(page)
            if parsed is not None and parsed[0] == state.uidvalidity:
                upper = parsed[1]
            # a token of another UIDVALIDITY: list again from the top; the
            # snapshot's cursor then expires and the engine reconciles
        uids = self._uids(scope.id, state, upper)
        end = len(uids) if upper is None else bisect.bisect_left(uids, upper)
        start = max(0, end - self.page_size)
        chunk = uids[start:end]
        ids = tuple(make_id(state.uidvalidity, uid) for uid in reversed(chunk))
        token = make_id(state.uidvalidity, chunk[0]) if start > 0 else None
        return IdPage(ids, token)

    def _uids(self, folder: str, state: Selected, upper: int | None) -> list[int]:
        """The folder's UIDs below ``upper`` (all when ``None``), sorted.

        One UID SEARCH per listing: later pages reuse its result."""
        cached = self._listing
        if upper is not None and cached is not None and cached[:2] == (folder, state.uidvalidity):
            return cached[2]
        if upper is not None and upper <= 1:
            return []
        criteria = ["ALL"] if upper is None else ["UID", f"1:{upper - 1}"]
        found = self.conn.call(lambda c: c.search(criteria), folder=folder)
        uids = sorted(int(u) for u in found if upper is None or int(u) < upper)
        self._listing = (folder, state.uidvalidity, uids)
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
        (``oversize``)."""
        state = self._selected(scope.id)
        uids = []
        for provider_id in dict.fromkeys(ids):
            parsed = parse_id(provider_id)
            if parsed is not None and parsed[0] == state.uidvalidity:
                uids.append(parsed[1])
        gmail = self.conn.has("X-GM-EXT-1")
        extra = ["INTERNALDATE"] + (["X-GM-THRID", "X-GM-LABELS"] if gmail else [])
        headers = "(" + " ".join(["BODY.PEEK[HEADER]", *extra]) + ")"
        bodies = "(" + " ".join(["BODY.PEEK[]", *extra]) + ")"
        for start in range(0, len(uids), self.page_size):
            chunk = uids[start : start + self.page_size]
            if detail is Detail.METADATA:
                yield from self._fetched(scope.id, state, chunk, headers, detail, gmail)
                continue
            sizes = self._fetch_chunk(scope.id, chunk, "(RFC822.SIZE)")
            plan = plan_fetch(
                ((uid, _rfc822_size(sizes[uid])) for uid in chunk if uid in sizes),
                self.limits,
                max_count=self.page_size,
            )
            if plan.oversize:
                big = sorted(plan.oversize)
                for fetched in self._fetched(scope.id, state, big, headers, Detail.METADATA, gmail):
                    uid = parse_id(fetched.provider_id)
                    size = plan.oversize.get(uid[1]) if uid is not None else None
                    yield attrs.evolve(fetched, oversize=size)
            for batch in plan.batches:
                yield from self._fetched(scope.id, state, batch, bodies, detail, gmail)

    def _fetched(
        self,
        folder: str,
        state: Selected,
        uids: Sequence[int],
        request: str,
        detail: Detail,
        gmail: bool,
    ) -> Iterator[FetchedMessage]:
        """One UID FETCH; each message is let go of once it is handed over."""
        response = self._fetch_chunk(folder, uids, request)
        for uid in uids:
            item = response.pop(uid, None)
            if item is None:
                continue
            fetched = fetched_message(state.uidvalidity, uid, item, detail, gmail=gmail)
            del item
            if fetched is not None:
                yield fetched
            del fetched  # let go of it before the next is read

    def _fetch_chunk(self, folder: str, uids: Sequence[int], request: str) -> dict[int, Any]:
        from imapclient.response_parser import parse_fetch_response

        message_set = compress_uids(uids)

        def run(client: Any) -> list[Any]:
            return self.conn.raw_uid(client, "FETCH", message_set, request)

        data = self.conn.call(run, folder=folder)
        try:
            return dict(parse_fetch_response(data, False, True))
        except Exception as exc:  # imapclient's ProtocolError and friends
            raise ProviderError(f"unreadable FETCH response: {exc}") from exc

    # -- incremental -----------------------------------------------------------

    @property
    def _condstore(self) -> bool:
        return self.conn.has("CONDSTORE") or self.conn.has("QRESYNC")

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """STATUS first: an unchanged folder costs one round trip and no SELECT."""
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
        state = self.conn.examine(scope.id)
        if state.uidvalidity != before.uidvalidity:
            raise CursorExpired(f"UIDVALIDITY of {scope.id!r} changed")
        _check_not_rebuilt(scope.id, before, state.uidnext, state.highestmodseq if condstore else 0)
        if condstore and state.highestmodseq and self.conn.has("QRESYNC"):
            return self._qresync(scope.id, before, state)
        return self._plain(scope.id, before, state, condstore)

    def _qresync(self, folder: str, before: ImapCursor, state: Selected) -> ChangeSet:
        """Flag changes and expunges of the UIDs the cursor knew, asked over that
        explicit range: servers may take ``*`` for the highest UID still present
        (Cyrus does), and would then never report an expunge of the newest
        messages. New UIDs are listed apart, whatever their modseq."""
        upserted: set[int] = set()
        gone: set[int] = set()
        if before.uidnext > 1:
            known = f"1:{before.uidnext - 1}"
            since = f"(CHANGEDSINCE {before.highestmodseq} VANISHED)"

            def run(client: Any) -> tuple[list[Any], list[Any]]:
                data = self.conn.raw_uid(client, "FETCH", known, "(FLAGS)", since)
                return data, self.conn.untagged(client, "VANISHED")

            data, vanished_lines = self.conn.call(run, folder=folder)
            upserted = {u for u in self._changed_uids(data) if u < state.uidnext}
            gone = set(parse_vanished(vanished_lines, below=state.uidnext))
        upserted |= self._new_uids(folder, before, state)
        after = ImapCursor(state.uidvalidity, state.uidnext, state.highestmodseq, state.exists)
        return ChangeSet(
            tuple(make_id(state.uidvalidity, u) for u in sorted(upserted - gone, reverse=True)),
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
        """Without QRESYNC: new UIDs (and, with CONDSTORE, flag changes of the
        known ones); an expunge shows as a count that does not add up."""
        new = self._new_uids(folder, before, state)
        changed = set(new)
        if condstore and state.highestmodseq and before.uidnext > 1:
            known = f"1:{before.uidnext - 1}"

            def run(client: Any) -> list[Any]:
                return self.conn.raw_uid(
                    client, "FETCH", known, "(FLAGS)", f"(CHANGEDSINCE {before.highestmodseq})"
                )

            changed |= self._changed_uids(self.conn.call(run, folder=folder))
        changed = {u for u in changed if u < state.uidnext}
        if before.messages + len(new) != state.exists:
            raise CursorExpired(
                f"{folder!r}: {before.messages} + {len(new)} new != {state.exists} messages"
                " (something was expunged)"
            )
        modseq = state.highestmodseq if condstore else 0
        after = ImapCursor(state.uidvalidity, state.uidnext, modseq, state.exists)
        ids = tuple(make_id(state.uidvalidity, u) for u in sorted(changed, reverse=True))
        return ChangeSet(ids, (), after.encode())

    @staticmethod
    def _changed_uids(data: list[Any]) -> set[int]:
        from imapclient.response_parser import parse_fetch_response

        try:
            return {int(uid) for uid in parse_fetch_response(data, False, True)}
        except Exception as exc:
            raise ProviderError(f"unreadable FETCH response: {exc}") from exc

    # -- push ------------------------------------------------------------------

    def watch(self, scope: Scope) -> AbstractContextManager[Iterator[None]] | None:
        """IDLE on a separate connection; ``None`` when the server has no IDLE."""
        if not self.conn.has("IDLE"):
            return None
        from .idle import IdleWatch

        return IdleWatch(self.settings, scope.id)

    def watch_scopes(self, scopes: Sequence[Scope]) -> AbstractContextManager[Iterator[str]] | None:
        """NOTIFY, or IDLE per folder (see the class); yields the folder that
        changed. ``None`` when the server has no IDLE or there is nothing to watch."""
        if not scopes or not self.conn.has("IDLE"):
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

    def close(self) -> None:
        """LOGOUT."""
        self._listing = None
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


def _rfc822_size(item: Any) -> int | None:
    """The ``RFC822.SIZE`` of a FETCH response item, ``None`` when absent."""
    try:
        return int(item[b"RFC822.SIZE"])
    except (KeyError, TypeError, ValueError):
        return None
