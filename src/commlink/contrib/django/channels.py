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
from pathlib import Path
from typing import Any

import attrs

from ...addresses import address_key, normalise_domain, normalise_entry, parse_address
from ...auth.options import identity_of
from ...credentials import Secret
from ...errors import ConfigError
from ...model import (
    CalendarContactPolicy,
    Channel,
    ChannelSettings,
    ContactPolicy,
    FolderSelection,
    Limits,
    Visibility,
)
from ...providers.google.push import GOOGLE_CERTS_URL
from ...providers.registry import PROVIDER_KINDS

__all__ = ["ChannelsConfig", "ConfiguredChannel", "PushSettings", "parse_channels"]

_CHANNEL_KEYS = frozenset(
    {
        "id", "user", "provider", "owner", "aliases", "org_domains", "visibility",
        "contact_policy", "calendar_contact_policy", "folders", "sync_internal", "blocklist",
        "create_companies", "sync_invites", "options", "path", "limits", "skip_details",
    }
)  # fmt: skip
#: option names whose values are secrets
SECRET_OPTIONS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "oauth2_token",
        "client_secret",
        "service_account_info",
    }
)
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
    channels = [_channel(item, f'COMMLINK["CHANNELS"][{i}]') for i, item in enumerate(raw)]
    seen: set[str] = set()
    for item in channels:
        if item.channel.id in seen:
            raise ConfigError(f'COMMLINK["CHANNELS"]: two channels have the id {item.channel.id!r}')
        seen.add(item.channel.id)
    settings = _push(push) if push is not None else None
    if settings is not None:
        channels = [_with_push_defaults(item, settings) for item in channels]
    return ChannelsConfig(tuple(channels), _token_key(tokens), settings)


def _channel(raw: Any, where: str) -> ConfiguredChannel:
    table = _table(raw, where)
    _known(table, _CHANNEL_KEYS, where)
    provider = _text(table, "provider", where)
    if provider not in PROVIDER_KINDS:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ConfigError(f'{where}["provider"]: unknown {provider!r} (known: {known})')
    owner = parse_address(_text(table, "owner", where))
    if not owner.valid:
        raise ConfigError(f'{where}["owner"]: not a valid address')
    folders = _table(table.get("folders", {}), f'{where}["folders"]')
    _known(folders, {"include", "exclude"}, f'{where}["folders"]')
    settings = ChannelSettings(
        owner=owner.key,
        aliases=frozenset(_each(table, "aliases", where, lambda a: parse_address(a).key)),
        org_domains=frozenset(_each(table, "org_domains", where, _domain)),
        visibility=_enum(Visibility, table, "visibility", where, Visibility.FULL),
        contact_policy=_enum(ContactPolicy, table, "contact_policy", where, ContactPolicy.SENT),
        calendar_contact_policy=_enum(
            CalendarContactPolicy,
            table,
            "calendar_contact_policy",
            where,
            CalendarContactPolicy.AS_PARTICIPANT,
        ),
        folders=FolderSelection(
            include=frozenset(_each(folders, "include", where, str)),
            exclude=frozenset(_each(folders, "exclude", where, str)),
        ),
        sync_internal=_flag(table, "sync_internal", where, False),
        blocklist=frozenset(_each(table, "blocklist", where, normalise_entry)),
        create_companies=_flag(table, "create_companies", where, True),
        sync_invites=_flag(table, "sync_invites", where, False),
        skip_details=_flag(table, "skip_details", where, False),
        limits=_limits(table.get("limits", {}), f'{where}["limits"]'),
    )
    options = {
        key: Secret(value) if key in SECRET_OPTIONS and isinstance(value, str) else value
        for key, value in _table(table.get("options", {}), f'{where}["options"]').items()
    }
    try:
        identity_of(options)
    except ConfigError as exc:
        raise ConfigError(f'{where}["options"]["oauth"]: {exc}') from None
    if "path" in table:
        path = Path(_text(table, "path", where)).expanduser()
        if not path.exists():
            raise ConfigError(f'{where}["path"]: no such file or folder: {path}')
        options["path"] = str(path)
    elif provider in ("mbox", "maildir", "ics"):
        raise ConfigError(f'{where}["path"] is required for file providers')
    channel = Channel(
        _text(table, "id", where),
        _text(table, "user", where),
        PROVIDER_KINDS[provider],
        provider,
        settings,
    )
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
    table = _table(raw, where)
    _known(table, _PUSH_KEYS, where)
    public_url = table.get("public_url")
    if public_url is not None and (
        not isinstance(public_url, str) or not public_url.startswith(("https://", "http://"))
    ):
        raise ConfigError(f'{where}["public_url"] must be the http(s) URL of the include')
    accounts = tuple(_each(table, "gmail_service_accounts", where, str))
    topic = table.get("gmail_topic")
    audience = table.get("gmail_audience")
    if topic is not None and not accounts:
        raise ConfigError(
            f'{where}["gmail_service_accounts"] is required with gmail_topic: only tokens '
            "of the Pub/Sub subscription's service account are accepted"
        )
    if accounts and audience is None:
        if public_url is None:
            raise ConfigError(f'{where}["gmail_audience"] is required without public_url')
        audience = public_url.rstrip("/") + PUSH_PATHS["gmail"]
    minutes = table.get("renew_every_minutes", 30)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
        raise ConfigError(f'{where}["renew_every_minutes"] must be 1 to 1440')
    return PushSettings(
        public_url=public_url,
        gmail_topic=topic,
        gmail_audience=audience,
        gmail_service_accounts=accounts,
        gmail_certs_url=table.get("gmail_certs_url") or GOOGLE_CERTS_URL,
        renew_every=timedelta(minutes=minutes),
    )


