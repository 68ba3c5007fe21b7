"""An outsider's References never thread mail into another mailbox's conversation.

Every id in a message comes from its sender (DESIGN §9): anyone who once saw
a Message-ID of a conversation can put it in References. Through the engine,
on both reference stores: Alice (``ca``) and Bob (``cb``) are colleagues, Ann
is a client, Mallory an outsider writing to Bob.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.addresses import parse_address
from commlink.model import Channel, ChannelKind, ChannelSettings, Message, Participant, Role
from commlink.policy.pipeline import evaluate
from commlink.policy.threads import joinable_threads, lookup_ids
from commlink.ports import Store
from commlink.records import SyncBatch, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailProvider

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL = "alice@home.example", "bob@home.example", "carol@home.example"
ANN, MALLORY = "ann@client.example", "mallory@evil.example"
CLIENT = Target(TargetKind.COMPANY, "co")


def mail(
    n: int,
    sender: str,
    to: Sequence[str],
    subject: str,
    refs: Sequence[str] = (),
) -> bytes:
    """Message ``<m{n}@x>`` replying to the Message-IDs ``refs`` (oldest first)."""
    threading = ""
    if refs:
        ids = " ".join(f"<{r}>" for r in refs)
        threading = f"In-Reply-To: <{refs[-1]}>\r\nReferences: {ids}\r\n"
    return (
        f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
        f"Date: Tue, 01 Dec 2026 {n:02d}:00:00 +0000\r\nMessage-ID: <m{n}@x>\r\n"
        f"{threading}\r\nBody {n}.\r\n"
    ).encode()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqlStore(f"sqlite:///{tmp_path / 'threads.sqlite'}")


@pytest.fixture
def directory() -> InMemoryDirectory:
    d = InMemoryDirectory()
    d.add_company("co", "Client", ["client.example"])
    d.add_person("ann", "Ann Client", [ANN], company_id="co")
    return d


class Mailbox:
    """One colleague's channel and mailbox."""

    def __init__(self, store: Store, directory: InMemoryDirectory, owner: str) -> None:
        name = owner.split("@")[0]
        settings = ChannelSettings(owner=owner, org_domains=frozenset({"home.example"}))
        self.channel = Channel(f"c-{name}", f"u-{name}", ChannelKind.MAIL, "fake", settings)
        self.provider = FakeMailProvider()
        self.engine = SyncEngine(store, directory, clock=lambda: NOW)

    def receive(self, *raw: bytes) -> None:
        for item in raw:
            self.provider.box.add("INBOX", item)

    def sync(self) -> None:
        assert self.engine.run(self.channel, self.provider).complete


def thread_of(store: Store, n: int) -> str:
    return store.threads_by_message_ids([f"m{n}@x"])[f"m{n}@x"]


def members(store: Store, n: int) -> set[str]:
    view = store.thread(thread_of(store, n), Viewer("u-alice"))
    assert view is not None
    return {m.message_id for m in view.messages}


def test_an_outsider_cannot_thread_mail_into_another_mailbox(store, directory) -> None:
    alice, bob = Mailbox(store, directory, ALICE), Mailbox(store, directory, BOB)
    alice.receive(
        mail(1, ANN, [ALICE], "Contract"), mail(2, ANN, [ALICE], "Re: Contract", ["m1@x"])
    )
    alice.sync()
    # Mallory knows Alice's Message-IDs and copies Ann, so his mail is on the Client timeline
    bob.receive(mail(3, MALLORY, [BOB, ANN], "Cheap watches", ["m1@x", "m2@x"]))
    bob.sync()

    assert members(store, 1) == {"m1@x", "m2@x"}
    assert thread_of(store, 3) != thread_of(store, 1)
    for viewer in ("u-alice", "u-bob"):
        titles = {t.thread_id: t.subject for t in store.timeline(CLIENT, Viewer(viewer)).items}
        assert titles.get(thread_of(store, 1), "Re: Contract") == "Re: Contract"


