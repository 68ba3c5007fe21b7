"""A Maildir (with Maildir++ subfolders) as a mail source.

The root is INBOX; each ``.Name`` directory beside ``cur``/``new``/``tmp`` is
a folder (``.Foo.Bar`` is ``Bar`` inside ``Foo``), and each folder is a
scope. A message's provider id is the unique part of its file name (before
``:2,``), which survives flag changes. A quiet ``changes`` call costs two
``stat`` calls; any change raises ``CursorExpired`` and the sync engine
reconciles with a listing, skipping the ids it already has.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

from ...closing import Closing
from ...errors import ConfigError, CursorExpired, NotFound
from ...model import Detail, Folder, FolderKind, Limits
from ...ports import ChangeSet, FetchedMessage, IdPage, Scope
from ..folder_names import decode_modified_utf7, kind_from_path
from ..sizing import DEFAULT_LIMITS
from .attachment_source import FileAttachmentSource
from .read_ahead import ReadAhead

__all__ = ["INBOX", "MaildirProvider", "unique_name"]

INBOX = "INBOX"
_INFO = re.compile(r"[:!][12],[^/]*$")
# Directory mtimes within this much of the snapshot may hide a later change
# (coarse file system clocks); such a cursor is re-checked by counting.
_RACY_NS = 2_000_000_000
_MAX_HEADER = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_SortKey = tuple[int, int, str]


def unique_name(filename: str) -> str:
    """The unique part of a Maildir file name (without ``:2,FLAGS``)."""
    return _INFO.sub("", filename)


def _time_prefix(unique: str) -> int | None:
    head = unique.split(".", 1)[0]
    if head.isdigit() and len(head) <= 12:
        return int(head)
    return None


def _sort_key(unique: str) -> _SortKey:
    stamp = _time_prefix(unique)
    return (1, stamp, unique) if stamp is not None else (0, 0, unique)


def _date(unique: str) -> datetime | None:
    stamp = _time_prefix(unique)
    if stamp is None or stamp <= 0:
        return None
    try:
        return datetime.fromtimestamp(stamp, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _read(
    path: str, headers_only: bool, limit: int, fd: int | None = None
) -> tuple[bytes, int | None]:
    """The file's message, or its headers (with the file's size when that is
    above ``limit``: the body is not read); ``fd``: the file opened already
    (closed here either way).

    Plain ``os`` calls: a file object and a ``Path`` per message cost more
    than the reading itself.
    """
    if fd is None:
        fd = os.open(path, _OPEN_FLAGS)
    try:
        size: int | None = None
        if not headers_only:
            size = os.fstat(fd).st_size
            if size <= limit:
                data = _read_up_to(fd, size + 1)
                if len(data) > size:  # it grew since: read on, up to the limit
                    data += _read_up_to(fd, limit + 1 - len(data))
                if len(data) <= limit:
                    return data, None
                size = len(data)
                os.lseek(fd, 0, os.SEEK_SET)
        out = bytearray()
        with open(fd, "rb", closefd=False) as fh:
            for line in fh:
                if not line.strip(b"\r\n") or len(out) > _MAX_HEADER:
                    break
                out += line
        return bytes(out), size
    finally:
        os.close(fd)


def _read_up_to(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd``: fewer only at the end of the file."""
    data = os.read(fd, count)
    if len(data) == count or not data:
        return data
    chunks = [data]
    count -= len(data)
    while count > 0:
        data = os.read(fd, count)
        if not data:
            break
        chunks.append(data)
        count -= len(data)
    return b"".join(chunks)


