"""The search index example: it runs, and an index fed the same events
twice (as after a crash between delivery and acknowledgement) holds each
message once."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from commlink import Channel, ChannelKind, ChannelSettings, OutboxRelay
from commlink.cli.demo import DEMO_DATA
from commlink.providers.files.mbox import MboxProvider
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from search_index import NoDirectory, SearchIndex  # noqa: E402


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "search_index.py"), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "delivered 11 events; 9 messages indexed"
    assert "'Globex renewal for 2027'" in out[2]
    assert out[3] == "delivered 9 events; 0 messages indexed"


def test_a_redelivered_batch_is_applied_once(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path / 'crm.sqlite'}", outbox=True) as store:
        channel = Channel(
            "ch",
            "alice",
            ChannelKind.MAIL,
            "mbox",
            ChannelSettings(owner="alice@northwind.example"),
        )
        with MboxProvider(DEMO_DATA / "demo.mbox") as provider:
            SyncEngine(store, NoDirectory()).run(channel, provider)
        index = SearchIndex(tmp_path / "search.sqlite", store)
        events = store.outbox().pending("search", 1000)
        index.deliver(events[:5])
        index.deliver(events)  # the first five again, then the rest
        assert index.count() == 9
        # a restarted relay starts from its acknowledged position: 0 here
        assert OutboxRelay(store.outbox(), index, consumer="search").drain() == len(events)
        assert index.count() == 9
        index.db.close()
