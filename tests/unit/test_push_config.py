"""The ``[push]`` table: validated with errors that name the field, and the
source of each channel's push URLs and Gmail topic unless the channel sets
them itself."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commlink.cli.config import load_config, parse_config
from commlink.errors import ConfigError

ACCOUNT = "gmail-push@crm-prod.iam.gserviceaccount.com"
TOPIC = "projects/crm-prod/topics/gmail-changes"


def _channel(channel_id: str, provider: str, **options: Any) -> dict[str, Any]:
    return {
        "id": channel_id,
        "user": "ann",
        "provider": provider,
        "owner": "ann@northwind.example",
        "options": options,
    }


CHANNELS = [
    _channel("ann-gmail", "gmail"),
    _channel("ann-gcal", "google-calendar"),
    _channel("ann-m365", "graph"),
    _channel("ann-m365-cal", "graph-calendar"),
    _channel("ann-imap", "imap", host="imap.example.com", username="ann"),
]


def _parse(push: Any, channels: list[dict[str, Any]] | None = None) -> Any:
    return parse_config({"channels": CHANNELS if channels is None else channels, "push": push})


def test_a_full_push_table_sets_every_channels_push_options() -> None:
    config = _parse(
        {
            "listen": "127.0.0.1:8181",
            "public_url": "https://crm.example.com/commlink/",
            "gmail_topic": TOPIC,
            "gmail_service_accounts": [ACCOUNT.upper()],
            "renew_every_minutes": 20,
        }
    )
    push = config.push
    assert push is not None
    assert push.listen == "127.0.0.1:8181"
    assert push.public_url == "https://crm.example.com/commlink"
    assert push.gmail_audience == "https://crm.example.com/commlink/push/gmail"
    assert push.gmail_service_accounts == (ACCOUNT,)
    assert push.renew_every == timedelta(minutes=20)
    options = {item.channel.id: item.options for item in config.channels}
    assert options["ann-gmail"]["pubsub_topic"] == TOPIC
    assert options["ann-gcal"]["push_url"] == (
        "https://crm.example.com/commlink/push/google-calendar"
    )
    for graph in ("ann-m365", "ann-m365-cal"):
        assert options[graph]["push_url"] == "https://crm.example.com/commlink/push/graph"
        assert options[graph]["push_lifecycle_url"] == (
            "https://crm.example.com/commlink/push/graph/lifecycle"
        )
    assert "push_url" not in options["ann-imap"]


def test_defaults_and_what_channels_set_themselves() -> None:
    own = "https://hooks.example.com/graph"
    channels = [_channel("ann-m365", "graph", push_url=own), _channel("ann-gmail", "gmail")]
    table = {"paths": {"graph_lifecycle": "/hooks/life"}, "public_url": "http://127.0.0.1:9"}
    config = _parse(table, channels)
    push = config.push
    assert push is not None
    assert push.listen == "127.0.0.1:8080"
    assert push.renew_every == timedelta(minutes=30)
    assert push.gmail_audience is None  # no Gmail endpoint without its service account
    options = {item.channel.id: item.options for item in config.channels}
    assert options["ann-m365"]["push_url"] == own  # the channel's own wins
    assert options["ann-m365"]["push_lifecycle_url"] == "http://127.0.0.1:9/hooks/life"
    assert "pubsub_topic" not in options["ann-gmail"]
    # without public_url nothing is derived: channels push where they say, or poll
    bare = _parse({}, [_channel("ann-m365", "graph")])
    assert bare.push is not None
    assert bare.push.public_url is None
    assert "push_url" not in bare.channels[0].options
    assert parse_config({"channels": []}).push is None


@pytest.mark.parametrize(
    ("push", "field", "words"),
    [
        ("yes", "push", "must be a table"),
        ({"listen": "localhost"}, "push.listen", "HOST:PORT"),
        ({"listen": "127.0.0.1:70000"}, "push.listen", "out of range"),
        ({"listen": "::1:8080"}, "push.listen", "HOST:PORT"),
        ({"listen": 8080}, "push.listen", "non-empty string"),
        ({"public_url": "http://crm.example.com"}, "push.public_url", "https"),
        ({"public_url": "https://u:p@crm.example.com"}, "push.public_url", "credentials"),
        ({"public_url": "https://crm.example.com/?x=1"}, "push.public_url", "query"),
        ({"public_url": "crm.example.com"}, "push.public_url", "https"),
        ({"gmail_topic": "gmail-changes", "gmail_service_accounts": [ACCOUNT]},
         "push.gmail_topic", "projects/PROJECT/topics/TOPIC"),
        ({"gmail_topic": TOPIC, "public_url": "https://c.example"},
         "push.gmail_service_accounts", "required with gmail_topic"),
        ({"gmail_service_accounts": [ACCOUNT]}, "push.gmail_audience", "public_url"),
        ({"gmail_service_accounts": ["not an address"], "public_url": "https://c.example"},
         "push.gmail_service_accounts", "not a valid address"),
        ({"gmail_service_accounts": ACCOUNT}, "push.gmail_service_accounts", "list"),
        ({"gmail_audience": "https://c.example/push/gmail"},
         "push.gmail_service_accounts", "required with gmail_audience"),
        ({"gmail_certs_url": "http://certs.example/"}, "push.gmail_certs_url", "https"),
        ({"paths": {"gmial": "/g"}}, "push.paths", "unknown endpoint 'gmial'"),
        ({"paths": {"graph": "hooks"}}, "push.paths.graph", "must be a path"),
        ({"paths": {"graph": "/push/gmail"}}, "push.paths", "a path of its own"),
        ({"renew_every_minutes": 0}, "push.renew_every_minutes", "1 to 1440"),
        ({"renew_every_minutes": True}, "push.renew_every_minutes", "1 to 1440"),
        ({"public_ur": "https://c.example"}, "push", "did you mean 'public_url'"),
    ],
)  # fmt: skip
def test_mistakes_name_their_field(push: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse(push)
    assert raised.value.field == field
    assert words in str(raised.value)


def test_a_file_with_push(tmp_path: Path) -> None:
    path = tmp_path / "commlink.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///c.db"\n'
        '[push]\nlisten = "[::1]:8443"\npublic_url = "https://crm.example.com"\n'
        '[[channels]]\nid = "m"\nuser = "u"\nprovider = "graph"\nowner = "u@x.example"\n'
    )
    config = load_config(path)
    assert config.push is not None
    assert config.push.listen == "[::1]:8443"
    assert config.channels[0].options["push_url"] == "https://crm.example.com/push/graph"
