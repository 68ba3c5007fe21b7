"""The sync engine writing into ``DjangoStore``: a Takeout-style mbox synced
through ``SyncEngine`` reads back exactly as from the reference
``MemoryStore``, and a second run changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from commlink.cli.demo import DEMO_DATA
from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.files.mbox import MboxProvider
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory

OWNER, COLLEAGUE = Viewer("alice"), Viewer("bob")
GLOBEX = Target(TargetKind.COMPANY, "globex")


def _sync(store: Any) -> None:
    directory = InMemoryDirectory()
    directory.add_company("globex", "Globex", ["globex.example"])
    settings = ChannelSettings(owner="alice@northwind.example")
    channel = Channel("takeout", "alice", ChannelKind.MAIL, "mbox", settings)
    provider = MboxProvider(DEMO_DATA / "demo.mbox")
    try:
        report = SyncEngine(store, directory).run(channel, provider)
    finally:
        provider.close()
    assert report.errors == []


def _seen(store: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for viewer in (OWNER, COLLEAGUE):
        timeline = store.timeline(GLOBEX, viewer, PageRequest(limit=100))
        seen[f"timeline {viewer.user_id}"] = timeline
        for summary in timeline.items:
            seen[f"thread {summary.thread_id} {viewer.user_id}"] = store.thread(
                summary.thread_id, viewer
            )
        seen[f"skips {viewer.user_id}"] = sorted(
            store.skips("takeout", viewer), key=lambda s: s.provider_id
        )
    seen["scopes"] = store.scope_ids("takeout")
    seen["cursors"] = {s: store.cursor("takeout", s) for s in seen["scopes"]}
    seen["stored"] = store.stored_addresses()
    seen["linked"] = store.linked_addresses(GLOBEX)
    return seen


@pytest.mark.parametrize("alias", ["default", "postgres"])
def test_a_synced_mailbox_reads_as_from_the_reference_store(
    alias: str, request: pytest.FixtureRequest
) -> None:
    using = "default" if alias == "default" else request.getfixturevalue("pg_alias")
    clear_store(using)
    store = DjangoStore(using)
    reference = MemoryStore()
    _sync(store)
    _sync(reference)
    expected = _seen(reference)
    assert expected["timeline alice"].items  # the demo links threads to Globex
    assert _seen(store) == expected
    assert store.count_associations("takeout") == reference.count_associations("takeout")
    _sync(store)  # a second run: nothing new, nothing lost
    assert _seen(store) == expected
