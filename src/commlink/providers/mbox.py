"""An mbox file as a mail source, including Google Takeout exports.

A message's provider id is the byte offset of its ``From `` line, so a fetch
seeks straight to it. The file is read in chunks and never held in memory.
A full listing goes through the file in file order, which stands in for
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
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from pathlib import Path
from typing import BinaryIO

from ..errors import ConfigError, CursorExpired
from ..model import Detail, Folder, FolderKind
from ..ports import ChangeSet, FetchedMessage, IdPage, Scope

__all__ = ["MboxProvider", "gmail_label_kind", "split_labels"]

SCOPE_ID = "mbox"
_CHUNK = 1 << 20
_HEAD = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEADER = 1 << 20
# A From_ line: "From sender Mon Jan  1 10:00:00 [+0000] 2024" (asctime date).
_FROM_DATE = re.compile(
    rb"(?:[A-Za-z]{3},? +)?([A-Za-z]{3}) +(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"(?: +([+-]\d{4}|[A-Za-z]{1,5}))? +(\d{4})(?: +([+-]\d{4}))?"
)
_HAS_TIME = re.compile(rb"\d{1,2}:\d{2}")
_ESCAPED_FROM = re.compile(rb">+From ")
_ESCAPED_LINE = re.compile(rb"(?m)^>(>*From )")
_MESSAGE_CHUNK = 16 * 1024
_MONTHS = {
    m: i
    for i, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun",
         b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"),
        start=1,
    )
}  # fmt: skip
_LABEL_KINDS = {
    "inbox": FolderKind.INBOX,
    "sent": FolderKind.SENT,
    "sent mail": FolderKind.SENT,
    "important": FolderKind.IMPORTANT,
    "starred": FolderKind.STARRED,
    "spam": FolderKind.SPAM,
    "trash": FolderKind.TRASH,
    "drafts": FolderKind.DRAFTS,
    "draft": FolderKind.DRAFTS,
    "archived": FolderKind.ARCHIVE,
    "chat": FolderKind.CUSTOM,
}
#: Takeout labels that are states, not folders.
IGNORED_LABELS = frozenset({"opened", "unread"})


def gmail_label_kind(label: str) -> FolderKind:
    """The folder kind of a Takeout label (``Category *`` labels are categories)."""
    lowered = label.strip().lower()
    if lowered.startswith("category "):
        return FolderKind.CATEGORY
    return _LABEL_KINDS.get(lowered, FolderKind.CUSTOM)


def split_labels(value: str) -> tuple[str, ...]:
    """Split an ``X-Gmail-Labels`` value on commas outside double quotes."""
    labels: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            labels.append("".join(current))
            current = []
        else:
            current.append(char)
    labels.append("".join(current))
    return tuple(dict.fromkeys(label.strip() for label in labels if label.strip()))


def _is_separator(line: bytes, prev_blank: bool) -> bool:
    """Whether a line (without its end of line) starts a new message.

    A ``From `` line counts after a blank line (or at the start of the file)
    when it carries a time of day, and anywhere when it is a complete From_
    line with an asctime date; this keeps unescaped body lines such as
    "From here on ..." from splitting a message.
    """
    if not line.startswith(b"From "):
        return False
    sender, _, rest = line[5:].partition(b" ")
    if not sender.strip():
        return False
    if prev_blank:
        return _HAS_TIME.search(rest) is not None
    return _FROM_DATE.match(rest.lstrip()) is not None


def from_line_date(line: bytes) -> datetime | None:
    """The date of a From_ line (UTC when it names no offset), else ``None``."""
    _, _, rest = line[5:].partition(b" ")
    found = _FROM_DATE.search(rest)
    if found is None:
        return None
    month = _MONTHS.get(found.group(1).lower())
    if month is None:
        return None
    zone = found.group(8) or found.group(6) or b""
    offset = timedelta(0)
    if zone[:1] in (b"+", b"-"):
        sign = -1 if zone[:1] == b"-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    try:
        local = datetime(
            int(found.group(7)),
            month,
            int(found.group(2)),
            int(found.group(3)),
            int(found.group(4)),
            int(found.group(5) or 0),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None
    return local.astimezone(timezone.utc)


def iter_separators(
    fh: BinaryIO, start: int = 0, stop: int | None = None, *, first_chunk: int | None = None
) -> Iterator[int]:
    """Offsets of the From_ lines that begin in ``[start, stop)``.

    Reads in chunks (``first_chunk`` bytes first, doubling up to 1 MiB);
    memory stays flat whatever the file size.
    """
    context = min(start, 3)
    fh.seek(start - context)
    buf = b"\n\n" if start == 0 else fh.read(context)
    base = start - len(buf)  # file offset of buf[0]
    remaining = None if stop is None else stop - start
    pos = max(0, len(buf) - 1)
    eof = False
    chunk_size = _CHUNK if first_chunk is None else max(1, min(first_chunk, _CHUNK))

    def read() -> bytes:
        nonlocal remaining, eof, chunk_size
        size = chunk_size if remaining is None else min(chunk_size, remaining)
        chunk_size = min(2 * chunk_size, _CHUNK)
        chunk = fh.read(size) if size > 0 else b""
        if remaining is not None:
            remaining -= len(chunk)
        eof = not chunk
        return chunk

    while True:
        j = buf.find(b"\nFrom ", pos)
        if j < 0:
            if eof:
                return
            keep = max(0, max(pos, len(buf) - 5) - 3)
            pos = max(pos, len(buf) - 5) - keep
            buf = buf[keep:] + read()
            base += keep
            continue
        line_start = j + 1
        eol = buf.find(b"\n", line_start)
        if eol < 0 and not eof and len(buf) - line_start < _MAX_LINE:
            buf += read()
            continue
        line_end = eol if eol >= 0 else len(buf)
        line = _content(buf[line_start : min(line_end, line_start + _MAX_LINE)])
        before = buf[max(0, j - 2) : j]
        prev_blank = before.endswith(b"\n") or before == b"\n\r"
        if base + line_start >= start and _is_separator(line, prev_blank):
            yield base + line_start
        pos = line_start


def _content(line: bytes) -> bytes:
    """A line without its end of line (LF or CRLF)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    return line[:-1] if line.endswith(b"\r") else line