def test_an_outsider_cannot_merge_two_conversations(store, directory) -> None:
    alice, bob = Mailbox(store, directory, ALICE), Mailbox(store, directory, BOB)
    carol = Mailbox(store, directory, CAROL)
    alice.receive(mail(1, ANN, [ALICE], "Contract"))
    carol.receive(mail(2, ANN, [CAROL], "Invoice"))
    alice.sync()
    carol.sync()
    bob.receive(mail(3, MALLORY, [BOB, ANN], "Both", ["m1@x", "m2@x"]))
    bob.sync()

    threads = {thread_of(store, n) for n in (1, 2, 3)}
    assert len(threads) == 3
    assert members(store, 1) == {"m1@x"}
    assert members(store, 2) == {"m2@x"}


def test_an_outsider_cannot_claim_a_conversation_before_it_is_stored(store, directory) -> None:
    # Mallory references an id before any mailbox holds it (a reply he expects)
    alice, bob = Mailbox(store, directory, ALICE), Mailbox(store, directory, BOB)
    bob.receive(mail(3, MALLORY, [BOB, ANN], "Cheap watches", ["m1@x"]))
    bob.sync()
    alice.receive(mail(1, ANN, [ALICE], "Contract"))
    alice.sync()
    assert thread_of(store, 1) != thread_of(store, 3)
    assert members(store, 1) == {"m1@x"}


@pytest.mark.parametrize("first", ["alice", "bob"])
def test_one_conversation_in_two_mailboxes_is_one_thread(store, directory, first) -> None:
    alice, bob = Mailbox(store, directory, ALICE), Mailbox(store, directory, BOB)
    alice.receive(
        mail(1, ANN, [ALICE, BOB], "Contract"),
        mail(3, ANN, [ALICE, BOB], "Re: Contract", ["m1@x", "m2@x"]),
    )
    # Bob's reply to Ann is in his mailbox only
    bob.receive(
        mail(1, ANN, [ALICE, BOB], "Contract"),
        mail(2, BOB, [ANN], "Re: Contract", ["m1@x"]),
        mail(3, ANN, [ALICE, BOB], "Re: Contract", ["m1@x", "m2@x"]),
    )
    order = (alice, bob) if first == "alice" else (bob, alice)
    for box in order:
        box.sync()
    assert members(store, 1) == {"m1@x", "m2@x", "m3@x"}


def test_a_conversation_joined_late_comes_together_when_a_shared_message_is_stored(
    store, directory
) -> None:
    alice, bob = Mailbox(store, directory, ALICE), Mailbox(store, directory, BOB)
    alice.receive(mail(1, ANN, [ALICE], "Contract"))
    alice.sync()
    # Ann copies Bob in later: his mailbox holds nothing the reply refers to
    bob.receive(mail(2, ANN, [ALICE, BOB], "Re: Contract", ["m1@x"]))
    bob.sync()
    assert thread_of(store, 2) != thread_of(store, 1)
    # Alice's copy of the same reply vouches for the link: the threads merge
    alice.receive(mail(2, ANN, [ALICE, BOB], "Re: Contract", ["m1@x"]))
    alice.sync()
    assert members(store, 1) == {"m1@x", "m2@x"}


def test_within_one_mailbox_references_still_thread(store, directory) -> None:
    alice = Mailbox(store, directory, ALICE)
    alice.receive(mail(1, ANN, [ALICE], "Contract"))
    alice.sync()
    alice.receive(mail(2, ANN, [ALICE], "Re: Contract", ["m1@x"]))
    alice.sync()
    alice.receive(mail(3, ANN, [ALICE], "Re: Contract", ["m0@x", "m1@x", "m2@x"]))
    alice.sync()
    assert members(store, 1) == {"m1@x", "m2@x", "m3@x"}


# --- the rule as a property -------------------------------------------------
#
# Threads are the connected parts of a graph that only mailboxes vouch for:
# each stored message is a node; a copy in channel C referencing id r is
# joined to the node "r as C sees it", and that node to the message r itself
# only when C holds a copy of r. Whatever the order and batches mail arrives
# in, the stored threads must be exactly those parts.

POOL = [f"i{n}@x" for n in range(6)]
CHANNELS = ("ca", "cb", "cc")
Copy = tuple[str, str, tuple[str, ...]]  # channel, Message-ID, references


