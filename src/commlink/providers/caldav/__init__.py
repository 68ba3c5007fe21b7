"""CalDAV calendars: discovery, sync-collection (RFC 6578) with a ctag
fallback, and multiget. ``transport`` sends the requests; ``davxml`` builds
and reads the WebDAV XML."""

from __future__ import annotations

from .provider import CalDavProvider

__all__ = ["CalDavProvider"]
