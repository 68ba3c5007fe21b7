"""An mbox file as a mail source, including Google Takeout exports.

A message's provider id is a short hash of its ``From `` line and header, so
it stays the same when a rewrite of the file moves the message; the offsets
of recently listed ids are remembered, so a fetch seeks straight to them
(an unknown id costs one scan of the file). The file is read in chunks and
never held in memory. A full
listing goes through the file in file order, which stands in for
newest-first (an mbox has no cheaper order). Incremental sync follows
appends: if the file only grew, ``changes`` lists the messages after the old
end; any other rewrite raises ``CursorExpired`` and the sync engine
reconciles with a full listing.

Takeout exports carry ``X-Gmail-Labels`` (the folders) and ``X-GM-THRID``
(the thread); both are read from each message's header.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from ...closing import Closing
from ...errors import ConfigError, CursorExpired
from ...mime.headers import header_block
from ...model import Detail, Folder, FolderKind, Limits
from ...ports import ChangeSet, FetchedMessage, IdPage, Scope
from ..sizing import DEFAULT_LIMITS
from .attachment_source import FileAttachmentSource
from .mbox_format import (
    from_line_date,
    gmail_label_kind,
    header_values,
    iter_messages,
    iter_separators,
    label_folder,
    labels_of,
    message_key,
    read_message,
    read_sized,
    split_labels,
)

__all__ = ["MboxProvider", "gmail_label_kind", "split_labels"]

SCOPE_ID = "mbox"
_HEAD = 64 * 1024
# Offsets remembered for fetching (about 100 bytes each).
_INDEX_LIMIT = 200_000


def _head_hash(fh: BinaryIO, size: int) -> str:
    fh.seek(0)
    return hashlib.sha256(fh.read(min(size, _HEAD))).hexdigest()


class MboxProvider(FileAttachmentSource, Closing):
    """A mailbox read from one mbox file (a ``MailProvider``).

    Provider ids are hashes of each message's From_ line and header; one
    scope, ``"mbox"``, covers the file. Page tokens are byte offsets to
    continue from. Identical copies of a message share one id. A message
    longer than ``limits.max_message_bytes`` is read headers only (its body
    is never loaded) and imported with the warning ``too-large``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        page_size: int = 500,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        if not self.path.is_file() or not os.access(self.path, os.R_OK):
            raise ConfigError(f"not a readable mbox file: {self.path}", field="path")
        self.page_size = max(1, page_size)
        self._takeout: tuple[tuple[int, int, int], bool] | None = None
        self._labels: tuple[tuple[int, int, int], tuple[str, ...]] | None = None
        self._offsets: OrderedDict[str, int] = OrderedDict()

    def _remember(self, found: Iterable[tuple[int, str]]) -> tuple[str, ...]:
        ids: list[str] = []
        for offset, key in found:
            self._offsets[key] = offset
            self._offsets.move_to_end(key)
            ids.append(key)
        while len(self._offsets) > _INDEX_LIMIT:
            self._offsets.popitem(last=False)
        return tuple(ids)

    def _rescan(self, wanted: Collection[str]) -> None:
        """Find the offsets of ``wanted`` ids with one pass over the file."""
        found: list[tuple[int, str]] = []
        with self.path.open("rb") as fh, self.path.open("rb") as reader:
            for offset, key in iter_messages(fh, reader):
                if key in wanted:
                    found.append((offset, key))
                else:
                    self._remember([(offset, key)])
        self._remember(found)

    # -- folders and scopes ------------------------------------------------

    def _stat(self) -> os.stat_result:
        try:
            return self.path.stat()
        except OSError as exc:
            raise ConfigError(f"mbox file is gone: {self.path}", field="path") from exc

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int]:
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def is_takeout(self) -> bool:
        """Whether the file is a Google Takeout export (its first message says)."""
        key = self._key(self._stat())
        if self._takeout is None or self._takeout[0] != key:
            found = False
            with self.path.open("rb") as fh:
                first = next(iter_separators(fh), None)
                message = read_message(fh, first, headers_only=True) if first is not None else None
            if message is not None:
                block = message[1]
                found = bool(
                    header_values(block, b"X-Gmail-Labels") or header_values(block, b"X-GM-THRID")
                )
            self._takeout = (key, found)
        return self._takeout[1]

    def folders(self) -> Sequence[Folder]:
        """Takeout: one folder per label found (one streaming scan, cached);
        otherwise the single folder ``"mbox"``."""
        if not self.is_takeout():
            return [Folder(SCOPE_ID, self.path.stem, FolderKind.INBOX)]
        key = self._key(self._stat())
        if self._labels is None or self._labels[0] != key:
            labels: dict[str, None] = {}
            with self.path.open("rb") as scan, self.path.open("rb") as reader:
                for offset in iter_separators(scan):
                    message = read_message(reader, offset, headers_only=True)
                    if message is not None:
                        labels.update(dict.fromkeys(labels_of(message[1])))
            self._labels = (key, tuple(labels))
        return [label_folder(label) for label in self._labels[1]]

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        """The single scope of the file, when any folder is selected."""
        if not folders:
            return []
        if self.is_takeout():
            return [Scope(SCOPE_ID)]
        return [Scope(SCOPE_ID, folder) for folder in folders if folder.id == SCOPE_ID][:1]

    # -- cursors -----------------------------------------------------------

    def _cursor(self, fh: BinaryIO, size: int, mtime_ns: int, inode: int) -> str:
        state = {
            "size": size,
            "mtime_ns": mtime_ns,
            "inode": inode,
            "head_hash": _head_hash(fh, size),
        }
        return json.dumps(state, sort_keys=True)

    def snapshot(self, scope: Scope) -> str:
        st = self._stat()
        with self.path.open("rb") as fh:
            return self._cursor(fh, st.st_size, st.st_mtime_ns, st.st_ino)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """Messages appended since ``cursor``; ``CursorExpired`` on any rewrite."""
        try:
            state = json.loads(cursor)
            old_size, old_mtime = int(state["size"]), int(state["mtime_ns"])
            old_inode, old_hash = int(state["inode"]), str(state["head_hash"])
        except (ValueError, TypeError, KeyError) as exc:
            raise CursorExpired("unreadable mbox cursor") from exc
        st = self._stat()
        if (st.st_size, st.st_mtime_ns, st.st_ino) == (old_size, old_mtime, old_inode):
            return ChangeSet((), (), cursor)
        if st.st_ino != old_inode or st.st_size <= old_size:
            raise CursorExpired("mbox rewritten")
        with self.path.open("rb") as fh, self.path.open("rb") as reader:
            if _head_hash(fh, old_size) != old_hash:
                raise CursorExpired("mbox rewritten")
            if old_size > 0 and next(iter_separators(fh, old_size, st.st_size), None) != old_size:
                raise CursorExpired("mbox rewritten")
            found: list[tuple[int, str]] = []
            for item in iter_messages(fh, reader, old_size, st.st_size):
                found.append(item)
                if len(found) > self.page_size:
                    break
            if len(found) > self.page_size:
                rest = found[self.page_size][0]
                new_cursor = self._cursor(fh, rest, st.st_mtime_ns, st.st_ino)
                ids = self._remember(found[: self.page_size])
                return ChangeSet(ids, (), new_cursor, complete=False)
            new_cursor = self._cursor(fh, st.st_size, st.st_mtime_ns, st.st_ino)
        return ChangeSet(self._remember(found), (), new_cursor)

    # -- listing and fetching ---------------------------------------------

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Ids in file order, ``page_size`` at a time; tokens are byte offsets."""
        try:
            start = int(page) if page else 0
        except ValueError as exc:
            raise CursorExpired(f"invalid mbox page token {page!r}") from exc
        if start < 0:
            raise CursorExpired(f"invalid mbox page token {page!r}")
        found: list[tuple[int, str]] = []
        with self.path.open("rb") as fh, self.path.open("rb") as reader:
            for item in iter_messages(fh, reader, start):
                found.append(item)
                if len(found) > self.page_size:
                    break
        following = str(found[self.page_size][0]) if len(found) > self.page_size else None
        return IdPage(self._remember(found[: self.page_size]), following)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """The raw messages with these ids (headers only for ``METADATA``)."""
        takeout = self.is_takeout()
        headers_only = detail is Detail.METADATA
        rescanned = False
        with self.path.open("rb") as fh:
            for provider_id in ids:
                offset = self._locate(fh, provider_id)
                if offset is None and not rescanned:
                    self._rescan(set(ids))
                    rescanned = True
                    offset = self._locate(fh, provider_id)
                oversize: int | None = None
                if offset is None:
                    message = None
                elif headers_only:
                    message = read_message(fh, offset, headers_only=True)
                else:
                    sized = read_sized(fh, offset, self.limits.max_message_bytes)
                    message = sized[:2] if sized is not None else None
                    oversize = sized[2] if sized is not None else None
                if message is None:
                    yield FetchedMessage(provider_id, error="not found")
                    continue
                from_line, raw = message
                folders: tuple[str, ...] = (SCOPE_ID,)
                thread_hint = None
                if takeout:
                    block = header_block(raw)
                    folders = labels_of(block)
                    threads = header_values(block, b"X-GM-THRID")
                    thread_hint = threads[0] if threads and threads[0] else None
                yield FetchedMessage(
                    provider_id,
                    raw=raw,
                    folders=folders,
                    thread_hint=thread_hint,
                    date=from_line_date(from_line),
                    oversize=oversize,
                )

    def _locate(self, fh: BinaryIO, provider_id: str) -> int | None:
        offset = self._offsets.get(provider_id)
        if offset is None or message_key(fh, offset) != provider_id:
            return None
        return offset

    def watch(self, scope: Scope) -> None:
        """Not supported: files are polled."""

    def close(self) -> None:
        """Forget cached state; files are only open during a call."""
        self._takeout = None
        self._labels = None
        self._offsets.clear()
