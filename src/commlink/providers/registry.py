"""Providers by name: what the config file's ``provider`` field selects.

Each entry imports its adapter lazily, so a provider's SDK is needed only
when a channel uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..model import Channel, ChannelKind
from ..ports import CalendarProvider, MailProvider

__all__ = ["PROVIDER_KINDS", "connect"]

Provider = MailProvider | CalendarProvider


def _mbox(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .mbox import MboxProvider

    return MboxProvider(options["path"])


def _maildir(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .maildir import MaildirProvider

    return MaildirProvider(options["path"])


def _ics(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .ics import IcsProvider

    return IcsProvider(options["path"])


def _imap(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .imap import ImapProvider

    try:
        host = str(options["host"])
        username = str(options["username"])
    except KeyError as exc:
        raise ConfigError("missing IMAP setting", field=str(exc.args[0])) from None
    ssl = bool(options.get("ssl", True))
    port = options.get("port")
    return ImapProvider(
        host,
        int(port) if port is not None else None,
        username=username,
        password=options.get("password"),
        oauth2_token=options.get("oauth2_token"),
        ssl=ssl,
        starttls=bool(options.get("starttls", False)),
        verify=bool(options.get("verify", True)),
        timeout=float(options.get("timeout", 30)),
        page_size=int(options.get("page_size", 500)),
    )


def _caldav(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .caldav import CalDavProvider

    if not options.get("url"):
        raise ConfigError("a CalDAV channel needs a url", field="url")
    extra = {k: options[k] for k in ("timeout", "verify", "use_sync_collection") if k in options}
    return CalDavProvider(
        str(options["url"]),
        username=options.get("username"),
        password=options.get("password"),
        **extra,
    )


_FACTORIES: dict[str, tuple[ChannelKind, Callable[[Channel, Mapping[str, Any]], Provider]]] = {
    "mbox": (ChannelKind.MAIL, _mbox),
    "maildir": (ChannelKind.MAIL, _maildir),
    "ics": (ChannelKind.CALENDAR, _ics),
    "caldav": (ChannelKind.CALENDAR, _caldav),
    "imap": (ChannelKind.MAIL, _imap),
}

#: The kind of channel each provider serves.
PROVIDER_KINDS: Mapping[str, ChannelKind] = {name: kind for name, (kind, _) in _FACTORIES.items()}


def connect(channel: Channel, options: Mapping[str, Any]) -> Provider:
    """Open the provider a channel is configured with."""
    try:
        _, factory = _FACTORIES[channel.provider]
    except KeyError:
        raise ConfigError(f"unknown provider {channel.provider!r}", field="provider") from None
    return factory(channel, options)
