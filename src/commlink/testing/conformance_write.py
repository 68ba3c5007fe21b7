"""Write-side conformance tests: commits, atomicity, dedup, deletion, leases."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from ..errors import InvalidInput
from ..model import (
    CalendarContactPolicy,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Direction,
    FolderSelection,
    Visibility,
)
from ..ports import LeaseReader, Store
from ..records import (
    ChannelState,
    ChannelStatus,
    Reason,
    Skip,
    SyncBatch,
    SyncStage,
    Viewer,
)
from ..stores.common import MAX_STORED_WARNINGS, MAX_WARNING_CHARS
from .conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
    UTC,
    all_threads,
    batch,
    channel,
    dump,
    event,
    links,
    message,
    person,
    setup_channels,
)

__all__ = ["WriteTests"]

FULL = Visibility.FULL
U1 = Viewer("u1")


def _rich_batch() -> SyncBatch:
    """A batch touching every part of the write path."""
    return batch(
        messages=(
            message("m1", thread="t1", date=T0),
            message("m2", thread="t1", date=T0 + timedelta(hours=1), sender=BOB),
            message("m3", thread="t3", date=T0 + timedelta(hours=2), references=("ext@x",)),
        ),
        events=(event("e1", attendees=(ALICE, BOB)),),
        links=(links(ALICE, "p1"), links(BOB, "p2")),
        skipped=(Skip(provider_id="s1", reason=Reason.GROUP, message_id="s1@x"),),
        cursor="cursor-1",
        generation=1,
    )


def _warnings(store: Store, thread_id: str, viewer: Viewer) -> tuple[str, ...]:
    view = store.thread(thread_id, viewer)
    assert view is not None
    return view.messages[0].warnings


class WriteTests:
    """Mixed into ``StoreConformance``; needs the ``store`` fixture."""

    def break_commit(self, store: Any, after: int) -> AbstractContextManager[None]:
        raise NotImplementedError

    def test_commit_is_idempotent(self, store: Store) -> None:
        setup_channels(store)
        ids = ("m1", "m2", "m3", "e1", "s1", "m1@mail.example", "ext@x")
        store.commit(_rich_batch())
        once = dump(store, ids=ids)
        store.commit(_rich_batch())
        assert dump(store, ids=ids) == once
        assert [t.thread_id for t in all_threads(store, person("p1"), U1)] == ["t3", "t1"]
        assert store.known_ids("c1", "INBOX", ids) == {"m1", "m2", "m3", "e1"}

    def test_failed_commit_leaves_nothing(self, store: Store) -> None:
        setup_channels(store)
        store.commit(_rich_batch())
        ids = ("m1", "m2", "m3", "m4", "e1", "e2", "s1", "s2", "m4@mail.example")
        before = dump(store, ids=ids)
        second = batch(
            messages=(
                message("m1", thread="t1", subject="changed", body=None),
                message("m4", thread="t1", date=T0 + timedelta(days=1), sender=CAROL),
            ),
            events=(event("e2", attendees=(CAROL,)),),
            links=(links(CAROL, "p1"), links(BOB)),
            deleted=("m2", "e1"),
            seen=("m3",),
            skipped=(Skip(provider_id="s2", reason=Reason.BLOCKED),),
            thread_merges=(("t3", "t1"),),
            cursor="cursor-2",
            generation=2,
            sweep=True,
        )
        try:
            self.break_commit(store, 0)
        except NotImplementedError:
            pytest.skip("implement break_commit() to check that failed commits leave nothing")
        failures = 0
        for after in range(300):
            try:
                with self.break_commit(store, after):
                    store.commit(second)
            except InvalidInput:
                raise
            except Exception:
                failures += 1
                assert dump(store, ids=ids) == before, f"partial batch after {after} writes"
                assert store.cursor("c1", "INBOX") == "cursor-1"
                continue
            break
        else:
            pytest.fail("the commit never succeeded")
        assert failures >= 3
        after_state = dump(store, ids=ids)
        assert after_state != before
        assert store.cursor("c1", "INBOX") == "cursor-2"
        assert store.known_ids("c1", "INBOX", ids) == {"m1", "m3", "m4", "e2"}

    def test_one_message_per_message_id_across_channels(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(batch(messages=(message("a", "shared@x", thread="t"),)))
        store.commit(batch("c2", "Sent", messages=(message("b", "shared@x", thread="t"),)))
        store.relink([links(ALICE, "p1")])
        view = store.thread("t", U1)
        assert view is not None
        assert [m.message_id for m in view.messages] == ["shared@x"]
        assert store.known_ids("c1", "INBOX", ["a", "b"]) == {"a"}
        assert store.known_ids("c2", "Sent", ["a", "b"]) == {"b"}
        assert store.threads_by_message_ids(["shared@x"]) == {"shared@x": "t"}
        store.remove_channel("c1")
        assert store.channel("c1") is None
        view = store.thread("t", U1)
        assert view is not None
        assert len(view.messages) == 1
        assert store.known_ids("c2", "Sent", ["b"]) == {"b"}
        store.remove_channel("c2")
        assert store.thread("t", U1) is None
        assert store.stored_addresses() == set()

    def test_content_is_kept_per_channel(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(batch(messages=(message("a", "x@x", thread="t", body="full text"),)))
        store.commit(
            batch("c2", messages=(message("b", "x@x", thread="t", body=None, subject="Re"),))
        )
        # each owner sees their channel's copy as stored
        view = store.thread("t", U1)
        assert view is not None
        assert (view.messages[0].subject, view.messages[0].body) == ("Quarterly plan", "full text")
        view = store.thread("t", Viewer("u2"))
        assert view is not None
        assert (view.messages[0].subject, view.messages[0].body) == ("Re", None)
        # others: the most open channel's copy, the lowest channel id on a tie
        view = store.thread("t", Viewer("u3"))
        assert view is not None
        assert (view.messages[0].subject, view.messages[0].body) == ("Quarterly plan", "full text")
        # a metadata-only fetch in a channel never erases that channel's body
        store.commit(batch(messages=(message("a", "x@x", thread="t", body=None),)))
        view = store.thread("t", U1)
        assert view is not None
        assert view.messages[0].body == "full text"

    def test_warnings_are_kept_with_each_copy(self, store: Store) -> None:
        setup_channels(
            store, ("c1", "u1", FULL), ("c2", "u2", Visibility.SUBJECT), ("c3", "u3", FULL)
        )
        cut = ("text-truncated", "too-large:123")
        store.commit(batch(messages=(message("a", "x@x", thread="t", warnings=cut),)))
        store.commit(batch("c2", messages=(message("b", "x@x", thread="t"),)))
        # the owner's copy, with its warnings; the other owner's copy has none
        assert _warnings(store, "t", U1) == cut
        assert _warnings(store, "t", Viewer("u2")) == ()
        # others see the chosen copy's warnings (here c1's, shown in full)
        assert _warnings(store, "t", Viewer("nobody")) == cut
        # a re-commit with other warnings rewrites them; without, clears them
        store.commit(batch(messages=(message("a", "x@x", thread="t", warnings=("nul-removed",)),)))
        assert _warnings(store, "t", U1) == ("nul-removed",)
        store.commit(batch(messages=(message("a", "x@x", thread="t"),)))
        assert _warnings(store, "t", U1) == ()
        # below FULL, a viewer sees only each code (before its first ':')
        repaired = ("charset-repaired:windows-1252", "bad-address:to", "bad-address:cc")
        store.commit(batch("c2", messages=(message("c", "y@x", thread="u", warnings=repaired),)))
        assert _warnings(store, "u", Viewer("u2")) == repaired
        assert _warnings(store, "u", Viewer("nobody")) == ("charset-repaired", "bad-address")
        # what is stored is capped (a warning may echo outsider text)
        many = tuple(f"w{i}:" + "x" * 300 for i in range(30))
        store.commit(batch("c3", messages=(message("d", "z@x", thread="v", warnings=many),)))
        kept = _warnings(store, "v", Viewer("u3"))
        assert 0 < len(kept) <= MAX_STORED_WARNINGS
        assert all(len(w) <= MAX_WARNING_CHARS for w in kept)
        assert all(w == many[i][: len(w)] for i, w in enumerate(kept))

    def test_direction_prefers_viewer_channel(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(batch(messages=(message("a", "x@x", thread="t"),)))
        outgoing = message("b", "x@x", thread="t", direction=Direction.OUTGOING)
        store.commit(batch("c2", messages=(outgoing,)))
        mine = store.thread("t", Viewer("u2"))
        theirs = store.thread("t", U1)
        assert mine is not None
        assert theirs is not None
        assert mine.messages[0].direction is Direction.OUTGOING
        assert theirs.messages[0].direction is Direction.INCOMING

    def test_deleted_ids_are_removed_and_collected(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(messages=(message("m1", thread="t"), message("m2", thread="t", sender=CAROL)))
        )
        assert CAROL in store.stored_addresses()
        store.commit(batch(deleted=("m2", "unknown")))
        assert store.known_ids("c1", "INBOX", ["m1", "m2"]) == {"m1"}
        view = store.thread("t", U1)
        assert view is not None
        assert [m.message_id for m in view.messages] == ["m1@mail.example"]
        assert CAROL not in store.stored_addresses()
        assert store.threads_by_message_ids(["m2@mail.example"]) == {}

    def test_deletion_is_per_scope(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),)))
        store.commit(batch(scope_id="Other", deleted=("m1",)))
        assert store.known_ids("c1", "INBOX", ["m1"]) == {"m1"}

    def test_reassigned_provider_id_collects_old_message(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1", "old@x", thread="t1", sender=CAROL),)))
        store.commit(batch(messages=(message("m1", "new@x", thread="t2"),)))
        assert store.thread("t1", U1) is None
        assert CAROL not in store.stored_addresses()
        assert store.threads_by_message_ids(["old@x", "new@x"]) == {"new@x": "t2"}

    def test_sweep_deletes_older_generations_of_the_scope(self, store: Store) -> None:
        setup_channels(store)
        first = tuple(message(f"m{i}") for i in range(4))
        store.commit(batch(messages=first, generation=1))
        store.commit(batch(scope_id="Other", messages=(message("o1"),), generation=1))
        store.commit(batch(messages=(message("m0"),), generation=2))
        store.commit(batch(seen=("m1",), generation=2))
        assert store.known_ids("c1", "INBOX", ["m0", "m1", "m2", "m3"]) == {
            "m0",
            "m1",
            "m2",
            "m3",
        }
        store.commit(batch(messages=(message("m3"),), generation=2, sweep=True))
        assert store.known_ids("c1", "INBOX", ["m0", "m1", "m2", "m3"]) == {"m0", "m1", "m3"}
        assert store.known_ids("c1", "Other", ["o1"]) == {"o1"}
        assert store.threads_by_message_ids(["m2@mail.example"]) == {}

    def test_seen_stamps_events_too(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(events=(event("e1"), event("e2")), generation=1))
        store.commit(batch(seen=("e1",), generation=2, sweep=True))
        assert store.known_ids("c1", "INBOX", ["e1", "e2"]) == {"e1"}

    def test_links_in_a_batch_replace_the_key(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),), links=(links(ALICE, "p1", "p2"),)))
        assert store.linked_addresses(person("p2")) == {ALICE}
        store.commit(batch(links=(links(ALICE, "p1"),)))
        assert store.linked_addresses(person("p1")) == {ALICE}
        assert store.linked_addresses(person("p2")) == set()
        assert all_threads(store, person("p2"), U1) == []

    def test_relink_after_address_change(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(
                messages=(message("m1", thread="t1"), message("m2", thread="t2", sender=CAROL)),
                links=(links(ALICE, "p1"),),
            )
        )
        assert [t.thread_id for t in all_threads(store, person("p1"), U1)] == ["t1"]
        # p1's address changed from alice to carol
        store.relink([links(ALICE), links(CAROL, "p1")])
        assert [t.thread_id for t in all_threads(store, person("p1"), U1)] == ["t2"]
        assert store.linked_addresses(person("p1")) == {CAROL}

    def test_relink_after_person_deleted(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),), links=(links(ALICE, "p1"),)))
        store.relink([links(ALICE)])
        assert all_threads(store, person("p1"), U1) == []
        assert store.linked_addresses(person("p1")) == set()
        assert ALICE in store.stored_addresses()

    def test_thread_merges(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(
                messages=(
                    message("m1", thread="t1"),
                    message("m2", thread="t2", date=T0 + timedelta(hours=1)),
                ),
                links=(links(ALICE, "p1"),),
            )
        )
        store.commit(
            batch(
                messages=(message("m3", thread="t2", date=T0 + timedelta(hours=2)),),
                thread_merges=(("t2", "t1"),),
            )
        )
        assert store.thread("t2", U1) is None
        view = store.thread("t1", U1)
        assert view is not None
        assert len(view.messages) == 3
        summaries = all_threads(store, person("p1"), U1)
        assert [(s.thread_id, s.message_count) for s in summaries] == [("t1", 3)]

    def test_threads_by_message_ids(self, store: Store) -> None:
        setup_channels(store)
        store.commit(
            batch(
                messages=(
                    message("m1", "a@x", thread="t1"),
                    message("m2", "b@x", thread="t2", in_reply_to=("a@x",), references=("z@x",)),
                    message("m3", "c@x", thread="t3", references=("y@x",)),
                )
            )
        )
        found = store.threads_by_message_ids(["a@x", "b@x", "z@x", "y@x", "missing@x"])
        assert found == {"a@x": "t1", "b@x": "t2", "z@x": "t2", "y@x": "t3"}

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param(batch(channel_id=""), id="empty-channel"),
            pytest.param(batch(scope_id=""), id="empty-scope"),
            pytest.param(batch("unknown", messages=(message("m9"),)), id="unknown-channel"),
            pytest.param(batch(messages=(message(""),)), id="empty-provider-id"),
            pytest.param(
                batch(messages=(attrs.evolve(message("m9"), thread_id=""),)), id="empty-thread"
            ),
            pytest.param(
                batch(
                    messages=(
                        attrs.evolve(
                            message("m9"),
                            message=attrs.evolve(message("m9").message, message_id=""),
                        ),
                    )
                ),
                id="empty-message-id",
            ),
            pytest.param(
                batch(messages=(message("m9", date=datetime(2025, 1, 1, 9)),)), id="naive-date"
            ),
            pytest.param(
                batch(messages=(message("m9"), message("m9", "other@x"))), id="duplicate-id"
            ),
            pytest.param(
                batch(messages=(message("m9"),), events=(event("m9"),)), id="message-and-event"
            ),
            pytest.param(
                batch(events=(event("e9", start=datetime(2025, 1, 1)),)), id="naive-event"
            ),
            pytest.param(
                batch(skipped=(Skip("s9", Reason.GROUP, date=datetime(2025, 1, 1)),)),
                id="naive-skip",
            ),
            pytest.param(batch(links=(links("", "p1"),)), id="empty-link-key"),
        ],
    )
    def test_invalid_batches_write_nothing(self, store: Store, bad: SyncBatch) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),), cursor="c-1", links=(links(ALICE, "p1"),)))
        ids = ("m1", "m9", "e9", "s9")
        before = dump(store, ids=ids)
        valid = attrs.evolve(
            bad,
            messages=(*bad.messages, message("m8", sender=CAROL)),
            links=(*bad.links, links(CAROL, "p1")),
            cursor="c-2",
        )
        with pytest.raises(InvalidInput):
            store.commit(valid)
        assert dump(store, ids=ids) == before

    def test_leases(self, store: Store) -> None:
        setup_channels(store)
        hour = timedelta(hours=1)
        assert store.acquire_lease("c1", "w1", hour)
        assert store.acquire_lease("c1", "w1", hour)  # renewal
        assert not store.acquire_lease("c1", "w2", hour)
        store.release_lease("c1", "w2")  # not the holder: ignored
        assert not store.acquire_lease("c1", "w2", hour)
        store.release_lease("c1", "w1")
        assert store.acquire_lease("c1", "w2", timedelta(0))  # expires at once
        assert store.acquire_lease("c1", "w3", hour)  # stale lease taken over
        assert not store.acquire_lease("c1", "w2", hour)
        assert store.acquire_lease("c2", "w2", hour)  # leases are per channel

    def test_held_leases_are_read_in_one_call(self, store: Store) -> None:
        if not isinstance(store, LeaseReader):
            pytest.skip("optional: the store does not implement LeaseReader")
        setup_channels(store)
        hour = timedelta(hours=1)
        assert store.acquire_lease("c1", "w1", hour)
        assert store.acquire_lease("c1#queued", "t1", 2 * hour)
        assert store.acquire_lease("c2", "w2", timedelta(0))  # expired at once
        held = store.held_leases(["c1", "c1#queued", "c2", "c3", "c1"])
        assert set(held) == {"c1", "c1#queued"}
        assert held["c1"].holder == "w1"
        assert held["c1#queued"].holder == "t1"
        gap = held["c1#queued"].expires_at - held["c1"].expires_at
        assert held["c1"].expires_at.utcoffset() == timedelta(0)
        assert abs(gap - hour) < timedelta(minutes=1)
        assert store.held_leases([]) == {}
        many = [f"k{n}" for n in range(12_000)]  # past any one statement's parameters
        assert store.held_leases([*many, "c1"]).keys() == {"c1"}
        store.release_lease("c1", "w1")
        assert set(store.held_leases(["c1", "c1#queued"])) == {"c1#queued"}

    def test_lease_is_exclusive_under_concurrency(self, store: Store) -> None:
        setup_channels(store)
        workers = 8
        start = threading.Barrier(workers)
        won: list[str] = []

        def contend(holder: str) -> None:
            start.wait()
            if store.acquire_lease("c1", holder, timedelta(hours=1)):
                won.append(holder)

        threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1
        assert store.acquire_lease("c1", won[0], timedelta(hours=1))

    def test_channel_round_trip(self, store: Store) -> None:
        settings = ChannelSettings(
            owner="me@org.example",
            aliases=frozenset({"alias@org.example", "me2@org.example"}),
            org_domains=frozenset({"org.example"}),
            visibility=Visibility.SUBJECT,
            contact_policy=ContactPolicy.SENT_AND_RECEIVED,
            calendar_contact_policy=CalendarContactPolicy.BOTH,
            folders=FolderSelection(include=frozenset({"inbox", "x"}), exclude=frozenset({"y"})),
            sync_internal=True,
            blocklist=frozenset({"@spam.example", "a@b.example"}),
            create_companies=False,
            sync_invites=True,
        )
        ch = attrs.evolve(channel("cx", "ux"), settings=settings, kind=ChannelKind.CALENDAR)
        store.save_channel(ch)
        store.save_channel(channel("ca", "ua"))
        assert store.channel("cx") == ch
        assert [c.id for c in store.channels()] == ["ca", "cx"]
        changed = attrs.evolve(ch, settings=attrs.evolve(settings, visibility=Visibility.FULL))
        store.save_channel(changed)
        assert store.channel("cx") == changed
        assert store.channel("missing") is None

    def test_channel_state_round_trip(self, store: Store) -> None:
        setup_channels(store)
        assert store.channel_state("c1") is None
        state = ChannelState(
            channel_id="c1",
            status=ChannelStatus.FAILED,
            stage=SyncStage.INCREMENTAL,
            failures=3,
            last_error="timeout talking to server",
            next_attempt=datetime(2025, 2, 1, 10, 30, 15, 123456, tzinfo=UTC),
            last_success=datetime(2025, 1, 31, 8, tzinfo=UTC),
        )
        store.save_channel_state(state)
        assert store.channel_state("c1") == state
        cleared = ChannelState(channel_id="c1", status=ChannelStatus.ACTIVE)
        store.save_channel_state(cleared)
        assert store.channel_state("c1") == cleared
        assert dict(store.channel_states()) == {"c1": cleared}
        with pytest.raises(InvalidInput):
            store.save_channel_state(ChannelState("c1", next_attempt=datetime(2025, 1, 1)))

    def test_remove_channel_forgets_everything(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(_rich_batch())
        store.commit(batch("c2", messages=(message("x1", thread="tx"),), cursor="k"))
        store.save_channel_state(ChannelState("c1", failures=1))
        store.acquire_lease("c1", "w1", timedelta(hours=1))
        store.remove_channel("c1")
        assert store.channel_state("c1") is None
        assert store.skips("c1", U1) == []
        assert store.cursor("c1", "INBOX") is None
        assert store.scope_ids("c1") == []
        assert store.acquire_lease("c1", "w2", timedelta(hours=1))
        assert store.thread("t1", U1) is None
        assert store.thread("tx", U1) is not None
        assert BOB not in store.stored_addresses()

    def test_cursor_scopes_and_drop_scope(self, store: Store) -> None:
        setup_channels(store)
        assert store.cursor("c1", "INBOX") is None
        store.commit(batch(messages=(message("m1", thread="t1"),), cursor="k1"))
        store.commit(batch(scope_id="Sent", cursor="k2"))
        store.commit(batch(scope_id="Archive", messages=(message("m2", thread="t2"),)))
        store.commit(batch(messages=(message("m3", thread="t3"),)))  # None keeps the cursor
        assert store.cursor("c1", "INBOX") == "k1"
        assert sorted(store.scope_ids("c1")) == ["Archive", "INBOX", "Sent"]
        store.drop_scope("c1", "INBOX")
        assert store.cursor("c1", "INBOX") is None
        assert sorted(store.scope_ids("c1")) == ["Archive", "Sent"]
        assert store.thread("t1", U1) is None
        assert store.thread("t2", U1) is not None

    def test_delete_matching(self, store: Store) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u2", FULL))
        store.commit(
            batch(
                messages=(
                    message("m1", sender=ALICE),
                    message("m2", sender=BOB),
                    message("m3", sender=CAROL),
                    message("m4", sender="dan@notacme.example"),
                ),
                events=(event("e1", attendees=(BOB,)), event("e2", attendees=(CAROL,))),
            )
        )
        store.commit(batch("c2", messages=(message("x2", "m2@mail.example"),)))
        ids = ["m1", "m2", "m3", "m4", "e1", "e2"]
        assert store.delete_matching("c1", ["@ACME.example"]) == 3  # m1, m2 (subdomain), e1
        assert store.known_ids("c1", "INBOX", ids) == {"m3", "m4", "e2"}
        assert store.known_ids("c2", "INBOX", ["x2"]) == {"x2"}  # other channel untouched
        assert store.delete_matching("c1", [CAROL.upper(), "@nothing.example"]) == 2
        assert store.known_ids("c1", "INBOX", ids) == {"m4"}
        assert store.delete_matching("c1", []) == 0
        assert CAROL not in store.stored_addresses()

    def test_skips_recorded_and_cleared(self, store: Store) -> None:
        setup_channels(store)
        first = Skip("m1", Reason.GROUP, "List-Id", message_id="a@x", subject="News", date=T0)
        store.commit(batch(skipped=(first, Skip("m2", Reason.INTERNAL, message_id="b@x"))))
        assert [s.provider_id for s in store.skips("c1", U1)] == ["m1", "m2"]
        assert store.skips("c1", U1, "a@x") == [first]
        assert store.skips("c2", U1) == []
        updated = Skip("m1", Reason.INVALID, message_id="a@x")
        store.commit(batch(scope_id="Other", skipped=(updated,)))
        assert store.skips("c1", U1, "a@x") == [updated]
        store.commit(batch(messages=(message("m1", "a@x"),)))
        assert [s.provider_id for s in store.skips("c1", U1)] == ["m2"]

    def test_stored_addresses(self, store: Store) -> None:
        setup_channels(store)
        store.commit(batch(messages=(message("m1"),), events=(event("e1", attendees=(CAROL,)),)))
        everything = store.stored_addresses()
        assert {ALICE, CAROL, "u1@org.example"} <= everything
        assert store.stored_addresses([ALICE, BOB, CAROL]) == {ALICE, CAROL}
        assert store.stored_addresses([]) == set()