def _token_key(raw: Any) -> Secret | None:
    """``TOKENS``: ``{"key": ...}`` or ``{"key_env": "VARIABLE"}``."""
    if raw is None:
        return None
    where = 'COMMLINK["TOKENS"]'
    table = _table(raw, where)
    _known(table, {"key", "key_env"}, where)
    if "key" in table and "key_env" in table:
        raise ConfigError(f"{where}: give key or key_env, not both")
    if "key_env" in table:
        value = os.environ.get(str(table["key_env"]), "")
        if not value:
            raise ConfigError(f'{where}["key_env"]: the variable {table["key_env"]} is not set')
        return Secret(value)
    key = table.get("key")
    if key is None:
        return None
    if isinstance(key, Secret):
        return key
    if not isinstance(key, str) or not key:
        raise ConfigError(f'{where}["key"] must be a Fernet key')
    return Secret(key)


def _limits(raw: Any, where: str) -> Limits:
    table = _table(raw, where)
    _known(table, {f.name for f in attrs.fields(Limits)}, where)
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f'{where}["{key}"] must be a whole number')
    try:
        return Limits(**table)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a dict")
    return raw


def _known(raw: Mapping[str, Any], known: frozenset[str] | set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f'{where}["{key}"] must be a non-empty string')
    return value.strip()


def _each(raw: Mapping[str, Any], key: str, where: str, convert: Any) -> list[Any]:
    values = raw.get(key, [])
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(f'{where}["{key}"] must be a list of strings')
    found = []
    for value in values:
        converted = convert(value) if isinstance(value, str) else ""
        if not converted:
            raise ConfigError(f'{where}["{key}"]: not valid: {value!r}')
        found.append(converted)
    return found


def _domain(text: str) -> str:
    """A domain mail can come from, normalised; ``""`` otherwise."""
    domain = normalise_domain(text)
    return domain if domain and address_key(f"x@{domain}") else ""


def _flag(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f'{where}["{key}"] must be True or False')
    return value


def _enum(kind: Any, raw: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return kind(str(value).lower())
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise ConfigError(f'{where}["{key}"]: {value!r} is not one of {known}') from None
