"""OAuth channels in configuration files: the identity provider, the app,
the token store the CLI gives them, and the ``[tokens]`` sealing key."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from commlink.cli.config import parse_config
from commlink.cli.tokens import DatabaseTokenStore
from commlink.credentials import Secret
from commlink.errors import ConfigError, StoreError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.registry import connect
from commlink.records import OAuthToken
from commlink.stores import generate_token_key
from commlink.stores.sql import SqlStore


def _channel(provider: str = "gmail", **options: object) -> dict[str, object]:
    return {
        "id": "alice-mail",
        "user": "alice",
        "provider": provider,
        "owner": "alice@northwind.example",
        "options": {"oauth": "google", "client_id": "app-id", **options},
    }


def test_an_oauth_channel_gets_the_store_database_as_token_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_SECRET", "s3cret-value")
    monkeypatch.setenv("SEALING", "k" * 44)
    config = parse_config(
        {
            "store": {"url": "postgresql+psycopg://crm:pw@db.example/crm"},
            "tokens": {"key_env": "SEALING"},
            "channels": [
                _channel(client_secret_env="APP_SECRET", token_key="alice-google"),
                {**_channel("google-calendar"), "id": "alice-cal"},
            ],
        }
    )
    mail, calendar = config.channels
    assert mail.options["client_secret"] == Secret("s3cret-value")
    assert isinstance(mail.options["token_store"], DatabaseTokenStore)
    assert calendar.options["token_store"] is mail.options["token_store"]
    assert config.token_key == Secret("k" * 44)
    shown = repr(config) + repr(mail)
    assert "s3cret-value" not in shown
    assert "k" * 44 not in shown
    assert ":pw@" not in shown


def test_channels_without_oauth_get_no_token_store() -> None:
    config = parse_config(
        {"channels": [{**_channel("imap"), "options": {"host": "imap.example", "username": "a"}}]}
    )
    assert "token_store" not in config.channels[0].options
    assert config.token_key is None


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        (_channel(oauth="yahoo"), "channels[0].options.oauth", "one of google, microsoft"),
        (_channel(oauth="microsoft"), "channels[0].options.oauth", "cannot sign in"),
        (_channel("imap", client_id=""), "channels[0].options.client_id", "required with oauth"),
        (_channel(token_key=""), "channels[0].options.token_key", "non-empty"),
        (
            {**_channel("caldav"), "options": {"oauth": "google", "client_id": "x"}},
            "channels[0].options.oauth",
            "no OAuth scopes",
        ),
    ],
)
def test_oauth_mistakes_name_their_field(
    entry: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_config({"channels": [entry]})
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"key": "a", "key_env": "B"}, "one of key, key_env and key_file"),
        ({"keys": "a"}, "unknown setting 'keys'"),
        ({"key_env": "COMMLINK_TEST_UNSET_VARIABLE"}, "is not set"),
        ({"key": ""}, "non-empty"),
        ("sealed", "must be a table"),
    ],
)
def test_token_key_mistakes(tokens: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"tokens": tokens, "channels": []})


def test_the_token_key_can_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token.key").write_text("sealing-key\n")
    config = parse_config({"tokens": {"key_file": "token.key"}}, base=tmp_path)
    assert config.token_key == Secret("sealing-key")


def test_the_database_token_store_keeps_sealed_grants(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    SqlStore(url).close()  # the schema
    key = Secret(generate_token_key())
    tokens = DatabaseTokenStore(url, key)
    grant = OAuthToken(
        Secret("access-value"),
        Secret("refresh-value"),
        datetime(2026, 12, 1, tzinfo=timezone.utc),
        ("openid",),
        "alice@northwind.example",
    )
    tokens.save_token("alice", grant)
    assert tokens.load_token("alice") == grant
    with pytest.raises(StoreError, match="sealed"):
        DatabaseTokenStore(url).load_token("alice")
    tokens.delete_token("alice")
    assert tokens.load_token("alice") is None
    assert "access-value" not in (tmp_path / "crm.db").read_bytes().decode("latin-1")


def test_a_host_without_a_token_store_is_told_what_is_missing() -> None:
    channel = Channel(
        "alice-mail",
        "alice",
        ChannelKind.MAIL,
        "gmail",
        ChannelSettings(owner="alice@northwind.example"),
    )
    options = {"oauth": "google", "client_id": "app", "client_secret": Secret("x")}
    with pytest.raises(ConfigError, match="needs a token store") as raised:
        connect(channel, options)
    assert raised.value.field == "token_store"