def read_message(fh: BinaryIO, offset: int, headers_only: bool) -> tuple[bytes, bytes] | None:
    """``(From_ line, message bytes)`` of the message at ``offset``.

    ``>From `` escapes are undone (mboxrd) and the blank line that ends an
    mbox entry is dropped. ``None`` when no message starts at ``offset``.
    """
    fh.seek(offset)
    first_line = fh.readline(_MAX_LINE)
    first = _content(first_line)
    if not _is_separator(first, prev_blank=True):
        return None
    if headers_only:
        return first, _read_headers(fh)
    body_start = offset + len(first_line)
    end = next(iter_separators(fh, body_start, first_chunk=_MESSAGE_CHUNK), None)
    fh.seek(body_start)
    data = fh.read() if end is None else fh.read(end - body_start)
    if b">From " in data:
        data = _ESCAPED_LINE.sub(rb"\1", data)
    if data.endswith(b"\r\n\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n\n"):
        data = data[:-1]
    return first, data


def _read_headers(fh: BinaryIO) -> bytes:
    """The header lines from the current position up to the first blank line."""
    out = bytearray()
    at_line_start = True
    while len(out) <= _MAX_HEADER:
        piece = fh.readline(_MAX_LINE)
        if not piece:
            break
        if at_line_start:
            stripped = _content(piece)
            if not stripped or _is_separator(stripped, prev_blank=False):
                break
            if _ESCAPED_FROM.match(piece):
                piece = piece[1:]
        out += piece
        at_line_start = piece.endswith(b"\n")
    return bytes(out)


def header_values(block: bytes, name: bytes) -> list[str]:
    """The decoded values of header ``name`` in a header block (unfolded)."""
    values: list[str] = []
    prefix = name.lower() + b":"
    current: bytearray | None = None
    for line in block.split(b"\n"):
        if not line.strip(b"\r"):
            break
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current += b" " + line.strip()
            continue
        if current is not None:
            values.append(_decode_header(bytes(current)))
            current = None
        if line[: len(prefix)].lower() == prefix:
            current = bytearray(line[len(prefix) :].strip())
    if current is not None:
        values.append(_decode_header(bytes(current)))
    return values


