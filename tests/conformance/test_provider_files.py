"""The file providers (mbox, Maildir, .ics) pass the provider conformance suites."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import attrs
import pytest

from commlink.providers.files.ics import IcsProvider
from commlink.providers.files.maildir import MaildirProvider
from commlink.providers.files.mbox import MboxProvider
from commlink.testing.provider_conformance import (
    CalendarProviderConformance,
    MailProviderConformance,
)


def _bump(path: Path) -> None:
    """Make sure a rewrite is visible in mtime even on coarse clocks."""
    stamp = time.time_ns() + 1_000_000_000
    import os

    os.utime(path, ns=(stamp, stamp))


@attrs.define
class MboxHarness:
    path: Path
    provider: MboxProvider = attrs.field(init=False)
    messages: list[bytes] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.path.write_bytes(b"")
        self.provider = MboxProvider(self.path)

    def _write(self) -> None:
        body = b"".join(
            b"From sender@example.invalid Mon Mar  2 09:00:00 2026\n"
            + raw.replace(b"\r\n", b"\n")
            + b"\n"
            for raw in self.messages
        )
        self.path.write_bytes(body)

    def add(self, folder_id: str, raw: bytes) -> None:
        self.messages.append(raw)
        with self.path.open("ab") as out:
            out.write(b"From sender@example.invalid Mon Mar  2 09:00:00 2026\n")
            out.write(raw.replace(b"\r\n", b"\n") + b"\n")

    def delete(self, folder_id: str, message_id: str) -> None:
        self.messages = [m for m in self.messages if f"<{message_id}>".encode() not in m]
        self._write()
        _bump(self.path)

    def inbox(self) -> str:
        return self.provider.folders()[0].id


@attrs.define
class MaildirHarness:
    root: Path
    provider: MaildirProvider = attrs.field(init=False)
    count: int = 0

    def __attrs_post_init__(self) -> None:
        for sub in ("cur", "new", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.provider = MaildirProvider(self.root)

    def add(self, folder_id: str, raw: bytes) -> None:
        self.count += 1
        (self.root / "new" / f"{1_700_000_000 + self.count}.M{self.count}P1.host").write_bytes(raw)
        _bump(self.root / "new")

    def delete(self, folder_id: str, message_id: str) -> None:
        for sub in ("cur", "new"):
            for path in (self.root / sub).iterdir():
                if f"<{message_id}>".encode() in path.read_bytes():
                    path.unlink()
                    _bump(self.root / sub)

    def inbox(self) -> str:
        return next(f for f in self.provider.folders() if f.kind.value == "inbox").id


def _ics_event(uid: str, title: str, start: datetime, attendees: tuple[str, ...]) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    people = "".join(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}\r\n" for a in attendees)
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{start.strftime(fmt)}\r\n"
        f"DTSTART:{start.strftime(fmt)}\r\nDTEND:{(start + timedelta(hours=1)).strftime(fmt)}\r\n"
        f"SUMMARY:{title}\r\n{people}END:VEVENT\r\n"
    )


@attrs.define
class IcsHarness:
    path: Path
    provider: IcsProvider = attrs.field(init=False)
    events: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._write()
        self.provider = IcsProvider(self.path)

    def _write(self) -> None:
        text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        text += "".join(self.events.values()) + "END:VCALENDAR\r\n"
        self.path.write_text(text)
        _bump(self.path)

    def put_event(
        self, calendar_id: str, uid: str, title: str, start: datetime, attendees: tuple[str, ...]
    ) -> None:
        self.events[uid] = _ics_event(uid, title, start, attendees)
        self._write()

    def delete_event(self, calendar_id: str, uid: str) -> None:
        self.events.pop(uid, None)
        self._write()

    def calendar_id(self) -> str:
        return self.provider.calendars()[0].id


class TestMboxProvider(MailProviderConformance):
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[MboxHarness]:
        harness = MboxHarness(tmp_path / "mail.mbox")
        yield harness
        harness.provider.close()


class TestMaildirProvider(MailProviderConformance):
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[MaildirHarness]:
        harness = MaildirHarness(tmp_path / "Maildir")
        yield harness
        harness.provider.close()


class TestIcsProvider(CalendarProviderConformance):
    changes_may_need_rescan = True

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[IcsHarness]:
        harness = IcsHarness(tmp_path / "calendar.ics")
        yield harness
        harness.provider.close()
