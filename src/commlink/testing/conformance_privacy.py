"""Least-data conformance tests: what a store keeps, and how it lets go.

- Skip records explain without exposing: mail left out as internal or
  blocked keeps no subject and no sender unless the owner opted in; other
  users see reasons, dates and ids only; a skip record follows its message
  out of the mailbox.
- Content follows permission: removing a channel removes everything it
  brought; lowering a channel's visibility minimises what it stored; a
  blocklist entry added through ``save_channel`` removes matching mail.
- Erasure: ``erase_address`` removes every copy an address took part in,
  in every channel, and mail from or to it is never imported again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs
import pytest

from ..errors import InvalidInput
from ..model import Attachment, Channel, Visibility
from ..ports import Store
from ..records import Reason, Skip, Viewer
from .conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
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

__all__ = ["PrivacyTests"]

FULL, SUBJECT, METADATA = Visibility.FULL, Visibility.SUBJECT, Visibility.METADATA
U1, U2, COLLEAGUE = Viewer("u1"), Viewer("u2"), Viewer("u9")
DAN = "dan@never.example"

INTERNAL = Skip(
    "s1",
    Reason.INTERNAL,
    "every participant is inside the organisation",
    message_id="layoff@org.example",
    subject="Internal: layoff list",
    sender="alice@org.example",
    date=T0,
)
BLOCKED = Skip(
    "s2",
    Reason.BLOCKED,
    "dr@doctor.example matches blocklist entry @doctor.example",
    message_id="results@doctor.example",
    subject="Your biopsy results",
    sender="dr@doctor.example",
    date=T0,
)
GROUP = Skip(
    "s3",
    Reason.GROUP,
    "List-Id header",
    message_id="news@lists.example",
    subject="News",
    sender="news@lists.example",
    date=T0,
)
PRIVATE = ("layoff", "biopsy", "doctor", "alice@org")


def _settings(base: Channel, **changes: Any) -> Channel:
    return attrs.evolve(base, settings=attrs.evolve(base.settings, **changes))


def _shown(skips: Sequence[Skip]) -> list[tuple[object, ...]]:
    return [(s.provider_id, s.reason, s.subject, s.sender, s.message_id, s.date) for s in skips]


class PrivacyTests:
    """Mixed into ``StoreConformance``; needs the ``store`` fixture."""

    # -- skip records explain without exposing ------------------------------

    def test_private_skips_keep_no_subject_and_no_sender(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(skipped=(INTERNAL, BLOCKED, GROUP)))
        mine = store.skips("c1", U1)
        assert _shown(mine) == [
            ("s1", Reason.INTERNAL, "", "", "", T0),
            ("s2", Reason.BLOCKED, "", "", "", T0),
            ("s3", Reason.GROUP, "News", "news@lists.example", "news@lists.example", T0),
        ]
        assert mine[2].detail == "List-Id header"
        text = repr(mine[:2])
        assert [s for s in PRIVATE if s in text] == []
        # "why is this email missing?" still has an answer, by Message-ID
        (found,) = store.skips("c1", U1, "results@doctor.example")
        assert (found.provider_id, found.reason, found.message_id) == (
            "s2",
            Reason.BLOCKED,
            "results@doctor.example",
        )
        assert store.skips("c1", U1, "other@doctor.example") == []

    def test_colleagues_see_reasons_dates_and_ids_only(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", METADATA))
        store.commit(batch(skipped=(INTERNAL, BLOCKED, GROUP)))
        seen = store.skips("c1", COLLEAGUE)
        assert _shown(seen) == [
            ("s1", Reason.INTERNAL, "", "", "", T0),
            ("s2", Reason.BLOCKED, "", "", "", T0),
            ("s3", Reason.GROUP, "", "", "news@lists.example", T0),
        ]
        assert [s.detail for s in seen] == ["", "", ""]
        assert store.skips("c1", COLLEAGUE, "news@lists.example")[0].provider_id == "s3"
        assert store.skips("unknown", U1) == []

    def test_skips_require_a_viewer(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(skipped=(GROUP,)))
        with pytest.raises(TypeError):
            store.skips("c1")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            store.skips("c1", "news@lists.example")  # type: ignore[arg-type]

    def test_skip_details_are_the_owners_choice(self, store: Store) -> None:
        plain = channel("c1", "u1")
        opted = _settings(plain, skip_details=True)
        store.save_channel(opted)
        assert store.channel("c1") == opted
        erased = Skip("s4", Reason.ERASED, "x", message_id="e@x", subject="Hi", sender="e@x")
        store.commit(batch(skipped=(INTERNAL, BLOCKED, erased)))
        assert list(store.skips("c1", U1))[:2] == [INTERNAL, BLOCKED]
        assert (store.skips("c1", U1)[2].subject, store.skips("c1", U1)[2].sender) == ("", "")
        assert _shown(store.skips("c1", COLLEAGUE))[:2] == [
            ("s1", Reason.INTERNAL, "", "", "", T0),
            ("s2", Reason.BLOCKED, "", "", "", T0),
        ]
        # opting out strips what was kept; opting in again brings nothing back
        store.save_channel(plain)
        store.save_channel(opted)
        assert _shown(store.skips("c1", U1))[:2] == [
            ("s1", Reason.INTERNAL, "", "", "", T0),
            ("s2", Reason.BLOCKED, "", "", "", T0),
        ]

    def test_a_skip_record_follows_its_message_out_of_the_mailbox(self, store: Store) -> None:
        setup_channels(store)
        first = Skip("s1", Reason.GROUP, message_id="a@x", date=T0)
        store.commit(batch(skipped=(first, Skip("s2", Reason.GROUP, message_id="b@x"))))
        store.commit(batch(deleted=("s1",)))
        assert [s.provider_id for s in store.skips("c1", U1)] == ["s2"]
        # deleted and recorded again in one batch: the new record stays
        again = Skip("s2", Reason.INVALID, message_id="b@x")
        store.commit(batch(deleted=("s2",), skipped=(again,)))
        assert store.skips("c1", U1) == [again]
        # re-delivered under a new id: one record, not two
        moved = Skip("s3", Reason.GROUP, message_id="b@x")
        store.commit(batch(deleted=("s2",), skipped=(moved,)))
        assert store.skips("c1", U1, "b@x") == [moved]

    # -- content follows permission -----------------------------------------

    def test_remove_channel_takes_what_only_it_brought(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(
            batch(
                messages=(message("m1", thread="t1"), message("m2", thread="t2", sender=BOB)),
                events=(event("e1", attendees=(CAROL,)),),
                skipped=(GROUP,),
                cursor="k",
            )
        )
        store.commit(batch("c2", messages=(message("x1", thread="t3"),)))
        store.relink([links(ALICE, "p1"), links(BOB, "p2"), links(CAROL, "p2"), links(DAN, "p1")])
        hour = timedelta(hours=1)
        assert store.acquire_lease("c1", "w1", hour)
        assert store.acquire_lease("c1#queued", "w1", hour)  # contrib.celery's queue marker
        store.remove_channel("c1")
        assert store.scope_ids("c1") == []
        assert store.skips("c1", U1) == []
        assert store.acquire_lease("c1", "w2", hour)
        assert store.acquire_lease("c1#queued", "w2", hour)
        assert {BOB, CAROL}.isdisjoint(store.stored_addresses())
        # links of addresses no stored copy holds go; others stay
        assert store.linked_addresses(person("p1")) == {ALICE, DAN}  # dan: never stored
        assert store.linked_addresses(person("p2")) == set()
        assert [t.thread_id for t in all_threads(store, person("p1"), U2)] == ["t3"]
        assert all_threads(store, person("p2"), U2) == []
        assert all_events(store, person("p2"), U1) == []

    def test_lowering_visibility_minimises_what_the_channel_stored(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        pdf = Attachment("a.pdf", "application/pdf", 3)
        full = message("m1", "x@x", thread="t", body="secret body", attachments=(pdf,))
        store.commit(batch(messages=(full,), events=(event("e1"),), links=(links(ALICE, "p1"),)))
        store.commit(
            batch("c2", messages=(message("b1", "x@x", thread="t", body="c2 body"),)),
        )
        store.commit(batch("c2", events=(event("f1", "e1-uid"),)))
        store.save_channel(channel("c1", "u1", SUBJECT))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].body == "secret body"  # the owner sees all that is stored
        store.save_channel(channel("c1", "u1", METADATA))
        view = store.thread("t", U1)
        assert view is not None
        (mine,) = view.messages
        assert (mine.subject, mine.body, mine.attachments) == ("Quarterly plan", None, (pdf,))
        (summary,) = all_threads(store, person("p1"), U1)
        assert summary.snippet == ""
        (meeting,) = all_events(store, person("p1"), U1)
        assert (meeting.title, meeting.description, meeting.location, meeting.conference_url) == (
            "Pricing call",
            "",
            "",
            "",
        )
        # another channel's copies are its own
        view = store.thread("t", U2)
        assert view is not None
        assert view.messages[0].body == "c2 body"
        (theirs,) = all_events(store, person("p1"), U2)
        assert theirs.location == "Room 4"
        # raising it again brings nothing back; a new fetch does
        store.save_channel(channel("c1", "u1", FULL))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].body is None
        store.commit(batch(messages=(full,)))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].body == "secret body"

    def test_html_goes_with_the_body(self, store: Store) -> None:
        """Lowering a channel to ``METADATA`` drops its copies' HTML; a
        metadata-only fetch keeps the HTML fetched before."""
        setup_channels(store)
        plain = message("m1", "x@x", thread="t")
        html = "<p>secret <i>html</i></p>"
        full = attrs.evolve(plain, message=attrs.evolve(plain.message, html=html))
        store.commit(batch(messages=(full,)))
        headers_only = attrs.evolve(plain, message=attrs.evolve(plain.message, body=None))
        store.commit(batch(messages=(headers_only,)))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].html == html
        store.save_channel(channel("c1", "u1", METADATA))
        view = store.thread("t", U1)
        assert view is not None
        assert (view.messages[0].body, view.messages[0].html) == (None, None)
        # a batch built with stale settings keeps no HTML either
        store.commit(batch(messages=(full,)))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].html is None

    def test_commit_keeps_what_the_stored_visibility_allows(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", METADATA))
        # a batch built with stale settings (the channel was just lowered)
        store.commit(batch(messages=(message("m1", thread="t"),), events=(event("e1"),)))
        store.relink([links(ALICE, "p1")])
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].body is None
        assert all_threads(store, person("p1"), U1)[0].snippet == ""
        (meeting,) = all_events(store, person("p1"), U1)
        assert (meeting.description, meeting.location, meeting.conference_url) == ("", "", "")

    def test_a_blocklist_saved_with_the_channel_removes_matching_mail(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(
            batch(
                messages=(message("m1", sender=ALICE), message("m2", sender=CAROL)),
                events=(event("e1", attendees=(BOB,)), event("e2", attendees=(CAROL,))),
            )
        )
        store.commit(batch("c2", messages=(message("x1", sender=ALICE),)))
        blocked = _settings(channel("c1", "u1"), blocklist=frozenset({"@ACME.example"}))
        store.save_channel(blocked)  # as a configuration file would
        assert store.channel("c1") == blocked
        ids = ["m1", "m2", "m3", "e1", "e2"]
        assert store.known_ids("c1", "INBOX", ids) == {"m2", "e2"}  # bob: a subdomain
        assert store.known_ids("c2", "INBOX", ["x1"]) == {"x1"}
        # only entries it adds remove anything
        store.commit(batch(messages=(message("m3", sender=ALICE),)))
        store.save_channel(blocked)
        assert store.known_ids("c1", "INBOX", ids) == {"m2", "m3", "e2"}
        both = _settings(blocked, blocklist=frozenset({"@acme.example", CAROL.upper()}))
        store.save_channel(both)
        assert store.known_ids("c1", "INBOX", ids) == {"m3"}

    # -- erasure --------------------------------------------------------------

    def test_erase_address(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        named = Skip("s1", Reason.GROUP, f"automated sender {CAROL}", sender=CAROL, date=T0)
        store.commit(
            batch(
                messages=(
                    message("m1", thread="t1", sender=CAROL),
                    message("m2", thread="t2", to=("u1@org.example", CAROL)),
                    message("m3", thread="t3"),
                ),
                events=(event("e1", attendees=(CAROL,)), event("e2")),
                links=(links(CAROL, "p1"), links(ALICE, "p1"), links(BOB, "p2")),
                skipped=(named, Skip("s2", Reason.GROUP, sender=BOB, date=T0)),
            )
        )
        store.commit(
            batch(
                "c2",
                messages=(
                    message("x1", "m1@mail.example", thread="t1", sender=CAROL),
                    # the same Message-ID without Carol: this copy is not hers
                    message("x2", "m2@mail.example", thread="t2", sender=BOB),
                ),
            )
        )
        report = store.erase_address("Carol@Other.EXAMPLE")
        assert (report.key, report.messages, report.events, report.skips, report.links) == (
            CAROL,
            3,
            1,
            1,
            1,
        )
        assert report.erased_at.utcoffset() is not None
        assert store.known_ids("c1", "INBOX", ["m1", "m2", "m3", "e1", "e2"]) == {"m3", "e2"}
        assert store.known_ids("c2", "INBOX", ["x1", "x2"]) == {"x2"}
        assert CAROL not in store.stored_addresses()
        assert store.linked_addresses(person("p1")) == {ALICE}
        assert store.linked_addresses(person("p2")) == {BOB}
        assert [s.provider_id for s in store.skips("c1", U1)] == ["s2"]
        assert store.thread("t1", U1) is None
        view = store.thread("t2", U1)
        assert view is not None
        assert view.messages[0].participants[0].address.key == BOB
        assert store.erased([CAROL, CAROL.upper(), ALICE, "not an address"]) == {
            CAROL,
            CAROL.upper(),
        }
        # mail from or to an erased address is never imported again
        store.commit(
            batch(
                messages=(message("m4", thread="t4", sender=CAROL), message("m5", thread="t5")),
                events=(event("e3", attendees=(ALICE, CAROL)),),
                links=(links(CAROL, "p1"),),
                skipped=(Skip("s5", Reason.GROUP, subject="Hello", sender=CAROL),),
            )
        )
        assert store.known_ids("c1", "INBOX", ["m4", "m5", "e3"]) == {"m5"}
        assert CAROL not in store.stored_addresses()
        assert store.linked_addresses(person("p1")) == {ALICE}
        found = {s.provider_id: s for s in store.skips("c1", U1)}
        assert {k: found[k].reason for k in ("m4", "e3", "s5")} == dict.fromkeys(
            ("m4", "e3", "s5"), Reason.ERASED
        )
        assert CAROL not in repr(found)
        assert "Hello" not in repr(found)
        assert [s.provider_id for s in store.skips("c1", U1, "m4@mail.example")] == ["m4"]
        # erasing again changes nothing; an invalid address is refused
        again = store.erase_address(CAROL)
        assert again == attrs.evolve(report, messages=0, events=0, skips=0, links=0)
        with pytest.raises(InvalidInput):
            store.erase_address("not an address")
