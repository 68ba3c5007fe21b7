"""Configuration files: every mistake names its field, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from commlink.cli.config import load_config, parse_config
from commlink.errors import ConfigError
from commlink.model import ChannelKind, ContactPolicy, Visibility


def channel(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "alice-mail",
        "user": "alice",
        "provider": "mbox",
        "owner": "Alice@Northwind.example",
    }
    base.update(overrides)
    return base


def test_a_full_channel_is_parsed(tmp_path: Path) -> None:
    mbox = tmp_path / "mail.mbox"
    mbox.write_bytes(b"")
    config = parse_config(
        {
            "store": {"url": "sqlite:///x.db"},
            "channels": [
                channel(
                    path=str(mbox),
                    aliases=["a.martin@northwind.example"],
                    org_domains=["Northwind.example"],
                    visibility="subject",
                    contact_policy="sent_and_received",
                    blocklist=["@Spam.example", "x@y.example"],
                    folders={"exclude": ["archive"]},
                )
            ],
        }
    )
    assert config.store_url == "sqlite:///x.db"
    (item,) = config.channels
    settings = item.channel.settings
    assert item.channel.kind is ChannelKind.MAIL
    assert settings.owner == "alice@northwind.example"
    assert settings.visibility is Visibility.SUBJECT
    assert settings.contact_policy is ContactPolicy.SENT_AND_RECEIVED
    assert settings.blocklist == frozenset({"@spam.example", "x@y.example"})
    assert settings.org_domains == frozenset({"northwind.example"})
    assert item.options["path"] == str(mbox)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"provider": "carrier-pigeon"}, "channels[0].provider"),
        ({"owner": "not an address"}, "channels[0].owner"),
        ({"aliases": ["a..b@x.example"]}, "channels[0].aliases"),
        ({"org_domains": ["nodots"]}, "channels[0].org_domains"),
        ({"visibility": "everything"}, "channels[0].visibility"),
        ({"blocklist": ["@"]}, "channels[0].blocklist"),
        ({"sync_internal": "yes"}, "channels[0].sync_internal"),
        ({"colour": "blue"}, "channels[0]"),
        ({"path": "/does/not/exist.mbox"}, "channels[0].path"),
        ({"id": ""}, "channels[0].id"),
    ],
)
def test_mistakes_name_the_field(overrides: dict[str, object], field: str) -> None:
    data = {"channels": [channel(**{"path": "/dev/null", **overrides})]}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.field == field


def test_file_providers_need_a_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"channels": [channel()]})
    assert info.value.field == "channels[0].path"


def test_duplicate_ids_are_refused() -> None:
    item = channel(path="/dev/null")
    with pytest.raises(ConfigError, match="duplicate"):
        parse_config({"channels": [item, item]})


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.field == "config"
    broken = tmp_path / "broken.toml"
    broken.write_text("[store\nurl=")
    with pytest.raises(ConfigError, match="TOML"):
        load_config(broken)


def test_relative_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "mail.mbox").write_bytes(b"")
    file = tmp_path / "channels.toml"
    file.write_text(
        '[[channels]]\nid = "m"\nuser = "u"\nprovider = "mbox"\n'
        'path = "mail.mbox"\nowner = "me@example.com"\n'
    )
    (item,) = load_config(file).channels
    assert item.options["path"] == str(tmp_path / "mail.mbox")
