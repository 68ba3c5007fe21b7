"""Microsoft mailboxes and calendars: ``graph`` (Microsoft 365 through
Microsoft Graph) and ``exchange`` (Exchange Server through EWS)."""

from __future__ import annotations

from .exchange import ExchangeCalendarProvider, ExchangeMailProvider
from .graph import GraphCalendarProvider, GraphMailProvider

__all__ = [
    "ExchangeCalendarProvider",
    "ExchangeMailProvider",
    "GraphCalendarProvider",
    "GraphMailProvider",
]