def _header_block(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    return raw[: min(ends) + 1] if ends else raw


def _decode_header(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return text


def _labels(block: bytes) -> tuple[str, ...]:
    found: list[str] = []
    for value in header_values(block, b"X-Gmail-Labels"):
        found.extend(split_labels(value))
    return tuple(dict.fromkeys(label for label in found if label.lower() not in IGNORED_LABELS))


def _label_folder(label: str) -> Folder:
    kind = gmail_label_kind(label)
    parent, _, leaf = label.rpartition("/")
    if kind is not FolderKind.CUSTOM or not parent:
        return Folder(label, label, kind)
    return Folder(label, leaf, kind, parent=parent)


def _head_hash(fh: BinaryIO, size: int) -> str:
    fh.seek(0)
    return hashlib.sha256(fh.read(min(size, _HEAD))).hexdigest()


class MboxProvider:
    """A mailbox read from one mbox file (a ``MailProvider``).

    Provider ids are decimal byte offsets; one scope, ``"mbox"``, covers the
    file. Page tokens are offsets to continue from.
    """

    def __init__(self, path: str | os.PathLike[str], *, page_size: int = 500) -> None:
        self.path = Path(path)
        if not self.path.is_file() or not os.access(self.path, os.R_OK):
            raise ConfigError(f"not a readable mbox file: {self.path}", field="path")
        self.page_size = max(1, page_size)
        self._takeout: tuple[tuple[int, int, int], bool] | None = None
        self._labels: tuple[tuple[int, int, int], tuple[str, ...]] | None = None

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
                        labels.update(dict.fromkeys(_labels(message[1])))
            self._labels = (key, tuple(labels))
        return [_label_folder(label) for label in self._labels[1]]

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
        with self.path.open("rb") as fh:
            if _head_hash(fh, old_size) != old_hash:
                raise CursorExpired("mbox rewritten")
            offsets = iter_separators(fh, old_size, st.st_size)
            first = next(offsets, None)
            if old_size > 0 and first != old_size:
                raise CursorExpired("mbox rewritten")
            found = [] if first is None else [first]
            for offset in offsets:
                found.append(offset)
                if len(found) > self.page_size:
                    break
            if len(found) > self.page_size:
                rest = found[self.page_size]
                new_cursor = self._cursor(fh, rest, st.st_mtime_ns, st.st_ino)
                ids = tuple(str(o) for o in found[: self.page_size])
                return ChangeSet(ids, (), new_cursor, complete=False)
            new_cursor = self._cursor(fh, st.st_size, st.st_mtime_ns, st.st_ino)
        return ChangeSet(tuple(str(o) for o in found), (), new_cursor)

    # -- listing and fetching ---------------------------------------------

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Offsets in file order, ``page_size`` at a time."""
        try:
            start = int(page) if page else 0
        except ValueError as exc:
            raise CursorExpired(f"invalid mbox page token {page!r}") from exc
        if start < 0:
            raise CursorExpired(f"invalid mbox page token {page!r}")
        found: list[int] = []
        with self.path.open("rb") as fh:
            for offset in iter_separators(fh, start):
                found.append(offset)
                if len(found) > self.page_size:
                    break
        ids = tuple(str(o) for o in found[: self.page_size])
        following = str(found[self.page_size]) if len(found) > self.page_size else None
        return IdPage(ids, following)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        """The raw messages at these offsets (headers only for ``METADATA``)."""
        takeout = self.is_takeout()
        headers_only = detail is Detail.METADATA
        with self.path.open("rb") as fh:
            for provider_id in ids:
                try:
                    offset = int(provider_id)
                except ValueError:
                    offset = -1
                message = read_message(fh, offset, headers_only) if offset >= 0 else None
                if message is None:
                    yield FetchedMessage(provider_id, error="not found")
                    continue
                from_line, raw = message
                folders: tuple[str, ...] = (SCOPE_ID,)
                thread_hint = None
                if takeout:
                    block = _header_block(raw)
                    folders = _labels(block)
                    threads = header_values(block, b"X-GM-THRID")
                    thread_hint = threads[0] if threads and threads[0] else None
                yield FetchedMessage(
                    provider_id,
                    raw=raw,
                    folders=folders,
                    thread_hint=thread_hint,
                    date=from_line_date(from_line),
                )

    def watch(self, scope: Scope) -> None:
        """Not supported: files are polled."""

    def close(self) -> None:
        """Forget cached state; files are only open during a call."""
        self._takeout = None
        self._labels = None
