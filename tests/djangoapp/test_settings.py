"""``settings.COMMLINK``: channels, tokens and push settings are checked,
and each mistake names where it is."""

from __future__ import annotations

from typing import Any

import pytest
from host_fixtures import DEMO, mailbox

from commlink.contrib.django.channels import parse_channels
from commlink.credentials import Secret
from commlink.errors import ConfigError
from commlink.model import ContactPolicy, Visibility


def test_a_channel_becomes_a_channel_with_its_options() -> None:
    config = parse_channels(
        [
            mailbox(
                aliases=["Alice@Northwind.example"],
                blocklist=["@Spam.example"],
                limits={"max_participants": 50},
                options={"password": "hunter2", "host": "imap.example"},
            )
        ],
        {"key": "k" * 44},
    )
    (item,) = config.channels
    assert item.channel.id == "alice-mail"
    assert item.channel.settings.visibility is Visibility.SUBJECT
    assert item.channel.settings.contact_policy is ContactPolicy.NONE
    assert item.channel.settings.aliases == frozenset({"alice@northwind.example"})
    assert item.channel.settings.blocklist == frozenset({"@spam.example"})
    assert item.channel.settings.limits.max_participants == 50
    assert isinstance(item.options["password"], Secret)
    assert "hunter2" not in repr(config)
    assert item.options["path"] == str(DEMO / "demo.mbox")
    assert isinstance(config.token_key, Secret)


def test_push_settings_give_channels_their_urls() -> None:
    graph = {**mailbox("g"), "provider": "graph", "options": {}}
    del graph["path"]
    config = parse_channels(
        [graph],
        push={"public_url": "https://crm.example/commlink/", "renew_every_minutes": 10},
    )
    options = config.channels[0].options
    assert options["push_url"] == "https://crm.example/commlink/push/graph"
    assert options["push_lifecycle_url"] == "https://crm.example/commlink/push/graph/lifecycle"
    assert config.push is not None
    assert config.push.gmail_audience is None
    accounts = {"gmail_service_accounts": ["push@p.iam.gserviceaccount.com"]}
    gmail = parse_channels([], push={"public_url": "https://crm.example/c", **accounts})
    assert gmail.push is not None
    assert gmail.push.gmail_audience == "https://crm.example/c/push/gmail"


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ("alice-mail", "list of dicts"),
        ([mailbox(colour="red")], "unknown keys"),
        ([mailbox(provider="pigeon")], "unknown 'pigeon'"),
        ([mailbox(owner="not an address")], "owner"),
        ([mailbox(visibility="everything")], "visibility"),
        ([mailbox(aliases="a@b.example")], "list of strings"),
        ([mailbox(org_domains=["not a domain!"])], "not valid"),
        ([mailbox(sync_internal="yes")], "True or False"),
        ([mailbox(limits={"max_participants": "many"})], "whole number"),
        ([mailbox(limits={"max_participants": 0})], "limits"),
        ([mailbox(path="/nowhere/at/all.mbox")], "no such file"),
        ([mailbox(options={"oauth": "myspace"})], "oauth"),
        ([mailbox(), mailbox()], "two channels"),
        ([{**mailbox(), "id": ""}], '"id"'),
    ],
)
def test_channel_mistakes_name_their_place(channels: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_channels(channels)


@pytest.mark.parametrize(
    ("tokens", "push", "message"),
    [
        ({"key": "k", "key_env": "X"}, None, "not both"),
        ({"key_env": "COMMLINK_SURELY_UNSET_VARIABLE"}, None, "not set"),
        ({"seal": "k"}, None, "unknown keys"),
        (None, {"listen": "127.0.0.1:8080"}, "unknown keys"),
        (None, {"public_url": "ftp://crm.example"}, "public_url"),
        (None, {"gmail_topic": "projects/p/topics/t"}, "gmail_service_accounts"),
        (None, {"gmail_service_accounts": ["a@b.example"]}, "gmail_audience"),
        (None, {"renew_every_minutes": 0}, "renew_every_minutes"),
    ],
)
def test_token_and_push_mistakes(tokens: Any, push: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_channels([], tokens, push)
