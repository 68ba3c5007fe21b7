"""One reading of a channel's settings: the same rules for a configuration
file and for Django settings, each mistake named in the words of its place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commlink.channel_config import FilePlace, Place, SettingsPlace, parse_channel
from commlink.credentials import Secret
from commlink.errors import ConfigError
from commlink.model import ChannelKind, Visibility

PLACES = [FilePlace("channels[0]"), SettingsPlace('COMMLINK["CHANNELS"][0]')]


def channel(**changes: Any) -> dict[str, Any]:
    return {
        "id": "alice-mail",
        "user": "alice",
        "provider": "imap",
        "owner": "Alice@Northwind.example",
        "options": {"host": "imap.example", "username": "alice"},
        **changes,
    }


@pytest.mark.parametrize("place", PLACES, ids=["file", "settings"])
def test_both_places_read_a_channel_alike(place: Place) -> None:
    found, options = parse_channel(
        channel(
            visibility="Subject",
            aliases=("a.martin@northwind.example",),
            org_domains=["Northwind.example"],
            folders={"exclude": ("Archive",)},
            limits={"max_html_chars": 0},
            skip_unverified=True,
            options={"host": "imap.example", "password": "hunter2"},
        ),
        place,
    )
    assert found.kind is ChannelKind.MAIL
    assert found.settings.owner == "alice@northwind.example"
    assert found.settings.visibility is Visibility.SUBJECT
    assert found.settings.aliases == frozenset({"a.martin@northwind.example"})
    assert found.settings.org_domains == frozenset({"northwind.example"})
    assert found.settings.folders.exclude == frozenset({"Archive"})
    assert found.settings.limits.max_html_chars == 0
    assert found.settings.skip_unverified
    assert not parse_channel(channel(), place)[0].settings.skip_unverified
    assert options["password"] == Secret("hunter2")


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"owner": "nobody"}, ["owner"], "not valid as an address"),
        ({"org_domains": ["bad domain!.com"]}, ["org_domains"], "not valid as a domain"),
        ({"folders": {"include": [""]}}, ["folders", "include"], "empty string"),
        ({"limits": {"max_participants": 0}}, ["limits", "max_participants"], "positive"),
        (
            {"provider": "gmail", "options": {"oauth": "google"}},
            ["options", "client_id"],
            "required with oauth",
        ),
    ],
)
def test_a_mistake_is_named_in_the_words_of_its_place(
    changes: dict[str, Any], key: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as in_file:
        parse_channel(channel(**changes), FilePlace("channels[0]"))
    assert in_file.value.field == ".".join(["channels[0]", *key])
    with pytest.raises(ConfigError, match=message) as in_settings:
        parse_channel(channel(**changes), SettingsPlace('COMMLINK["CHANNELS"][0]'))
    assert in_settings.value.field == 'COMMLINK["CHANNELS"][0]' + "".join(f'["{k}"]' for k in key)


def test_each_place_speaks_its_own_language() -> None:
    with pytest.raises(ConfigError, match="did you mean 'visibility'"):
        parse_channel(channel(visiblity="full"), FilePlace("channels[0]"))
    with pytest.raises(ConfigError, match=r"unknown keys \['visiblity'\]"):
        parse_channel(channel(visiblity="full"), SettingsPlace('COMMLINK["CHANNELS"][0]'))
    with pytest.raises(ConfigError, match="must be true or false"):
        parse_channel(channel(sync_internal="yes"), FilePlace("channels[0]"))
    with pytest.raises(ConfigError, match="must be True or False"):
        parse_channel(channel(sync_internal="yes"), SettingsPlace("CHANNELS[0]"))
    with pytest.raises(ConfigError, match="must be a table"):
        parse_channel([], FilePlace("channels[0]"))
    with pytest.raises(ConfigError, match="must be a dict"):
        parse_channel([], SettingsPlace("CHANNELS[0]"))


def test_secrets_by_reference_only_with_a_reader() -> None:
    raw = channel(options={"host": "imap.example", "password_env": "ALICE_IMAP"})
    _, plain = parse_channel(raw, SettingsPlace("CHANNELS[0]"))
    assert plain["password_env"] == "ALICE_IMAP"
    assert "password" not in plain
    asked: list[tuple[str, str, str]] = []

    def read(via: str, reference: str, place: Place) -> str:
        asked.append((via, reference, place.path))
        return "s3cret"

    _, read_options = parse_channel(raw, FilePlace("channels[0]"), read_secret=read)
    assert read_options["password"] == Secret("s3cret")
    assert asked == [("env", "ALICE_IMAP", "channels[0].options.password_env")]


def test_a_relative_path_resolves_against_the_base(tmp_path: Path) -> None:
    (tmp_path / "mail.mbox").write_bytes(b"")
    raw = channel(provider="mbox", path="mail.mbox", options={})
    _, options = parse_channel(raw, FilePlace("channels[0]"), base=tmp_path)
    assert options["path"] == str(tmp_path / "mail.mbox")
    with pytest.raises(ConfigError, match="no such file") as raised:
        parse_channel(raw, SettingsPlace("CHANNELS[0]"))
    assert raised.value.field == 'CHANNELS[0]["path"]'
