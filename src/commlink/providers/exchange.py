"""Exchange Server through Exchange Web Services (exchangelib).

``ExchangeMailProvider`` and ``ExchangeCalendarProvider`` share one
``ExchangeConnection`` (``connect``) or build their own
(``from_settings``). See ``docs/exchange.md`` for set-up and limits.
"""

from __future__ import annotations

from .exchange_account import VERSIONS, ExchangeConnection, connect
from .exchange_calendar import ExchangeCalendarProvider
from .exchange_errors import Caller
from .exchange_events import map_calendar_item
from .exchange_mail import ExchangeMailProvider

__all__ = [
    "VERSIONS",
    "Caller",
    "ExchangeCalendarProvider",
    "ExchangeConnection",
    "ExchangeMailProvider",
    "connect",
    "map_calendar_item",
]
