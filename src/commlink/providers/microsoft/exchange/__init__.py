"""Exchange Server through Exchange Web Services (exchangelib).

``ExchangeMailProvider`` and ``ExchangeCalendarProvider`` share one
``ExchangeConnection`` (``connect``) or build their own
(``from_settings``); ``from_options`` reads a config file's options. See
``docs/exchange.md`` for set-up and limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....errors import ConfigError
from ....model import ChannelKind, Limits
from ...sizing import DEFAULT_LIMITS
from .account import VERSIONS, ExchangeConnection, connect
from .calendar import ExchangeCalendarProvider
from .errors import Caller
from .events import map_calendar_item
from .mail import ExchangeMailProvider

__all__ = [
    "CONNECTION_OPTIONS",
    "VERSIONS",
    "Caller",
    "ExchangeCalendarProvider",
    "ExchangeConnection",
    "ExchangeMailProvider",
    "connect",
    "from_options",
    "map_calendar_item",
]

#: Options passed to ``connect`` (with their types).
CONNECTION_OPTIONS: Mapping[str, type] = {
    "server": str,
    "service_endpoint": str,
    "version": str,
    "auth": str,
    "username": str,
    "password": str,
    "access_token": str,
    "autodiscover": bool,
    "verify": bool,
    "timeout": float,
}
_MAIL_OPTIONS: Mapping[str, type] = {
    "page_size": int,
    "fetch_batch": int,
    "metadata_batch": int,
    "max_retries": int,
    "max_wait": float,
    "streaming": bool,
    "streaming_minutes": int,
}
_CALENDAR_OPTIONS = (
    "page_size",
    "fetch_batch",
    "max_retries",
    "max_wait",
    "streaming",
    "streaming_minutes",
)


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"not a valid {kind.__name__}: {value!r}", field=name) from None


def from_options(
    kind: ChannelKind,
    options: Mapping[str, Any],
    *,
    email: str = "",
    limits: Limits = DEFAULT_LIMITS,
) -> ExchangeMailProvider | ExchangeCalendarProvider:
    """A mail or calendar provider from config options: ``email`` (the
    mailbox; defaults to the ``email`` argument, the channel owner), the
    ``CONNECTION_OPTIONS`` and the provider's tuning options; ``limits``
    (the channel's) bound a mail provider's fetches."""
    mailbox = str(options.get("email") or email)
    if not mailbox:
        raise ConfigError("the mailbox address is required", field="email")
    settings = {
        name: _typed(name, options[name], cls)
        for name, cls in CONNECTION_OPTIONS.items()
        if options.get(name) is not None
    }
    tuning = {
        name: _typed(name, options[name], cls)
        for name, cls in _MAIL_OPTIONS.items()
        if options.get(name) is not None and (kind is ChannelKind.MAIL or name in _CALENDAR_OPTIONS)
    }
    connection = connect(mailbox, **settings)
    if kind is ChannelKind.CALENDAR:
        return ExchangeCalendarProvider(connection, **tuning)
    return ExchangeMailProvider(connection, limits=limits, **tuning)
