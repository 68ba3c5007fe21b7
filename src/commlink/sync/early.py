"""Providers opened before the store, so their first round trips overlap it.

A one-shot sync spends its first few hundred milliseconds loading and
opening its store; a provider that can start discovery in the background
(``ports.Warmable``: CalDAV lists its calendars and their sync tokens)
has its answer ready by the time the engine asks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..closing import Closing
from ..model import Channel
from ..ports import CalendarProvider, MailProvider, Warmable

__all__ = ["EarlyConnections"]

Provider = MailProvider | CalendarProvider


class EarlyConnections(Closing):
    """Opens the providers of the first ``limit`` channels now (adapters
    connect lazily, so this costs no round trip) and warms those that can;
    ``connect(channel)`` hands each one over once, and opens any other
    channel's provider then. An error opening one is raised again by
    ``connect`` for that channel, where the runner reports it.
    ``close()`` closes the providers never handed over."""

    def __init__(
        self,
        channels: Sequence[Channel],
        connect: Callable[[Channel], Provider],
        limit: int = 4,
    ) -> None:
        self._connect = connect
        self._ready: dict[str, Provider | Exception] = {}
        for channel in channels[: max(0, limit)]:
            try:
                provider = connect(channel)
            except Exception as exc:  # raised again when the channel's step connects
                self._ready[channel.id] = exc
                continue
            if isinstance(provider, Warmable):
                provider.warm()
            self._ready[channel.id] = provider

    def connect(self, channel: Channel) -> Provider:
        ready = self._ready.pop(channel.id, None)
        if ready is None:
            return self._connect(channel)
        if isinstance(ready, Exception):
            raise ready
        return ready

    def close(self) -> None:
        ready, self._ready = self._ready, {}
        for provider in ready.values():
            if not isinstance(provider, Exception):
                provider.close()
