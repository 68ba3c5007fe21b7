"""Address-list headers as real mail writes them, with the standard library as an oracle.

Where RFC 5322 (with its obsolete forms) is unambiguous, the standard
library's header parser (``email.headerregistry``) and ``split_addresses``
must find the same addresses and names; where mail is broken in known ways
(a missing comma), addresses are recovered and the repair is reported.
"""

from __future__ import annotations

from email.headerregistry import HeaderRegistry
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.mime.addrlist import _parsed, _simple, split_address_list
from commlink.mime.headers import split_addresses
from commlink.mime.parse import parse_message
from commlink.model import Role

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_REGISTRY = HeaderRegistry()


def _oracle(value: str) -> list[tuple[str, str]]:
    """``(address, display name)`` pairs as ``email.headerregistry`` reads them (unfolded)."""
    header = _REGISTRY("To", value.replace("\r\n", ""))
    return [(a.addr_spec, a.display_name) for a in header.addresses]  # type: ignore[attr-defined]


def _people(value: str, role: Role = Role.TO) -> list[tuple[str, str]]:
    raw = f"From: x@from.example\r\nTo: {value}\r\nMessage-ID: <m@x>\r\n\r\nhi".encode()
    if role is Role.CC:
        raw = raw.replace(b"To:", b"Cc:")
    m = parse_message(raw, provider_id="p")
    return [(a.email, a.name) for a in m.addresses(role)]


# --- the forms the issue names ---------------------------------------------------


def test_comments_inside_and_between_addresses() -> None:
    value = '"Ann (work)" <ann@x.example> (comment), bob@y.example (Bob)'
    assert split_addresses(value) == (("ann@x.example", "Ann (work)"), ("bob@y.example", "Bob"))
    # RFC 5322 appendix A.5: comments everywhere, inside the address too.
    assert split_addresses(r"Pete(A nice \) chap) <pete(his account)@silly.test(his host)>") == (
        ("pete@silly.test", "Pete"),
    )
    group = (
        "A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, joe@example.org, "
        "John <jdoe@one.test> (my dear friend); (the end of the group)"
    )
    assert split_addresses(group) == (
        ("c@public.example", "Chris Jones"),
        ("joe@example.org", ""),
        ("jdoe@one.test", "John"),
    )
    # Comments alone are not entries.
    assert split_addresses("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;") == ()


def test_obsolete_whitespace_around_dots_and_at() -> None:
    assert split_addresses("jdoe@test . example") == (("jdoe@test.example", ""),)
    assert split_addresses("jdoe @ test.example") == (("jdoe@test.example", ""),)
    assert split_addresses("john . doe@test.example") == (("john.doe@test.example", ""),)
    assert split_addresses("Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example") == (
        ("mary@example.net", "Mary Smith"),
        ("jdoe@test.example", ""),
    )
    assert split_addresses("<jdoe @ test . example>") == (("jdoe@test.example", ""),)
    assert _people("jdoe@test . example") == [("jdoe@test.example", "")]


_ANN = ("ann@x.example", "Ann")
_BOB = ("bob@y.example", "Bob")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ann@x.example bob@y.example", [("ann@x.example", ""), ("bob@y.example", "")]),
        ("Ann <ann@x.example> Bob <bob@y.example>", [_ANN, _BOB]),
        ("Ann <ann@x.example> bob@y.example", [_ANN, ("bob@y.example", "")]),
        ("ann@x.example Bob <bob@y.example>", [("ann@x.example", ""), _BOB]),
        ("ann@x.example (Ann) bob@y.example (Bob)", [_ANN, _BOB]),
        (
            "a@x.example, Ann <ann@x.example> Bob <bob@y.example>, c@z.example",
            [("a@x.example", ""), _ANN, _BOB, ("c@z.example", "")],
        ),
    ],
)
def test_a_missing_comma_keeps_both_addresses_and_says_so(
    value: str, expected: list[tuple[str, str]]
) -> None:
    entries, missing, repairs = split_address_list(value)
    assert list(entries) == expected
    assert missing
    assert repairs == ()
    raw = f"From: x@from.example\r\nTo: {value}\r\nMessage-ID: <m@x>\r\n\r\nhi".encode()
    m = parse_message(raw, provider_id="p")
    assert [(a.email, a.name) for a in m.addresses(Role.TO)] == expected
    assert "missing-comma" in m.warnings
    assert not any(w.startswith("bad-address") for w in m.warnings)


