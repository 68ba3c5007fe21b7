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


def imap_channel(**options: object) -> dict[str, object]:
    return channel(provider="imap", options={"host": "imap.example", "username": "a", **options})


def test_secrets_by_reference_are_read_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from commlink.credentials import Secret

    monkeypatch.setenv("ALICE_IMAP", "s3cret-from-env")
    (tmp_path / "token").write_text("tok-from-file\n")
    config = parse_config(
        {
            "channels": [
                imap_channel(password_env="ALICE_IMAP"),
                channel(id="g", provider="gmail", options={"token_file": "token"}),
                channel(id="h", provider="imap", options={"host": "x", "password": "inline-pw"}),
            ]
        },
        base=tmp_path,
    )
    imap, gmail, inline = (c.options for c in config.channels)
    assert imap["password"] == Secret("s3cret-from-env")
    assert imap["password"].reveal() == "s3cret-from-env"
    assert gmail["token"].reveal() == "tok-from-file"
    assert isinstance(inline["password"], Secret)
    shown = f"{config!r} {config} {imap['password']}"
    for value in ("s3cret-from-env", "tok-from-file", "inline-pw"):
        assert value not in shown


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"password_env": "NOT_SET_ANYWHERE"}, "password_env", "is not set"),
        ({"password_file": "missing.txt"}, "password_file", "cannot read"),
        ({"password": "x", "password_env": "X"}, "password_env", "not both"),
    ],
)
def test_secret_reference_mistakes_name_the_field(
    tmp_path: Path, options: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"channels": [imap_channel(**options)]}, base=tmp_path)
    assert caught.value.field == f"channels[0].options.{field}"
    assert message in str(caught.value)


def test_a_relative_sqlite_url_resolves_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    file = tmp_path / "conf" / "channels.toml"
    file.write_text('[store]\nurl = "sqlite:///data/crm.sqlite"\n')
    assert load_config(file).store_url == f"sqlite:///{tmp_path}/conf/data/crm.sqlite"
    file.write_text('[store]\nurl = "sqlite:////abs/crm.sqlite"\n')
    assert load_config(file).store_url == "sqlite:////abs/crm.sqlite"
    file.write_text('[store]\nurl = "postgresql+psycopg://db/crm"\n')
    assert load_config(file).store_url == "postgresql+psycopg://db/crm"


def test_limits_and_suggestions_for_misspelt_keys(tmp_path: Path) -> None:
    mbox = tmp_path / "mail.mbox"
    mbox.write_bytes(b"")
    config = parse_config(
        {"channels": [channel(path=str(mbox), limits={"max_message_bytes": 1000})]}
    )
    assert config.channels[0].channel.settings.limits.max_message_bytes == 1000
    with pytest.raises(ConfigError, match="did you mean 'visibility'"):
        parse_config({"channels": [channel(path=str(mbox), visiblity="full")]})
    with pytest.raises(ConfigError, match="did you mean 'max_participants'"):
        parse_config({"channels": [channel(path=str(mbox), limits={"max_participant": 5})]})
    with pytest.raises(ConfigError, match="positive whole number"):
        parse_config({"channels": [channel(path=str(mbox), limits={"max_participants": 0})]})
