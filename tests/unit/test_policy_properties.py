"""Properties of the policy layer over generated addresses, messages and directories."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime, timezone

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.addresses import blocklist_match, normalise_entry, parse_address
from commlink.model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Direction,
    Message,
    Participant,
    Role,
)
from commlink.policy.contacts import contacts_to_create
from commlink.policy.filters import decide, org_domains
from commlink.policy.matching import match_addresses
from commlink.policy.pipeline import evaluate
from commlink.policy.threads import assign_threads, lookup_ids
from commlink.records import Link, Reason, TargetKind
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.strategies import (
    address_variants,
    addresses,
    channel_settings,
    directories,
    domains,
    invalid_addresses,
    messages,
    participants,
    threaded_messages,
)

WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)
PROPS = settings(max_examples=100, deadline=None)
# A small pool so generated messages and directories share addresses.
POOL = st.sampled_from(
    (
        "ann@client.io",
        "Bob@Sub.Client.io",
        "carol@gmail.com",
        "dan@bücher.de",
        "erin@xn--mnchen-3ya.de",
        "o'brien+tag@x.co.uk",
        "noreply@client.io",
        "me@acme.com",
        "colleague@acme.com",
    )
)


def message(*people: Participant, **kw: object) -> Message:
    return Message(provider_id="p", message_id="m", date=WHEN, participants=people, **kw)  # type: ignore[arg-type]


@PROPS
@given(channel_settings(), st.data())
def test_internal_only_mail_is_never_imported(s: ChannelSettings, data: st.DataObject) -> None:
    org = sorted(org_domains(s))
    if not org:
        return
    s = attrs.evolve(s, sync_internal=False, blocklist=frozenset())
    internal = st.builds(
        lambda local, sub, domain: parse_address(f"{local}@{sub}{domain}"),
        st.sampled_from(("x", "y.z", "sales")),
        st.sampled_from(("", "eu.", "a.b.")),
        st.sampled_from(org),
    )
    people = data.draw(st.lists(internal, min_size=1, max_size=4))
    roles = data.draw(st.lists(st.sampled_from(Role), min_size=len(people), max_size=len(people)))
    m = message(*(Participant(a, r) for a, r in zip(people, roles, strict=True)))
    assert not decide(m, s, {}).keep


@PROPS
@given(channel_settings(), messages(), st.data())
def test_mail_sent_by_owner_or_alias_is_never_group(
    s: ChannelSettings, m: Message, data: st.DataObject
) -> None:
    own = data.draw(st.sampled_from(sorted(s.own_addresses)))
    sender = Participant(parse_address(own.upper()), Role.FROM)
    m = attrs.evolve(m, participants=(sender, *m.participants[1:]))
    assert decide(m, s, {}).reason is not Reason.GROUP


@PROPS
@given(addresses(), st.data())
def test_variants_of_an_address_match_the_same_person(text: str, data: st.DataObject) -> None:
    directory = InMemoryDirectory()
    directory.add_person("p1", "Person", [text])
    variants = data.draw(st.lists(address_variants(text), min_size=1, max_size=5))
    result = match_addresses([parse_address(v) for v in variants], directory)
    assert len(result) == 1
    assert result[0].key == parse_address(text).key
    assert result[0].links[0] == Link(TargetKind.PERSON, "p1")
    assert directory.calls_to("people_by_addresses") == 1


@PROPS
@given(domains(), st.lists(st.sampled_from(("mail", "eu", "a-b", "x1")), max_size=3), st.data())
def test_blocked_domain_blocks_its_subdomains(
    domain: str, subs: list[str], data: st.DataObject
) -> None:
    entry = "@" + data.draw(st.sampled_from((domain, domain.upper())))
    address = parse_address("someone@" + ".".join([*subs, domain]))
    assert address.valid
    s = ChannelSettings(owner="owner@owner-company.example", blocklist=frozenset({entry}))
    assert blocklist_match(address.key, {normalise_entry(entry)}) == normalise_entry(entry)
    m = message(Participant(address, Role.FROM), Participant(parse_address(s.owner), Role.TO))
    decision = decide(m, s, {})
    assert decision.reason is Reason.BLOCKED
    assert normalise_entry(entry) in decision.detail


@PROPS
@given(
    channel_settings(POOL),
    st.lists(invalid_addresses(), min_size=1, max_size=4),
    st.sampled_from(Role),
)
def test_invalid_addresses_are_never_blocked_matched_or_created(
    s: ChannelSettings, bad: list[str], role: Role
) -> None:
    invalid = [parse_address(b) for b in bad]
    owner = Participant(parse_address(s.owner), Role.FROM)
    m = message(owner, *(Participant(a, role) for a in invalid))
    s = attrs.evolve(s, blocklist=s.blocklist | {"@", "", *bad}, contact_policy=ContactPolicy.SENT)
    assert decide(m, s, {}).reason is Reason.INVALID

    directory = InMemoryDirectory()
    links = match_addresses(invalid, directory)
    assert links == ()
    assert directory.calls == []

    assert contacts_to_create([(m, Direction.OUTGOING)], s, ()) == []


@PROPS
@given(
    st.lists(messages(participants(POOL)), max_size=12), directories(POOL), channel_settings(POOL)
)
def test_a_batch_costs_at_most_one_call_per_directory_method(
    batch: list[Message], directory: InMemoryDirectory, s: ChannelSettings
) -> None:
    links = match_addresses([a for m in batch for a in m.addresses()], directory, s)
    counts = Counter(name for name, _ in directory.calls)
    assert all(n <= 1 for n in counts.values())
    valid = {a.key for m in batch for a in m.addresses() if a.valid}
    assert {x.key for x in links} == valid

    directory.calls.clear()
    ch = Channel("ch", "u", ChannelKind.MAIL, "imap", s)
    result = evaluate(batch, ch, {}, directory, {})
    counts = Counter(name for name, _ in directory.calls)
    assert all(n <= 1 for n in counts.values())
    assert set(counts) <= {
        "people_by_addresses",
        "create_contacts",
        "companies_by_domains",
        "opportunities_for",
    }
    assert len(result.records) + len(result.skipped) == len(batch)
    # Contacts created in this batch are linked in this batch.
    linked = {x.key for x in result.links if x.links and x.links[0].kind is TargetKind.PERSON}
    assert {k for k, _ in result.created} <= linked


class ThreadStore:
    """The store side of threading, as the ``Store`` port documents it."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, frozenset[str], str]] = {}

    def known(self, ids: Collection[str]) -> dict[str, str]:
        wanted = set(ids)
        found: dict[str, str] = {}
        for message_id, refs, thread in self.rows.values():
            if message_id in wanted:
                found[message_id] = thread
            for ref in refs & wanted:
                found[ref] = thread
        return found

    def sync(self, batch: Sequence[Message]) -> None:
        result = assign_threads(batch, self.known(lookup_ids(batch)), "ch")
        moved = dict(result.merges)
        assert all(new not in moved for new in moved.values())
        self.rows = {
            pid: (mid, refs, moved.get(thread, thread))
            for pid, (mid, refs, thread) in self.rows.items()
        }
        for m in batch:
            refs = frozenset((*m.references, *m.in_reply_to))
            self.rows[m.provider_id] = (m.message_id, refs, result.by_provider_id[m.provider_id])


