"""What Graph's mail and calendar providers share.

Each folder (a mail folder or a calendar) is a scope, read through
``delta`` rounds whose ``@odata.deltaLink`` is the cursor, and watched
through one subscription to its items. Links are followed only when they
are on the Graph base URL: the token is never sent anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from ....closing import Closing
from ....errors import CursorExpired, ProviderError
from ....ports import ChangeSet, Scope
from ....records import PushSubscription
from .client import GraphClient
from .subscriptions import GraphPush

__all__ = ["GraphFolderProvider", "delta_changes", "user_path"]

JSON = Mapping[str, Any]


def user_path(user: str) -> str:
    """``/me`` or ``/users/{id}`` (an id or user principal name)."""
    return "/me" if user == "me" else f"/users/{quote(user, safe='@')}"


def delta_changes(found: JSON, items: dict[str, JSON]) -> ChangeSet:
    """The changes on one delta page; ``items`` is updated with what it
    brings (``@removed`` entries are deletions)."""
    upserted: dict[str, None] = {}
    deleted: dict[str, None] = {}
    for item in found.get("value", []):
        item_id = str(item.get("id"))
        if "@removed" in item:
            items.pop(item_id, None)
            upserted.pop(item_id, None)
            deleted[item_id] = None
        else:
            items[item_id] = item
            deleted.pop(item_id, None)
            upserted[item_id] = None
    next_link = found.get("@odata.nextLink")
    link = next_link or found.get("@odata.deltaLink")
    if not link:
        raise ProviderError("a delta page without nextLink or deltaLink")
    return ChangeSet(tuple(upserted), tuple(deleted), str(link), complete=not next_link)


class GraphFolderProvider(Closing):
    """The base of a Graph provider with a scope per folder.

    Subclasses name their subscriptions' provider (``PUSH_PROVIDER``) and
    the folders and items a subscription watches (``PUSH_FOLDERS``,
    ``PUSH_ITEMS``: ``me/{folders}('{id}')/{items}``).
    """

    PUSH_PROVIDER: ClassVar[str]
    PUSH_FOLDERS: ClassVar[str]
    PUSH_ITEMS: ClassVar[str]

    def __init__(
        self,
        client: GraphClient,
        user: str,
        page_size: int,
        push_url: str | None,
        push_lifecycle_url: str | None,
        clock: Callable[[], datetime],
        /,
    ) -> None:
        self.client = client
        self.user = user
        self.page_size = max(1, page_size)
        self._root = user_path(user)
        # per scope: the items of the delta page (or round) in hand, by id
        self._items: dict[str, dict[str, JSON]] = {}
        self.push = GraphPush(
            client,
            provider=self.PUSH_PROVIDER,
            account="" if user == "me" else user,
            notification_url=push_url,
            lifecycle_url=push_lifecycle_url,
            clock=clock,
        )

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (a batch counts once)."""
        return self.client.requests_sent

    @property
    def _prefer(self) -> tuple[str, ...]:
        return (f"odata.maxpagesize={self.page_size}",)

    def _round_link(self, scope: Scope, link: str) -> str:
        """The ``@odata.deltaLink`` a delta round of ``scope`` ended with,
        checked: there is one, and it is on the Graph base URL."""
        if not link:
            raise ProviderError(f"the delta round of {scope.id} ended without a deltaLink")
        if not self.client.owns(link):
            raise ProviderError(f"the delta link of {scope.id} is not on the Graph base URL")
        return link

    def _delta_page(self, cursor: str) -> JSON:
        """The page a stored delta (or next) link points to; a link that is
        none, or is on another host, raises ``CursorExpired``."""
        if not cursor.startswith(("http://", "https://")):
            raise CursorExpired(f"not a delta link: {cursor[:80]!r}")
        if not self.client.owns(cursor):
            # a stored link to another host: never send the token there
            raise CursorExpired("the stored delta link is not on the Graph base URL")
        return self.client.get(cursor, prefer=self._prefer)

    # -- PushSource -----------------------------------------------------------

    def push_resources(self, scopes: Sequence[Scope]) -> Sequence[str]:
        """The items of each folder scope (none without ``push_url``)."""
        if not self.push.configured:
            return []
        return [
            self.push.resource(self._root, self.PUSH_FOLDERS, s.id, self.PUSH_ITEMS) for s in scopes
        ]

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        """Create a subscription, or renew ``current`` (created anew if Graph lost it)."""
        return self.push.subscribe(channel_id, resource, current)

    def unsubscribe(self, subscription: PushSubscription) -> None:
        self.push.unsubscribe(subscription)

    def close(self) -> None:
        self.client.close()