class MaildirProvider(FileAttachmentSource, Closing):
    """A Maildir++ tree as a ``MailProvider``; one scope per folder.

    A message file longer than ``limits.max_message_bytes`` is read headers
    only and imported with the warning ``too-large``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        page_size: int = 500,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.root = Path(path)
        self.limits = limits
        if not all((self.root / sub).is_dir() for sub in ("cur", "new")) or not os.access(
            self.root, os.R_OK | os.X_OK
        ):
            raise ConfigError(f"not a readable Maildir: {self.root}", field="path")
        self.page_size = max(1, page_size)
        # per scope: unique name -> "cur/<file>" or "new/<file>" from the last scan
        self._names: dict[str, dict[str, str]] = {}
        # per scope: the sorted keys of a listing in progress, with the dir mtimes
        self._listing: dict[str, tuple[tuple[int, int], list[_SortKey]]] = {}

    def _dir(self, scope_id: str) -> Path:
        return self.root if scope_id == INBOX else self.root / f".{scope_id}"

    # -- folders and scopes ------------------------------------------------

    def folders(self) -> Sequence[Folder]:
        """INBOX plus every Maildir++ subfolder; top-level folders (and direct
        children of INBOX) get their kind from their names."""
        found = [Folder(INBOX, INBOX, FolderKind.INBOX)]
        with os.scandir(self.root) as entries:
            names = sorted(
                entry.name[1:]
                for entry in entries
                if entry.name.startswith(".")
                and entry.name not in (".", "..")
                and entry.is_dir()
                and ((Path(entry.path) / "cur").is_dir() or (Path(entry.path) / "new").is_dir())
            )
        for folder_id in names:
            if not folder_id or folder_id.upper() == INBOX:
                continue
            path = [decode_modified_utf7(part) for part in folder_id.split(".")]
            parent = folder_id.rpartition(".")[0] or None
            found.append(Folder(folder_id, path[-1], kind_from_path(path), parent=parent))
        return found

    def scopes(self, folders: Sequence[Folder]) -> Sequence[Scope]:
        return [Scope(f.id, f) for f in folders if self._dir(f.id).is_dir()]

    # -- scanning ----------------------------------------------------------

    def _mtimes(self, scope_id: str) -> tuple[int, int]:
        folder = self._dir(scope_id)
        found = []
        for sub in ("new", "cur"):
            try:
                found.append((folder / sub).stat().st_mtime_ns)
            except FileNotFoundError:
                found.append(0)
        if found == [0, 0] and not folder.is_dir():
            raise NotFound(f"Maildir folder {scope_id!r} is gone")
        return found[0], found[1]

    def _scan(self, scope_id: str) -> dict[str, str]:
        folder = self._dir(scope_id)
        names: dict[str, str] = {}
        for sub in ("new", "cur"):
            try:
                with os.scandir(folder / sub) as entries:
                    for entry in entries:
                        if not entry.name.startswith("."):
                            unique = unique_name(entry.name)
                            # "cur" + ":2,S": a handful of distinct values, shared
                            names[unique] = sys.intern(sub + entry.name[len(unique) :])
            except FileNotFoundError:
                continue
        self._names[scope_id] = names
        return names

    # -- cursors -----------------------------------------------------------

    def snapshot(self, scope: Scope) -> str:
        new_mtime, cur_mtime = self._mtimes(scope.id)
        count = len(self._scan(scope.id))
        return self._cursor(new_mtime, cur_mtime, count)

    @staticmethod
    def _cursor(new_mtime: int, cur_mtime: int, count: int) -> str:
        state = {
            "new_mtime_ns": new_mtime,
            "cur_mtime_ns": cur_mtime,
            "count": count,
            "checked_ns": time.time_ns(),
        }
        return json.dumps(state, sort_keys=True)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """Empty when nothing changed (two ``stat`` calls); else ``CursorExpired``."""
        try:
            state = json.loads(cursor)
            old = (int(state["new_mtime_ns"]), int(state["cur_mtime_ns"]))
            count, checked = int(state["count"]), int(state.get("checked_ns", 0))
        except (ValueError, TypeError, KeyError) as exc:
            raise CursorExpired("unreadable maildir cursor") from exc
        mtimes = self._mtimes(scope.id)
        if mtimes != old:
            raise CursorExpired("maildir changed")
        if checked - max(mtimes) >= _RACY_NS:
            return ChangeSet((), (), cursor)
        # the snapshot came within a clock tick of a change: count to be sure
        if len(self._scan(scope.id)) != count:
            raise CursorExpired("maildir changed")
        return ChangeSet((), (), self._cursor(*mtimes, count))

    # -- listing and fetching ---------------------------------------------

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Ids newest first (by the time prefix of the unique name, else by name).

        The page token is the sort key of the last id returned, so a page is
        right even when the folder changed in between.
        """
        after: _SortKey | None = None
        if page is not None:
            try:
                flag, stamp, name = json.loads(page)
                after = (int(flag), int(stamp), str(name))
            except (ValueError, TypeError) as exc:
                raise CursorExpired(f"invalid maildir page token {page!r}") from exc
        mtimes = self._mtimes(scope.id)
        cached = self._listing.get(scope.id)
        if after is None or cached is None or cached[0] != mtimes:
            keys = sorted(_sort_key(unique) for unique in self._scan(scope.id))
            cached = (mtimes, keys)
            self._listing[scope.id] = cached
        keys = cached[1]
        stop = len(keys) if after is None else bisect.bisect_left(keys, after)
        begin = max(0, stop - self.page_size)
        chunk = keys[begin:stop][::-1]
        if begin == 0:
            self._listing.pop(scope.id, None)
            return IdPage(tuple(key[2] for key in chunk))
        return IdPage(tuple(key[2] for key in chunk), json.dumps(list(chunk[-1])))

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """Raw messages by unique name (headers only for ``METADATA``)."""
        folder = os.fspath(self._dir(scope.id))
        names = self._names.get(scope.id)
        if names is None:
            names = self._scan(scope.id)
        limit = self.limits.max_message_bytes
        headers_only = detail is Detail.METADATA

        def path_of(index: int) -> str | None:  # by the current listing: a rescan renews it
            place = self._names.get(scope.id, names).get(ids[index])
            return None if place is None else f"{folder}/{place[:3]}/{ids[index]}{place[3:]}"

        ahead = ReadAhead(path_of, len(ids), _OPEN_FLAGS, _MAX_HEADER if headers_only else 0)
        try:
            yield from self._fetch(scope, folder, ids, names, headers_only, limit, ahead)
        finally:
            ahead.close()

    def _fetch(
        self,
        scope: Scope,
        folder: str,
        ids: Sequence[str],
        names: dict[str, str],
        headers_only: bool,
        limit: int,
        ahead: ReadAhead,
    ) -> Iterator[FetchedMessage]:
        rescanned = False
        for index, provider_id in enumerate(ids):
            data: bytes | None = None
            oversize: int | None = None
            error = "not found"
            opened = ahead.take(index)
            try:
                for attempt in range(2):
                    place = names.get(provider_id)
                    if place is not None:
                        path = f"{folder}/{place[:3]}/{provider_id}{place[3:]}"
                        fd, opened = opened, None
                        try:
                            data, oversize = _read(path, headers_only, limit, fd)
                            break
                        except FileNotFoundError:
                            pass
                        except OSError as exc:
                            error = f"unreadable: {exc.strerror or exc}"
                            break
                    if rescanned or attempt:
                        break
                    names = self._scan(scope.id)
                    rescanned = True
            finally:
                if opened is not None:  # no longer listed: gone since
                    os.close(opened)
            if data is None:
                yield FetchedMessage(provider_id, error=error)
                continue
            yield FetchedMessage(
                provider_id,
                raw=data,
                folders=(scope.id,),
                date=_date(provider_id),
                oversize=oversize,
            )

    def watch(self, scope: Scope) -> None:
        """Not supported: folders are polled."""

    def close(self) -> None:
        """Forget cached listings; files are only open during a call."""
        self._names.clear()
        self._listing.clear()