@pytest.mark.parametrize(
    "value",
    [
        "ann@x.example <ann@x.example>",  # the address as its own (unquoted) name
        "John Doe <jdoe@x.example>",
        "<jdoe@x.example> John Doe",
        "a@x.example, b@y.example",
        "Team: a@x.example, b@y.example;",
    ],
)
def test_well_formed_lists_are_not_missing_commas(value: str) -> None:
    assert not split_address_list(value).missing_comma
    assert (
        "missing-comma"
        not in parse_message(
            f"From: x@y.example\r\nTo: {value}\r\n\r\n".encode(), provider_id="p"
        ).warnings
    )


def test_the_address_as_its_own_name_is_one_mailbox() -> None:
    assert split_addresses("ann@x.example <ann@x.example>") == (("ann@x.example", "ann@x.example"),)
    assert split_addresses("Bob bob@x.example <bob@x.example>") == (
        ("bob@x.example", "Bob bob@x.example"),
    )


def test_names_are_never_invented_from_loose_words() -> None:
    # No angle brackets and words that are not addresses: kept as one invalid entry.
    assert split_addresses("John Doe j@x.com") == (("John Doe j@x.com", ""),)
    m = parse_message(b"From: John Doe j@x.com\r\n\r\n", provider_id="p")
    assert [(a.valid, a.raw) for a in m.addresses()] == [(False, "John Doe j@x.com")]
    assert "bad-address:from" in m.warnings


def test_cr_only_line_ends() -> None:
    """Classic Mac OS mail: every line ends in a bare CR."""
    raw = (
        b"From: Ann <ann@x.example>\rTo: bob@y.example,\r  Carl <carl@z.example>\r"
        b"Subject: old\r  Mac mail\rMessage-ID: <mac@x.example>\r"
        b"Date: Mon, 3 Feb 2025 11:00:00 +0100\r\rFirst line\rSecond line\r"
    )
    m = parse_message(raw, provider_id="p")
    assert [(a.email, a.name) for a in m.addresses()] == [
        ("ann@x.example", "Ann"),
        ("bob@y.example", ""),
        ("carl@z.example", "Carl"),
    ]
    assert m.subject == "old Mac mail"
    assert m.message_id == "mac@x.example"
    assert m.body == "First line\nSecond line\n"
    assert m.size == len(raw)
    assert "line-ends-repaired" in m.warnings
    assert "date-unknown" not in m.warnings


def test_control_characters_in_names_are_removed_and_reported() -> None:
    entries, _, repairs = split_address_list("=?utf-8?q?A=00nn=01_Smith?= <ann@x.example>")
    assert entries == (("ann@x.example", "Ann Smith"),)
    assert set(repairs) == {"nul-removed", "control-removed"}
    m = parse_message(
        b"From: =?utf-8?q?A=00nn?= <ann@x.example>\r\nTo: b@y.example\r\n\r\n", provider_id="p"
    )
    assert [a.name for a in m.addresses(Role.FROM)] == ["Ann"]
    assert "nul-removed" in m.warnings


def test_a_huge_address_header_is_read_in_bounded_time() -> None:
    import time

    value = ", ".join(f"P{i} <p{i}@x{i % 97}.example>" for i in range(40_000))  # ~1.1 MB
    start = time.perf_counter()
    m = parse_message(f"From: a@x.example\r\nTo: {value}\r\n\r\n".encode(), provider_id="p")
    assert time.perf_counter() - start < 5
    assert "header-truncated:to" in m.warnings
    assert any(w.startswith("participants-truncated:") for w in m.warnings)


# --- the standard library as an oracle --------------------------------------------

_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
_ATOM = st.text(_ATEXT, min_size=1, max_size=6)
_LOCAL = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789_+-", min_size=1, max_size=6),
                  min_size=1, max_size=3).map(".".join)  # fmt: skip
