"""commlink: email and calendars into a CRM, with policy, matching and visibility."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .credentials import guard_loggers

if TYPE_CHECKING:
    from .calendar.ical import parse_calendar
    from .errors import (
        AuthError,
        CommlinkError,
        ConfigError,
        CursorExpired,
        InvalidInput,
        NotFound,
        ProviderError,
        RateLimited,
        StoreError,
        TransientError,
    )
    from .events import EventSink, HostEvent, OutboxRelay
    from .mime.parse import parse_message
    from .model import (
        Address,
        Attachment,
        Attendee,
        CalendarContactPolicy,
        Channel,
        ChannelKind,
        ChannelSettings,
        ContactPolicy,
        Detail,
        Direction,
        Event,
        EventStatus,
        Folder,
        FolderKind,
        FolderSelection,
        Limits,
        Message,
        Participant,
        ResponseStatus,
        Role,
        Visibility,
    )
    from .records import (
        ChannelState,
        ChannelStatus,
        Decision,
        Page,
        PageRequest,
        Reason,
        SearchHit,
        SearchQuery,
        Skip,
        Target,
        TargetKind,
        Viewer,
        Window,
    )
    from .runtime import tune_gc
    from .stores.memory import MemoryStore
    from .stores.sql import SqlDirectory, SqlStore
    from .sync.engine import SyncEngine
    from .sync.relink import Relinker
    from .sync.report import SyncReport
    from .sync.runner import Runner

__version__ = "0.1.0.dev0"

# Everything loads on first use, so ``import commlink`` (and the start of the
# ``commlink`` command) stays cheap.
_LAZY = {
    "AuthError": "commlink.errors",
    "CommlinkError": "commlink.errors",
    "ConfigError": "commlink.errors",
    "CursorExpired": "commlink.errors",
    "InvalidInput": "commlink.errors",
    "NotFound": "commlink.errors",
    "ProviderError": "commlink.errors",
    "RateLimited": "commlink.errors",
    "StoreError": "commlink.errors",
    "TransientError": "commlink.errors",
    "Address": "commlink.model",
    "Attachment": "commlink.model",
    "Attendee": "commlink.model",
    "CalendarContactPolicy": "commlink.model",
    "Channel": "commlink.model",
    "ChannelKind": "commlink.model",
    "ChannelSettings": "commlink.model",
    "ContactPolicy": "commlink.model",
    "Detail": "commlink.model",
    "Direction": "commlink.model",
    "Event": "commlink.model",
    "EventStatus": "commlink.model",
    "Folder": "commlink.model",
    "FolderKind": "commlink.model",
    "FolderSelection": "commlink.model",
    "Limits": "commlink.model",
    "Message": "commlink.model",
    "Participant": "commlink.model",
    "ResponseStatus": "commlink.model",
    "Role": "commlink.model",
    "Visibility": "commlink.model",
    "EventSink": "commlink.events",
    "HostEvent": "commlink.events",
    "OutboxRelay": "commlink.events",
    "ChannelState": "commlink.records",
    "ChannelStatus": "commlink.records",
    "Decision": "commlink.records",
    "Page": "commlink.records",
    "PageRequest": "commlink.records",
    "Reason": "commlink.records",
    "SearchHit": "commlink.records",
    "SearchQuery": "commlink.records",
    "Skip": "commlink.records",
    "Target": "commlink.records",
    "TargetKind": "commlink.records",
    "Viewer": "commlink.records",
    "Window": "commlink.records",
    "MemoryStore": "commlink.stores.memory",
    "Relinker": "commlink.sync.relink",
    "Runner": "commlink.sync.runner",
    "SqlDirectory": "commlink.stores.sql",
    "SqlStore": "commlink.stores.sql",
    "SyncEngine": "commlink.sync.engine",
    "SyncReport": "commlink.sync.report",
    "parse_calendar": "commlink.calendar.ical",
    "parse_message": "commlink.mime.parse",
    "tune_gc": "commlink.runtime",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'commlink' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Address",
    "Attachment",
    "Attendee",
    "AuthError",
    "CalendarContactPolicy",
    "Channel",
    "ChannelKind",
    "ChannelSettings",
    "ChannelState",
    "ChannelStatus",
    "CommlinkError",
    "ConfigError",
    "ContactPolicy",
    "CursorExpired",
    "Decision",
    "Detail",
    "Direction",
    "Event",
    "EventSink",
    "EventStatus",
    "Folder",
    "FolderKind",
    "FolderSelection",
    "HostEvent",
    "InvalidInput",
    "Limits",
    "MemoryStore",
    "Message",
    "NotFound",
    "OutboxRelay",
    "Page",
    "PageRequest",
    "Participant",
    "ProviderError",
    "RateLimited",
    "Reason",
    "Relinker",
    "ResponseStatus",
    "Role",
    "Runner",
    "SearchHit",
    "SearchQuery",
    "Skip",
    "SqlDirectory",
    "SqlStore",
    "StoreError",
    "SyncEngine",
    "SyncReport",
    "Target",
    "TargetKind",
    "TransientError",
    "Viewer",
    "Visibility",
    "Window",
    "__version__",
    "parse_calendar",
    "parse_message",
    "tune_gc",
]

# commlink's own log records are scrubbed of credentials before any handler
# sees them, whatever logging set-up the host has
guard_loggers()
