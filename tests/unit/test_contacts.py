from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest

from commlink.addresses import parse_address
from commlink.model import (
    Attendee,
    CalendarContactPolicy,
    ChannelSettings,
    ContactPolicy,
    Direction,
    Event,
    Message,
    Participant,
    Role,
)
from commlink.policy.contacts import (
    contacts_to_create,
    event_contacts_to_create,
    names_for,
    qualifies,
)
from commlink.records import NewContact

OWNER = "me@acme.com"
WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)
OUT, IN = Direction.OUTGOING, Direction.INCOMING


def settings(**kw: object) -> ChannelSettings:
    return ChannelSettings(owner=OWNER, **kw)  # type: ignore[arg-type]


def msg(*people: tuple[Role, str] | tuple[Role, str, str]) -> Message:
    parts = tuple(
        Participant(parse_address(p[1], p[2] if len(p) > 2 else ""), p[0])  # type: ignore[misc]
        for p in people
    )
    return Message(provider_id="p", message_id="m", date=WHEN, participants=parts)


F, T, CC, BCC = Role.FROM, Role.TO, Role.CC, Role.BCC


def keys(found: list[NewContact]) -> list[str]:
    return [c.address.key for c in found]


class TestPolicies:
    sent = msg((F, OWNER), (T, "to@client.io"), (CC, "cc@client.io"), (BCC, "bcc@client.io"))
    received = msg((F, "from@client.io"), (T, OWNER), (T, "to2@client.io"), (CC, "cc2@x.io"))

    def test_none(self) -> None:
        s = settings(contact_policy=ContactPolicy.NONE)
        assert contacts_to_create([(self.sent, OUT), (self.received, IN)], s, ()) == []

    def test_sent_takes_recipients_of_outgoing_only(self) -> None:
        s = settings(contact_policy=ContactPolicy.SENT)
        found = contacts_to_create([(self.sent, OUT), (self.received, IN)], s, ())
        assert keys(found) == ["to@client.io", "cc@client.io", "bcc@client.io"]

    def test_sent_and_received_adds_incoming_from_to_cc(self) -> None:
        s = settings(contact_policy=ContactPolicy.SENT_AND_RECEIVED)
        found = contacts_to_create([(self.sent, OUT), (self.received, IN)], s, ())
        assert keys(found) == [
            "to@client.io",
            "cc@client.io",
            "bcc@client.io",
            "from@client.io",
            "to2@client.io",
            "cc2@x.io",
        ]

    def test_incoming_bcc_is_not_a_contact(self) -> None:
        s = settings(contact_policy=ContactPolicy.SENT_AND_RECEIVED)
        m = msg((F, "from@client.io"), (BCC, "hidden@client.io"))
        assert keys(contacts_to_create([(m, IN)], s, ())) == ["from@client.io"]


class TestExclusions:
    def test_never_owner_alias_internal_role_blocked_invalid_or_known(self) -> None:
        s = settings(
            aliases=frozenset({"me@acme.io"}),
            blocklist=frozenset({"@blocked.io", "one@bad.io"}),
        )
        m = msg(
            (F, OWNER),
            (T, "ME@acme.com"),
            (T, "me@acme.io"),
            (T, "colleague@eu.acme.com"),
            (T, "noreply@client.io"),
            (T, "x@sub.blocked.io"),
            (T, "one@bad.io"),
            (T, "broken@"),
            (T, "known@client.io"),
            (T, "Keep@Client.io"),
        )
        found = contacts_to_create([(m, OUT)], s, {"known@client.io"})
        assert keys(found) == ["keep@client.io"]

    def test_deduplicated_preferring_a_display_name(self) -> None:
        m1 = msg((F, OWNER), (T, "ann@client.io"))
        m2 = msg((F, OWNER), (CC, "ANN@client.io", "Ann Lee"))
        found = contacts_to_create([(m1, OUT), (m2, OUT)], settings(), ())
        assert len(found) == 1
        assert (found[0].first_name, found[0].last_name) == ("Ann", "Lee")

    def test_qualifies(self) -> None:
        s = settings()
        assert qualifies(parse_address("x@client.io"), s)
        assert not qualifies(parse_address("x@acme.com"), s)
        assert not qualifies(parse_address("bad"), s)


class TestCompanies:
    def test_work_domain_gets_a_company(self) -> None:
        m = msg((F, OWNER), (T, "ann@client.io"), (T, "bob@gmail.com"))
        found = contacts_to_create([(m, OUT)], settings(), ())
        assert [c.company_domain for c in found] == ["client.io", None]

    def test_no_companies_when_disabled(self) -> None:
        m = msg((F, OWNER), (T, "ann@client.io"))
        found = contacts_to_create([(m, OUT)], settings(create_companies=False), ())
        assert found[0].company_domain is None

    def test_idn_domain_is_ascii(self) -> None:
        m = msg((F, OWNER), (T, "jörg@bücher.de"))
        assert contacts_to_create([(m, OUT)], settings(), ())[0].company_domain == (
            "xn--bcher-kva.de"
        )


