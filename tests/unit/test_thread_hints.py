"""A provider's own thread id keeps a thread together across batches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from commlink.addresses import parse_address
from commlink.model import Channel, ChannelKind, ChannelSettings, Message, Participant, Role
from commlink.policy.pipeline import evaluate
from commlink.policy.threads import joinable_threads, lookup_ids
from commlink.ports import Store
from commlink.records import SyncBatch
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.testing.directory import InMemoryDirectory

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
CHANNEL = Channel("gm", "u", ChannelKind.MAIL, "gmail", ChannelSettings(owner="me@home.example"))


def message(n: int, hint: str, references: tuple[str, ...] = ()) -> Message:
    return Message(
        provider_id=f"p{n}",
        message_id=f"m{n}@example.com",
        date=T0 + timedelta(hours=n),
        subject=f"Subject {n}",
        participants=(
            Participant(parse_address("ann@client.example"), Role.FROM),
            Participant(parse_address("me@home.example"), Role.TO),
        ),
        thread_hint=hint,
        references=references,
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Store:
    return MemoryStore() if request.param == "memory" else SqlStore("sqlite://")


def commit(store: Store, messages: list[Message]) -> dict[str, str]:
    links = store.thread_links(CHANNEL.id, lookup_ids(messages, CHANNEL.id))
    known = joinable_threads(links, messages)
    result = evaluate(messages, CHANNEL, {}, InMemoryDirectory(), known, links.claimed)
    store.commit(SyncBatch(CHANNEL.id, "all", messages=result.records, links=result.links))
    return {r.message.provider_id: r.thread_id for r in result.records}


def test_messages_of_one_provider_thread_share_a_thread_across_batches(store: Store) -> None:
    store.save_channel(CHANNEL)
    # message 1 replies to a message we never saw, so its thread is named after that root
    first = commit(store, [message(1, "T1", ("root@elsewhere.example",)), message(2, "T2")])
    # no References at all: only Gmail's threadId ties message 3 to message 1
    later = commit(store, [message(3, "T1")])
    assert later["p3"] == first["p1"]
    assert first["p1"] != first["p2"]
