"""Open message files ahead of the one being read, and have the kernel read
them in meanwhile.

A Maildir export on disk is thousands of small files that the kernel's own
read-ahead, which works within one file, never anticipates: each cold
file costs a disk round trip while the process waits. ``ReadAhead`` keeps
the next ``READ_AHEAD_FILES`` files open with a ``posix_fadvise(WILLNEED)``
hint, so their pages arrive while earlier messages are parsed and stored,
with no thread (the interpreter lock would cost the parser more than a
thread saves). Where ``posix_fadvise`` does not exist (macOS, Windows)
nothing is opened ahead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

__all__ = ["READ_AHEAD_FILES", "ReadAhead"]

#: Files held open ahead of the one being read (file descriptors per fetch).
READ_AHEAD_FILES = 32

_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)


class ReadAhead:
    """Files ``0 .. count - 1`` of a fetch, opened ahead of their turn.

    ``path(index)`` names a file (``None``: not known, left to the caller);
    ``length`` bytes of each are hinted (0: the whole file). ``take(index)``
    returns the descriptor opened for that file, or ``None`` (the caller
    opens it itself), and opens the ones after it. ``close`` closes what
    was not taken.
    """

    def __init__(
        self, path: Callable[[int], str | None], count: int, flags: int, length: int = 0
    ) -> None:
        self._path = path
        self._count = count if _WILLNEED is not None else 0
        self._flags = flags
        self._length = length
        self._open: dict[int, int] = {}
        self._next = 0

    def take(self, index: int) -> int | None:
        end = min(index + 1 + READ_AHEAD_FILES, self._count)
        while self._next < end:
            self._hint(self._next)
            self._next += 1
        return self._open.pop(index, None)

    def _hint(self, index: int) -> None:
        path = self._path(index)
        if path is None or _WILLNEED is None:
            return
        try:
            fd = os.open(path, self._flags)
        except OSError:  # gone or unreadable: the caller's own open says why
            return
        with contextlib.suppress(OSError):  # a hint only
            os.posix_fadvise(fd, 0, self._length, _WILLNEED)
        self._open[index] = fd

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()
