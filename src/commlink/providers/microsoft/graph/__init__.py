"""Microsoft 365 mail and calendars through Microsoft Graph v1.0.

``GraphMailProvider`` and ``GraphCalendarProvider`` share a ``GraphClient``
(httpx) that holds a ``TokenSource``: a static token, app-only client
credentials or a delegated refresh token (msal). ``graph_providers``
builds both from settings. Change notifications: both providers are
``PushSource``s (one subscription per folder or calendar, kept by
``commlink.sync.push.PushKeeper``); ``GraphWebhook`` answers Graph's POSTs
to the host's endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from ....errors import ConfigError
from ....model import Detail
from .auth import (
    ClientCredentialsToken,
    RefreshTokenSource,
    StaticToken,
    TokenSource,
)
from .calendar import GraphCalendarProvider, map_event
from .client import GRAPH_URL, GraphClient
from .mail import WELL_KNOWN_FOLDERS, GraphMailProvider
from .notify import GraphWebhook, validation_response
from .subscriptions import GraphPush

__all__ = [
    "GRAPH_URL",
    "WELL_KNOWN_FOLDERS",
    "ClientCredentialsToken",
    "GraphCalendarProvider",
    "GraphClient",
    "GraphMailProvider",
    "GraphPush",
    "GraphWebhook",
    "RefreshTokenSource",
    "StaticToken",
    "TokenSource",
    "graph_client",
    "graph_providers",
    "map_event",
    "token_source",
    "validation_response",
]


def token_source(
    *,
    token: str | None = None,
    tenant: str | None = None,
    client_id: str | None = None,
    client_secret: str | Mapping[str, Any] | None = None,
    refresh_token: str | None = None,
    on_refresh_token: Callable[[str], None] | None = None,
) -> TokenSource:
    """A token source from settings: ``token`` alone; ``refresh_token`` with
    ``client_id`` (delegated); or ``tenant``, ``client_id`` and
    ``client_secret`` (app-only)."""
    if token:
        return StaticToken(token)
    if refresh_token:
        if not client_id:
            raise ConfigError("a refresh token needs the app's client id", "client_id")
        return RefreshTokenSource(
            client_id,
            refresh_token,
            tenant=tenant or "common",
            client_credential=client_secret,
            on_refresh_token=on_refresh_token,
        )
    for name, value in (
        ("tenant", tenant),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ):
        if not value:
            raise ConfigError("needed for app-only access (or give a token)", name)
    assert tenant
    assert client_id
    assert client_secret
    return ClientCredentialsToken(tenant, client_id, client_secret)


def graph_client(tokens: TokenSource, *, base_url: str = GRAPH_URL, **kwargs: Any) -> GraphClient:
    """A client for the providers (``kwargs``: retries and timeouts)."""
    return GraphClient(tokens, base_url=base_url, **kwargs)


def graph_providers(
    tokens: TokenSource,
    *,
    user: str = "me",
    base_url: str = GRAPH_URL,
    detail: Detail = Detail.METADATA,
    past: timedelta = timedelta(days=365),
    future: timedelta = timedelta(days=365),
    push_url: str | None = None,
    push_lifecycle_url: str | None = None,
) -> tuple[GraphMailProvider, GraphCalendarProvider]:
    """A mail and a calendar provider for one mailbox, each with its client
    (``push_url``/``push_lifecycle_url``: the host's webhook endpoints)."""
    mail = GraphMailProvider(
        GraphClient(tokens, base_url=base_url),
        user=user,
        delta_detail=detail,
        push_url=push_url,
        push_lifecycle_url=push_lifecycle_url,
    )
    calendar = GraphCalendarProvider(
        GraphClient(tokens, base_url=base_url),
        user=user,
        past=past,
        future=future,
        push_url=push_url,
        push_lifecycle_url=push_lifecycle_url,
    )
    return mail, calendar
