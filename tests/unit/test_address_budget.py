"""A message's address headers share one budget: the full tokenizer reads
at most ``MAX_TOKENIZED_TEXT`` of them, and all of them at most
``MAX_ADDRESS_TEXT``; past that, values are scanned for addresses or cut."""

from __future__ import annotations

import time

from commlink.mime.addrlist import split_address_list
from commlink.mime.headers import (
    MAX_ADDRESS_TEXT,
    MAX_TOKENIZED_TEXT,
    AddressBudget,
    participants,
)
from commlink.mime.parse import parse_message


def test_a_scan_finds_the_addresses_without_the_structure() -> None:
    value = 'Team: (boss) ann@a.example, "Bob" <bob@b.example>; ' * 100
    scanned = split_address_list(value, tokenize=False)
    assert "addresses-scanned" in scanned.repairs
    assert scanned.entries[:2] == (("ann@a.example", ""), ("bob@b.example", ""))
    assert len(scanned.entries) == 200
    # the tokenizer reads the same value whole, names included
    assert split_address_list(value).entries[1] == ("bob@b.example", "Bob")
    # common forms never need the tokenizer, and short values are always read whole
    common = ", ".join(f"P{i} <p{i}@x.example>" for i in range(200))
    assert split_address_list(common, tokenize=False).repairs == ()
    assert split_address_list("T: a@x.example;", tokenize=False).entries == (("a@x.example", ""),)


def test_the_scan_is_linear() -> None:
    for value in ("a" * 1_000_000, "a@" * 500_000, "@a" * 500_000):
        began = time.monotonic()
        split_address_list(value, tokenize=False)
        assert time.monotonic() - began < 0.5


def test_headers_share_the_budget() -> None:
    budget = AddressBudget()
    hard = "(c) " + ", ".join(f"(n) u{i}@x.example" for i in range(6_000))
    assert MAX_TOKENIZED_TEXT // 2 < len(hard) < MAX_TOKENIZED_TEXT
    warnings: list[str] = []
    to = participants("to", [hard], warnings, budget)
    cc = participants("cc", [hard], warnings, budget)
    assert len(to) == len(cc) == 6_000
    assert warnings == ["header-scanned:cc"]  # the tokenizer's share was spent on To
    assert budget.tokenized == MAX_TOKENIZED_TEXT - len(hard)
    assert budget.text == MAX_ADDRESS_TEXT - 2 * len(hard)
    # text past the message's whole budget is cut at a comma
    budget.text = 30
    bcc = participants("bcc", ["a@x.example, b@x.example, c@x.example"], warnings, budget)
    assert [p.address.email for p in bcc] == ["a@x.example", "b@x.example"]
    assert warnings[-1] == "header-truncated:bcc"


def test_a_message_of_address_groups_parses_in_a_moment() -> None:
    # six 1 MB headers of empty groups took 31 s and 294 MB to parse
    groups = "g:" * 520_000
    headers = "".join(
        f"{name}: {groups}\r\n" for name in ("Sender", "To", "Cc", "Bcc", "Reply-To", "Cc")
    )
    raw = f"From: Ann <ann@a.example>\r\nSubject: s\r\n{headers}\r\nbody\r\n".encode()
    began = time.monotonic()
    message = parse_message(raw, provider_id="1")
    assert time.monotonic() - began < 2
    assert message.participants[0].address.email == "ann@a.example"
    assert "header-scanned:sender" in message.warnings
    assert "header-truncated:to" in message.warnings


def test_addresses_past_what_a_message_keeps_are_counted_not_checked() -> None:
    # an international domain takes the address check about 100 µs: 20,000
    # of them took 2.0 s, all but the 500 a message keeps for nothing
    domains = [f"ü{i}ñ".encode("idna").decode() for i in range(20_000)]
    to = ", ".join(f"a{i}@{d}.example" for i, d in enumerate(domains))
    raw = (
        f"From: Ann <ann@a.example>\r\nTo: {to}, A0@{domains[0]}.example\r\n"
        "Cc: Cy <cy@c.example>\r\nSubject: s\r\n\r\nbody\r\n"
    ).encode()
    began = time.monotonic()
    message = parse_message(raw, provider_id="1")
    assert time.monotonic() - began < 1
    assert len(message.participants) == 500
    assert "participants-truncated:20002" in message.warnings  # A0 is a0 again
    budget = AddressBudget(mailboxes=2)
    found = participants("to", ["a@x.example, b@x.example, c@x.example, C@x.example"], [], budget)
    assert [p.address.email for p in found] == ["a@x.example", "b@x.example"]
    assert (budget.mailboxes, budget.unread) == (0, 1)
