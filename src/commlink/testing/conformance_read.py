"""Read-side conformance tests: visibility, timelines, paging and events."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from ..errors import InvalidInput
from ..model import Attachment, EventStatus, Participant, Role, Visibility
from ..ports import Store
from ..records import EventRecord, PageRequest, Target, TargetKind, Viewer, Window
from ..stores.common import MAX_SUMMARY_MESSAGES, MAX_SUMMARY_PARTICIPANTS
from .conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
    UTC,
    addr,
    all_events,
    all_threads,
    batch,
    channel,
    event,
    links,
    message,
    person,
    setup_channels,
)

__all__ = ["ReadTests"]

FULL, SUBJECT, METADATA = Visibility.FULL, Visibility.SUBJECT, Visibility.METADATA
OWNER, OTHER = Viewer("u1"), Viewer("u2")
SECRETS = ("Secret subject", "secret body", "secret snippet", "secret.pdf", "Secret title")


def _secret_data(store: Store) -> None:
    store.commit(
        batch(
            messages=(
                message(
                    "m1",
                    thread="t1",
                    subject="Secret subject",
                    body="secret body",
                    snippet="secret snippet",
                    attachments=(Attachment("secret.pdf", "application/pdf", 10),),
                ),
            ),
            events=(event("e1", title="Secret title"),),
            links=(links(ALICE, "p1"),),
        )
    )


class ReadTests:
    """Mixed into ``StoreConformance``; needs the ``store`` fixture."""

    @pytest.mark.parametrize("visibility", [METADATA, SUBJECT, FULL])
    def test_visibility_applied_for_other_viewers(
        self, store: Store, visibility: Visibility
    ) -> None:
        setup_channels(store, ("c1", "u1", visibility))
        _secret_data(store)
        (summary,) = all_threads(store, person("p1"), OTHER)
        view = store.thread("t1", OTHER)
        (meeting,) = all_events(store, person("p1"), OTHER)
        assert view is not None
        (msg,) = view.messages
        assert summary.visibility is visibility is msg.visibility is meeting.visibility
        shown_subject = visibility is not METADATA
        full = visibility is FULL
        assert (summary.subject == "Secret subject") is shown_subject
        assert (msg.subject == "Secret subject") is shown_subject
        assert (meeting.title == "Secret title") is shown_subject
        assert (summary.snippet == "secret snippet") is full
        assert (msg.body == "secret body") is full
        assert bool(msg.attachments) is full
        assert (meeting.description == "Agenda: discount") is full
        assert (meeting.location == "Room 4") is full
        assert (meeting.conference_url == "https://meet.example/abc") is full
        # participants, timestamps and attendees are always shown
        assert summary.participants[0].address.key == ALICE
        assert msg.date == T0
        assert meeting.start == T0
        assert {a.address.key for a in meeting.attendees} == {ALICE}
        if visibility is METADATA:
            text = repr((summary, view, meeting))
            assert not [s for s in SECRETS if s in text]
        if visibility is SUBJECT:
            text = repr((summary, view, meeting))
            assert [s for s in SECRETS if s in text] == ["Secret subject", "Secret title"]

    @pytest.mark.parametrize("visibility", [METADATA, SUBJECT])
    def test_owner_sees_everything(self, store: Store, visibility: Visibility) -> None:
        """Everything the channel stored; a ``METADATA`` channel stores no
        body, snippet, event description, location or conference link."""
        setup_channels(store, ("c1", "u1", visibility))
        _secret_data(store)
        (summary,) = all_threads(store, person("p1"), OWNER)
        view = store.thread("t1", OWNER)
        (meeting,) = all_events(store, person("p1"), OWNER)
        assert view is not None
        assert summary.visibility is FULL
        assert summary.subject == view.messages[0].subject == "Secret subject"
        assert view.messages[0].attachments[0].filename == "secret.pdf"
        assert meeting.title == "Secret title"
        stored = visibility is not METADATA
        assert (summary.snippet == "secret snippet") is stored
        assert (view.messages[0].body == "secret body") is stored
        assert (meeting.location == "Room 4") is stored
        assert (meeting.description == "Agenda: discount") is stored

    def test_visibility_is_most_open_channel(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", METADATA), ("c2", "u2", SUBJECT))
        store.commit(
            batch(messages=(message("a", "x@x", thread="t"),), links=(links(ALICE, "p1"),))
        )
        store.commit(batch("c2", messages=(message("b", "x@x", thread="t"),)))
        assert all_threads(store, person("p1"), Viewer("u3"))[0].visibility is SUBJECT
        assert all_threads(store, person("p1"), OWNER)[0].visibility is FULL
        assert all_threads(store, person("p1"), OTHER)[0].visibility is FULL
        store.save_channel(channel("c2", "u9", SUBJECT))  # the channel changed hands
        assert all_threads(store, person("p1"), OTHER)[0].visibility is SUBJECT

    def test_thread_summary_covers_the_whole_thread(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", METADATA))
        cc = Participant(addr(BOB), Role.CC)
        store.commit(
            batch(
                messages=(
                    message("m1", thread="t", subject="First", snippet="s1", extra=(cc,)),
                    message(
                        "m2",
                        thread="t",
                        date=T0 + timedelta(hours=1),
                        sender=CAROL,
                        subject="Second",
                        snippet="s2",
                        extra=(cc,),
                    ),
                ),
                links=(links(CAROL, "p1"),),
            )
        )
        store.commit(
            batch(
                "c2",
                messages=(
                    message("x3", thread="t", date=T0 + timedelta(hours=2), subject="Third"),
                ),
            )
        )
        (summary,) = all_threads(store, person("p1"), Viewer("u3"))
        assert summary.message_count == 3
        assert summary.first_at == T0
        assert summary.last_at == T0 + timedelta(hours=2)
        assert summary.visibility is FULL
        assert summary.subject == "Second"  # newest message the viewer may read
        assert summary.snippet == "s2"
        keys = [(p.address.key, p.role) for p in summary.participants]
        assert len(keys) == len(set(keys))
        assert set(keys) == {
            (ALICE, Role.FROM),
            (CAROL, Role.FROM),
            ("u1@org.example", Role.TO),
            (BOB, Role.CC),
        }
        view = store.thread("t", Viewer("u3"))
        assert view is not None
        assert [m.subject for m in view.messages] == ["First", "Second", None]
        assert [m.visibility for m in view.messages] == [FULL, FULL, METADATA]

    def test_a_long_thread_is_summarised_from_its_newest_messages(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", METADATA))
        longest = MAX_SUMMARY_MESSAGES + 5
        records = [
            message(
                f"m{i}",
                thread="t",
                date=T0 + timedelta(hours=i),
                to=(f"guest{i}@client.example",),
                subject=f"Update {i}",
                snippet=f"s{i}",
            )
            for i in range(longest)
        ]
        store.commit(batch(messages=tuple(records), links=(links(ALICE, "p1"),)))
        # the oldest message has a second copy, dated a day earlier, in another mailbox
        early = message("x0", "m0@mail.example", thread="t", date=T0 - timedelta(days=1))
        store.commit(batch("c2", messages=(early,)))
        for viewer in (Viewer("u1"), Viewer("u2"), Viewer("u3")):
            (summary,) = all_threads(store, person("p1"), viewer)
            assert summary.message_count == longest
            assert summary.first_at == T0 - timedelta(days=1)  # the earliest copy
            assert summary.last_at == T0 + timedelta(hours=longest - 1)
            assert summary.subject == f"Update {longest - 1}"
            # participants come from the newest messages only, oldest of them first
            guests = [p.address.key for p in summary.participants if p.role is Role.TO]
            first = longest - MAX_SUMMARY_MESSAGES
            expected = [f"guest{i}@client.example" for i in range(first, longest)]
            assert guests == expected[: MAX_SUMMARY_PARTICIPANTS - 1]  # after the sender

    def test_a_summary_lists_at_most_max_participants(self, store: Store) -> None:
        setup_channels(store)
        crowd = tuple(f"guest{i:03d}@client.example" for i in range(300))
        store.commit(
            batch(
                messages=(
                    message("m1", thread="t", to=crowd),
                    message("m2", thread="t", date=T0 + timedelta(hours=1), sender=CAROL),
                ),
                links=(links(ALICE, "p1"),),
            )
        )
        (summary,) = all_threads(store, person("p1"), OWNER)
        assert summary.message_count == 2
        keys = [p.address.key for p in summary.participants]
        assert keys == [ALICE, *crowd[: MAX_SUMMARY_PARTICIPANTS - 1]]
        view = store.thread("t", OWNER)
        assert view is not None
        assert len(view.messages[0].participants) == 301  # the thread itself lists everyone

    def test_invalid_participants_never_link(self, store: Store) -> None:
        setup_channels(store)
        broken = Participant(attrs.evolve(addr(""), valid=False, raw="not an address"), Role.CC)
        store.commit(
            batch(
                messages=(message("m1", sender=CAROL, extra=(broken,)),),
                links=(links(BOB, "p1"),),
            )
        )
        assert all_threads(store, person("p1"), OWNER) == []
        view = store.thread("thread-m1@mail.example", OWNER)
        assert view is not None
        assert broken in view.messages[0].participants

    def test_timeline_paging(self, store: Store) -> None:
        setup_channels(store)
        records = []
        for i in range(23):
            # pairs of threads share a last date, to exercise the tie-break
            when = T0 + timedelta(hours=i // 2)
            records.append(message(f"m{i}", thread=f"t{i:02d}", date=when))
            if i % 5 == 0:
                older = message(f"r{i}", thread=f"t{i:02d}", date=when - timedelta(days=9))
                records.append(attrs.evolve(older, thread_id=f"t{i:02d}"))
        store.commit(batch(messages=tuple(records), links=(links(ALICE, "p1"),)))
        seen: list[tuple[datetime, str]] = []
        after = None
        pages = 0
        while True:
            page = store.timeline(person("p1"), OWNER, PageRequest(limit=5, after=after))
            pages += 1
            assert len(page.items) <= 5
            seen.extend((s.last_at, s.thread_id) for s in page.items)
            if page.next is None:
                break
            after = page.next
        assert pages == 5
        assert len(seen) == 23 == len(set(seen))
        assert seen == sorted(seen, reverse=True)
        with pytest.raises(InvalidInput):
            store.timeline(person("p1"), OWNER, PageRequest(after="garbage!"))
        with pytest.raises(InvalidInput):
            store.timeline(person("p1"), OWNER, PageRequest(limit=0))

    def test_timeline_is_empty_for_unknown_targets(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),), links=(links(ALICE, "p1"),)))
        page = store.timeline(person("nobody"), OWNER)
        assert page.items == ()
        assert page.next is None
        company = Target(TargetKind.COMPANY, "p1")  # same id, other kind
        assert store.timeline(company, OWNER).items == ()

    def test_opportunity_timeline(self, store: Store) -> None:
        setup_channels(store)
        deal = Target(TargetKind.OPPORTUNITY, "o1")
        store.commit(
            batch(
                messages=(message("m1", thread="t1"), message("m2", thread="t2", sender=BOB)),
                links=(links(BOB, "o1", kind=TargetKind.OPPORTUNITY),),
            )
        )
        assert [s.thread_id for s in all_threads(store, deal, OWNER)] == ["t2"]
        assert store.linked_addresses(deal) == {BOB}

    def test_unknown_thread(self, store: Store) -> None:
        setup_channels(store)
        assert store.thread("missing", OWNER) is None
        assert store.thread("missing", OWNER, PageRequest(limit=3)) is None

    @pytest.mark.parametrize("visibility", [METADATA, SUBJECT, FULL])
    def test_html_is_shown_only_at_full(self, store: Store, visibility: Visibility) -> None:
        setup_channels(store, ("c1", "u1", visibility))
        record = message("m1", thread="t1")
        html = "<p>Secret <b>html</b></p>"
        store.commit(
            batch(messages=(attrs.evolve(record, message=attrs.evolve(record.message, html=html)),))
        )
        other = store.thread("t1", OTHER)
        owner = store.thread("t1", OWNER)
        assert other is not None
        assert owner is not None
        assert (other.messages[0].html == html) is (visibility is FULL)
        # the owner sees what the channel stored: a METADATA channel stores no HTML
        assert (owner.messages[0].html == html) is (visibility is not METADATA)
        assert "Secret <b>html" not in repr(other) or visibility is FULL

    def test_thread_pages_add_up_to_the_thread(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", SUBJECT))
        records = []
        for i in range(17):
            # pairs of messages share a date, to exercise the tie-break
            records.append(message(f"m{i}", f"m{i:02d}@x", thread="t", date=T0 + timedelta(i // 2)))
        store.commit(batch(messages=tuple(records)))
        # copies of one message differ in date between channels: each viewer's
        # order follows the copy it is shown
        store.commit(
            batch(
                "c2",
                messages=(
                    message("b1", "m03@x", thread="t", date=T0 - timedelta(days=5)),
                    message("b2", "m15@x", thread="t", date=T0 + timedelta(days=1)),
                    message("b3", "late@x", thread="t", date=T0 + timedelta(days=30)),
                ),
            )
        )
        for viewer in (OWNER, OTHER, Viewer("u3")):
            whole = store.thread("t", viewer)
            assert whole is not None
            assert whole.next is None
            assert len(whole.messages) == 18
            order = [(m.date, m.message_id) for m in whole.messages]
            assert order == sorted(order)
            for limit in (1, 4, 18, 50):
                shown: list[tuple[datetime, str, str | None]] = []
                after = None
                pages = 0
                while True:
                    view = store.thread("t", viewer, PageRequest(limit=limit, after=after))
                    assert view is not None
                    pages += 1
                    assert len(view.messages) <= limit
                    shown.extend((m.date, m.message_id, m.body) for m in view.messages)
                    if view.next is None:
                        break
                    after = view.next
                assert pages == -(-18 // limit)
                assert shown == [(m.date, m.message_id, m.body) for m in whole.messages]
        mine = store.thread("t", OWNER)
        theirs = store.thread("t", OTHER)
        assert mine is not None
        assert theirs is not None
        assert mine.messages[0].message_id == "m00@x"
        assert theirs.messages[0].message_id == "m03@x"  # u2's own, older copy

    def test_thread_paging_rejects_bad_pages(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1", thread="t"), message("m2", thread="t"))))
        with pytest.raises(InvalidInput):
            store.thread("t", OWNER, PageRequest(limit=0))
        with pytest.raises(InvalidInput):
            store.thread("t", OWNER, PageRequest(after="garbage!"))
        first = store.thread("t", OWNER, PageRequest(limit=1))
        assert first is not None
        assert first.next is not None
        last = store.thread("t", OWNER, PageRequest(limit=1, after=first.next))
        assert last is not None
        assert last.next is None
        assert [m.message_id for m in (*first.messages, *last.messages)] == [
            "m1@mail.example",
            "m2@mail.example",
        ]
        # a page after the end of a known thread is empty, not missing
        store.commit(batch(deleted=("m2",)))
        empty = store.thread("t", OWNER, PageRequest(limit=1, after=first.next))
        assert empty is not None
        assert (empty.messages, empty.next) == ((), None)

    def test_events_dedup_across_channels(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", METADATA))
        store.commit(batch(events=(event("e1", "shared-uid"),), links=(links(ALICE, "p1"),)))
        store.commit(batch("c2", events=(event("g1", "shared-uid", title="Renamed"),)))
        # one meeting; each channel keeps its copy and its owner sees it
        (meeting,) = all_events(store, person("p1"), Viewer("u3"))
        assert (meeting.title, meeting.visibility) == ("Pricing call", FULL)
        (meeting,) = all_events(store, person("p1"), Viewer("u2"))
        assert (meeting.title, meeting.visibility) == ("Renamed", FULL)
        store.remove_channel("c1")
        (meeting,) = all_events(store, person("p1"), Viewer("u3"))
        assert meeting.visibility is METADATA
        assert meeting.title is None
        assert store.known_ids("c2", "INBOX", ["g1", "e1"]) == {"g1"}

    def test_the_most_recent_copy_of_an_event_wins_in_a_channel(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))

        def version(provider_id: str, title: str, sequence: int) -> EventRecord:
            record = event(provider_id, "shared-uid", title=title)
            return attrs.evolve(record, event=attrs.evolve(record.event, sequence=sequence))

        # two copies in one channel (a calendar entry and an invitation, say)
        store.commit(
            batch(events=(version("e1", "Moved to Friday", 3),), links=(links(ALICE, "p1"),))
        )
        # a stale copy committed later does not win
        store.commit(batch(events=(version("g1", "Monday", 1),)))
        (meeting,) = all_events(store, person("p1"), Viewer("u1"))
        assert meeting.title == "Moved to Friday"
        store.commit(batch(events=(version("g1", "Cancelled?", 4),)))
        (meeting,) = all_events(store, person("p1"), Viewer("u1"))
        assert meeting.title == "Cancelled?"
        # another channel's newer copy is that channel's, not this one's
        store.commit(batch("c2", events=(version("x1", "Elsewhere", 9),)))
        (meeting,) = all_events(store, person("p1"), Viewer("u1"))
        assert meeting.title == "Cancelled?"
        (meeting,) = all_events(store, person("p1"), Viewer("u2"))
        assert meeting.title == "Elsewhere"

    def test_events_in_window_and_paging(self, store: Store) -> None:
        setup_channels(store)
        records = tuple(
            event(f"e{i}", start=T0 + timedelta(days=i), attendees=(ALICE if i % 3 else BOB,))
            for i in range(20)
        )
        store.commit(batch(events=records, links=(links(ALICE, "p1"),)))
        window = Window(T0 + timedelta(days=2, minutes=30), T0 + timedelta(days=15))
        found = all_events(store, person("p1"), OWNER, window, limit=3)
        starts = [e.start for e in found]
        expected = [T0 + timedelta(days=i) for i in range(2, 15) if i % 3]
        assert starts == expected
        assert len({(e.uid, e.start) for e in found}) == len(found)

    def test_weekly_series_with_override_and_cancellation(self, store: Store) -> None:
        setup_channels(store)
        paris = ZoneInfo("Europe/Paris")
        first = datetime(2025, 3, 10, 9, tzinfo=paris)
        week = timedelta(weeks=1)

        def moved(n: int) -> datetime:
            return datetime.combine((first + n * week).date(), first.time(), tzinfo=paris)

        series = (
            event(
                "s1",
                "series",
                start=first,
                recurrence=("RRULE:FREQ=WEEKLY;COUNT=10",),
                timezone_name="Europe/Paris",
            ),
            event(
                "s1",
                "series",
                start=moved(3) + timedelta(hours=5),
                recurrence_id=moved(3),
                title="Moved",
            ),
            event(
                "s1",
                "series",
                start=moved(4),
                recurrence_id=moved(4),
                status=EventStatus.CANCELLED,
            ),
        )
        store.commit(batch(events=series, links=(links(ALICE, "p1"),)))
        window = Window(moved(2) - timedelta(hours=1), moved(6))
        found = all_events(store, person("p1"), OWNER, window)
        assert [(e.start, e.title) for e in found] == [
            (moved(2), "Pricing call"),
            (moved(3) + timedelta(hours=5), "Moved"),
            (moved(5), "Pricing call"),
        ]
        # 09:00 Paris on both sides of the DST change of 2025-03-30
        assert [e.start.astimezone(paris).hour for e in found] == [9, 14, 9]
        assert [e.recurrence_id for e in found] == [moved(2), moved(3), moved(5)]
        everything = all_events(store, person("p1"), OWNER)
        assert len(everything) == 9
        # re-committing the provider id replaces its set of events
        store.commit(batch(events=series[:1]))
        assert len(all_events(store, person("p1"), OWNER)) == 10

    def test_cancelled_single_event_is_omitted(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(
                events=(event("e1", status=EventStatus.CANCELLED), event("e2")),
                links=(links(ALICE, "p1"),),
            )
        )
        assert [e.uid for e in all_events(store, person("p1"), OWNER)] == ["e2-uid"]

    def test_events_link_through_organizer(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(events=(event("e1", attendees=(BOB,)),), links=(links("u1@org.example", "p7"),))
        )
        assert [e.uid for e in all_events(store, person("p7"), OWNER)] == ["e1-uid"]
        assert all_events(store, person("p1"), OWNER) == []

    def test_events_reject_bad_pages_and_windows(self, store: Store) -> None:
        setup_channels(store)
        with pytest.raises(InvalidInput):
            store.events(person("p1"), OWNER, Window(datetime(2025, 1, 1), T0))
        wide = Window(T0, T0 + timedelta(days=1))
        with pytest.raises(InvalidInput):
            store.events(person("p1"), OWNER, wide, PageRequest(after="%%%"))
        assert store.events(person("p1"), OWNER, wide).items == ()

    def test_aware_datetimes_round_trip(self, store: Store) -> None:
        setup_channels(store)
        offset = datetime(2025, 6, 1, 23, 30, 0, 250, tzinfo=ZoneInfo("America/New_York"))
        store.commit(batch(messages=(message("m1", thread="t", date=offset),)))
        view = store.thread("t", OWNER)
        assert view is not None
        assert view.messages[0].date == offset
        assert view.messages[0].date.utcoffset() is not None
        assert T0.tzinfo is UTC
