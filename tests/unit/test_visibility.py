from __future__ import annotations

from datetime import datetime, timezone

import pytest

from commlink.addresses import parse_address
from commlink.model import (
    Attachment,
    Attendee,
    ChannelSettings,
    Detail,
    Direction,
    Event,
    EventStatus,
    Message,
    Participant,
    Role,
    Visibility,
)
from commlink.policy.visibility import (
    detail_for,
    effective_visibility,
    minimise_event,
    minimise_message,
    redact_event,
    redact_message,
    redact_summary,
)
from commlink.records import EventSummary, MessageView, ThreadSummary

WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)
M, S, FULL = Visibility.METADATA, Visibility.SUBJECT, Visibility.FULL
PEOPLE = (Participant(parse_address("a@client.io"), Role.FROM),)
FILE = Attachment("deck.pdf", "application/pdf", 1234)


@pytest.mark.parametrize(
    ("visibility", "detail"), [(M, Detail.METADATA), (S, Detail.FULL), (FULL, Detail.FULL)]
)
def test_detail_follows_visibility(visibility: Visibility, detail: Detail) -> None:
    assert detail_for(ChannelSettings(owner="me@acme.com", visibility=visibility)) is detail


class TestMinimise:
    message = Message(
        provider_id="p",
        message_id="m",
        date=WHEN,
        subject="Pricing",
        participants=PEOPLE,
        body="secret body",
        snippet="secret",
        attachments=(FILE,),
        calendar_parts=("BEGIN:VCALENDAR",),
    )

    def test_metadata_drops_content_keeps_metadata(self) -> None:
        stored = minimise_message(self.message, M)
        assert stored.body is None
        assert stored.snippet == ""
        assert stored.calendar_parts == ()
        assert stored.subject == "Pricing"
        assert stored.participants == PEOPLE
        assert stored.attachments == (FILE,)
        assert stored.message_id == "m"

    @pytest.mark.parametrize("visibility", [S, FULL])
    def test_owner_keeps_everything_otherwise(self, visibility: Visibility) -> None:
        assert minimise_message(self.message, visibility) == self.message

    def test_event(self) -> None:
        e = Event(
            "e",
            "u",
            WHEN,
            WHEN,
            title="Call",
            description="agenda",
            location="Room 1",
            conference_url="https://meet.example/x?pwd=1",
            organizer=Attendee(parse_address("o@x.example"), organizer=True),
        )
        stored = minimise_event(e, M)
        assert (stored.description, stored.location, stored.conference_url) == ("", "", "")
        assert (stored.title, stored.organizer) == ("Call", e.organizer)
        assert minimise_event(stored, M) is stored
        assert minimise_event(e, S) == e


class TestEffective:
    def test_owner_sees_everything(self) -> None:
        assert effective_visibility("u1", [("u2", M), ("u1", M)]) is FULL

    def test_most_generous_channel_wins(self) -> None:
        assert effective_visibility("u9", [("u1", M), ("u2", S)]) is S
        assert effective_visibility("u9", [("u1", FULL), ("u2", M)]) is FULL
        assert effective_visibility("u9", [("u1", M)]) is M

    def test_nothing_means_metadata(self) -> None:
        assert effective_visibility("u1", []) is M


class TestRedact:
    summary = ThreadSummary("t", PEOPLE, WHEN, WHEN, 2, FULL, subject="Pricing", snippet="hi")
    view = MessageView(
        "m",
        WHEN,
        Direction.INCOMING,
        PEOPLE,
        FULL,
        subject="Pricing",
        body="b",
        attachments=(FILE,),
    )
    event = EventSummary(
        "u",
        WHEN,
        WHEN,
        False,
        EventStatus.CONFIRMED,
        FULL,
        title="Call",
        description="agenda",
        location="Room",
        conference_url="https://meet.example/x",
    )

    def test_summary(self) -> None:
        m = redact_summary(self.summary, M)
        assert (m.subject, m.snippet, m.visibility) == (None, None, M)
        assert m.participants == PEOPLE
        assert m.message_count == 2
        s = redact_summary(self.summary, S)
        assert (s.subject, s.snippet, s.visibility) == ("Pricing", None, S)
        assert redact_summary(self.summary, FULL) == self.summary

    def test_message(self) -> None:
        m = redact_message(self.view, M)
        assert (m.subject, m.body, m.attachments) == (None, None, ())
        assert m.participants == PEOPLE
        s = redact_message(self.view, S)
        assert (s.subject, s.body, s.attachments, s.visibility) == ("Pricing", None, (), S)
        assert redact_message(self.view, FULL) == self.view

    def test_event(self) -> None:
        m = redact_event(self.event, M)
        assert (m.title, m.description, m.location, m.conference_url) == (None,) * 4
        assert (m.start, m.uid, m.visibility) == (WHEN, "u", M)
        s = redact_event(self.event, S)
        assert (s.title, s.description, s.location, s.conference_url) == ("Call", None, None, None)
        assert redact_event(self.event, FULL) == self.event

    def test_redaction_never_reveals_more_than_stored(self) -> None:
        hidden = redact_summary(self.summary, M)
        assert redact_summary(hidden, FULL).subject is None
