"""``PushKeeper``: the push subscriptions of every channel, kept alive.

For each channel whose provider is a ``ports.PushSource`` (Graph, Gmail,
Google Calendar), ``keep()`` works out the resources to watch for the
channel's selected folders or calendars (chosen as the sync engine chooses
its scopes), subscribes the missing ones, renews those that end within
``renew_margin``, and unsubscribes those no longer selected. Subscriptions
of channels gone from the store are unsubscribed and deleted too.
Everything is kept in a ``SubscriptionStore``, so a restarted process
carries on where the last one stopped, and the host's webhook finds each
subscription's channel and secret there.

Call ``keep()`` every hour or so (``next_due()`` says when it next has
work); call ``forget_channel()`` when a channel is removed. One channel's
failure never stops the others: it is reported. A channel whose
credentials are refused (``AuthError``) is skipped and reported for
reconnection; one the sync already marked ``FAILED_AUTH`` is not tried.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

import attrs

from ..credentials import redact_text
from ..errors import AuthError, ProviderError, RateLimited, TransientError
from ..model import Channel, ChannelKind, ChannelSettings, Folder
from ..ports import CalendarProvider, MailProvider, PushSource, Scope, Store, SubscriptionStore
from ..records import ChannelStatus, PushSubscription

__all__ = [
    "DEFAULT_RENEW_MARGIN",
    "ChannelPush",
    "PushKeeper",
    "PushReport",
    "selected_scopes",
]

log = logging.getLogger("commlink.push")

Provider = MailProvider | CalendarProvider
Connect = Callable[[Channel], Provider]

#: Renew a subscription when less than this is left (Graph and Google allow
#: about seven days, so a daily failure still leaves days to recover).
DEFAULT_RENEW_MARGIN = timedelta(days=2)
#: Keys ``PushKeeper`` adds to ``PushSubscription.data``: enough to reopen
#: the provider of a channel already removed from the store, to unsubscribe.
KIND_KEY = "commlink.channel_kind"
PROVIDER_KEY = "commlink.channel_provider"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _described(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")[:500]


def selected_scopes(channel: Channel, provider: Provider) -> tuple[list[Folder], list[Scope]]:
    """The folders (or calendars) a provider lists, and the scopes of those
    the channel selects: what ``SyncEngine`` syncs."""
    folders: list[Folder]
    if channel.kind is ChannelKind.MAIL:
        if not isinstance(provider, MailProvider):
            raise TypeError(f"channel {channel.id} is a mail channel; its provider is not")
        folders = list(provider.folders())
    else:
        if not isinstance(provider, CalendarProvider):
            raise TypeError(f"channel {channel.id} is a calendar channel; its provider is not")
        folders = list(provider.calendars())
    selected = [f for f in folders if channel.settings.folders.selects(f)]
    return folders, list(provider.scopes(selected))


@attrs.define
class ChannelPush:
    """What ``keep()`` did for one channel.

    ``resources`` is how many it watches; ``failed`` maps a resource to
    why it could not be subscribed; ``error`` is why the channel was not
    handled at all; ``reconnect`` is set when its credentials were refused.
    ``busy``: another process was keeping it at the time.
    """

    channel_id: str
    resources: int = 0
    created: int = 0
    renewed: int = 0
    replaced: int = 0
    removed: int = 0
    kept: int = 0
    failed: dict[str, str] = attrs.field(factory=dict)
    error: str = ""
    reconnect: bool = False
    busy: bool = False

    @property
    def ok(self) -> bool:
        return not (self.error or self.failed or self.reconnect)


@attrs.define
class PushReport:
    """What one ``keep()`` pass did, per channel."""

    channels: list[ChannelPush] = attrs.field(factory=list)

    def _total(self, field: str) -> int:
        return sum(int(getattr(c, field)) for c in self.channels)

    @property
    def created(self) -> int:
        return self._total("created")

    @property
    def renewed(self) -> int:
        return self._total("renewed")

    @property
    def removed(self) -> int:
        return self._total("removed")

    @property
    def errors(self) -> dict[str, str]:
        """Channel id to what went wrong (first failed resource when only some did)."""
        found: dict[str, str] = {}
        for c in self.channels:
            if c.error or c.failed:
                found[c.channel_id] = c.error or next(iter(c.failed.values()))
        return found

    @property
    def reconnect(self) -> list[str]:
        """Channels whose credentials were refused: the user must reconnect them."""
        return [c.channel_id for c in self.channels if c.reconnect]

    def summary(self) -> str:
        return (
            f"push: {len(self.channels)} channels, {self.created} created, {self.renewed} renewed,"
            f" {self.removed} removed, {len(self.errors)} failed,"
            f" {len(self.reconnect)} to reconnect"
        )


class PushKeeper:
    """Keeps the push subscriptions of a store's channels.

    ``store`` gives the channels (and the leases that keep two processes
    from working on one channel's subscriptions at once);
    ``subscriptions`` keeps what was subscribed; ``connect(channel)``
    opens the channel's provider (closed after use), as for the ``Runner``.
    A subscription is renewed when it ends within ``renew_margin``.
    """

    def __init__(
        self,
        store: Store,
        subscriptions: SubscriptionStore,
        connect: Connect,
        *,
        clock: Callable[[], datetime] = _utcnow,
        renew_margin: timedelta = DEFAULT_RENEW_MARGIN,
        lease_ttl: timedelta = timedelta(minutes=10),
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.connect = connect
        self.clock = clock
        self.renew_margin = renew_margin
        self.lease_ttl = lease_ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- the periodic pass ------------------------------------------------------

    def keep(self, channels: Sequence[Channel] | None = None) -> PushReport:
        """Bring the subscriptions of ``channels`` (default: every channel of
        the store, and those of channels no longer there) up to date.
        Channels waiting for the user to reconnect them (``FAILED_AUTH``)
        are left alone."""
        report = PushReport()
        todo = list(channels) if channels is not None else list(self.store.channels())
        states = self.store.channel_states()
        for channel in todo:
            state = states.get(channel.id)
            if state is not None and state.status is ChannelStatus.FAILED_AUTH:
                report.channels.append(ChannelPush(channel.id, reconnect=True))
                continue
            try:
                report.channels.append(self._keep(channel))
            except Exception as exc:  # the store failed: the next channel may fare better
                log.warning("push of %s: %s", channel.id, _described(exc))
                report.channels.append(ChannelPush(channel.id, error=_described(exc)))
        if channels is None:
            present = {c.id for c in todo}
            gone = {s.channel_id for s in self.subscriptions.subscriptions()} - present
            for channel_id in sorted(gone):
                report.channels.append(self.forget_channel(channel_id))
        log.info("%s", report.summary())
        return report

    def next_due(self) -> datetime | None:
        """When ``keep()`` next has a subscription to renew (``None``: none kept)."""
        found = self.subscriptions.subscriptions()
        if not found:
            return None
        return min(s.expires_at for s in found) - self.renew_margin

    # -- one channel --------------------------------------------------------------

    def forget_channel(self, channel_id: str, channel: Channel | None = None) -> ChannelPush:
        """Unsubscribe a channel's subscriptions at the provider and delete
        them; call it when the channel is removed (before
        ``Store.remove_channel``, or pass the ``channel``). One that could
        not be unsubscribed for a passing reason stays for the next
        ``keep()`` to try again, until it expires anyway."""
        outcome = ChannelPush(channel_id)
        subs = list(self.subscriptions.subscriptions(channel_id=channel_id))
        if not subs:
            return outcome
        channel = channel or self.store.channel(channel_id) or _stand_in(subs[0])
        if not self._lease(channel_id):
            outcome.busy = True
            return outcome
        try:
            provider = self._open(channel, outcome)
            try:
                for sub in subs:
                    if self._drop(provider, sub, outcome):
                        outcome.removed += 1
            finally:
                if provider is not None:
                    provider.close()
        finally:
            self._release(channel_id)
        return outcome

    def refresh(self, subscription_id: str, *, recreate: bool = False) -> PushSubscription | None:
        """Renew one subscription now, or create it anew (``recreate``: the
        provider removed it). For lifecycle notifications (Graph's
        ``reauthorizationRequired``, ``subscriptionRemoved``). Returns the
        subscription kept, or ``None`` when it is unknown, its channel gone,
        or another process holds the channel (then it is left due, for the
        next ``keep()``). Provider errors are raised."""
        current = self.subscriptions.subscription(subscription_id)
        if current is None:
            return None
        channel = self.store.channel(current.channel_id)
        if channel is None:
            return None
        if not self._lease(channel.id):
            self.subscriptions.save_subscription(attrs.evolve(current, expires_at=self.clock()))
            return None
        try:
            provider = self.connect(channel)
            try:
                if not isinstance(provider, PushSource):
                    return None
                renewed = None if recreate else current
                new = provider.subscribe(channel.id, current.resource, renewed)
                self._save(channel, new, current)
                return new
            finally:
                provider.close()
        finally:
            self._release(channel.id)

    def _keep(self, channel: Channel) -> ChannelPush:
        outcome = ChannelPush(channel.id)
        if not self._lease(channel.id):
            outcome.busy = True
            return outcome
        try:
            provider = self._open(channel, outcome)
            if provider is None:
                return outcome
            try:
                self._plan(channel, provider, outcome)
            except AuthError as exc:
                outcome.reconnect, outcome.error = True, _described(exc)
            except Exception as exc:  # the provider, the store or a bug: next pass
                log.warning("push of %s: %s", channel.id, _described(exc))
                outcome.error = _described(exc)
            finally:
                provider.close()
        finally:
            self._release(channel.id)
        return outcome

    def _open(self, channel: Channel, outcome: ChannelPush) -> Provider | None:
        try:
            return self.connect(channel)
        except AuthError as exc:
            outcome.reconnect, outcome.error = True, _described(exc)
        except Exception as exc:
            outcome.error = _described(exc)
        return None

    def _plan(self, channel: Channel, provider: Provider, outcome: ChannelPush) -> None:
        existing = list(self.subscriptions.subscriptions(channel_id=channel.id))
        if not isinstance(provider, PushSource):
            for sub in existing:  # the channel's provider no longer pushes
                self.subscriptions.delete_subscription(sub.id)
                outcome.removed += 1
            return
        folders, scopes = selected_scopes(channel, provider)
        if not folders and existing:
            raise ProviderError(
                "the provider listed no folders or calendars at all; subscriptions kept"
            )
        wanted = list(dict.fromkeys(provider.push_resources(scopes)))
        outcome.resources = len(wanted)
        held: dict[str, PushSubscription] = {}
        for sub in sorted(existing, key=lambda s: s.expires_at, reverse=True):
            if sub.resource in wanted and sub.resource not in held:  # the longest-lived
                held[sub.resource] = sub
            elif self._drop(provider, sub, outcome):  # deselected, or a duplicate
                outcome.removed += 1
        due = self.clock() + self.renew_margin
        for resource in wanted:
            current = held.get(resource)
            if current is not None and current.expires_at > due:
                outcome.kept += 1
                continue
            try:
                new = provider.subscribe(channel.id, resource, current)
            except (AuthError, RateLimited):
                raise
            except Exception as exc:
                log.warning("push of %s, %s: %s", channel.id, resource, _described(exc))
                outcome.failed[resource] = _described(exc)
                continue
            self._save(channel, new, current)
            if current is None:
                outcome.created += 1
            elif new.id == current.id:
                outcome.renewed += 1
            else:
                outcome.replaced += 1

    def _save(
        self, channel: Channel, new: PushSubscription, current: PushSubscription | None
    ) -> None:
        data = {**new.data, KIND_KEY: channel.kind.value, PROVIDER_KEY: channel.provider}
        self.subscriptions.save_subscription(attrs.evolve(new, channel_id=channel.id, data=data))
        if current is not None and current.id != new.id:
            self.subscriptions.delete_subscription(current.id)

    def _drop(self, provider: object, sub: PushSubscription, outcome: ChannelPush) -> bool:
        """Unsubscribe and delete one (``provider`` ``None``: delete only);
        False when it stays for another try."""
        if isinstance(provider, PushSource):
            try:
                provider.unsubscribe(sub)
            except AuthError as exc:
                outcome.reconnect, outcome.error = True, _described(exc)
            except (TransientError, RateLimited) as exc:
                if sub.expires_at > self.clock():
                    outcome.failed[sub.resource] = _described(exc)
                    return False
            except Exception as exc:  # refused for good: it expires at the provider
                outcome.failed[sub.resource] = _described(exc)
        self.subscriptions.delete_subscription(sub.id)
        return True

    def _lease(self, channel_id: str) -> bool:
        return self.store.acquire_lease(f"{channel_id}#push", self.holder, self.lease_ttl)

    def _release(self, channel_id: str) -> None:
        try:
            self.store.release_lease(f"{channel_id}#push", self.holder)
        except Exception:  # it expires by itself
            log.warning("could not release the push lease of %s", channel_id, exc_info=True)


def _stand_in(sub: PushSubscription) -> Channel:
    """A channel removed from the store, rebuilt from what ``PushKeeper``
    noted with its subscription: enough for ``connect`` to reopen the
    provider, not to sync."""
    try:
        kind = ChannelKind(sub.data.get(KIND_KEY, ""))
    except ValueError:
        kind = ChannelKind.MAIL
    provider = sub.data.get(PROVIDER_KEY) or sub.provider
    return Channel(sub.channel_id, "", kind, provider, ChannelSettings(owner=sub.account))
