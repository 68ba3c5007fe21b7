"""An erased address stays erased through the sync: its mail is skipped
before the policy runs, so no link and no contact is made from it."""

from __future__ import annotations

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.records import Reason
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider
from commlink.testing.provider_conformance import OWNER, sample_message


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> MemoryStore | SqlStore:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'erase.sqlite'}")


def test_mail_of_an_erased_address_creates_no_contact(store) -> None:
    settings = ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.SENT_AND_RECEIVED)
    channel = Channel("ch", "u-owner", ChannelKind.MAIL, "fake", settings)
    directory = InMemoryDirectory()
    provider = FakeMailProvider()
    provider.box.add("INBOX", sample_message(1, sender="gone@client.example"))
    provider.box.add("INBOX", sample_message(2, sender="stays@client.example"))
    store.save_channel(channel)
    store.erase_address("Gone@Client.example")
    report = SyncEngine(store, directory).run(channel, provider)
    assert report.imported == 1
    assert report.skipped[Reason.ERASED] == 1
    created = {a for p in directory.people() for a in directory.addresses_of(p.id)}
    assert created == {"stays@client.example"}
