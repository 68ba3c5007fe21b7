"""Host events end to end: a sync through ``SyncEngine`` with the in-process
hook (``on_events``) on the memory store and SQLite, channel state changes,
bounded targets, and the event values themselves (hostile text included)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.errors import AuthError, InvalidInput
from commlink.events import (
    CHANNEL_STATE_CHANGED,
    MAX_TARGETS,
    MESSAGE_CREATED,
    MESSAGE_DELETED,
    EventSink,
    HostEvent,
    OutboxRelay,
)
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import ChannelStatus, Target, TargetKind
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.conformance_data import batch, links, message, setup_channels
from commlink.testing.conformance_events import RecordingSink
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _store(kind: str, tmp_path: Path, **options: object) -> MemoryStore | SqlStore:
    if kind == "memory":
        return MemoryStore(**options)  # type: ignore[arg-type]
    return SqlStore(f"sqlite:///{tmp_path / 'events.sqlite'}", **options)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_sync_reports_messages_and_channel_states(kind: str, tmp_path: Path) -> None:
    sink = RecordingSink()
    store = _store(kind, tmp_path, on_events=sink)
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
    provider = FakeMailProvider()
    first, _second = (provider.box.add("INBOX", sample_message(n)) for n in (1, 2))
    channel = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", ChannelSettings(owner=OWNER))
    engine = SyncEngine(store, directory)
    engine.run(channel, provider)
    created = [e for e in sink.events if e.type == MESSAGE_CREATED]
    assert sorted(e.message_id for e in created) == ["msg-1@conformance", "msg-2@conformance"]
    assert all(e.targets == (Target(TargetKind.PERSON, "p-ann"),) for e in created)
    assert all(e.id == 0 for e in sink.events)  # no outbox: not persisted
    states = [e.status for e in sink.events if e.type == CHANNEL_STATE_CHANGED]
    assert states[-1] is ChannelStatus.ACTIVE

    seen = len(sink.events)
    engine.run(channel, provider)  # nothing changed at the source
    assert [e.type for e in sink.events[seen:]] == []

    provider.box.delete("INBOX", first)
    engine.run(channel, provider)
    assert [(e.type, e.message_id) for e in sink.events[seen:]] == [
        (MESSAGE_DELETED, "msg-1@conformance")
    ]

    seen = len(sink.events)
    provider.faults.fail("folders", AuthError("[AUTHENTICATIONFAILED] bad password"))
    engine.run(channel, provider)
    [failed] = sink.events[seen:]
    assert (failed.previous, failed.status) == (ChannelStatus.ACTIVE, ChannelStatus.FAILED_AUTH)
    assert "AUTHENTICATIONFAILED" in failed.error


def test_a_failing_sink_never_fails_the_write(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink(fail=1)
    store = _store(kind, tmp_path, on_events=sink)
    setup_channels(store)
    with caplog.at_level(logging.WARNING):
        store.commit(batch(messages=(message("1"),)))
    assert store.known_ids("c1", "INBOX", ["1"]) == {"1"}
    assert "ConnectionError" in caplog.text
    store.commit(batch(messages=(message("2"),)))
    assert [e.message_id for e in sink.events] == ["2@mail.example"]


def test_the_hook_and_the_outbox_see_the_same_persisted_events(kind: str, tmp_path: Path) -> None:
    sink = RecordingSink()
    store = _store(kind, tmp_path, outbox=True, on_events=sink)
    setup_channels(store)
    store.commit(batch(messages=(message("1"), message("2"))))
    assert sink.events == list(store.outbox().pending("x"))
    assert all(e.id > 0 for e in sink.events)


def test_without_an_outbox_there_is_none_to_read(kind: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        _store(kind, tmp_path).outbox()


def test_targets_are_bounded(kind: str, tmp_path: Path) -> None:
    store = _store(kind, tmp_path, outbox=True)
    setup_channels(store)
    people = [f"person{n}@client.example" for n in range(MAX_TARGETS + 50)]
    record = message("1", to=people)
    store.commit(batch(messages=(record,), links=tuple(links(k, f"p{k}") for k in people)))
    [created] = store.outbox().pending("x")
    assert len(created.targets) == MAX_TARGETS
    assert created.targets_truncated
    assert list(created.targets) == sorted(created.targets, key=lambda t: (t.kind.value, t.id))


def test_a_relay_needs_a_sink_it_can_call(tmp_path: Path) -> None:
    store = MemoryStore(outbox=True)
    setup_channels(store)
    store.commit(batch(messages=(message("1"),)))
    relay = OutboxRelay(store.outbox(), object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        relay.drain()
    assert isinstance(RecordingSink(), EventSink)


def test_events_validate_their_type_and_time() -> None:
    with pytest.raises(ValueError, match="type"):
        HostEvent(type="message.exploded", channel_id="c", at=NOW)
    with pytest.raises(ValueError, match="naive"):
        HostEvent(type=MESSAGE_CREATED, channel_id="c", at=datetime(2026, 1, 1))


_TEXT = st.text(st.characters(codec=None), max_size=40)


@given(
    message_id=_TEXT,
    channel_id=_TEXT,
    error=_TEXT,
    target_ids=st.lists(_TEXT, max_size=5),
    status=st.sampled_from([None, *ChannelStatus]),
)
def test_any_event_survives_a_round_trip_through_json(
    message_id: str,
    channel_id: str,
    error: str,
    target_ids: Sequence[str],
    status: ChannelStatus | None,
) -> None:
    event = HostEvent(
        type=MESSAGE_CREATED,
        channel_id=channel_id,
        at=NOW,
        id=7,
        message_id=message_id,
        thread_id=message_id[::-1],
        targets=tuple(Target(TargetKind.COMPANY, t) for t in target_ids),
        status=status,
        error=error,
    )
    text = json.dumps(event.to_dict())  # ASCII: lone surrogates and NULs escaped
    assert text.isascii()
    assert HostEvent.from_dict(json.loads(text)) == event


@given(st.lists(st.sampled_from(["nul\x00", "\ud800", "é", "x" * 3000]), min_size=1, max_size=3))
def test_hostile_ids_are_stored_and_read_back_on_sqlite(parts: list[str]) -> None:
    store = SqlStore("sqlite://", outbox=True)
    setup_channels(store)
    event = HostEvent(type=MESSAGE_CREATED, channel_id="c1", at=NOW, message_id="".join(parts))
    from commlink.stores.sql_outbox import write_outbox

    with store.engine.begin() as conn:
        [stored] = write_outbox(conn, [event])
    assert store.outbox().pending("x") == [stored]
    assert stored.message_id == event.message_id
    store.close()
