from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timezone

from commlink.model import Message
from commlink.policy.threads import (
    assign_threads,
    joinable_threads,
    lookup_ids,
    root_candidate,
    thread_node,
)
from commlink.records import ThreadLinks

WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)


def m(
    pid: str,
    mid: str,
    refs: Sequence[str] = (),
    irt: Sequence[str] = (),
    hint: str | None = None,
) -> Message:
    return Message(
        provider_id=pid,
        message_id=mid,
        date=WHEN,
        references=tuple(refs),
        in_reply_to=tuple(irt),
        thread_hint=hint,
    )


class ThreadStore:
    """The store side of threading, as the ``Store`` port documents it."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, frozenset[str], str]] = {}

    def threads_by_message_ids(self, ids: Collection[str]) -> dict[str, str]:
        wanted = set(ids)
        found: dict[str, str] = {}
        for message_id, refs, thread in self.rows.values():
            if message_id in wanted:
                found[message_id] = thread
            for ref in refs & wanted:
                found.setdefault(ref, thread)
        return found

    def sync(self, batch: Sequence[Message], channel: str = "ch") -> dict[str, str]:
        known = self.threads_by_message_ids(lookup_ids(batch))
        result = assign_threads(batch, known, channel)
        moved = dict(result.merges)
        self.rows = {
            pid: (mid, refs, moved.get(thread, thread))
            for pid, (mid, refs, thread) in self.rows.items()
        }
        for message in batch:
            refs = frozenset((*message.references, *message.in_reply_to))
            thread = result.by_provider_id[message.provider_id]
            self.rows[message.provider_id] = (message.message_id, refs, thread)
        return result.by_provider_id

    def thread_of(self, pid: str) -> str:
        return self.rows[pid][2]


def groups(threads: Iterable[tuple[str, str]]) -> set[frozenset[str]]:
    by_thread: dict[str, set[str]] = {}
    for pid, thread in threads:
        by_thread.setdefault(thread, set()).add(pid)
    return {frozenset(g) for g in by_thread.values()}


def test_lookup_ids() -> None:
    batch = [m("1", "a", refs=["r1", "r2"], irt=["r2"]), m("2", "b"), m("3", "", refs=[""])]
    assert lookup_ids(batch) == {"a", "r1", "r2", "b"}


def test_root_candidate_order() -> None:
    assert root_candidate(m("1", "c", refs=["a", "b"], irt=["b"], hint="h"), "ch") == "a"
    assert root_candidate(m("1", "c", irt=["b"], hint="h"), "ch") == "b"
    assert root_candidate(m("1", "c", hint="h"), "ch") == thread_node("ch", "h") == "ch:h"
    assert root_candidate(m("1", "c"), "ch") == "c"


def test_simple_conversation_takes_the_root_id() -> None:
    batch = [m("1", "a"), m("2", "b", refs=["a"], irt=["a"]), m("3", "c", refs=["a", "b"])]
    result = assign_threads(batch, {}, "ch")
    assert result.by_provider_id == {"1": "a", "2": "a", "3": "a"}
    assert result.merges == ()


def test_unrelated_messages_get_their_own_threads() -> None:
    result = assign_threads([m("1", "a"), m("2", "b")], {}, "ch")
    assert result.by_provider_id == {"1": "a", "2": "b"}


def test_in_reply_to_keeps_a_thread_when_references_are_dropped() -> None:
    # A client changed the subject and dropped References but kept In-Reply-To.
    batch = [m("1", "a"), m("2", "b", refs=["a"]), m("3", "c", irt=["b"])]
    assert set(assign_threads(batch, {}, "ch").by_provider_id.values()) == {"a"}


def test_provider_thread_hint_groups_messages() -> None:
    batch = [m("1", "a", hint="T"), m("2", "b", hint="T"), m("3", "c", hint="U")]
    result = assign_threads(batch, {}, "gmail-1").by_provider_id
    assert result["1"] == result["2"] == "gmail-1:T"
    assert result["3"] == "gmail-1:U"


def test_known_thread_wins_and_others_merge() -> None:
    batch = [m("1", "x", refs=["a", "b"])]
    result = assign_threads(batch, {"a": "T-9", "b": "T-2"}, "ch")
    assert result.by_provider_id == {"1": "T-2"}
    assert result.merges == (("T-9", "T-2"),)


def test_messages_without_ids_stay_apart() -> None:
    result = assign_threads([m("1", ""), m("2", "")], {}, "ch")
    assert result.by_provider_id["1"] != result.by_provider_id["2"]


def test_order_within_a_batch_does_not_matter() -> None:
    batch = [
        m("1", "a"),
        m("2", "b", irt=["a"]),
        m("3", "z", refs=["y"]),
        m("4", "c", refs=["b"], hint="h"),
        m("5", "d", hint="h"),
    ]
    expected = assign_threads(batch, {}, "ch")
    assert assign_threads(list(reversed(batch)), {}, "ch") == expected
    assert assign_threads(batch[2:] + batch[:2], {}, "ch") == expected


def test_replies_before_parents_across_batches() -> None:
    # Newest-first import: the deepest reply arrives first, the root last.
    store = ThreadStore()
    store.sync([m("3", "c", refs=["a", "b"], irt=["b"])])
    store.sync([m("2", "b", refs=["a"], irt=["a"])])
    store.sync([m("1", "a")])
    assert store.thread_of("1") == store.thread_of("2") == store.thread_of("3")


def test_replies_before_parents_without_references() -> None:
    # Only In-Reply-To chains, so the first batch cannot know the root.
    store = ThreadStore()
    store.sync([m("3", "c", irt=["b"])])
    store.sync([m("1", "a")])
    assert store.thread_of("1") != store.thread_of("3")
    store.sync([m("2", "b", irt=["a"])])
    # The middle message joins both stored threads: they merge.
    assert store.thread_of("1") == store.thread_of("2") == store.thread_of("3")


def test_batches_give_the_same_grouping_as_one_batch() -> None:
    messages = [
        m("1", "a"),
        m("2", "b", irt=["a"]),
        m("3", "c", irt=["b"]),
        m("4", "d", refs=["x"]),
        m("5", "e", refs=["x", "d"]),
        m("6", "f"),
    ]
    whole = assign_threads(messages, {}, "ch").by_provider_id
    store = ThreadStore()
    for batch in ([messages[4], messages[2]], [messages[5], messages[0]], messages[1:2]):
        store.sync(batch)
    store.sync([messages[3]])
    split = {pid: store.thread_of(pid) for pid in whole}
    assert groups(split.items()) == groups(whole.items())


def test_groups_sharing_a_stored_thread_become_one() -> None:
    # "b" and "c" are unrelated in this batch, but both belong to stored thread T2,
    # which "a" also touches alongside stored thread T1.
    batch = [m("1", "a", refs=["x"]), m("2", "c")]
    known = {"x": "T2", "a": "T1", "c": "T2"}
    result = assign_threads(batch, known, "ch")
    assert result.by_provider_id == {"1": "T1", "2": "T1"}
    assert result.merges == (("T2", "T1"),)


def test_a_merged_thread_is_never_assigned() -> None:
    store = ThreadStore()
    store.sync([m("5", "m1")])
    store.sync([m("7", "m0", refs=["m2"])])
    result = store.sync([m("1", "m0", refs=["m1"]), m("3", "m2")])
    assert len(set(result.values())) == 1
    assert len({store.thread_of(p) for p in ("1", "3", "5", "7")}) == 1


def test_joinable_threads_trust_only_what_the_channel_vouches_for() -> None:
    links = ThreadLinks(
        stored={"own": "T-own", "held": "T-held", "foreign": "T-foreign", "both": "T-b"},
        held=frozenset({"held", "both"}),
        referenced={"foreign": "T-mine", "loose": "T-loose", "both": "T-b2"},
        elsewhere=frozenset({"rumour"}),
    )
    batch = [m("1", "own", refs=["held", "foreign", "loose", "rumour", "both"])]
    assert joinable_threads(links, batch) == {
        "own": "T-own",  # the same message seen from another mailbox
        "held": "T-held",  # the channel holds a copy
        "foreign": "T-mine",  # not the stored message's thread: the channel's own reply to it
        "loose": "T-loose",
        "both": frozenset({"T-b", "T-b2"}),  # both are the channel's: the batch joins them
    }
    assert links.claimed == {"own", "held", "foreign", "both", "loose", "rumour"}


def test_an_id_another_thread_may_carry_is_qualified_by_the_channel() -> None:
    batch = [m("1", "x", refs=["a"])]
    assert assign_threads(batch, {}, "ch").by_provider_id == {"1": "a"}
    claimed = assign_threads(batch, {}, "ch", claimed={"a"}).by_provider_id
    assert claimed == {"1": "ch a"}
    # a second batch of the channel finds the first through its own reference
    again = assign_threads([m("2", "y", refs=["a"])], {"a": "ch a"}, "ch", claimed={"a"})
    assert again.by_provider_id == {"2": "ch a"}


def test_an_id_leading_to_two_threads_merges_them() -> None:
    result = assign_threads([m("1", "x")], {"x": frozenset({"T-2", "T-1"})}, "ch")
    assert result.by_provider_id == {"1": "T-1"}
    assert result.merges == (("T-2", "T-1"),)
