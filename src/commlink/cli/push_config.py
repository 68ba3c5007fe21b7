"""The ``[push]`` table of a configuration file: where the push endpoints
listen, the public URL they are reached at, and Gmail's Pub/Sub settings::

    [push]
    listen = "127.0.0.1:8080"                       # the default: loopback
    public_url = "https://crm.example.com/commlink" # what the reverse proxy serves
    gmail_topic = "projects/crm-prod/topics/gmail-changes"
    gmail_service_accounts = ["gmail-push@crm-prod.iam.gserviceaccount.com"]
    # gmail_audience = "..."     default: public_url + /push/gmail
    # paths = { graph = "/hooks/graph" }   default paths: /push/gmail,
    #   /push/google-calendar, /push/graph, /push/graph/lifecycle
    # renew_every_minutes = 30

From ``public_url`` each channel gets the URL its provider is told to call,
unless the channel sets it: Graph channels ``push_url`` and
``push_lifecycle_url``, Google Calendar channels ``push_url``; Gmail
channels get ``gmail_topic`` as their ``pubsub_topic``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from ..addresses import parse_address
from ..credentials import is_loopback_host, redact_url
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..contrib.webhooks import PushPaths
    from .config import ChannelConfig

__all__ = ["PUSH_KEYS", "PushConfig", "parse_push", "with_push_defaults"]

PUSH_KEYS = frozenset(
    {
        "listen",
        "public_url",
        "paths",
        "gmail_topic",
        "gmail_audience",
        "gmail_service_accounts",
        "gmail_certs_url",
        "renew_every_minutes",
    }
)
_PATH_KEYS = ("gmail", "google_calendar", "graph", "graph_lifecycle")
_TOPIC = re.compile(r"projects/[a-z][a-z0-9.:-]{0,62}/topics/[A-Za-z][A-Za-z0-9_.~+%-]{2,254}")
_GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


@attrs.frozen
class PushConfig:
    """The validated ``[push]`` table."""

    listen: str
    paths: PushPaths
    public_url: str | None = None
    gmail_topic: str | None = None
    gmail_audience: str | None = None
    gmail_service_accounts: tuple[str, ...] = ()
    gmail_certs_url: str = _GOOGLE_CERTS_URL
    renew_every: timedelta = timedelta(minutes=30)

    def url(self, route: str) -> str | None:
        """The public URL of an endpoint (``"graph"``, ...), or ``None``
        without ``public_url``."""
        return self.paths.url(self.public_url, route) if self.public_url else None


def _field(name: str) -> str:
    return f"push.{name}"


def _message(exc: ConfigError) -> str:
    return str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("must be a non-empty string", field=_field(key))
    return value.strip()


def _web_url(value: str, key: str) -> str:
    """An https URL (http only on loopback), without credentials, query or fragment."""
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"not a valid URL: {redact_url(value)}", field=_field(key)) from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError("must not carry credentials", field=_field(key))
    if not hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(hostname))
    ):
        raise ConfigError(
            f"must be an https URL (http only on loopback), not {redact_url(value)}",
            field=_field(key),
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ConfigError("must have no query or fragment", field=_field(key))
    return value.rstrip("/")


def _paths(raw: Any) -> PushPaths:
    from ..contrib.webhooks import PushPaths

    if raw is None:
        return PushPaths()
    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", field=_field("paths"))
    for key in raw:
        if key not in _PATH_KEYS:
            known = ", ".join(_PATH_KEYS)
            raise ConfigError(f"unknown endpoint {key!r} (known: {known})", field=_field("paths"))
    try:
        return PushPaths(**dict(raw))
    except ConfigError as exc:
        raise ConfigError(_message(exc), field=_field(exc.field or "paths")) from None


def _accounts(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("gmail_service_accounts", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("must be a list of addresses", field=_field("gmail_service_accounts"))
    found = []
    for text in value:
        address = parse_address(text)
        if not address.valid:
            raise ConfigError(
                f"not a valid address: {text!r}", field=_field("gmail_service_accounts")
            )
        found.append(address.key)
    return tuple(dict.fromkeys(found))


def _minutes(raw: Mapping[str, Any]) -> timedelta:
    value = raw.get("renew_every_minutes", 30)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 24 * 60:
        raise ConfigError(
            "must be a whole number of minutes from 1 to 1440", field=_field("renew_every_minutes")
        )
    return timedelta(minutes=value)


def parse_push(raw: Any) -> PushConfig:
    """Validate a ``[push]`` table; each mistake is a ``ConfigError`` naming
    its field (``push.public_url``, ...)."""
    from ..contrib.webhook_server import parse_listen

    if not isinstance(raw, Mapping):
        raise ConfigError("must be a table", field="push")
    listen = _text(raw, "listen") or "127.0.0.1:8080"
    try:
        parse_listen(listen)
    except ConfigError as exc:
        raise ConfigError(_message(exc), field=_field("listen")) from None
    public_url = _text(raw, "public_url")
    if public_url is not None:
        public_url = _web_url(public_url, "public_url")
    paths = _paths(raw.get("paths"))
    topic = _text(raw, "gmail_topic")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise ConfigError(
            "must be a Pub/Sub topic: projects/PROJECT/topics/TOPIC", field=_field("gmail_topic")
        )
    accounts = _accounts(raw)
    audience = _text(raw, "gmail_audience")
    if topic is not None and not accounts:
        raise ConfigError(
            "is required with gmail_topic: the service account the Pub/Sub push"
            " subscription authenticates as (only its tokens are accepted)",
            field=_field("gmail_service_accounts"),
        )
    if accounts and audience is None:
        if public_url is None:
            raise ConfigError(
                "is required for Gmail push when public_url is not set",
                field=_field("gmail_audience"),
            )
        audience = paths.url(public_url, "gmail")
    if audience is not None and not accounts:
        raise ConfigError("is required with gmail_audience", field=_field("gmail_service_accounts"))
    certs_url = _text(raw, "gmail_certs_url")
    return PushConfig(
        listen=listen,
        paths=paths,
        public_url=public_url,
        gmail_topic=topic,
        gmail_audience=audience,
        gmail_service_accounts=accounts,
        gmail_certs_url=_web_url(certs_url, "gmail_certs_url") if certs_url else _GOOGLE_CERTS_URL,
        renew_every=_minutes(raw),
    )


def with_push_defaults(
    channels: Sequence[ChannelConfig], push: PushConfig
) -> tuple[ChannelConfig, ...]:
    """The channels with the push options ``[push]`` implies, where a
    channel does not set them itself."""
    implied: dict[str, dict[str, str | None]] = {
        "graph": {"push_url": push.url("graph"), "push_lifecycle_url": push.url("graph_lifecycle")},
        "graph-calendar": {
            "push_url": push.url("graph"),
            "push_lifecycle_url": push.url("graph_lifecycle"),
        },
        "google-calendar": {"push_url": push.url("google_calendar")},
        "gmail": {"pubsub_topic": push.gmail_topic},
    }
    updated = []
    for item in channels:
        extra = {
            key: value
            for key, value in implied.get(item.channel.provider, {}).items()
            if value is not None and key not in item.options
        }
        updated.append(attrs.evolve(item, options={**item.options, **extra}) if extra else item)
    return tuple(updated)
