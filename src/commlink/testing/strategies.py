"""Hypothesis strategies for commlink values.

``addresses()`` draws address text that parses as valid (ASCII and IDN
domains, odd-but-valid local parts, mixed case); ``address_variants(text)``
draws other spellings of the same address. ``messages()``,
``channel_settings()`` and ``directories()`` build on them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from ..addresses import is_free_mail, normalise_domain, parse_address
from ..model import (
    CalendarContactPolicy,
    ChannelSettings,
    ContactPolicy,
    FolderSelection,
    Message,
    Participant,
    Role,
    Visibility,
)
from .directory import InMemoryDirectory

__all__ = [
    "INVALID_ADDRESSES",
    "address_variants",
    "addresses",
    "channel_settings",
    "directories",
    "domains",
    "invalid_addresses",
    "message_ids",
    "messages",
    "participants",
    "threaded_messages",
]

_ATOM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ODD = "'+-_="
_UNICODE_LOCALS = ("jörg", "renée", "zoë", "δοκιμή", "用户")
# Labels known to be valid IDNA 2008 and stable under case changes (no "ß").
_UNICODE_LABELS = ("bücher", "münchen", "café", "παράδειγμα", "пример", "例え", "łódź")
_TLDS = ("com", "de", "org", "io", "fr", "co.uk", "com.au", "рф")

#: Address texts that never parse as valid.
INVALID_ADDRESSES = (
    "",
    "not an address",
    "@example.com",
    "user@",
    "user@@example.com",
    "user@localhost",
    "user@-bad.com",
    "user@bad..com",
    ".user@example.com",
    "user.@example.com",
    "us..er@example.com",
    "user@[10.0.0.1]",
    "user@xn--zz.com",
    "undisclosed-recipients:;",
)

_START = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _label() -> st.SearchStrategy[str]:
    ascii_label = st.text(alphabet=_ATOM, min_size=1, max_size=8).flatmap(
        lambda s: st.just(s) | st.just(f"{s}-{s[::-1]}")
    )
    return st.one_of(ascii_label, st.sampled_from(_UNICODE_LABELS))


def domains() -> st.SearchStrategy[str]:
    """Domains (lower case, Unicode where IDN) with one or two labels before the TLD."""
    return st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_label(), min_size=1, max_size=2),
        st.sampled_from(_TLDS),
    )


def _local() -> st.SearchStrategy[str]:
    word = st.text(alphabet=_ATOM, min_size=1, max_size=8)
    odd = st.text(alphabet=_ATOM + _ODD, min_size=1, max_size=8)
    dotted = st.lists(st.one_of(word, odd), min_size=1, max_size=3).map(".".join)
    return st.one_of(dotted, st.sampled_from(_UNICODE_LOCALS))


def _mixed_case(text: str) -> st.SearchStrategy[str]:
    # One integer as a bit mask is much cheaper to draw than a list of booleans.
    return st.integers(0, 2 ** len(text) - 1).map(
        lambda mask: "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(text))
    )


def addresses() -> st.SearchStrategy[str]:
    """Address text that parses as valid, in mixed case."""
    plain = st.builds(lambda local, domain: f"{local}@{domain}", _local(), domains())
    fixed = st.sampled_from(("o'brien+tag@x.co.uk", "Jane.Doe@Bücher.de", "x_y=z@a-b.io"))
    return st.one_of(plain, fixed).flatmap(_mixed_case)


def invalid_addresses() -> st.SearchStrategy[str]:
    return st.sampled_from(INVALID_ADDRESSES)


def address_variants(text: str) -> st.SearchStrategy[str]:
    """Other spellings of ``text`` that parse to the same key: case, IDNA or
    Unicode domain, surrounding whitespace, ``Display Name <address>`` forms."""
    local, _, domain = text.rpartition("@")
    ascii_domain = normalise_domain(domain)
    spelled = st.builds(
        lambda d: f"{local}@{d}",
        st.sampled_from((domain, ascii_domain, ascii_domain.upper(), domain.upper())),
    ).flatmap(_mixed_case)
    names = st.sampled_from(("", "Jane Doe", "Doe, Jane", "'Jane'", text, "Ünïcødé Name"))

    def dress(address: str, name: str, style: int, pad: str) -> str:
        if style == 0:
            return f"{pad}{address}{pad}"
        if style == 1:
            return f"{pad}<{address}>{pad}"
        quoted = name.replace('"', "")
        return f'{pad}"{quoted}" <{address}>{pad}' if style == 2 else f"{name} <{address}>"

    return st.builds(
        dress, spelled, names, st.integers(0, 3), st.sampled_from(("", " ", "\t", "  \n "))
    )


def participants(
    address_text: st.SearchStrategy[str] | None = None,
    roles: st.SearchStrategy[Role] | None = None,
) -> st.SearchStrategy[Participant]:
    """Participants with mostly valid addresses (some invalid) and display names."""
    text = address_text if address_text is not None else addresses()
    texts = st.one_of(text, text, text, invalid_addresses())
    names = st.one_of(st.just(""), st.sampled_from(("John Smith", "Smith, John", "Zoë")))
    return st.builds(
        lambda t, n, r: Participant(parse_address(t, n), r),
        texts,
        names,
        roles if roles is not None else st.sampled_from(Role),
    )


def message_ids(pool: int = 12) -> st.SearchStrategy[str]:
    """Message-IDs from a small pool, so that references often connect."""
    return st.integers(0, pool - 1).map(lambda i: f"m{i}@example.net")


@st.composite
def messages(
    draw: st.DrawFn,
    participant: st.SearchStrategy[Participant] | None = None,
    ids: st.SearchStrategy[str] | None = None,
    folders: st.SearchStrategy[str] | None = None,
) -> Message:
    """``Message`` values with random participants, threading headers and group headers."""
    ids = ids if ids is not None else message_ids()
    people = participant if participant is not None else participants()
    sender = draw(people.map(lambda p: Participant(p.address, Role.FROM)))
    others = draw(st.lists(people, max_size=4))
    references = tuple(draw(st.lists(ids, max_size=3, unique=True)))
    in_reply_to = draw(st.one_of(st.just(()), ids.map(lambda i: (i,))))
    return Message(
        provider_id=draw(st.uuids()).hex,
        message_id=draw(ids),
        date=_START + timedelta(minutes=draw(st.integers(0, 10**6))),
        subject=draw(st.sampled_from(("", "Hello", "Re: Hello", "Invoice"))),
        participants=(sender, *others),
        in_reply_to=in_reply_to,
        references=references,
        thread_hint=draw(st.one_of(st.none(), st.sampled_from(("t1", "t2", "t3")))),
        folders=tuple(draw(st.lists(folders, max_size=2))) if folders is not None else (),
        body=draw(st.one_of(st.none(), st.just("body text"))),
        snippet=draw(st.sampled_from(("", "snippet"))),
        list_id=draw(st.sampled_from(("", "", "", "<list.example.org>"))),
        precedence=draw(st.sampled_from(("", "", "", "bulk", "list", "junk", "first-class"))),
        auto_submitted=draw(st.sampled_from(("", "", "", "no", "auto-generated"))),
    )


def threaded_messages(
    ids: st.SearchStrategy[str] | None = None, hints: bool = True
) -> st.SearchStrategy[Message]:
    """Messages carrying only threading headers (cheap; for threading properties)."""
    ids = ids if ids is not None else message_ids()
    hint = st.one_of(st.none(), st.sampled_from(("t1", "t2", "t3"))) if hints else st.none()
    return st.builds(
        lambda pid, mid, refs, irt, h: Message(
            provider_id=f"p{pid}",
            message_id=mid,
            date=_START,
            references=tuple(refs),
            in_reply_to=irt,
            thread_hint=h,
        ),
        st.integers(0, 10**9),
        ids,
        st.lists(ids, max_size=3, unique=True),
        st.one_of(st.just(()), ids.map(lambda i: (i,))),
        hint,
    )


@st.composite
def channel_settings(
    draw: st.DrawFn, address_text: st.SearchStrategy[str] | None = None
) -> ChannelSettings:
    """Settings with an owner, aliases, org domains, a blocklist and random policies."""
    text = address_text if address_text is not None else addresses()
    owner = parse_address(draw(text))
    aliases = frozenset(parse_address(t).key for t in draw(st.lists(text, max_size=2)))
    org = draw(
        st.one_of(
            st.just(frozenset()),
            st.just(frozenset({owner.domain})),
            st.frozensets(domains(), max_size=2),
        )
    )
    entries = draw(
        st.lists(st.one_of(text, domains().map(lambda d: f"@{d}"), invalid_addresses()), max_size=3)
    )
    return ChannelSettings(
        owner=owner.key,
        aliases=aliases - {owner.key},
        org_domains=org,
        visibility=draw(st.sampled_from(Visibility)),
        contact_policy=draw(st.sampled_from(ContactPolicy)),
        calendar_contact_policy=draw(st.sampled_from(CalendarContactPolicy)),
        folders=FolderSelection(),
        sync_internal=draw(st.booleans()),
        blocklist=frozenset(entries),
        create_companies=draw(st.booleans()),
    )


@st.composite
def directories(
    draw: st.DrawFn, address_text: st.SearchStrategy[str] | None = None
) -> InMemoryDirectory:
    """An ``InMemoryDirectory`` with people, companies owning their domains, and opportunities."""
    text = address_text if address_text is not None else addresses()
    directory = InMemoryDirectory()
    keys = draw(st.lists(text.map(lambda t: parse_address(t).key), max_size=8, unique=True))
    company_domains = sorted({k.rpartition("@")[2] for k in keys})
    companies: list[str] = []
    for i, domain in enumerate(company_domains):
        if not is_free_mail(domain) and draw(st.booleans()):
            directory.add_company(f"c{i}", f"Company {i}", [domain])
            companies.append(f"c{i}")
    people: list[str] = []
    for i, (key, holder) in enumerate(zip(keys, draw(_holders(len(keys))), strict=True)):
        if holder is None:  # an address nobody in the CRM has
            continue
        person_id = f"p{holder}"
        if person_id in people:
            directory.set_person_addresses(person_id, [*directory.addresses_of(person_id), key])
            continue
        company = draw(st.one_of(st.none(), st.sampled_from(companies))) if companies else None
        directory.add_person(person_id, f"Person {i}", [key], company)
        people.append(person_id)
    for i in range(draw(st.integers(0, 3))):
        company = draw(st.one_of(st.none(), st.sampled_from(companies))) if companies else None
        contacts = draw(st.lists(st.sampled_from(people), max_size=2)) if people else []
        directory.add_opportunity(f"o{i}", f"Deal {i}", company, contacts)
    return directory


def _holders(count: int) -> st.SearchStrategy[list[int | None]]:
    """Which person holds each address (several may share one; ``None``: nobody)."""
    holder = st.one_of(st.none(), st.integers(0, max(count - 1, 0)))
    return st.lists(holder, min_size=count, max_size=count)