def _copy_message(copy: Copy) -> Message:
    channel_id, mid, refs = copy
    return Message(
        provider_id=f"{channel_id}/{mid}",
        message_id=mid,
        date=NOW,
        subject="s",
        participants=(
            Participant(parse_address(ANN), Role.FROM),
            Participant(parse_address(ALICE), Role.TO),
        ),
        references=refs,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[list[Copy]]:
    """Copies in several mailboxes, cut into one-channel batches in any order."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(CHANNELS), st.sampled_from(POOL)),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    copies = [
        (c, mid, tuple(draw(st.lists(st.sampled_from(POOL), max_size=3, unique=True))))
        for c, mid in keys
    ]
    order = draw(st.permutations(copies))
    batches: list[list[Copy]] = []
    for copy in order:
        if batches and batches[-1][0][0] == copy[0] and draw(st.booleans()):
            batches[-1].append(copy)
        else:
            batches.append([copy])
    return batches


def _vouched_parts(copies: Sequence[Copy]) -> set[frozenset[str]]:
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    held = {(c, mid) for c, mid, _ in copies}
    for c, mid, refs in copies:
        find(mid)
        for ref in refs:
            parent[find(f"{c}|{ref}")] = find(mid)
            if (c, ref) in held:
                parent[find(f"{c}|{ref}")] = find(ref)
    parts: dict[str, set[str]] = {}
    for _, mid, _ in copies:
        parts.setdefault(find(mid), set()).add(mid)
    return {frozenset(p) for p in parts.values()}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=150, deadline=None)
@given(batches=histories())
def test_threads_are_what_the_mailboxes_vouch_for(kind: str, batches: list[list[Copy]]) -> None:
    store: Store = MemoryStore() if kind == "memory" else SqlStore("sqlite://")
    directory = InMemoryDirectory()
    settings_ = ChannelSettings(owner=ALICE, org_domains=frozenset({"home.example"}))
    channels = {c: Channel(c, "u", ChannelKind.MAIL, "fake", settings_) for c in CHANNELS}
    for channel in channels.values():
        store.save_channel(channel)
    for batch in batches:
        channel = channels[batch[0][0]]
        messages = [_copy_message(copy) for copy in batch]
        links = store.thread_links(channel.id, lookup_ids(messages, channel.id))
        result = evaluate(
            messages, channel, {}, directory, joinable_threads(links, messages), links.claimed
        )
        assert len(result.records) == len(messages)
        store.commit(
            SyncBatch(channel.id, "all", messages=result.records, thread_merges=result.merges)
        )
    copies = [copy for batch in batches for copy in batch]
    stored = store.threads_by_message_ids({mid for _, mid, _ in copies})
    parts: dict[str, set[str]] = {}
    for mid, thread in stored.items():
        if mid in {m for _, m, _ in copies}:
            parts.setdefault(thread, set()).add(mid)
    assert {frozenset(p) for p in parts.values()} == _vouched_parts(copies)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_another_mailboxs_provider_thread_cannot_be_named(kind: str) -> None:
    store: Store = MemoryStore() if kind == "memory" else SqlStore("sqlite://")
    settings_ = ChannelSettings(owner=ALICE, org_domains=frozenset({"home.example"}))
    gmail, other = (Channel(c, "u", ChannelKind.MAIL, "fake", settings_) for c in ("gm", "cb"))
    for channel in (gmail, other):
        store.save_channel(channel)

    def sync(channel: Channel, message: Message) -> str:
        links = store.thread_links(channel.id, lookup_ids([message], channel.id))
        known = joinable_threads(links, [message])
        result = evaluate([message], channel, {}, InMemoryDirectory(), known, links.claimed)
        store.commit(
            SyncBatch(channel.id, "all", messages=result.records, thread_merges=result.merges)
        )
        return result.records[0].thread_id

    # Gmail's own thread id ties Alice's two messages (no References)
    first = sync(gmail, attrs.evolve(_copy_message(("gm", "a1@x", ())), thread_hint="T1"))
    assert sync(gmail, attrs.evolve(_copy_message(("gm", "a2@x", ())), thread_hint="T1")) == first
    # an outsider naming that thread's node from another mailbox starts his own
    forged = _copy_message(("cb", "x1@x", ("gm:T1",)))
    assert sync(other, forged) != first
