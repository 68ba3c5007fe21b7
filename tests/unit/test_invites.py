"""Meeting invitations in email: parsed, judged, stored with their message."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.calendar.invites import INVITE_CALENDAR, invitation, invite_id
from commlink.mime.parse import parse_message
from commlink.model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    Detail,
    EventStatus,
    Limits,
    ResponseStatus,
    Visibility,
)
from commlink.ports import Store
from commlink.records import Reason, Target, TargetKind, Viewer, Window
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Backoff
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
WINDOW = Window(NOW - timedelta(days=30), NOW + timedelta(days=30))
COMPANY = Target(TargetKind.COMPANY, "co")
ORGANIZER = "ann@client.example"


def ics(method: str, *, uid: str = "meet-1", sequence: int = 0, body: str = "") -> str:
    vevent = body or (
        f"UID:{uid}\r\nSEQUENCE:{sequence}\r\nDTSTAMP:20261120T100000Z\r\n"
        "DTSTART:20261201T150000Z\r\nDTEND:20261201T160000Z\r\nSUMMARY:Contract review\r\n"
        f"ORGANIZER;CN=Ann:mailto:{ORGANIZER}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{ORGANIZER}\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{OWNER}\r\n"
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Client//EN\r\n"
        f"METHOD:{method}\r\nBEGIN:VEVENT\r\n{vevent}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def invite_mail(n: int, calendar: str, *, sender: str = ORGANIZER) -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: {OWNER}\r\nSubject: Invitation {n}\r\n"
        f"Date: Fri, 20 Nov 2026 10:{n:02d}:00 +0000\r\nMessage-ID: <inv-{n}@client.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited.\r\n"
        "--b\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n"
        f"{calendar}\r\n--b--\r\n"
    ).encode()


def channel(**settings: object) -> Channel:
    base = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}), sync_invites=True)
    return Channel("ch", "u-owner", ChannelKind.MAIL, "fake", attrs.evolve(base, **settings))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'invites.sqlite'}")


@pytest.fixture
def directory() -> InMemoryDirectory:
    d = InMemoryDirectory()
    d.add_company("co", "Client", ["client.example"])
    d.add_person("ann", "Ann Client", [ORGANIZER], company_id="co")
    return d


def sync(store: Store, directory: InMemoryDirectory, provider: FakeMailProvider, **kw: object):
    engine = SyncEngine(
        store, directory, backoff=Backoff(base=10, cap=100, jitter=False), clock=lambda: NOW
    )
    return engine.run(channel(**kw), provider)


def meetings(store: Store) -> list[tuple[str, EventStatus, str | None]]:
    page = store.events(COMPANY, Viewer("u-owner"), WINDOW)
    return [(e.uid, e.status, e.title) for e in page.items]


def test_invitation_reads_request_events() -> None:
    message = parse_message(invite_mail(1, ics("REQUEST")), provider_id="m1", detail=Detail.FULL)
    found = invitation(message)
    assert found is not None
    assert found.provider_id == invite_id("m1") == "m1#invite"
    (event,) = found.events
    assert event.uid == "meet-1"
    assert event.calendar_id == INVITE_CALENDAR
    assert event.status is EventStatus.CONFIRMED
    statuses = {a.address.key: a.status for a in event.attendees}
    assert statuses[OWNER] is ResponseStatus.NEEDS_ACTION


def test_cancel_marks_events_cancelled_and_reply_is_not_applied() -> None:
    cancel = invitation(parse_message(invite_mail(2, ics("CANCEL", sequence=1)), provider_id="m2"))
    assert cancel is not None
    assert [e.status for e in cancel.events] == [EventStatus.CANCELLED]
    reply = invitation(parse_message(invite_mail(3, ics("REPLY")), provider_id="m3"))
    assert reply is not None
    assert reply.events == ()
    assert reply.ignored == ("REPLY",)
    assert reply.problem == ""


def test_message_without_calendar_has_no_invitation() -> None:
    plain = b"From: a@client.example\r\nSubject: hi\r\n\r\nbody\r\n"
    assert invitation(parse_message(plain, provider_id="m")) is None


def test_request_then_cancel_through_the_engine(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    report = sync(store, directory, provider)
    assert report.complete
    assert meetings(store) == [("meet-1", EventStatus.CONFIRMED, "Contract review")]

    provider.box.add("INBOX", invite_mail(2, ics("CANCEL", sequence=1)))
    sync(store, directory, provider)
    # meeting history leaves cancelled meetings out, as for calendar channels
    assert meetings(store) == []


def test_an_older_request_synced_later_does_not_undo_a_cancel(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(2, ics("CANCEL", sequence=1)))
    sync(store, directory, provider)
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST", sequence=0)))
    sync(store, directory, provider)
    assert meetings(store) == []
    # an update with a higher SEQUENCE brings it back
    provider.box.add("INBOX", invite_mail(3, ics("REQUEST", sequence=2)))
    sync(store, directory, provider)
    assert meetings(store) == [("meet-1", EventStatus.CONFIRMED, "Contract review")]


def test_invitation_goes_with_its_message(store, directory) -> None:
    provider = FakeMailProvider()
    item = provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    sync(store, directory, provider)
    assert len(meetings(store)) == 1
    # a full resync keeps it (its id is marked seen with the message's)
    engine = SyncEngine(store, directory, clock=lambda: NOW)
    engine.request_resync("ch")
    engine.run(channel(), provider)
    assert len(meetings(store)) == 1
    provider.box.delete("INBOX", item)
    sync(store, directory, provider)
    assert meetings(store) == []


def test_invites_are_off_unless_the_channel_opts_in(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    sync(store, directory, provider, sync_invites=False)
    assert meetings(store) == []


def test_metadata_channel_never_reads_invitations(store, directory) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    sync(store, directory, provider, visibility=Visibility.METADATA)
    assert meetings(store) == []


def test_internal_only_invitation_is_skipped_with_its_reason(store, directory) -> None:
    internal = ics("REQUEST").replace(ORGANIZER, "bob@home.example")
    provider = FakeMailProvider()
    # the message is kept (Ann is copied), the meeting is internal only
    raw = invite_mail(1, internal, sender="bob@home.example").replace(
        f"To: {OWNER}".encode(), f"To: {OWNER}\r\nCc: {ORGANIZER}".encode(), 1
    )
    provider.box.add("INBOX", raw)
    sync(store, directory, provider)
    skips = {s.provider_id: s for s in store.skips("ch", Viewer("u-owner"))}
    assert meetings(store) == []
    (skip,) = [s for pid, s in skips.items() if pid.endswith("#invite")]
    assert skip.reason is Reason.INTERNAL


def test_broken_invitation_is_recorded_and_the_message_kept(store, directory) -> None:
    broken = ics("REQUEST", body="UID:bad-1\r\nSUMMARY:No start\r\n")
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, broken))
    report = sync(store, directory, provider)
    assert report.imported == 1  # the message
    (skip,) = store.skips("ch", Viewer("u-owner"))
    assert skip.provider_id.endswith("#invite")
    assert skip.reason is Reason.INVALID
    assert "missing-dtstart" in skip.detail
    assert skip.message_id == "inv-1@client.example"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    updates=st.lists(
        st.tuples(st.sampled_from(["REQUEST", "CANCEL"]), st.integers(0, 50)),
        min_size=1,
        max_size=6,
        unique_by=lambda u: u[1],
    ),
    order=st.randoms(use_true_random=False),
    batch_size=st.integers(1, 4),
)
def test_the_latest_update_wins_whatever_order_mail_arrives_in(
    directory, updates: list[tuple[str, int]], order: random.Random, batch_size: int
) -> None:
    store, provider = MemoryStore(), FakeMailProvider()
    arrivals = list(enumerate(updates))
    order.shuffle(arrivals)
    engine = SyncEngine(store, directory, batch_size=batch_size, clock=lambda: NOW)
    for n, (method, sequence) in arrivals:
        provider.box.add("INBOX", invite_mail(n, ics(method, sequence=sequence)))
        if order.random() < 0.5:
            engine.run(channel(), provider)
    engine.run(channel(), provider)
    latest_method = max(updates, key=lambda u: u[1])[0]
    expected = [] if latest_method == "CANCEL" else [("meet-1", EventStatus.CONFIRMED)]
    assert [(uid, status) for uid, status, _ in meetings(store)] == expected
    assert len(store.skips("ch", Viewer("u-owner"))) == 0


_CANCEL = ics("CANCEL", sequence=9)
_FAILED = b"Authentication-Results: mx.home.example; dmarc=fail header.from=client.example\r\n"


@pytest.mark.parametrize(
    ("spoof", "detail"),
    [
        # someone else, who knows the UID, cancels it with a higher SEQUENCE
        (invite_mail(2, _CANCEL, sender="mallory@client.example"), "not sent by its organiser"),
        # the organiser's address in From, forged: the receiving server says so
        (_FAILED + invite_mail(2, _CANCEL), "did not verify"),
    ],
)
def test_only_the_organiser_may_change_a_meeting(store, directory, spoof, detail) -> None:
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    sync(store, directory, provider)
    provider.box.add("INBOX", spoof)
    sync(store, directory, provider)
    assert meetings(store) == [("meet-1", EventStatus.CONFIRMED, "Contract review")]
    (skip,) = [s for s in store.skips("ch", Viewer("u-owner")) if s.provider_id.endswith("#invite")]
    assert skip.reason is Reason.INVALID
    assert detail in skip.detail


def test_the_organiser_may_be_the_sender_header() -> None:
    raw = invite_mail(1, ics("REQUEST"), sender="pa@client.example").replace(
        b"Subject:", f"Sender: Ann <{ORGANIZER}>\r\nSubject:".encode(), 1
    )
    found = invitation(parse_message(raw, provider_id="m1"))
    assert found is not None
    assert len(found.events) == 1
    assert found.problem == ""


class _Poisoned(InMemoryDirectory):
    """A directory that fails on one address, as a host's might on bad data."""

    def people_by_addresses(self, keys):  # type: ignore[no-untyped-def]
        if "poison@client.example" in keys:
            raise ValueError("corrupt directory row")
        return super().people_by_addresses(keys)


