"""The mbox format: finding messages, reading them, Takeout headers.

Helpers of ``commlink.providers.files.mbox``; pure functions over open binary
files and bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from typing import BinaryIO

from ...model import Folder, FolderKind

__all__ = [
    "IGNORED_LABELS",
    "from_line_date",
    "gmail_label_kind",
    "header_values",
    "iter_messages",
    "iter_separators",
    "label_folder",
    "labels_of",
    "message_key",
    "read_message",
    "read_sized",
    "split_labels",
]

_CHUNK = 1 << 20
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
# Takeout's own system labels: a fixed English vocabulary, unlike the
# localised folder names of ``providers.folder_names`` (a label "Junk" or
# "Archive" is one the user made).
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
    # The three bytes before ``start`` tell whether a From line there follows
    # a blank line; the file reads as if it began with a blank line.
    context = min(start, 3)
    fh.seek(start - context)
    buf = (b"\n\n" + fh.read(context))[-3:] if start < 3 else fh.read(context)
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
        line = line_content(buf[line_start : min(line_end, line_start + _MAX_LINE)])
        before = buf[max(0, j - 2) : j]
        prev_blank = before.endswith(b"\n") or before == b"\n\r"
        if base + line_start >= start and _is_separator(line, prev_blank):
            yield base + line_start
        pos = line_start


def message_key(fh: BinaryIO, offset: int) -> str | None:
    """The id of the message at ``offset``: a hash of its From_ line and
    header block (``None`` when no message starts there).

    It does not depend on where the message sits, so it survives a rewrite
    that moves the message.
    """
    message = read_message(fh, offset, headers_only=True)
    if message is None:
        return None
    first, headers = message
    return hashlib.blake2b(first + b"\n" + headers, digest_size=8).hexdigest()


def iter_messages(
    fh: BinaryIO, reader: BinaryIO, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, str]]:
    """``(offset, id)`` of each message that begins in ``[start, stop)``.

    ``fh`` is scanned; ``reader`` (another handle on the same file) reads
    each message's header for its id.
    """
    for offset in iter_separators(fh, start, stop):
        key = message_key(reader, offset)
        if key is not None:
            yield offset, key


def line_content(line: bytes) -> bytes:
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
    first = line_content(first_line)
    if not _is_separator(first, prev_blank=True):
        return None
    if headers_only:
        return first, _read_headers(fh)
    body_start = offset + len(first_line)
    end = next(iter_separators(fh, body_start, first_chunk=_MESSAGE_CHUNK), None)
    fh.seek(body_start)
    return first, _entry(fh.read() if end is None else fh.read(end - body_start))


def read_sized(fh: BinaryIO, offset: int, limit: int) -> tuple[bytes, bytes, int | None] | None:
    """Like ``read_message``, for a size limit: ``(From_ line, message,
    None)``, or ``(From_ line, its headers, its size)`` when the message
    takes more than ``limit`` bytes of the file (the body is not read)."""
    fh.seek(offset)
    first_line = fh.readline(_MAX_LINE)
    first = line_content(first_line)
    if not _is_separator(first, prev_blank=True):
        return None
    body_start = offset + len(first_line)
    end = next(iter_separators(fh, body_start, first_chunk=_MESSAGE_CHUNK), None)
    size = (os.fstat(fh.fileno()).st_size if end is None else end) - body_start
    fh.seek(body_start)
    if size > limit:
        return first, _read_headers(fh), size
    return first, _entry(fh.read(size)), None


def _entry(data: bytes) -> bytes:
    """An mbox entry's message: ``>From `` escapes undone (mboxrd), the
    blank line that ends the entry dropped."""
    if b">From " in data:
        data = _ESCAPED_LINE.sub(rb"\1", data)
    if data.endswith(b"\r\n\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n\n"):
        data = data[:-1]
    return data


def _read_headers(fh: BinaryIO) -> bytes:
    """The header lines from the current position up to the first blank line."""
    out = bytearray()
    at_line_start = True
    while len(out) <= _MAX_HEADER:
        piece = fh.readline(_MAX_LINE)
        if not piece:
            break
        if at_line_start:
            stripped = line_content(piece)
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


def _decode_header(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return text


def labels_of(block: bytes) -> tuple[str, ...]:
    found: list[str] = []
    for value in header_values(block, b"X-Gmail-Labels"):
        found.extend(split_labels(value))
    return tuple(dict.fromkeys(label for label in found if label.lower() not in IGNORED_LABELS))


def label_folder(label: str) -> Folder:
    kind = gmail_label_kind(label)
    parent, _, leaf = label.rpartition("/")
    if kind is not FolderKind.CUSTOM or not parent:
        return Folder(label, label, kind)
    return Folder(label, leaf, kind, parent=parent)
