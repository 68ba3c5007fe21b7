"""Django signals for commlink's host events, and the hooks on the host's models.

Receivers of ``commlink_event`` get every ``commlink.events.HostEvent``
(``event=``); ``message_changed``, ``meeting_changed`` and
``channel_state_changed`` get those of one family. They are sent by
``DjangoSignalSink``, which the management commands use as the sync's event
sink (or relay the store's outbox into), so they fire after the sync's
commit, never for a write that rolled back. Inside an open transaction the
sink defers sending to ``transaction.on_commit``.

``install()`` (called by the app's ``ready()`` and again whenever
``settings.COMMLINK`` changes) connects the mapped models' save and delete
signals to relinking (``relinking.RelinkHooks``) and keeps ``key`` shadow
fields current.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models.signals import pre_save
from django.dispatch import Signal

from ...events import CHANNEL_STATE_CHANGED, HostEvent
from ...sync.relink import Relinker
from .relinking import RelinkHooks, install_key_hooks

__all__ = [
    "DjangoSignalSink",
    "channel_state_changed",
    "commlink_event",
    "install",
    "meeting_changed",
    "message_changed",
    "relay_events",
]

#: every host event; receivers get ``event`` (a ``HostEvent``)
commlink_event = Signal()
#: ``message.created`` / ``updated`` / ``deleted``
message_changed = Signal()
#: ``event.created`` / ``updated`` / ``deleted`` (calendar events)
meeting_changed = Signal()
#: ``channel.state_changed``
channel_state_changed = Signal()


class DjangoSignalSink:
    """An ``EventSink`` sending the signals above, in event order.

    A receiver's exception propagates, so an outbox relay keeps the batch
    and delivers it again: receivers should be idempotent by ``event.id``.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using

    def deliver(self, events: Sequence[HostEvent]) -> None:
        batch = list(events)
        if not batch:
            return
        if transaction.get_connection(self.using).in_atomic_block:
            transaction.on_commit(lambda: self._send(batch), using=self.using)
        else:
            self._send(batch)

    @staticmethod
    def _send(events: Sequence[HostEvent]) -> None:
        for event in events:
            commlink_event.send(sender=DjangoSignalSink, event=event)
            family = _family(event)
            family.send(sender=DjangoSignalSink, event=event)


def _family(event: HostEvent) -> Signal:
    if event.type == CHANNEL_STATE_CHANGED:
        return channel_state_changed
    return message_changed if event.type.startswith("message.") else meeting_changed


def relay_events(store: Any, consumer: str = "django-signals") -> int:
    """Send the signals for the events waiting in the store's outbox
    (``COMMLINK["EVENTS"] = "outbox"``); how many were sent."""
    from ...events import OutboxRelay
    from .conf import commlink_settings

    if commlink_settings().get("EVENTS") != "outbox":
        return 0
    return OutboxRelay(store.outbox(), DjangoSignalSink(), consumer=consumer).drain()


_lock = threading.Lock()
_installed: dict[str, Any] = {}


def install() -> None:
    """Connect the hooks the current ``settings.COMMLINK`` asks for (and
    disconnect earlier ones)."""
    from .conf import commlink_settings, get_mapping

    with _lock:
        _uninstall()
        mapping = get_mapping()
        if mapping is None:
            return
        _installed["keys"] = install_key_hooks(mapping)
        if commlink_settings().get("RELINK", True):
            hooks = RelinkHooks(mapping, _relinker)
            hooks.connect()
            _installed["relink"] = hooks


def installed_relink_hooks() -> RelinkHooks | None:
    """The connected relinking hooks, if any."""
    hooks: RelinkHooks | None = _installed.get("relink")
    return hooks


def _uninstall() -> None:
    keys: list[tuple[Any, type[models.Model]]] = _installed.pop("keys", [])
    for receiver, sender in keys:
        pre_save.disconnect(receiver, sender=sender)
    hooks: RelinkHooks | None = _installed.pop("relink", None)
    if hooks is not None:
        hooks.disconnect()


def _relinker() -> Relinker:
    from .conf import get_directory, get_store

    store = get_store()
    channels = store.channels()
    return Relinker(store, get_directory(), channels[0].settings if channels else None)


def _reinstall(*, setting: str, **_: Any) -> None:
    if setting == "COMMLINK":
        from .conf import reset

        reset()  # whichever receiver runs first, the hooks see the new settings
        install()


setting_changed.connect(_reinstall, dispatch_uid="commlink.signals.reinstall")
