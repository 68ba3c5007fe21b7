"""Model-based conformance: random operations must leave a store observably
equal to ``MemoryStore``, the reference implementation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..model import Direction, Visibility
from ..ports import Store
from ..records import Reason, Skip, SyncBatch, Target, TargetKind, Viewer
from ..stores.memory import MemoryStore
from .conformance_data import T0, all_events, all_threads, batch, channel, event, links, message

__all__ = ["ModelTests"]

CHANNELS = ("a", "b")
SCOPES = ("INBOX", "Sent")
PEOPLE = ("p1", "p2")
VIEWERS = (Viewer("ua"), Viewer("ub"), Viewer("nobody"))
THREADS = tuple(f"t{i}" for i in range(4))


def _key(n: int) -> str:
    return f"x{n}@d{n % 2}.example" if n < 4 else f"y{n}@sub.d1.example"


_messages = st.builds(
    lambda pid, mid, thread, hour, sender, to, body, refs, out: message(
        f"m{pid}",
        f"id{mid}@x",
        thread=f"t{thread}",
        date=T0 + timedelta(hours=hour),
        sender=_key(sender),
        to=(_key(to),),
        subject=f"subject {mid}",
        body=body,
        snippet=f"snippet {mid}",
        references=tuple(f"id{r}@x" for r in refs),
        direction=Direction.OUTGOING if out else Direction.INCOMING,
    ),
    st.integers(0, 7),
    st.integers(0, 4),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 5),
    st.integers(0, 5),
    st.sampled_from([None, "body one", "body two"]),
    st.lists(st.integers(0, 7), max_size=2),
    st.booleans(),
)
_events = st.builds(
    lambda pid, uid, day, who, weekly: event(
        f"e{pid}",
        f"uid{uid}",
        start=T0 + timedelta(days=day),
        attendees=(_key(who),),
        recurrence=("RRULE:FREQ=WEEKLY;COUNT=3",) if weekly else (),
    ),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 10),
    st.integers(0, 5),
    st.booleans(),
)
_links = st.builds(
    lambda n, people, opportunity: (
        links(_key(n), *people)
        if not opportunity
        else links(_key(n), *people, kind=TargetKind.OPPORTUNITY)
    ),
    st.integers(0, 5),
    st.lists(st.sampled_from(PEOPLE), max_size=2, unique=True),
    st.booleans(),
)


_SKIP_REASONS = (Reason.GROUP, Reason.INTERNAL, Reason.BLOCKED)


@st.composite
def _batches(draw: Callable[..., Any]) -> SyncBatch:
    msgs = draw(st.lists(_messages, max_size=4, unique_by=lambda r: r.message.provider_id))
    evts = draw(
        st.lists(_events, max_size=2, unique_by=lambda r: (r.event.provider_id, r.event.uid))
    )
    skipped = draw(st.lists(st.integers(0, 9), max_size=2, unique=True))
    reasons = draw(st.lists(st.sampled_from(_SKIP_REASONS), min_size=2, max_size=2))
    used = {r.message.provider_id for r in msgs} | {r.event.provider_id for r in evts}
    skips = tuple(
        Skip(
            f"m{i}",
            reason,
            f"detail {i}",
            message_id=f"id{i % 6}@x",
            subject=f"subject {i}",
            sender=_key(i % 6),
        )
        for i, reason in zip(skipped, reasons[: len(skipped)], strict=True)
        if f"m{i}" not in used
    )
    return batch(
        draw(st.sampled_from(CHANNELS)),
        draw(st.sampled_from(SCOPES)),
        messages=tuple(msgs),
        events=tuple(evts),
        links=tuple(draw(st.lists(_links, max_size=2))),
        deleted=tuple(f"m{i}" for i in draw(st.lists(st.integers(0, 7), max_size=2))),
        seen=tuple(f"m{i}" for i in draw(st.lists(st.integers(0, 7), max_size=2))),
        skipped=skips,
        thread_merges=tuple(
            (f"t{a}", f"t{b}")
            for a, b in draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=1))
        ),
        cursor=draw(st.sampled_from([None, "k1", "k2"])),
        generation=draw(st.integers(0, 3)),
        sweep=draw(st.booleans()),
    )


_operations = st.one_of(
    _batches().map(lambda b: ("commit", b)),
    st.lists(_links, max_size=2).map(lambda c: ("relink", c)),
    st.tuples(
        st.sampled_from(CHANNELS), st.sampled_from(["@d1.example", _key(0), "@sub.d1.example"])
    ).map(lambda a: ("delete_matching", a)),
    st.tuples(st.sampled_from(CHANNELS), st.sampled_from(SCOPES)).map(lambda a: ("drop_scope", a)),
    st.sampled_from(CHANNELS).map(lambda c: ("remove_channel", c)),
    st.tuples(
        st.sampled_from(CHANNELS),
        st.sampled_from(list(Visibility)),
        st.sampled_from([None, "@d1.example", _key(2)]),
        st.booleans(),
    ).map(lambda a: ("reconfigure", a)),
    st.integers(0, 5).map(lambda n: ("erase_address", _key(n).upper())),
)


def _apply(store: Store, operation: tuple[str, Any]) -> Any:
    kind, arg = operation
    if kind == "commit":
        if store.channel(arg.channel_id) is None:
            store.save_channel(_channel(arg.channel_id))
        return store.commit(arg)
    if kind == "relink":
        return store.relink(arg)
    if kind == "delete_matching":
        return store.delete_matching(arg[0], [arg[1]])
    if kind == "drop_scope":
        return store.drop_scope(*arg)
    if kind == "reconfigure":
        name, visibility, blocked, details = arg
        found = _channel(name)
        settings = attrs.evolve(
            found.settings,
            visibility=visibility,
            blocklist=frozenset({blocked} if blocked else ()),
            skip_details=details,
        )
        return store.save_channel(attrs.evolve(found, settings=settings))
    if kind == "erase_address":
        report = store.erase_address(arg)  # erased_at: each store's own clock
        return (report.key, report.messages, report.events, report.skips, report.links)
    return store.remove_channel(arg)


def _channel(name: str) -> Any:
    visibility = Visibility.SUBJECT if name == "a" else Visibility.METADATA
    found = channel(name, "u" + name, visibility)
    if name == "b":  # b's owner organises the suite's events: other viewers get b's copy
        aliases = frozenset({"u1@org.example"})
        found = attrs.evolve(found, settings=attrs.evolve(found.settings, aliases=aliases))
    return found


def _clear(store: Store) -> None:
    """Empty what the operations can have written (erasure tombstones too,
    where the store can forget them: ``_compare`` copes with the others)."""
    for name in CHANNELS:
        store.remove_channel(name)
    store.relink([links(_key(n)) for n in range(6)])
    forget = getattr(store, "forget_erasure", None)
    if forget is not None:
        for key in store.erased([_key(n) for n in range(6)]):
            forget(key)


def _observe(store: Store) -> dict[str, Any]:
    ids = [f"m{i}" for i in range(10)] + [f"e{i}" for i in range(4)]
    seen: dict[str, Any] = {}
    for name in CHANNELS:
        seen[f"channel {name}"] = store.channel(name)
        for viewer in (Viewer("u" + name), Viewer("nobody")):
            seen[f"skips {name} {viewer}"] = store.skips(name, viewer)
        seen[f"scopes {name}"] = sorted(store.scope_ids(name))
        for scope in SCOPES:
            seen[f"cursor {name} {scope}"] = store.cursor(name, scope)
            seen[f"known {name} {scope}"] = store.known_ids(name, scope, ids)
    seen["stored"] = store.stored_addresses()
    seen["erased"] = store.erased([_key(n) for n in range(6)])
    thread_ids = [f"id{i}@x" for i in range(8)]
    seen["threads"] = dict(store.threads_by_message_ids(thread_ids))
    for name in CHANNELS:
        seen[f"thread links {name}"] = store.thread_links(name, thread_ids)
    for person_id in PEOPLE:
        for kind in (TargetKind.PERSON, TargetKind.OPPORTUNITY):
            target = Target(kind, person_id)
            seen[f"linked {target}"] = store.linked_addresses(target)
    return seen


class ModelTests:
    """Mixed into ``StoreConformance``; needs the ``store`` fixture."""

    @settings(
        max_examples=40,
        deadline=None,
        # one test run per store subclass, each with its own (shared) fixture
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(operations=st.lists(_operations, min_size=1, max_size=6))
    def test_behaves_like_the_reference_store(
        self, store: Store, operations: list[tuple[str, Any]]
    ) -> None:
        # examples share the store fixture: empty it whatever happens
        try:
            self._compare(store, operations)
        finally:
            _clear(store)

    @staticmethod
    def _compare(store: Store, operations: list[tuple[str, Any]]) -> None:
        reference = MemoryStore()
        for key in store.erased([_key(n) for n in range(6)]):
            reference.erase_address(key)  # tombstones a store cannot forget
        for operation in operations:
            expected = _apply(reference, operation)
            assert _apply(store, operation) == expected, operation
        assert _observe(store) == _observe(reference)
        for thread_id in THREADS:
            for viewer in VIEWERS:
                assert store.thread(thread_id, viewer) == reference.thread(thread_id, viewer)
        for person_id in PEOPLE:
            for kind in (TargetKind.PERSON, TargetKind.OPPORTUNITY):
                target = Target(kind, person_id)
                for viewer in VIEWERS:
                    threads = all_threads(reference, target, viewer, limit=2)
                    assert all_threads(store, target, viewer, limit=2) == threads
                    assert all_events(store, target, viewer, limit=3) == all_events(
                        reference, target, viewer, limit=3
                    )
