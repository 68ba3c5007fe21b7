"""Attachments on demand: content fetched from the provider when a viewer opens it.

Stored messages keep each attachment's name, type, size and part number,
never its content. ``open_attachment`` checks that the viewer is shown the
message in ``FULL``, asks the channel's provider for the part and streams
it, decoded and size-capped. See ``docs/attachments.md``.
"""

from __future__ import annotations

from ..errors import AttachmentTooLarge
from .access import AttachmentContent, open_attachment
from .cache import AttachmentCache, DirectoryAttachmentCache, MemoryAttachmentCache, cache_key

__all__ = [
    "AttachmentCache",
    "AttachmentContent",
    "AttachmentTooLarge",
    "DirectoryAttachmentCache",
    "MemoryAttachmentCache",
    "cache_key",
    "open_attachment",
]
