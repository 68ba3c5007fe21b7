"""Opening mail or calendar files by what is on disk."""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigError
from ...model import Limits
from ...ports import CalendarProvider, MailProvider
from ..sizing import DEFAULT_LIMITS
from .ics import IcsProvider
from .maildir import MaildirProvider
from .mbox import MboxProvider

__all__ = ["IcsProvider", "MaildirProvider", "MboxProvider", "open_path"]


def _head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", field="path") from exc


def open_path(
    path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> MailProvider | CalendarProvider:
    """The provider for ``path`` (``limits`` bound what a mail provider reads).

    A file starting with ``From `` (or an empty ``.mbox`` file) is an mbox;
    a directory with ``cur``, ``new`` and ``tmp`` is a Maildir; an ``.ics``
    file, a file starting with ``BEGIN:VCALENDAR`` or a directory holding
    ``.ics`` files is a calendar. Anything else raises ``ConfigError``.
    """
    target = Path(path)
    if target.is_file():
        head = _head(target, 64).lstrip(b"\xef\xbb\xbf")
        if head.startswith(b"From ") or (not head and target.suffix.lower() == ".mbox"):
            return MboxProvider(target, limits=limits)
        if target.suffix.lower() == ".ics" or head.lstrip().upper().startswith(b"BEGIN:VCALENDAR"):
            return IcsProvider(target)
        raise ConfigError(f"neither an mbox nor an .ics file: {target}", field="path")
    if target.is_dir():
        if all((target / sub).is_dir() for sub in ("cur", "new", "tmp")):
            return MaildirProvider(target, limits=limits)
        try:
            has_ics = any(p.suffix.lower() == ".ics" and p.is_file() for p in target.iterdir())
        except OSError as exc:
            raise ConfigError(f"cannot read {target}: {exc.strerror or exc}", field="path") from exc
        if has_ics:
            return IcsProvider(target)
        raise ConfigError(f"neither a Maildir nor a folder of .ics files: {target}", field="path")
    raise ConfigError(f"no such file or folder: {target}", field="path")
