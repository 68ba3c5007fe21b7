"""A record a store cannot hold is isolated: skipped with the store's reason
while the rest of its batch is stored, on SQLite and PostgreSQL.

The values are handed to the engine already parsed (a host's own provider
may do that), so the parser's own clean-up is not what saves the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings, Detail
from commlink.ports import FetchedMessage, Scope
from commlink.records import ChannelStatus, Reason, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.conformance_data import message
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.postgres import reachable, temporary_database
from commlink.testing.provider_conformance import OWNER, sample_message

#: distinct 64-letter words of 4-byte letters: more than a PostgreSQL
#: tsvector's 1 MiB of lexemes (PostgreSQL refuses the index row)
_HUGE_VOCABULARY = " ".join(
    "".join(chr(0x20000 + (n >> (4 * k) & 0xF) + 16 * k) for k in range(64)) for n in range(4_200)
)

POISON = {
    "nul-subject": {"subject": "hello\x00world"},
    "search-words-past-tsvector": {"body": _HUGE_VOCABULARY},
    "nul-message-id": {"message_id": "nul\x00id@attack.example"},
    "long-message-id": {"message_id": "x" * 3000 + "@attack.example"},
    "nul-reference": {"references": ("a@x.example", "b\x00c@x.example")},
}


@attrs.define
class PreParsed(FakeMailProvider):
    """Serves some ids as already-mapped messages, straight to the engine."""

    parsed: dict[str, object] = attrs.field(factory=dict)

    def fetch(self, scope: Scope, ids: Sequence[str], detail: Detail) -> Iterator[FetchedMessage]:
        for item in super().fetch(scope, ids, detail):
            found = self.parsed.get(item.provider_id)
            yield item if found is None else FetchedMessage(item.provider_id, message=found)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[object]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield SqlStore(f"sqlite:///{tmp_path / 'poison.sqlite'}")
    else:
        if not reachable():
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
        with temporary_database() as engine:
            yield SqlStore(engine)


@pytest.mark.parametrize("case", sorted(POISON))
def test_one_unstorable_record_never_costs_the_batch(store, case: str) -> None:
    provider = PreParsed()
    normal = [provider.box.add("INBOX", sample_message(n)) for n in range(5)]
    poison_id = provider.box.add("INBOX", sample_message(99))
    record = message(poison_id, sender="ann@client.example", to=(OWNER,), **POISON[case])
    provider.parsed[poison_id] = record.message
    channel = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", ChannelSettings(owner=OWNER))
    report = SyncEngine(store, InMemoryDirectory()).run(channel, provider)  # type: ignore[arg-type]
    assert report.status is ChannelStatus.ACTIVE, report.errors
    assert report.errors == []
    assert store.known_ids("ch", "INBOX", normal) == set(normal)  # type: ignore[attr-defined]
    skipped = {s.provider_id: s for s in store.skips("ch", Viewer("u-owner"))}  # type: ignore[attr-defined]
    if poison_id in skipped:  # refused by this store: isolated, with the reason
        assert skipped[poison_id].reason is Reason.ERROR
        assert "refused" in skipped[poison_id].detail or "unstorable" in skipped[poison_id].detail
        assert "\x00" not in skipped[poison_id].detail
    else:  # this store held it as it was
        assert store.known_ids("ch", "INBOX", [poison_id]) == {poison_id}  # type: ignore[attr-defined]
