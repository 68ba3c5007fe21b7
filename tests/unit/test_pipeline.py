from __future__ import annotations

from datetime import datetime, timezone

import attrs

from commlink.addresses import parse_address
from commlink.model import (
    Attendee,
    CalendarContactPolicy,
    Channel,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Direction,
    Event,
    Folder,
    FolderKind,
    Message,
    Participant,
    Role,
    Visibility,
)
from commlink.policy.pipeline import evaluate, evaluate_events
from commlink.policy.skips import message_id_digest
from commlink.records import Link, Reason, TargetKind
from commlink.testing.directory import InMemoryDirectory

OWNER = "me@acme.com"
WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)
FOLDERS = {
    "in": Folder("in", "Inbox", FolderKind.INBOX),
    "spam": Folder("spam", "Spam", FolderKind.SPAM),
}


def channel(**kw: object) -> Channel:
    settings = ChannelSettings(owner=OWNER, **kw)  # type: ignore[arg-type]
    return Channel("ch1", "user1", ChannelKind.MAIL, "imap", settings)


def msg(pid: str, sender: str, *to: str, **kw: object) -> Message:
    people = (
        Participant(parse_address(sender), Role.FROM),
        *(Participant(parse_address(t), Role.TO) for t in to),
    )
    defaults: dict[str, object] = {
        "message_id": f"{pid}@mail",
        "date": WHEN,
        "subject": f"subject {pid}",
        "body": "hello",
        "snippet": "hello",
    }
    defaults.update(kw)
    return Message(provider_id=pid, participants=people, **defaults)  # type: ignore[arg-type]


def crm() -> InMemoryDirectory:
    d = InMemoryDirectory()
    d.add_company("client", "Client", ["client.io"])
    d.add_person("ann", "Ann", ["ann@client.io"], company_id="client")
    d.add_opportunity("deal", "Deal", company_id="client")
    return d


def test_mixed_batch() -> None:
    d = crm()
    batch = [
        msg("1", "ann@client.io", OWNER),
        msg("2", OWNER, "new.person@newco.io", in_reply_to=("1@mail",)),
        msg("3", "colleague@acme.com", OWNER),
        msg("4", "news@client.io", OWNER, list_id="<news>"),
        msg("5", "ann@client.io", OWNER, folders=("spam",)),
    ]
    result = evaluate(batch, channel(), FOLDERS, d, {})

    assert [r.message.provider_id for r in result.records] == ["1", "2"]
    assert [r.direction for r in result.records] == [Direction.INCOMING, Direction.OUTGOING]
    assert {r.thread_id for r in result.records} == {"1@mail"}
    assert [(s.provider_id, s.reason) for s in result.skipped] == [
        ("3", Reason.INTERNAL),
        ("4", Reason.GROUP),
        ("5", Reason.EXCLUDED_FOLDER),
    ]
    skip = result.skipped[1]
    assert (skip.message_id, skip.subject, skip.sender, skip.date) == (
        "4@mail",
        "subject 4",
        "news@client.io",
        WHEN,
    )

    # The new recipient was created before matching, so it links in this batch.
    assert [k for k, _ in result.created] == ["new.person@newco.io"]
    created = result.created[0][1]
    links = {a.key: a.links for a in result.links}
    assert set(links) == {"ann@client.io", "me@acme.com", "new.person@newco.io"}
    assert links["ann@client.io"] == (
        Link(TargetKind.PERSON, "ann"),
        Link(TargetKind.COMPANY, "client"),
        Link(TargetKind.OPPORTUNITY, "deal"),
    )
    assert links["new.person@newco.io"][0] == Link(TargetKind.PERSON, created.id)
    assert links["new.person@newco.io"][1].kind is TargetKind.COMPANY
    assert links["me@acme.com"] == ()

    assert [name for name, _ in d.calls] == [
        "people_by_addresses",
        "create_contacts",
        "companies_by_domains",
        "opportunities_for",
    ]
    assert ("create_contacts", 1) in d.calls


def test_internal_and_blocked_skips_keep_no_subject_and_no_sender() -> None:
    batch = [
        msg("1", "colleague@acme.com", OWNER, subject="Internal: layoff list"),
        msg("2", "dr@doctor.example", OWNER, subject="Your biopsy results"),
        msg("3", "news@client.io", OWNER, list_id="<news>"),
    ]
    blocked = frozenset({"@doctor.example"})
    result = evaluate(batch, channel(blocklist=blocked), FOLDERS, crm(), {})
    internal, blocked_skip, group = result.skipped
    for skip, reason in ((internal, Reason.INTERNAL), (blocked_skip, Reason.BLOCKED)):
        assert skip.reason is reason
        assert (skip.subject, skip.sender, skip.date) == ("", "", WHEN)
        assert skip.message_id == message_id_digest(f"{skip.provider_id}@mail")
        assert "doctor" not in skip.detail
        assert "acme" not in skip.detail
    assert (group.subject, group.sender) == ("subject 3", "news@client.io")
    # the owner may opt in to keeping them
    opted = channel(blocklist=blocked, skip_details=True)
    internal, blocked_skip, _ = evaluate(batch, opted, FOLDERS, crm(), {}).skipped
    assert (internal.subject, internal.sender) == ("Internal: layoff list", "colleague@acme.com")
    assert blocked_skip.detail == "dr@doctor.example matches blocklist entry @doctor.example"


