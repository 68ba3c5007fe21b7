"""``open_attachment`` for the file mailboxes (mbox, Maildir): the message
is read again through the provider's own ``fetch``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from ...model import Attachment, Detail
from ...ports import FetchedMessage, Scope

__all__ = ["FileAttachmentSource"]


class _Fetching(Protocol):
    def fetch(
        self, scope: Scope, ids: Sequence[str], detail: Detail
    ) -> Iterator[FetchedMessage]: ...


class FileAttachmentSource:
    """Mixin: the ``AttachmentSource`` of a file mailbox with a ``fetch``."""

    def open_attachment(
        self: _Fetching,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> AbstractContextManager[Iterator[bytes]]:
        """One attachment's decoded content, read from the file again
        (``AttachmentSource``; see ``files.attachments``)."""
        from .attachments import open_file_attachment

        return open_file_attachment(self.fetch, scope, provider_id, attachments, index, max_bytes)