_DOMAIN = st.tuples(
    st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6),
             min_size=1, max_size=3),
    st.sampled_from(["example", "test", "org"]),
).map(lambda t: ".".join([*t[0], t[1]]))  # fmt: skip
# Display names: atoms, or quoted text with specials (no quote or backslash).
_WORDS = st.lists(_ATOM, min_size=1, max_size=3).map(" ".join)
_QUOTED_TEXT = st.lists(
    st.text(_ATEXT + ",.;:@()<>[]", min_size=1, max_size=6), min_size=1, max_size=3
).map(" ".join)
_COMMENT = st.lists(st.text(_ATEXT + ".,;:@<>\"", min_size=1, max_size=6), min_size=1,
                    max_size=3).map(" ".join)  # fmt: skip


@st.composite
def _mailbox(draw: st.DrawFn) -> tuple[str, str, str]:
    """A mailbox as text, the address and the name both parsers must find."""
    local, domain = draw(_LOCAL), draw(_DOMAIN)
    address = f"{local}@{domain}"
    form = draw(st.integers(0, 6))
    if form == 0:
        return address, address, ""
    if form == 1:  # obsolete whitespace around the dots of the domain
        return f"{local}@{domain.replace('.', ' . ')}", address, ""
    if form == 2:
        name = draw(_WORDS)
        return f"{name} <{address}>", address, name
    if form == 3:
        name = draw(_QUOTED_TEXT)
        return f'"{name}" <{address}>', address, name
    if form == 4:  # a comment after an angle address does not name it
        name = draw(_WORDS)
        return f"{name} <{address}> ({draw(_COMMENT)})", address, name
    if form == 5:  # comments inside the angle address
        name = draw(_WORDS)
        return f"{name} <{local}({draw(_COMMENT)})@{domain}>", address, name
    return f"<{address}>", address, ""


_LISTS = st.lists(_mailbox(), min_size=1, max_size=5)


@SETTINGS
@given(_LISTS, st.sampled_from([", ", ",", ",\r\n ", " , "]), st.booleans())
def test_agrees_with_the_standard_library(
    mailboxes: list[tuple[str, str, str]], separator: str, group: bool
) -> None:
    value = separator.join(text for text, _, _ in mailboxes)
    if group:
        value = f"Team (all of us): {value};"
    expected = [(address, name) for _, address, name in mailboxes]
    assert _oracle(value) == expected  # the oracle reads the generated forms as intended
    entries, missing, repairs = split_address_list(value)
    assert list(entries) == expected
    assert (missing, repairs) == (False, ())


@SETTINGS
@given(st.lists(st.tuples(_LOCAL, _DOMAIN, st.one_of(st.just(""), _WORDS)), min_size=1, max_size=5))
def test_a_comment_names_a_bare_address_as_getaddresses_reads_it(
    people: list[tuple[str, str, str]],
) -> None:
    value = ", ".join(f"{u}@{d} ({n})" if n else f"{u}@{d}" for u, d, n in people)
    expected = [(f"{u}@{d}", n) for u, d, n in people]
    assert [(a, n) for n, a in getaddresses([value])] == expected
    assert list(split_addresses(value)) == expected


@SETTINGS
@given(_LISTS)
def test_the_quick_path_reads_what_the_tokenizer_reads(
    mailboxes: list[tuple[str, str, str]],
) -> None:
    value = ", ".join(text for text, _, _ in mailboxes)
    quick = _simple(value)
    if quick is not None:
        assert (quick, False) == _parsed(value)


@SETTINGS
@given(st.text(max_size=300))
def test_the_quick_path_agrees_on_anything(value: str) -> None:
    quick = _simple(value)
    if quick is not None:
        assert (quick, False) == _parsed(value)


@SETTINGS
@given(
    st.lists(
        st.sampled_from(
            ['"', "<", ">", ",", " ", "\t", "\r\n ", "@", ".", "a@b.example", "Ann", "x",
             "=?utf-8?q?J=C3=B6rg?=", "é", '"Doe, Jane"', "<c@d.example>", "\\", ";", ":", "("]
        ),
        max_size=14,
    ).map("".join)
)  # fmt: skip
def test_the_quick_path_agrees_on_address_shaped_noise(value: str) -> None:
    quick = _simple(value)
    if quick is not None:
        assert (quick, False) == _parsed(value)
