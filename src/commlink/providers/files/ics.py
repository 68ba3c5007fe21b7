"""``.ics`` files as a calendar source.

The path is one ``.ics`` file or a folder of them; each file is a calendar
and a scope. An event's provider id is its UID within the file: a series
master and its overrides share it and come back together. Files are small,
so any change to a file raises ``CursorExpired`` and the engine re-lists it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from ...calendar.ical import parse_calendar, skipped_uids
from ...closing import Closing
from ...errors import ConfigError, CursorExpired, NotFound
from ...model import Event, Folder, FolderKind
from ...ports import ChangeSet, FetchedEvent, IdPage, Scope

__all__ = ["IcsProvider"]

_CALNAME = re.compile(rb"^X-WR-CALNAME:(.*)$", re.MULTILINE | re.IGNORECASE)
_HEAD = 64 * 1024


@attrs.frozen(slots=True)
class _Parsed:
    key: tuple[int, int]
    series: dict[str, tuple[Event, ...]]
    skipped: dict[str, str]
    order: tuple[str, ...]


def _calendar_name(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return path.stem
    found = _CALNAME.search(head)
    name = found.group(1).strip().decode("utf-8", "replace") if found else ""
    return name.replace("\\,", ",").replace("\\;", ";") or path.stem


class IcsProvider(Closing):
    """One ``.ics`` file, or a folder of them, as a ``CalendarProvider``."""

    def __init__(self, path: str | os.PathLike[str], *, page_size: int = 500) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            if not os.access(self.path, os.R_OK | os.X_OK):
                raise ConfigError(f"unreadable folder: {self.path}", field="path")
            self._folder = self.path
        elif self.path.is_file() and os.access(self.path, os.R_OK):
            self._folder = self.path.parent
        else:
            raise ConfigError(f"not a readable .ics file or folder: {self.path}", field="path")
        self.page_size = max(1, page_size)
        self._parsed: dict[str, _Parsed] = {}

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        try:
            return sorted(
                p for p in self._folder.iterdir() if p.suffix.lower() == ".ics" and p.is_file()
            )
        except OSError as exc:
            raise ConfigError(f"unreadable folder: {self.path}", field="path") from exc

    def _belongs(self, calendar_id: str) -> bool:
        if self.path.is_file() or not self.path.exists():
            return calendar_id == self.path.name
        return Path(calendar_id).name == calendar_id and calendar_id.lower().endswith(".ics")

    def _file(self, scope: Scope) -> Path:
        candidate = self._folder / scope.id
        if not self._belongs(scope.id) or not candidate.is_file():
            raise NotFound(f"calendar file {scope.id!r} is gone")
        return candidate

    def calendars(self) -> Sequence[Folder]:
        """One calendar per file (id: the file name; name: ``X-WR-CALNAME`` or the stem)."""
        return [Folder(p.name, _calendar_name(p), FolderKind.CALENDAR) for p in self._files()]

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return [
            Scope(c.id, c)
            for c in calendars
            if self._belongs(c.id) and (self._folder / c.id).is_file()
        ]

    # -- cursors -----------------------------------------------------------

    def _key(self, scope: Scope) -> tuple[int, int]:
        try:
            st = self._file(scope).stat()
        except FileNotFoundError as exc:
            raise NotFound(f"calendar file {scope.id!r} is gone") from exc
        return (st.st_size, st.st_mtime_ns)

    def snapshot(self, scope: Scope) -> str:
        size, mtime_ns = self._key(scope)
        return json.dumps({"size": size, "mtime_ns": mtime_ns}, sort_keys=True)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """Empty when the file is unchanged (one ``stat``); else ``CursorExpired``."""
        try:
            state = json.loads(cursor)
            old = (int(state["size"]), int(state["mtime_ns"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise CursorExpired("unreadable ics cursor") from exc
        if self._key(scope) != old:
            raise CursorExpired("calendar file changed")
        return ChangeSet((), (), cursor)

    # -- listing and fetching ---------------------------------------------

    def _parse(self, scope: Scope) -> _Parsed:
        key = self._key(scope)
        cached = self._parsed.get(scope.id)
        if cached is not None and cached.key == key:
            return cached
        try:
            data = self._file(scope).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"calendar file {scope.id!r} is gone") from exc
        result = parse_calendar(data, calendar_id=scope.id)
        series: dict[str, list[Event]] = {}
        for event in result.events:
            series.setdefault(event.uid, []).append(attrs.evolve(event, provider_id=event.uid))
        # newest first: a series counts by its latest start
        order = sorted(series, key=lambda uid: max(e.start for e in series[uid]), reverse=True)
        skipped = {uid: code for uid, code in skipped_uids(result).items() if uid not in series}
        parsed = _Parsed(
            key=key,
            series={uid: tuple(events) for uid, events in series.items()},
            skipped=skipped,
            order=(*order, *sorted(skipped)),
        )
        self._parsed[scope.id] = parsed
        return parsed

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """UIDs, newest first; the page token is the index to continue from."""
        try:
            start = int(page) if page else 0
        except ValueError as exc:
            raise CursorExpired(f"invalid ics page token {page!r}") from exc
        order = self._parse(scope).order
        end = max(0, start) + self.page_size
        return IdPage(order[max(0, start) : end], str(end) if end < len(order) else None)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        """Each UID's events (a series with its overrides), or why it has none."""
        parsed = self._parse(scope)
        for uid in ids:
            events = parsed.series.get(uid)
            if events is not None:
                yield FetchedEvent(uid, events)
            elif uid in parsed.skipped:
                yield FetchedEvent(uid, error=parsed.skipped[uid])
            else:
                yield FetchedEvent(uid, error="not found")

    def close(self) -> None:
        """Forget parsed files; files are only open during a call."""
        self._parsed.clear()
