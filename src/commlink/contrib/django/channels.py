"""``COMMLINK["CHANNELS"]``, ``["TOKENS"]`` and ``["PUSH"]``: the channels a
Django host syncs, checked once.

A channel is a dict with the keys of a ``[[channels]]`` table of the
``commlink`` command's configuration (``id``, ``user``, ``provider``,
``owner``, ``visibility``, ``options``, ...). Settings are Python, so
secrets come from wherever the host keeps them (``os.environ[...]``, a
vault client); option values named like secrets (``password``,
``client_secret``, ...) are held as ``Secret``. Every mistake is a
``ConfigError`` naming the channel and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from ...channel_config import SettingsPlace, check_keys, parse_channel, strings, table
from ...credentials import Secret
from ...errors import ConfigError
from ...model import Channel
from ...providers.google.push import GOOGLE_CERTS_URL

__all__ = ["ChannelsConfig", "ConfiguredChannel", "PushSettings", "parse_channels"]

_PUSH_KEYS = frozenset(
    {
        "public_url",
        "gmail_topic",
        "gmail_audience",
        "gmail_service_accounts",
        "gmail_certs_url",
        "renew_every_minutes",
    }
)
#: where the push views answer below the include (``urls.py``)
PUSH_PATHS = {
    "gmail": "/push/gmail",
    "google_calendar": "/push/google-calendar",
    "graph": "/push/graph",
    "graph_lifecycle": "/push/graph/lifecycle",
}


@attrs.frozen
class ConfiguredChannel:
    """A channel plus what its provider needs to connect (never in a ``repr``)."""

    channel: Channel
    options: Mapping[str, Any] = attrs.field(repr=False)


@attrs.frozen
class PushSettings:
    """``COMMLINK["PUSH"]``: the public address of the push views and Gmail's Pub/Sub."""

    public_url: str | None = None
    gmail_topic: str | None = None
    gmail_audience: str | None = None
    gmail_service_accounts: tuple[str, ...] = ()
    gmail_certs_url: str = GOOGLE_CERTS_URL
    renew_every: timedelta = timedelta(minutes=30)

    def url(self, route: str) -> str | None:
        """The public URL of a push view (``"graph"``, ...), or ``None``."""
        return self.public_url.rstrip("/") + PUSH_PATHS[route] if self.public_url else None


@attrs.frozen
class ChannelsConfig:
    channels: tuple[ConfiguredChannel, ...]
    #: seals the saved OAuth grants (``TOKENS``)
    token_key: Secret | None = attrs.field(default=None, repr=False)
    push: PushSettings | None = None


def parse_channels(raw: Any, tokens: Any = None, push: Any = None) -> ChannelsConfig:
    """Check ``CHANNELS`` (a list of dicts), ``TOKENS`` and ``PUSH``."""
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ConfigError('settings.COMMLINK["CHANNELS"] must be a list of dicts')
    channels = [
        _channel(item, SettingsPlace(f'COMMLINK["CHANNELS"][{i}]')) for i, item in enumerate(raw)
    ]
    seen: set[str] = set()
    for item in channels:
        if item.channel.id in seen:
            raise ConfigError(f'COMMLINK["CHANNELS"]: two channels have the id {item.channel.id!r}')
        seen.add(item.channel.id)
    settings = _push(push) if push is not None else None
    if settings is not None:
        channels = [_with_push_defaults(item, settings) for item in channels]
    return ChannelsConfig(tuple(channels), _token_key(tokens), settings)


def _channel(raw: Any, place: SettingsPlace) -> ConfiguredChannel:
    channel, options = parse_channel(raw, place)
    return ConfiguredChannel(channel, options)


def _with_push_defaults(item: ConfiguredChannel, push: PushSettings) -> ConfiguredChannel:
    """The push options ``PUSH`` implies, where the channel does not set them."""
    graph = {"push_url": push.url("graph"), "push_lifecycle_url": push.url("graph_lifecycle")}
    implied: dict[str, dict[str, str | None]] = {
        "graph": graph,
        "graph-calendar": graph,
        "google-calendar": {"push_url": push.url("google_calendar")},
        "gmail": {"pubsub_topic": push.gmail_topic},
    }
    extra = {
        key: value
        for key, value in implied.get(item.channel.provider, {}).items()
        if value is not None and key not in item.options
    }
    return attrs.evolve(item, options={**item.options, **extra}) if extra else item


def _push(raw: Any) -> PushSettings:
    where = 'COMMLINK["PUSH"]'
    place = SettingsPlace(where)
    settings = table(raw, place)
    check_keys(settings, _PUSH_KEYS, place)
    public_url = settings.get("public_url")
    if public_url is not None and (
        not isinstance(public_url, str) or not public_url.startswith(("https://", "http://"))
    ):
        raise ConfigError(f'{where}["public_url"] must be the http(s) URL of the include')
    accounts = tuple(strings(settings, "gmail_service_accounts", place))
    topic = settings.get("gmail_topic")
    audience = settings.get("gmail_audience")
    if topic is not None and not accounts:
        raise ConfigError(
            f'{where}["gmail_service_accounts"] is required with gmail_topic: only tokens '
            "of the Pub/Sub subscription's service account are accepted"
        )
    if accounts and audience is None:
        if public_url is None:
            raise ConfigError(f'{where}["gmail_audience"] is required without public_url')
        audience = public_url.rstrip("/") + PUSH_PATHS["gmail"]
    minutes = settings.get("renew_every_minutes", 30)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
        raise ConfigError(f'{where}["renew_every_minutes"] must be 1 to 1440')
    return PushSettings(
        public_url=public_url,
        gmail_topic=topic,
        gmail_audience=audience,
        gmail_service_accounts=accounts,
        gmail_certs_url=settings.get("gmail_certs_url") or GOOGLE_CERTS_URL,
        renew_every=timedelta(minutes=minutes),
    )


def _token_key(raw: Any) -> Secret | None:
    """``TOKENS``: ``{"key": ...}`` or ``{"key_env": "VARIABLE"}``."""
    if raw is None:
        return None
    where = 'COMMLINK["TOKENS"]'
    place = SettingsPlace(where)
    settings = table(raw, place)
    check_keys(settings, {"key", "key_env"}, place)
    if "key" in settings and "key_env" in settings:
        raise ConfigError(f"{where}: give key or key_env, not both")
    if "key_env" in settings:
        value = os.environ.get(str(settings["key_env"]), "")
        if not value:
            raise ConfigError(f'{where}["key_env"]: the variable {settings["key_env"]} is not set')
        return Secret(value)
    key = settings.get("key")
    if key is None:
        return None
    if isinstance(key, Secret):
        return key
    if not isinstance(key, str) or not key:
        raise ConfigError(f'{where}["key"] must be a Fernet key')
    return Secret(key)
