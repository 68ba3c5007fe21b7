"""Attachments on demand: content fetched from the provider when a viewer opens it.

Stored messages keep each attachment's name, type, size and part number,
never its content. ``open_attachment`` checks that the viewer is shown the
message in ``FULL``, asks the channel's provider for the part and streams
it, decoded and size-capped; ``response_headers`` says how to serve it to a
browser without letting its sender run code on the host's site. See
``docs/attachments.md``.
"""

from __future__ import annotations

from ..errors import AttachmentTooLarge
from .access import AttachmentContent, open_attachment
from .cache import AttachmentCache, DirectoryAttachmentCache, MemoryAttachmentCache, cache_key
from .serving import INLINE_TYPES, response_headers, safe_filename, served_type

__all__ = [
    "AttachmentCache",
    "AttachmentContent",
    "AttachmentTooLarge",
    "DirectoryAttachmentCache",
    "INLINE_TYPES",
    "MemoryAttachmentCache",
    "cache_key",
    "open_attachment",
    "response_headers",
    "safe_filename",
    "served_type",
]
