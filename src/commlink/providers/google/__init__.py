"""Gmail and Google Calendar through google-api-python-client.

``gmail`` and ``calendar`` are the providers; ``client`` holds what both
share: building the service, quota pacing, retries and batch requests.
"""

from __future__ import annotations

from .calendar import GoogleCalendarProvider
from .gmail import GmailProvider

__all__ = ["GmailProvider", "GoogleCalendarProvider"]