def test_an_invitation_the_policy_cannot_judge_does_not_block_the_mail(store) -> None:
    directory = _Poisoned()
    directory.add_company("co", "Client", ["client.example"])
    directory.add_person("ann", "Ann Client", [ORGANIZER], company_id="co")
    poisoned = ics("REQUEST", uid="meet-2").replace(
        f"mailto:{OWNER}\r\n", f"mailto:{OWNER}\r\nATTENDEE:mailto:poison@client.example\r\n"
    )
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST")))
    provider.box.add("INBOX", invite_mail(2, poisoned))
    report = sync(store, directory, provider)
    assert report.complete
    assert report.imported == 3  # both messages and the good meeting
    assert meetings(store) == [("meet-1", EventStatus.CONFIRMED, "Contract review")]
    (skip,) = store.skips("ch", Viewer("u-owner"))
    assert skip.provider_id.endswith("#invite")
    assert skip.reason is Reason.ERROR
    assert "policy failed" in skip.detail


def test_an_invitation_to_a_crowd_is_capped_and_creates_no_contact(store, directory) -> None:
    # One outsider's invitation with thousands of attendees must not store
    # them all, nor turn each into a CRM contact (the default contact policy
    # creates attendees).
    crowd = "".join(
        f"ATTENDEE;CN=Guest {i}:mailto:guest{i}@firm{i % 97}.example\r\n" for i in range(3000)
    )
    body = (
        "UID:crowd-1\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:20261201T150000Z\r\n"
        f"SUMMARY:All hands\r\nORGANIZER;CN=Ann:mailto:{ORGANIZER}\r\n{crowd}"
    )
    provider = FakeMailProvider()
    provider.box.add("INBOX", invite_mail(1, ics("REQUEST", body=body)))
    report = sync(store, directory, provider)
    assert report.complete
    events = store.events(COMPANY, Viewer("u-owner"), WINDOW).items
    assert [e.uid for e in events] == ["crowd-1"]
    assert len(events[0].attendees) == Limits().max_participants
    assert directory.calls_to("create_contacts") == 0


def test_one_invitation_brings_at_most_max_invitation_events() -> None:
    from commlink.calendar.invites import MAX_INVITATION_EVENTS

    many = "".join(
        f"BEGIN:VEVENT\r\nUID:spam-{i}\r\nDTSTART:20261201T150000Z\r\nSUMMARY:s\r\n"
        f"ORGANIZER:mailto:{ORGANIZER}\r\nEND:VEVENT\r\n"
        for i in range(MAX_INVITATION_EVENTS + 200)
    )
    calendar = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n{many}END:VCALENDAR\r\n"
    message = parse_message(invite_mail(1, calendar), provider_id="m1")
    found = invitation(message)
    assert found is not None
    assert len(found.events) == MAX_INVITATION_EVENTS
    assert found.events[0].uid == "spam-0"
    assert f"invitation-truncated:{MAX_INVITATION_EVENTS + 200}" in found.events[-1].warnings