def grouping(threads: dict[str, str]) -> set[frozenset[str]]:
    by_thread: dict[str, set[str]] = {}
    for pid, thread in threads.items():
        by_thread.setdefault(thread, set()).add(pid)
    return {frozenset(g) for g in by_thread.values()}


@PROPS
@given(st.lists(threaded_messages(), max_size=15, unique_by=lambda m: m.provider_id), st.randoms())
def test_thread_ids_do_not_depend_on_order(batch: list[Message], rnd: random.Random) -> None:
    shuffled = list(batch)
    rnd.shuffle(shuffled)
    known = {"m1@example.net": "T-stored"}
    assert assign_threads(shuffled, known, "ch") == assign_threads(batch, known, "ch")
    assert assign_threads(shuffled, {}, "ch") == assign_threads(batch, {}, "ch")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        threaded_messages(hints=False), min_size=1, max_size=15, unique_by=lambda m: m.provider_id
    ),
    st.data(),
)
def test_thread_grouping_does_not_depend_on_batch_splitting(
    batch: list[Message], data: st.DataObject
) -> None:
    # Without provider thread hints: those are channel-local and the store
    # port does not index them (see test_threads for hints within a batch).
    whole = assign_threads(batch, {}, "ch").by_provider_id
    order = data.draw(st.permutations(batch))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(order) - 1, 1)), max_size=4)))
    store = ThreadStore()
    start = 0
    for cut in [*cuts, len(order)]:
        if order[start:cut]:
            store.sync(order[start:cut])
        start = max(start, cut)
    split = {pid: row[2] for pid, row in store.rows.items()}
    assert grouping(split) == grouping(whole)