def test_nothing_kept_asks_the_directory_nothing() -> None:
    d = crm()
    result = evaluate([msg("1", "c@acme.com", OWNER)], channel(), {}, d, {})
    assert result.records == ()
    assert result.links == ()
    assert d.calls == []


def test_no_new_contacts_means_no_create_call() -> None:
    d = crm()
    evaluate([msg("1", OWNER, "ann@client.io")], channel(), {}, d, {})
    assert d.calls_to("create_contacts") == 0
    d2 = crm()
    evaluate(
        [msg("1", OWNER, "x@other.io")], channel(contact_policy=ContactPolicy.NONE), {}, d2, {}
    )
    assert d2.calls_to("create_contacts") == 0


def test_metadata_channel_stores_no_content() -> None:
    result = evaluate(
        [msg("1", "ann@client.io", OWNER)], channel(visibility=Visibility.METADATA), {}, crm(), {}
    )
    stored = result.records[0].message
    assert (stored.body, stored.snippet, stored.subject) == (None, "", "subject 1")


def test_known_threads_and_merges_pass_through() -> None:
    batch = [msg("9", "ann@client.io", OWNER, references=("old1", "old2"))]
    result = evaluate(batch, channel(), {}, crm(), {"old1": "T5", "old2": "T3"})
    assert result.records[0].thread_id == "T3"
    assert result.merges == (("T5", "T3"),)


def test_large_batch_is_still_four_calls() -> None:
    d = crm()
    batch = [msg(str(i), f"person{i}@corp{i % 7}.io", OWNER) for i in range(300)]
    result = evaluate(batch, channel(contact_policy=ContactPolicy.SENT_AND_RECEIVED), {}, d, {})
    assert len(result.records) == 300
    assert len(result.created) == 300
    assert sorted(name for name, _ in d.calls) == [
        "companies_by_domains",
        "create_contacts",
        "opportunities_for",
        "people_by_addresses",
    ]


def event(pid: str, organizer: str, *attendees: str, description: str = "agenda") -> Event:
    return Event(
        provider_id=pid,
        uid=f"{pid}-uid",
        start=WHEN,
        end=WHEN,
        title=f"meeting {pid}",
        description=description,
        organizer=Attendee(parse_address(organizer), organizer=True),
        attendees=tuple(Attendee(parse_address(a)) for a in attendees),
    )


def test_evaluate_events() -> None:
    d = crm()
    ch = channel(
        visibility=Visibility.METADATA,
        calendar_contact_policy=CalendarContactPolicy.AS_PARTICIPANT,
    )
    result = evaluate_events(
        [
            event("1", OWNER, "ann@client.io", "guest@visitor.io"),
            event("2", OWNER, "colleague@acme.com"),
            event("3", OWNER),
        ],
        ch,
        d,
    )
    assert [r.event.provider_id for r in result.records] == ["1"]
    assert result.records[0].event.description == ""
    assert result.records[0].event.title == "meeting 1"
    assert [
        (s.provider_id, s.reason, s.message_id, s.subject, s.sender) for s in result.skipped
    ] == [
        ("2", Reason.INTERNAL, message_id_digest("2-uid"), "", ""),
        ("3", Reason.INVALID, "3-uid", "meeting 3", OWNER),
    ]
    assert [k for k, _ in result.created] == ["guest@visitor.io"]
    links = {a.key: a.links for a in result.links}
    assert links["guest@visitor.io"][0].kind is TargetKind.PERSON
    assert links["ann@client.io"][0] == Link(TargetKind.PERSON, "ann")
    assert [name for name, _ in d.calls] == [
        "people_by_addresses",
        "create_contacts",
        "companies_by_domains",
        "opportunities_for",
    ]


def test_a_series_is_judged_with_its_overrides() -> None:
    master = event("s", OWNER, "ann@client.io")
    # an override that only the owner attends would be INVALID on its own
    override = attrs.evolve(event("s", OWNER), recurrence_id=WHEN)
    internal = event("t", OWNER, "colleague@acme.com")
    internal_override = attrs.evolve(internal, recurrence_id=WHEN, attendees=())
    result = evaluate_events([override, master, internal, internal_override], channel(), crm())
    kept = sorted((r.event.provider_id, r.event.recurrence_id is not None) for r in result.records)
    assert kept == [("s", False), ("s", True)]
    assert [(s.provider_id, s.reason) for s in result.skipped] == [("t", Reason.INTERNAL)]
