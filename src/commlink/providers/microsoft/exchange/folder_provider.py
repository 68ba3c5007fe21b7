"""What the Exchange mail and calendar providers share.

Each folder (a mail folder or a calendar) is a scope, listed and followed
with ``SyncFolderItems`` (``exchange.sync.FolderSync``) and watched with
EWS streaming notifications; every call goes through one ``Caller`` (its
retries and waits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from ....closing import Closing
from ....ports import ChangeSet, IdPage, Scope
from .account import ExchangeConnection, connect
from .errors import Caller
from .sync import FolderSync
from .watch import FolderStreaming

__all__ = ["ExchangeFolderProvider"]

P = TypeVar("P", bound="ExchangeFolderProvider")


class ExchangeFolderProvider(Closing):
    """The base of an Exchange provider with a scope per folder.

    ``page_size`` ids make one listing page, ``fetch_batch`` ids one
    ``GetItem``; ``max_retries`` and ``max_wait`` make the ``Caller``
    unless one is given. With ``streaming``, ``watch_scopes`` holds EWS
    streaming notifications of ``streaming_minutes`` each.
    """

    #: The keyword settings ``from_settings`` hands to the provider, not to ``connect``.
    _OWN_OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "page_size",
            "fetch_batch",
            "max_retries",
            "max_wait",
            "caller",
            "streaming",
            "streaming_minutes",
        }
    )

    def __init__(
        self,
        connection: ExchangeConnection,
        *,
        page_size: int = 500,
        fetch_batch: int = 100,
        max_retries: int = 3,
        max_wait: float = 30.0,
        caller: Caller | None = None,
        streaming: bool = True,
        streaming_minutes: int = 30,
    ) -> None:
        self.connection = connection
        self.streaming = streaming
        self.streaming_minutes = streaming_minutes
        self.caller = caller or Caller(max_retries=max_retries, max_wait=max_wait)
        self.sync = FolderSync(connection, self.caller, page_size)
        self.fetch_batch = max(1, fetch_batch)

    @classmethod
    def from_settings(cls: type[P], email: str, **settings: Any) -> P:
        """Connect with ``exchange_account.connect`` keyword settings; the
        provider's own options (``page_size``, ``fetch_batch``, ...) may be mixed in."""
        own = {k: settings.pop(k) for k in list(settings) if k in cls._OWN_OPTIONS}
        return cls(connect(email, **settings), **own)

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far."""
        return self.connection.requests_sent

    def snapshot(self, scope: Scope) -> str:
        return self.sync.snapshot(scope)

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        return self.sync.list_page(scope, page)

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """One SyncFolderItems request; an invalid sync state raises ``CursorExpired``."""
        return self.sync.changes(scope, cursor)

    def watch_scopes(self, scopes: Sequence[Scope]) -> AbstractContextManager[Iterator[str]] | None:
        """One streaming subscription for all these folders (on a connection of
        its own), yielding the folder that changed; ``None`` unless ``streaming``.
        A server that refuses the subscription gives an empty watch: polling goes on."""
        if not self.streaming or not scopes:
            return None
        folder_ids = [s.id for s in scopes]
        return FolderStreaming(
            self.connection, folder_ids, minutes=self.streaming_minutes, quiet_refusal=True
        )

    def close(self) -> None:
        self.connection.close()
