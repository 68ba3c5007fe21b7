"""Random mailbox edits (new mail, moves, deletions) with delta links that
expire now and then: after every sync the store holds exactly what the
selected folders hold, each message once, in the folder it is in now."""

from __future__ import annotations

import random

import pytest
from graph_support import OWNER, client, engine, mail_channel, raw_mail

from commlink.ports import Store
from commlink.providers.microsoft.graph import GraphMailProvider
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration

SELECTED = ("inbox", "archive")


def _expected(server: GraphServer) -> dict[str, set[str]]:
    wanted = {server.mail.folder_id(name): set() for name in SELECTED}
    for message_id, message in server.mail.messages.items():
        if message.folder in wanted:
            wanted[message.folder].add(message_id)
    return wanted


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_store_follows_random_edits(server: GraphServer, store: Store, seed: int) -> None:
    rng = random.Random(seed)
    projects = server.mail.add_folder("Projects", server.mail.folder_id("inbox"))
    folders = [*SELECTED, "sentitems", "deleteditems", projects]
    provider = GraphMailProvider(client(server), user=OWNER, page_size=3)
    sync, _ = engine(store)
    channel = mail_channel(frozenset(SELECTED))
    serial = 0
    try:
        for _ in range(10):
            for _ in range(rng.randint(1, 6)):
                action = rng.random()
                existing = list(server.mail.messages)
                if action < 0.5 or not existing:
                    serial += 1
                    server.mail.add_message(raw_mail(serial), rng.choice(folders))
                elif action < 0.8:
                    server.mail.move(rng.choice(existing), rng.choice(folders))
                else:
                    server.mail.delete(rng.choice(existing))
            if rng.random() < 0.3:
                server.expire_delta_tokens()
            report = sync.run(channel, provider)
            assert report.errors == []
            expected = _expected(server)
            every = [i for ids in expected.values() for i in ids]
            for folder_id, ids in expected.items():
                assert store.known_ids("gr", folder_id, list(server.mail.messages)) == ids
            threads = store.timeline(
                Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"), PageRequest(limit=500)
            )
            assert sum(t.message_count for t in threads.items) == len(every)
    finally:
        provider.close()