class TestNames:
    @pytest.mark.parametrize(
        ("name", "address", "expected"),
        [
            ("Smith, John", "x@y.io", ("John", "Smith")),
            ('"Smith, John"', "x@y.io", ("John", "Smith")),
            ("John Smith", "x@y.io", ("John", "Smith")),
            ("'John Smith'", "x@y.io", ("John", "Smith")),
            ("  John   Paul  Smith ", "x@y.io", ("John", "Paul Smith")),
            ("Zoë", "x@y.io", ("Zoë", "")),
            ("john.smith@y.io", "john.smith@y.io", ("John", "Smith")),
            ("", "john.smith@y.io", ("John", "Smith")),
            ("", "john_smith@y.io", ("John", "Smith")),
            ("", "john-paul.smith@y.io", ("John", "Paul Smith")),
            ("", "jsmith@y.io", ("Jsmith", "")),
            ("", "john.smith+crm@y.io", ("John", "Smith")),
            ("", "john.smith2024@y.io", ("John", "Smith2024")),
            ("", "john.2024@y.io", ("John", "")),
            ("", "jörg.müller@y.de", ("Jörg", "Müller")),
            ('""', "ann@y.io", ("Ann", "")),
            (",", "ann@y.io", ("Ann", "")),
        ],
    )
    def test_names(self, name: str, address: str, expected: tuple[str, str]) -> None:
        assert names_for(parse_address(address, name)) == expected

    def test_names_reach_the_new_contact(self) -> None:
        m = msg((F, OWNER), (T, "jsmith@client.io", "Smith, Jane"))
        c = contacts_to_create([(m, OUT)], settings(), ())[0]
        assert (c.first_name, c.last_name) == ("Jane", "Smith")
        assert c.address.key == "jsmith@client.io"


def event(organizer: str, *attendees: str, organizer_listed: bool = True) -> Event:
    org = Attendee(parse_address(organizer), organizer=True)
    people = tuple(Attendee(parse_address(a)) for a in attendees)
    return Event(
        provider_id="e",
        uid="u",
        start=WHEN,
        end=WHEN,
        organizer=org,
        attendees=(org, *people) if organizer_listed else people,
    )


class TestEvents:
    e = event("boss@client.io", OWNER, "guest@client.io", "colleague@acme.com")

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            (CalendarContactPolicy.NONE, []),
            (CalendarContactPolicy.AS_PARTICIPANT, ["guest@client.io"]),
            (CalendarContactPolicy.AS_ORGANIZER, ["boss@client.io"]),
            (CalendarContactPolicy.BOTH, ["boss@client.io", "guest@client.io"]),
        ],
    )
    def test_policies(self, policy: CalendarContactPolicy, expected: list[str]) -> None:
        found = event_contacts_to_create([self.e], settings(calendar_contact_policy=policy), ())
        assert keys(found) == expected

    def test_organizer_not_listed_among_attendees(self) -> None:
        e = event("boss@client.io", "guest@client.io", organizer_listed=False)
        s = settings(calendar_contact_policy=CalendarContactPolicy.AS_ORGANIZER)
        assert keys(event_contacts_to_create([e], s, ())) == ["boss@client.io"]

    def test_exclusions_apply(self) -> None:
        s = settings(
            calendar_contact_policy=CalendarContactPolicy.BOTH,
            blocklist=frozenset({"@client.io"}),
        )
        assert event_contacts_to_create([self.e], s, ()) == []
        s = settings(calendar_contact_policy=CalendarContactPolicy.BOTH)
        assert keys(event_contacts_to_create([self.e], s, {"boss@client.io"})) == [
            "guest@client.io"
        ]

    def test_a_meeting_with_a_crowd_creates_no_contact(self) -> None:
        crowd = [f"guest{i}@client{i}.io" for i in range(51)]  # over max_recipients_for_contacts
        s = settings(calendar_contact_policy=CalendarContactPolicy.BOTH)
        assert event_contacts_to_create([event("boss@client.io", *crowd)], s, ()) == []
        cut = attrs.evolve(
            event("boss@client.io", *crowd[:10]), warnings=("attendees-truncated:900",)
        )
        assert event_contacts_to_create([cut], s, ()) == []  # cut by storable_event

    def test_one_meeting_creates_at_most_max_contacts_per_message(self) -> None:
        guests = [f"guest{i}@client{i}.io" for i in range(30)]
        s = settings(calendar_contact_policy=CalendarContactPolicy.AS_PARTICIPANT)
        found = event_contacts_to_create([event("boss@client.io", *guests)], s, ())
        assert keys(found) == guests[:20]
        other = attrs.evolve(event("boss@client.io", *guests[25:]), uid="v")
        assert len(event_contacts_to_create([event("boss@client.io", *guests), other], s, ())) == 25


class TestFanOut:
    def test_mail_to_a_crowd_creates_no_contact(self) -> None:
        crowd = [(T, f"r{i}@client{i}.io") for i in range(51)]
        m = msg((F, OWNER), *crowd)
        assert contacts_to_create([(m, OUT)], settings(), ()) == []

    def test_one_message_creates_at_most_the_cap(self) -> None:
        few = [(T, f"r{i}@client{i}.io") for i in range(30)]
        m = msg((F, OWNER), *few)
        found = contacts_to_create([(m, OUT)], settings(), ())
        assert [c.address.key for c in found] == [f"r{i}@client{i}.io" for i in range(20)]

    def test_a_message_the_parser_cut_counts_as_a_crowd(self) -> None:
        import attrs

        m = attrs.evolve(
            msg((F, OWNER), (T, "ann@client.io")), warnings=("participants-truncated:5000",)
        )
        assert contacts_to_create([(m, OUT)], settings(), ()) == []
