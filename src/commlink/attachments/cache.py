"""The optional attachment cache: a port for hosts that want one, and two examples.

Attachment content is never stored by default. A host that wants fewer
round trips to the provider passes an ``AttachmentCache`` to
``open_attachment``; the cache is asked only after the viewer's right to the
content was checked, and keyed by channel, provider id and part, so one
channel's entry is never served for another's copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["AttachmentCache", "DirectoryAttachmentCache", "MemoryAttachmentCache", "cache_key"]


def cache_key(channel_id: str, provider_id: str, part: str) -> str:
    """A fixed-length key for one attachment of one channel's message."""
    text = "\x00".join((channel_id, provider_id, part))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@runtime_checkable
class AttachmentCache(Protocol):
    """Where a host keeps attachment content it has fetched."""

    def get(self, key: str) -> Iterator[bytes] | None:
        """The content kept under ``key`` in chunks, or ``None``."""
        ...

    def put(self, key: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` passed through; kept under ``key`` only once all were read."""
        ...


class MemoryAttachmentCache:
    """Keeps the most recently fetched attachments in memory, within ``max_bytes``
    in all; an attachment larger than ``max_entry_bytes`` is not kept."""

    def __init__(self, max_bytes: int = 64 * 2**20, max_entry_bytes: int = 8 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Iterator[bytes] | None:
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                return None
            self._entries.move_to_end(key)
        return iter((data,))

    def put(self, key: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        kept: list[bytes] | None = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if kept is not None and size <= self.max_entry_bytes:
                kept.append(chunk)
            else:
                kept = None
            yield chunk
        if kept is not None:
            self._keep(key, b"".join(kept))

    def _keep(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._size -= len(old) if old is not None else 0
            self._entries[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _key, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)


class DirectoryAttachmentCache:
    """Keeps attachments as files in ``directory`` (one per key, written to a
    temporary file and renamed when complete). It never evicts: pair it with
    the host's own clean-up, and keep the directory private (it holds mail)."""

    def __init__(self, directory: str | os.PathLike[str], chunk_bytes: int = 256 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.chunk_bytes = chunk_bytes

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def get(self, key: str) -> Iterator[bytes] | None:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            return None
        return self._read(handle)

    def _read(self, handle: BinaryIO) -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(self.chunk_bytes):
                yield chunk

    def put(self, key: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=".part-")
        done = False
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
            os.replace(name, self._path(key))
            done = True
        finally:
            if not done:
                Path(name).unlink(missing_ok=True)
