"""Providers by name: what the config file's ``provider`` field selects.

Each entry imports its adapter lazily, so a provider's SDK is needed only
when a channel uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..credentials import Secret, reveal
from ..errors import ConfigError
from ..model import Channel, ChannelKind, Visibility
from ..ports import CalendarProvider, MailProvider, TokenStore

__all__ = ["PROVIDER_KINDS", "connect"]

Provider = MailProvider | CalendarProvider


def _mbox(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .files.mbox import MboxProvider

    return MboxProvider(options["path"], limits=channel.settings.limits)


def _maildir(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .files.maildir import MaildirProvider

    return MaildirProvider(options["path"], limits=channel.settings.limits)


def _ics(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .files.ics import IcsProvider

    return IcsProvider(options["path"])


def _imap(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .imap.provider import ImapProvider

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
        oauth2_token=_saved_source(options) or options.get("oauth2_token"),
        ssl=ssl,
        starttls=bool(options.get("starttls", False)),
        verify=bool(options.get("verify", True)),
        timeout=float(options.get("timeout", 30)),
        page_size=int(options.get("page_size", 500)),
        limits=channel.settings.limits,
        allow_plaintext=options.get("allow_plaintext", False) is True,
        notify=options.get("notify", True) is not False,
        notify_flags=options.get("notify_flags", False) is True,
        max_idle_connections=int(options.get("max_idle_connections", 5)),
    )


def _caldav(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .caldav.provider import CalDavProvider

    if not options.get("url"):
        raise ConfigError("a CalDAV channel needs a url", field="url")
    keys = ("timeout", "verify", "use_sync_collection", "allow_plaintext")
    extra = {k: options[k] for k in keys if k in options}
    return CalDavProvider(
        str(options["url"]),
        username=options.get("username"),
        password=options.get("password"),
        limits=channel.settings.limits,
        **extra,
    )


def _saved_source(options: Mapping[str, Any]) -> Any:
    """The channel's saved OAuth grant (``oauth = "google"|"microsoft"``, in
    ``token_store`` under ``token_key``) as a token source; ``None`` without ``oauth``."""
    from ..auth.options import identity_of, saved_source

    return saved_source(options) if identity_of(options) else None


def _google_credentials(options: Mapping[str, Any], scope: str) -> Any:
    """A saved grant (``oauth = "google"``), OAuth user tokens
    (``token``/``refresh_token``, ``client_id``, ``client_secret``) or a
    delegated service account (``service_account_info`` or
    ``service_account_file`` with ``subject``)."""
    if options.get("oauth"):
        from ..auth.google import google_credentials

        return google_credentials(_saved_source(options))
    if options.get("service_account_info") or options.get("service_account_file"):
        from google.oauth2 import service_account

        if not options.get("subject"):
            raise ConfigError("a service account needs the mailbox to act as", field="subject")
        info = options.get("service_account_info")
        if info is None:
            import json
            from pathlib import Path

            info = json.loads(Path(str(options["service_account_file"])).read_text())
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info), scopes=[scope], subject=str(options["subject"])
        )
    if not options.get("token") and not options.get("refresh_token"):
        raise ConfigError("a Google channel needs a token or refresh_token", field="token")
    from google.oauth2.credentials import Credentials

    from .google.client import check_endpoint

    token_uri = str(options.get("token_uri", "https://oauth2.googleapis.com/token"))
    check_endpoint(token_uri, "token_uri")
    return Credentials(  # type: ignore[no-untyped-call]
        token=options.get("token"),
        refresh_token=options.get("refresh_token"),
        client_id=options.get("client_id"),
        client_secret=options.get("client_secret"),
        token_uri=token_uri,
        scopes=[scope],
    )


def _gmail(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from .google.gmail import READONLY_SCOPE, GmailProvider

    quota = options.get("quota_units_per_minute", 15000)
    return GmailProvider(
        _google_credentials(options, READONLY_SCOPE),
        user_id=str(options.get("user_id", "me")),
        api_endpoint=options.get("api_endpoint"),
        quota_units_per_minute=int(quota) if quota is not None else None,
        limits=channel.settings.limits,
        pubsub_topic=options.get("pubsub_topic"),
        folder_selection=channel.settings.folders,
    )


def _google_calendar(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from datetime import timedelta

    from .google.calendar import READONLY_SCOPE, GoogleCalendarProvider

    ttl = options.get("channel_ttl_seconds")
    return GoogleCalendarProvider(
        _google_credentials(options, READONLY_SCOPE),
        api_endpoint=options.get("api_endpoint"),
        push_url=options.get("push_url"),
        channel_ttl=timedelta(seconds=float(ttl)) if ttl is not None else None,
        metadata_only=channel.settings.visibility is Visibility.METADATA,
    )


def _graph_client(options: Mapping[str, Any]) -> Any:
    """Microsoft Graph: ``token``; or ``refresh_token`` with ``client_id``
    (delegated); or ``tenant``, ``client_id`` and ``client_secret`` (app-only,
    with ``user`` naming the mailbox)."""
    from .microsoft.graph import graph_client, token_source
    from .microsoft.graph.client import GRAPH_URL

    tokens = _saved_source(options) or token_source(
        token=options.get("token"),
        tenant=options.get("tenant"),
        client_id=options.get("client_id"),
        client_secret=options.get("client_secret"),
        refresh_token=options.get("refresh_token"),
    )
    tuning: dict[str, Any] = {k: float(options[k]) for k in ("timeout", "max_wait") if k in options}
    if "max_retries" in options:
        tuning["max_retries"] = int(options["max_retries"])
    return graph_client(tokens, base_url=str(options.get("base_url", GRAPH_URL)), **tuning)


def _graph(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from ..policy.visibility import detail_for
    from .microsoft.graph import GraphMailProvider

    return GraphMailProvider(
        _graph_client(options),
        user=str(options.get("user", "me")),
        delta_detail=detail_for(channel.settings),
        page_size=int(options.get("page_size", 500)),
        include_hidden=bool(options.get("include_hidden", False)),
        limits=channel.settings.limits,
        push_url=options.get("push_url"),
        push_lifecycle_url=options.get("push_lifecycle_url"),
    )


def _graph_calendar(channel: Channel, options: Mapping[str, Any]) -> Provider:
    from datetime import timedelta

    from .microsoft.graph import GraphCalendarProvider

    return GraphCalendarProvider(
        _graph_client(options),
        user=str(options.get("user", "me")),
        past=timedelta(days=float(options.get("past_days", 365))),
        future=timedelta(days=float(options.get("future_days", 365))),
        page_size=int(options.get("page_size", 500)),
        push_url=options.get("push_url"),
        push_lifecycle_url=options.get("push_lifecycle_url"),
        metadata_only=channel.settings.visibility is Visibility.METADATA,
    )


def _exchange(channel: Channel, options: Mapping[str, Any]) -> Provider:
    """Exchange Server through EWS; ``email`` defaults to the channel owner.
    Streaming notifications are on unless ``streaming = false``."""
    from .microsoft.exchange import from_options

    return from_options(
        channel.kind,
        {"streaming": True, **options},
        email=channel.settings.owner,
        limits=channel.settings.limits,
    )


_FACTORIES: dict[str, tuple[ChannelKind, Callable[[Channel, Mapping[str, Any]], Provider]]] = {
    "mbox": (ChannelKind.MAIL, _mbox),
    "maildir": (ChannelKind.MAIL, _maildir),
    "ics": (ChannelKind.CALENDAR, _ics),
    "caldav": (ChannelKind.CALENDAR, _caldav),
    "imap": (ChannelKind.MAIL, _imap),
    "gmail": (ChannelKind.MAIL, _gmail),
    "google-calendar": (ChannelKind.CALENDAR, _google_calendar),
    "graph": (ChannelKind.MAIL, _graph),
    "graph-calendar": (ChannelKind.CALENDAR, _graph_calendar),
    "exchange": (ChannelKind.MAIL, _exchange),
    "exchange-calendar": (ChannelKind.CALENDAR, _exchange),
}

#: The kind of channel each provider serves.
PROVIDER_KINDS: Mapping[str, ChannelKind] = {name: kind for name, (kind, _) in _FACTORIES.items()}


def connect(
    channel: Channel, options: Mapping[str, Any], *, token_store: TokenStore | None = None
) -> Provider:
    """Open the provider a channel is configured with; ``Secret`` option
    values are revealed only here, for the client that needs them.

    ``token_store`` holds the grants of channels that sign in with OAuth
    (``oauth = "google"|"microsoft"``, connected with ``commlink connect``
    or ``commlink.auth``); each refresh is saved back to it."""
    try:
        _, factory = _FACTORIES[channel.provider]
    except KeyError:
        raise ConfigError(f"unknown provider {channel.provider!r}", field="provider") from None
    revealed = {k: reveal(v) if isinstance(v, Secret) else v for k, v in options.items()}
    if token_store is not None:
        revealed.setdefault("token_store", token_store)
    if revealed.get("oauth"):
        revealed.setdefault("token_key", channel.id)
    return factory(channel, revealed)
