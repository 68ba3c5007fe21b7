"""Discovered owner aliases: cleaned of hostile provider data, merged with the
configured ones, and shown by ``commlink status`` with their origin."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.addresses import address_key
from commlink.cli.output import aliases_in_effect, format_aliases
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.records import ChannelState
from commlink.sync.aliases import (
    MAX_ALIAS_LENGTH,
    MAX_ALIASES,
    MAX_SCANNED,
    discovered_aliases,
    effective_aliases,
    with_aliases,
)

OWNER = "owner@home.example"

_LOCAL = st.from_regex(r"[a-zA-Z0-9._+-]{1,20}", fullmatch=True)
_DOMAIN = st.sampled_from(["home.example", "Other.Example", "xn--fa-hia.de", "faß.de"])
_VALID = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN)
_HOSTILE = st.one_of(
    _VALID,
    st.just(OWNER.upper()),
    st.text(max_size=40),  # garbage, control characters, lone surrogates
    st.builds(lambda n: "a" * n + "@home.example", st.integers(250, 5_000)),
    st.builds(lambda v: f"  {v}\r\n", _VALID),
    st.none(),
    st.integers(),
    st.binary(max_size=10),
)


@given(st.lists(_HOSTILE, max_size=400))
@settings(max_examples=150, deadline=None)
def test_discovered_aliases_are_valid_keys_without_the_owner(reported: list[object]) -> None:
    found = discovered_aliases(reported, OWNER)
    assert len(found) <= MAX_ALIASES
    assert list(found) == sorted(set(found))
    for alias in found:
        assert alias == address_key(alias) != ""
        assert len(alias) <= MAX_ALIAS_LENGTH
        assert alias != OWNER


def test_thousands_of_aliases_are_capped_and_overlong_ones_dropped() -> None:
    many = [f"alias{n}@home.example" for n in range(5_000)]
    found = discovered_aliases(many, OWNER)
    assert len(found) == MAX_ALIASES
    assert set(found) <= set(many)
    huge = "x" * 1_000_000 + "@home.example"
    assert discovered_aliases([huge, "ok@home.example", huge], OWNER) == ("ok@home.example",)
    # past MAX_SCANNED entries nothing more is read, however the list goes on
    junk = ["not an address"] * MAX_SCANNED
    assert discovered_aliases([*junk, "late@home.example"], OWNER) == ()


def test_case_variants_and_the_owner_count_once_or_not_at_all() -> None:
    reported = ["Sales@Home.Example", "sales@home.example", "OWNER@home.example", "b@faß.de"]
    assert discovered_aliases(reported, OWNER) == ("b@xn--fa-hia.de", "sales@home.example")


def test_effective_aliases_keep_configured_ones_and_add_new_ones() -> None:
    configured = frozenset({"Me@Home.Example"})
    merged = effective_aliases(configured, ["me@home.example", "sales@home.example", OWNER], OWNER)
    assert merged == {"Me@Home.Example", "sales@home.example"}


def test_with_aliases_changes_only_the_aliases() -> None:
    channel = Channel("c", "u", ChannelKind.MAIL, "gmail", ChannelSettings(owner=OWNER))
    assert with_aliases(channel, ()) is channel
    assert with_aliases(channel, [OWNER]) is channel
    judged = with_aliases(channel, ["sales@home.example"])
    assert judged.settings.aliases == {"sales@home.example"}
    assert attrs.evolve(judged.settings, aliases=frozenset()) == channel.settings


def test_status_marks_where_each_alias_comes_from() -> None:
    found = aliases_in_effect(
        frozenset({"a.martin@home.example", "sales@home.example"}),
        ("sales@home.example", "team@home.example"),
        OWNER,
    )
    assert [(a.address, a.configured, a.discovered) for a in found] == [
        ("a.martin@home.example", True, False),
        ("sales@home.example", True, True),
        ("team@home.example", False, True),
    ]
    assert format_aliases(found) == (
        "aliases: a.martin@home.example (configured); sales@home.example (configured,"
        " discovered); team@home.example (discovered)"
    )
    assert aliases_in_effect(frozenset(), (), OWNER) == []


def test_channel_state_keeps_aliases_through_evolve_and_positional_callers() -> None:
    state = ChannelState("c", aliases=("sales@home.example",))
    assert attrs.evolve(state, failures=2).aliases == ("sales@home.example",)
    assert ChannelState("c", state.status, state.stage, 0, "", None, None).aliases == ()
