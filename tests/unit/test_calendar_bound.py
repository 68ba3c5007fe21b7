"""A message's calendar parts are read as an invitation up to 512 KiB
together: reading calendar text costs 0.5-3 µs a character."""

from __future__ import annotations

import time

from commlink.calendar.invites import invitation
from commlink.mime.parse import MAX_CALENDAR_CHARS, parse_message


def _event(uid: str, extra: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260301T090000Z\r\nDTEND:20260301T100000Z\r\nSUMMARY:Review\r\n"
        "ORGANIZER:mailto:ann@a.example\r\n"
        f"{extra}END:VEVENT\r\n"
    )


def _calendar(*events: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\n"
        + "".join(events)
        + "END:VCALENDAR\r\n"
    )


def _message(*calendars: str) -> bytes:
    parts = "".join(
        f"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n{c}\r\n" for c in calendars
    )
    return (
        "From: Ann <ann@a.example>\r\nTo: Bob <bob@b.example>\r\nSubject: Review\r\n"
        "Message-ID: <i@a.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee you.\r\n" + parts + "--b--\r\n"
    ).encode()


def test_an_invitation_past_the_bound_is_not_read() -> None:
    # 100,000 nested alarms (2.6 MB) took 2.6 s to read, on every sync of it
    nested = "BEGIN:VALARM\r\n" * 100_000 + "END:VALARM\r\n" * 100_000
    huge = _calendar(_event("big@a.example", nested))
    assert len(huge) > MAX_CALENDAR_CHARS
    small = _calendar(_event("small@a.example"))
    began = time.monotonic()
    message = parse_message(_message(huge, small), provider_id="1")
    found = invitation(message)
    assert time.monotonic() - began < 1
    (kept,) = message.calendar_parts
    assert "small@a.example" in kept
    (warning,) = [w for w in message.warnings if w.startswith("calendar-too-large:")]
    assert int(warning.split(":")[1]) > MAX_CALENDAR_CHARS
    assert found is not None
    assert [e.uid for e in found.events] == ["small@a.example"]
