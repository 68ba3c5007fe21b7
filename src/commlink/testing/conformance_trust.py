"""Trust conformance tests: shared records never let one channel change another's view.

Anyone can send any mailbox a message carrying another message's Message-ID,
or an invitation carrying another meeting's UID. A store keeps content per
channel and shows each viewer one copy they are entitled to: their own
channel's, else (events) the organiser's channel's, else the copy of the
most open channel, at that channel's visibility.

Alice (``ua``) owns channel ``ca``; Bob (``ub``) owns ``cb``, whose mailbox
received a forged copy; Colin (``uc``) is a colleague who owns neither.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from ..model import Attachment, Direction, Visibility
from ..ports import Store
from ..records import EventRecord, MessageRecord, ThreadView, Viewer
from .conformance_data import (
    CAROL,
    T0,
    all_events,
    all_threads,
    attendee,
    batch,
    event,
    links,
    message,
    person,
    setup_channels,
)

__all__ = ["TrustTests"]

FULL, SUBJECT, METADATA = Visibility.FULL, Visibility.SUBJECT, Visibility.METADATA
ALICE_VIEW, BOB_VIEW, COLIN = Viewer("ua"), Viewer("ub"), Viewer("uc")
MALLORY = "mallory@evil.example"
SHARED = "shared@x"
#: what only Alice's copy holds
ALICE_SECRETS = ("Alice secret", "alice body", "alice snippet", "alice.pdf")


def _real(metadata_only: bool = False) -> MessageRecord:
    """Alice's message from Carol (a metadata-only channel stores no body)."""
    return message(
        "a1",
        SHARED,
        thread="t",
        sender=CAROL,
        to=("ua@org.example",),
        subject="Alice secret",
        body=None if metadata_only else "alice body",
        snippet="" if metadata_only else "alice snippet",
        attachments=(Attachment("alice.pdf", "application/pdf", 10),),
    )


def _forged() -> MessageRecord:
    """The same Message-ID sent to Bob by Mallory, with other content."""
    return message(
        "b1",
        SHARED,
        thread="t",
        date=T0 + timedelta(days=30),
        sender=MALLORY,
        to=("ub@org.example",),
        subject="Forged",
        body="forged body",
        snippet="forged snippet",
        attachments=(Attachment("forged.exe", "application/octet-stream", 10),),
        direction=Direction.INCOMING,
    )


def _view(store: Store, viewer: Viewer) -> ThreadView:
    view = store.thread("t", viewer)
    assert view is not None
    assert len(view.messages) == 1
    return view


def _everything(store: Store, viewer: Viewer) -> str:
    """All a viewer can read about the shared message, as text."""
    seen = [store.thread("t", viewer)]
    for person_id in ("p1", "p9"):
        seen.extend(all_threads(store, person(person_id), viewer))
    return repr(seen)


def _setup(store: Store, alice: Visibility, bob: Visibility) -> None:
    setup_channels(store, ("ca", "ua", alice), ("cb", "ub", bob))
    store.relink([links(CAROL, "p1"), links(MALLORY, "p9")])


def _meeting(
    provider_id: str,
    *,
    title: str,
    sequence: int,
    location: str,
    organizer: str = "ua@org.example",
) -> EventRecord:
    record = event(provider_id, "board-uid", title=title, attendees=(CAROL,))
    changed = attrs.evolve(
        record.event,
        sequence=sequence,
        location=location,
        organizer=attendee(organizer, organizer=True),
    )
    return attrs.evolve(record, event=changed)


