"""The write rules both reference stores share (``stores.batch_plan``) and
the host events of their rarer writes (``stores.snapshot_events``): pure
functions over what a store read."""

from __future__ import annotations

from datetime import timedelta

import attrs

from commlink.events import EVENT_DELETED, MESSAGE_DELETED, MESSAGE_UPDATED
from commlink.model import Direction
from commlink.records import EventRecord, Target, TargetKind
from commlink.stores import batch_plan
from commlink.stores.common import DAWN, merged_records
from commlink.stores.snapshot_events import Snapshot, copy_targets, snapshot_changes
from commlink.stores.sql_rows import content_hash, folders_json
from commlink.testing.conformance_data import ALICE, BOB, T0, event, links, message

P1 = Target(TargetKind.PERSON, "p1")
P2 = Target(TargetKind.PERSON, "p2")


def test_a_copy_is_written_when_new_or_changed_and_a_message_when_its_thread_moves() -> None:
    same, edited, new = (
        message("1", thread="t1"),
        message("2", thread="t2"),
        message("3", thread="t3"),
    )
    merged = merged_records([same, edited, new])
    stored_threads = {"1@mail.example": "t1", "2@mail.example": "old"}
    held = {"1@mail.example": content_hash(same), "2@mail.example": "stale"}
    plan = batch_plan.plan_copies(merged, stored_threads, held)
    assert plan.logical == ["2@mail.example", "3@mail.example"]
    assert plan.changed == ["2@mail.example", "3@mail.example"]
    assert plan.digests["3@mail.example"] == content_hash(new)
    assert plan.touched == {"t2", "old", "t3"}


def test_nothing_is_touched_when_nothing_changed() -> None:
    record = message("1", thread="t1")
    merged = merged_records([record])
    plan = batch_plan.plan_copies(
        merged, {"1@mail.example": "t1"}, {"1@mail.example": content_hash(record)}
    )
    assert (plan.logical, plan.changed, plan.touched) == ([], [], set())


def test_only_associations_that_differ_are_written() -> None:
    kept, moved = message("a", "1@x"), message("b", "2@x", direction=Direction.OUTGOING)
    pks = {"1@x": 10, "2@x": 20}
    folders = folders_json(("INBOX",))
    before = {"a": (10, 3, folders, "incoming"), "b": (20, 2, folders, "outgoing")}
    assert batch_plan.assoc_changes([kept, moved], pks, 3, before) == [
        ("b", (20, 3, folders, "outgoing"))
    ]


def test_references_chain_reply_to_then_references_then_thread_keys() -> None:
    record = attrs.evolve(
        message("1", in_reply_to=("a@x",), references=("b@x",)), thread_keys=("c@x",)
    )
    assert batch_plan.ref_tuples(7, "c1", record) == [
        (7, "c1", 0, "a@x"),
        (7, "c1", 1, "b@x"),
        (7, "c1", 2, "c@x"),
    ]


def test_the_most_recent_copy_of_an_event_wins_in_a_batch_and_against_the_store() -> None:
    old = event("e1", "u1")
    newer = attrs.evolve(old.event, provider_id="e2", sequence=2)
    merged = batch_plan.merged_events([EventRecord(newer), old])
    assert merged == {("u1", ""): newer}
    rows = [(5, "u1", "", 3, None), (6, "other", "", 9, None)]
    stored = batch_plan.stored_versions(rows, merged)
    assert stored == {("u1", ""): (5, (3, DAWN))}
    assert batch_plan.newer_events(merged, stored) == {}
    assert batch_plan.newer_events(merged, {("u1", ""): (5, (2, DAWN))}) == {("u1", ""): newer}


def test_event_associations_name_the_stored_copy() -> None:
    records = [event("e1", "u1"), event("e2", "u1")]
    assert batch_plan.event_assoc_pairs(records, {("u1", ""): 4}) == {("e1", 4), ("e2", 4)}


def test_links_are_replaced_by_difference_and_the_last_change_of_a_key_wins() -> None:
    keys, wanted = batch_plan.wanted_links([links(ALICE, "p1"), links(BOB), links(ALICE, "p2")])
    assert keys == [ALICE, BOB]
    assert wanted == {(ALICE, "person", "p2")}
    stored = {(ALICE, "person", "p1"), (BOB, "person", "p1")}
    gone, added, changed = batch_plan.link_changes(wanted, stored)
    assert gone == [(ALICE, "person", "p1"), (BOB, "person", "p1")]
    assert added == [(ALICE, "person", "p2")]
    assert changed == {ALICE, BOB}
    assert batch_plan.link_changes(wanted, wanted) == ([], [], set())


def test_snapshot_targets_are_asked_one_channel_at_a_time() -> None:
    asked: list[tuple[str, list[int]]] = []

    def targets(channel_id: str, pks: list[int]) -> dict[int, set[Target]]:
        asked.append((channel_id, pks))
        return {pk: {P1} for pk in pks}

    found = copy_targets({("c2", 1): None, ("c1", 2): None, ("c2", 3): None}, targets)
    assert asked == [("c1", [2]), ("c2", [1, 3])]
    assert found == {("c1", 2): {P1}, ("c2", 1): {P1}, ("c2", 3): {P1}}


def test_snapshot_changes_report_deleted_and_changed_copies() -> None:
    before = Snapshot(
        copies={("c1", 1): ("1@x", "t1", "d1"), ("c1", 2): ("2@x", "t2", "d2")},
        events={7: ("c1", "u7", None, ("print",))},
        message_targets={("c1", 1): {P1}},
        event_targets={7: {P2}},
    )
    at = T0 + timedelta(hours=1)
    found = snapshot_changes(
        before,
        {("c1", 2): ("2@x", "t2", "changed")},
        {},
        lambda ch, pks: {pk: {P2} for pk in pks},
        lambda pks: {},
        at,
    )
    assert [(e.type, e.message_id or e.uid, e.targets) for e in found] == [
        (MESSAGE_DELETED, "1@x", (P1,)),
        (MESSAGE_UPDATED, "2@x", (P2,)),
        (EVENT_DELETED, "u7", (P2,)),
    ]
    assert {e.at for e in found} == {at}