class TrustTests:
    """Mixed into ``StoreConformance``; needs the ``store`` fixture."""

    def test_a_forged_copy_never_changes_the_owners_view(self, store: Store) -> None:
        _setup(store, alice=SUBJECT, bob=FULL)
        real, forged = _real(), _forged()
        store.commit(batch("ca", messages=(real,)))
        store.commit(batch("cb", messages=(forged,)))

        (mine,) = _view(store, ALICE_VIEW).messages
        assert (mine.subject, mine.body, mine.visibility) == ("Alice secret", "alice body", FULL)
        assert mine.participants == real.message.participants
        assert mine.attachments == real.message.attachments
        assert mine.date == T0
        for person_id in ("p1", "p9"):  # on p9's timeline through the forged copy only
            (summary,) = all_threads(store, person(person_id), ALICE_VIEW)
            assert (summary.subject, summary.snippet) == ("Alice secret", "alice snippet")
            assert summary.participants == real.message.participants
            assert summary.last_at == T0

        (bobs,) = _view(store, BOB_VIEW).messages
        assert (bobs.subject, bobs.body) == ("Forged", "forged body")
        assert bobs.participants == forged.message.participants

        # Colin may see Alice's subjects and all of Bob's mail: he is shown
        # Bob's copy at Bob's visibility, never Alice's content through it
        (colins,) = _view(store, COLIN).messages
        assert (colins.subject, colins.body, colins.visibility) == ("Forged", "forged body", FULL)
        assert colins.participants == forged.message.participants
        text = _everything(store, COLIN)
        assert [s for s in ALICE_SECRETS if s in text] == []

    @pytest.mark.parametrize("refetch", ["same", "metadata-only", "changed"])
    def test_a_forged_copy_first_then_the_real_one(self, store: Store, refetch: str) -> None:
        _setup(store, alice=METADATA, bob=FULL)
        store.commit(batch("cb", messages=(_forged(),)))
        store.commit(batch("ca", messages=(_real(metadata_only=True),)))
        again = _real(metadata_only=True)
        if refetch == "changed":
            again = attrs.evolve(
                again, message=attrs.evolve(again.message, subject="Alice secret, edited")
            )
        store.commit(batch("ca", messages=(again,), generation=2))

        (mine,) = _view(store, ALICE_VIEW).messages
        assert mine.subject == again.message.subject
        assert mine.participants == again.message.participants
        (colins,) = _view(store, COLIN).messages
        assert (colins.subject, colins.body) == ("Forged", "forged body")
        text = _everything(store, COLIN)
        assert "Alice secret" not in text
        assert "ua@org.example" not in text  # Alice's copy's participants too
        (bobs,) = _view(store, BOB_VIEW).messages
        assert bobs.subject == "Forged"

    def test_a_metadata_only_copy_stays_hidden_behind_a_full_copy(self, store: Store) -> None:
        _setup(store, alice=METADATA, bob=FULL)
        store.commit(batch("ca", messages=(_real(metadata_only=True),)))
        store.commit(batch("cb", messages=(_forged(),)))
        # the thread is on Carol's person through Alice's copy; Colin reads Bob's
        (summary,) = all_threads(store, person("p1"), COLIN)
        assert (summary.subject, summary.visibility) == ("Forged", FULL)
        assert {p.address.key for p in summary.participants} == {MALLORY, "ub@org.example"}
        assert "Alice secret" not in _everything(store, COLIN)
        # without Bob's copy, Colin sees Alice's at her channel's visibility
        store.commit(batch("cb", deleted=("b1",)))
        (summary,) = all_threads(store, person("p1"), COLIN)
        assert (summary.subject, summary.visibility) == (None, METADATA)
        assert {p.address.key for p in summary.participants} == {CAROL, "ua@org.example"}
        assert "Alice secret" not in _everything(store, COLIN)

    def test_third_parties_see_the_most_open_copy_with_its_direction(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", METADATA), ("cb", "ub", SUBJECT), ("cc", "ux", SUBJECT))
        sent = message("x1", SHARED, thread="t", subject="Sent", direction=Direction.OUTGOING)
        store.commit(batch("ca", messages=(message("a1", SHARED, thread="t", subject="Got"),)))
        store.commit(batch("cc", messages=(attrs.evolve(sent, direction=Direction.INCOMING),)))
        store.commit(batch("cb", messages=(sent,)))
        # cb and cc tie on visibility: the lowest channel id wins
        (colins,) = _view(store, COLIN).messages
        assert (colins.subject, colins.visibility, colins.direction) == (
            "Sent",
            SUBJECT,
            Direction.OUTGOING,
        )
        assert colins.body is None
        (mine,) = _view(store, ALICE_VIEW).messages
        assert (mine.subject, mine.direction, mine.visibility) == ("Got", Direction.INCOMING, FULL)

    @pytest.mark.parametrize("forged_sequence", [1, 7])
    @pytest.mark.parametrize("forged_first", [False, True])
    def test_a_same_uid_event_never_changes_the_organisers_meeting(
        self, store: Store, forged_sequence: int, forged_first: bool
    ) -> None:
        _setup(store, alice=SUBJECT, bob=FULL)
        real = _meeting("e1", title="Board meeting", sequence=1, location="Room 1")
        forged = _meeting(
            "g1", title="Cancelled", sequence=forged_sequence, location="https://evil.example"
        )
        commits = [batch("ca", events=(real,)), batch("cb", events=(forged,))]
        for commit in reversed(commits) if forged_first else commits:
            store.commit(commit)

        (mine,) = all_events(store, person("p1"), ALICE_VIEW)
        assert (mine.title, mine.location, mine.visibility) == ("Board meeting", "Room 1", FULL)
        (bobs,) = all_events(store, person("p1"), BOB_VIEW)
        assert (bobs.title, bobs.location) == ("Cancelled", "https://evil.example")
        # Colin gets the organiser's copy (Alice's channel), at its visibility
        (colins,) = all_events(store, person("p1"), COLIN)
        assert (colins.title, colins.location, colins.visibility) == (
            "Board meeting",
            None,
            SUBJECT,
        )
        # the organiser's channel moves the meeting: a newer version in that channel
        moved = _meeting("e2", title="Board meeting (moved)", sequence=2, location="Room 2")
        stale = _meeting("e3", title="Board meeting (stale)", sequence=0, location="Room 0")
        store.commit(batch("ca", events=(moved,)))
        store.commit(batch("ca", events=(stale,)))  # older, committed later: ignored
        for viewer in (ALICE_VIEW, COLIN):
            (seen,) = all_events(store, person("p1"), viewer)
            assert seen.title == "Board meeting (moved)"
        (bobs,) = all_events(store, person("p1"), BOB_VIEW)
        assert bobs.title == "Cancelled"

    def test_without_the_organisers_copy_the_most_open_copy_is_shown(self, store: Store) -> None:
        _setup(store, alice=SUBJECT, bob=FULL)
        store.commit(
            batch(
                "ca",
                events=(
                    _meeting("e1", title="Mine", sequence=1, location="Room 1", organizer=CAROL),
                ),
            )
        )
        store.commit(
            batch(
                "cb",
                events=(
                    _meeting("g1", title="Bob's", sequence=1, location="Room 2", organizer=CAROL),
                ),
            )
        )
        (colins,) = all_events(store, person("p1"), COLIN)
        assert (colins.title, colins.location, colins.visibility) == ("Bob's", "Room 2", FULL)
        (mine,) = all_events(store, person("p1"), ALICE_VIEW)
        assert mine.title == "Mine"

    def test_removing_one_copy_leaves_the_others(self, store: Store) -> None:
        _setup(store, alice=FULL, bob=FULL)
        store.commit(
            batch(
                "ca",
                messages=(_real(),),
                events=(_meeting("e1", title="Board meeting", sequence=1, location="Room 1"),),
            )
        )
        store.commit(
            batch(
                "cb",
                messages=(_forged(),),
                events=(_meeting("g1", title="Cancelled", sequence=5, location="evil"),),
            )
        )
        assert MALLORY in store.stored_addresses()
        store.commit(batch("cb", deleted=("b1", "g1")))
        assert store.known_ids("cb", "INBOX", ["b1", "g1"]) == set()
        assert MALLORY not in store.stored_addresses()
        assert all_threads(store, person("p9"), COLIN) == []  # linked through the forged copy only
        for viewer in (ALICE_VIEW, BOB_VIEW, COLIN):
            (seen,) = _view(store, viewer).messages
            assert (seen.subject, seen.body) == ("Alice secret", "alice body")
            (meeting,) = all_events(store, person("p1"), viewer)
            assert meeting.title == "Board meeting"
        store.commit(batch("cb", messages=(_forged(),)))
        store.remove_channel("ca")  # Alice's copy goes with her channel
        assert CAROL not in store.stored_addresses()
        assert all_threads(store, person("p1"), COLIN) == []
        assert all_events(store, person("p1"), COLIN) == []
        for viewer in (ALICE_VIEW, COLIN):
            (seen,) = _view(store, viewer).messages
            assert (seen.subject, seen.visibility) == ("Forged", FULL)
        assert store.threads_by_message_ids([SHARED]) == {SHARED: "t"}
        store.commit(batch("cb", deleted=("b1",)))
        assert store.thread("t", COLIN) is None
        assert store.threads_by_message_ids([SHARED]) == {}
        assert store.stored_addresses() == set()

    def test_references_are_kept_per_copy(self, store: Store) -> None:
        _setup(store, alice=FULL, bob=FULL)
        real = message("a1", "reply@x", thread="t1", in_reply_to=("root@x",))
        forged = message("b1", "reply@x", thread="t1", in_reply_to=("other@x",))
        store.commit(batch("ca", messages=(real,)))
        store.commit(batch("cb", messages=(forged,)))
        found = store.threads_by_message_ids(["root@x", "other@x"])
        assert found == {"root@x": "t1", "other@x": "t1"}
        store.commit(batch("cb", deleted=("b1",)))
        assert store.threads_by_message_ids(["root@x", "other@x"]) == {"root@x": "t1"}

    def test_thread_links_are_seen_from_one_channel(self, store: Store) -> None:
        _setup(store, alice=FULL, bob=FULL)
        root = message("a1", "root@x", thread="t1")
        reply = message("a2", "reply@x", thread="t1", date=T0 + timedelta(hours=1))
        reply = attrs.evolve(reply, message=attrs.evolve(reply.message, in_reply_to=("root@x",)))
        # Mallory's message to Bob claims to answer Alice's conversation and another one
        forged = message(
            "b1", "forged@x", thread="t2", in_reply_to=("root@x",), references=("other@x",)
        )
        store.commit(batch("ca", messages=(root, reply)))
        store.commit(batch("cb", messages=(forged,)))
        ids = ["root@x", "reply@x", "forged@x", "other@x", "missing@x"]

        alice = store.thread_links("ca", ids)
        assert dict(alice.stored) == {"root@x": "t1", "reply@x": "t1", "forged@x": "t2"}
        assert alice.held == {"root@x", "reply@x"}
        assert dict(alice.referenced) == {"root@x": "t1"}
        assert alice.elsewhere == {"root@x", "other@x"}

        bob = store.thread_links("cb", ids)
        assert dict(bob.stored) == dict(alice.stored)
        assert bob.held == {"forged@x"}
        assert dict(bob.referenced) == {"root@x": "t2", "other@x": "t2"}
        assert bob.elsewhere == {"root@x"}

        # a copy of the same Message-ID in Bob's mailbox makes it held there too
        store.commit(batch("cb", messages=(message("b2", "root@x", thread="t1"),)))
        assert store.thread_links("cb", ["root@x"]).held == {"root@x"}
        assert store.thread_links("cz", ids).held == frozenset()
