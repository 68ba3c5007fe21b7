"""``EarlyConnections`` and ``BackgroundCall``: providers opened before the
store is, handed over once, their errors raised where the runner reports
them, and the ones never used closed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers import background
from commlink.providers.background import BackgroundCall
from commlink.sync.early import EarlyConnections


def _channel(channel_id: str) -> Channel:
    return Channel(
        channel_id, "u", ChannelKind.CALENDAR, "caldav", ChannelSettings(owner="o@x.example")
    )


class FakeProvider:
    """Counts warm-ups and closes (only what ``EarlyConnections`` calls)."""

    def __init__(self, channel_id: str, warmable: bool) -> None:
        self.channel_id = channel_id
        self.warmed = 0
        self.closed = 0
        if warmable:
            self.warm = self._warm

    def _warm(self) -> None:
        self.warmed += 1

    def close(self) -> None:
        self.closed += 1


class Opener:
    def __init__(self, failing: Sequence[str] = (), warmable: bool = True) -> None:
        self.failing = set(failing)
        self.warmable = warmable
        self.opened: list[FakeProvider] = []

    def __call__(self, channel: Channel) -> Any:
        if channel.id in self.failing:
            raise ConnectionError(f"cannot open {channel.id}")
        provider = FakeProvider(channel.id, self.warmable)
        self.opened.append(provider)
        return provider


def test_providers_are_opened_and_warmed_first_then_handed_over_once() -> None:
    opener = Opener()
    channels = [_channel("a"), _channel("b")]
    with EarlyConnections(channels, opener) as early:
        assert [p.channel_id for p in opener.opened] == ["a", "b"]
        assert all(p.warmed == 1 for p in opener.opened)
        first = early.connect(channels[0])
        assert first is opener.opened[0]
        again = early.connect(channels[0])  # a second step opens a new one
        assert again is not first
        assert len(opener.opened) == 3
    assert [p.closed for p in opener.opened] == [0, 1, 0]  # only b was never taken


def test_only_the_first_channels_are_opened_early() -> None:
    opener = Opener()
    channels = [_channel(str(n)) for n in range(6)]
    early = EarlyConnections(channels, opener, limit=2)
    assert len(opener.opened) == 2
    early.connect(channels[5])
    assert len(opener.opened) == 3
    early.close()


def test_a_provider_that_cannot_warm_is_still_handed_over() -> None:
    opener = Opener(warmable=False)
    channel = _channel("a")
    with EarlyConnections([channel], opener) as early:
        assert early.connect(channel) is opener.opened[0]


def test_an_opening_error_is_raised_for_that_channel_when_it_connects() -> None:
    opener = Opener(failing=["a"])
    channels = [_channel("a"), _channel("b")]
    with EarlyConnections(channels, opener) as early:
        with pytest.raises(ConnectionError, match="cannot open a"):
            early.connect(channels[0])
        assert early.connect(channels[1]).channel_id == "b"


def test_a_background_call_answers_once() -> None:
    call = BackgroundCall(lambda: ["x"], "test-call")
    assert call.take() == ["x"]
    assert call.take() is None


def test_a_failed_background_call_raises_its_error_once() -> None:
    def fail() -> list[str]:
        raise OSError("down")

    call = BackgroundCall(fail, "test-call")
    with pytest.raises(OSError, match="down"):
        call.take()
    assert call.take() is None


def test_a_stale_error_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> list[str]:
        raise OSError("down")

    call = BackgroundCall(fail, "test-call", fresh_for=5)
    call.join()
    later = time.monotonic() + 6
    monkeypatch.setattr(background.time, "monotonic", lambda: later)
    assert call.take() is None


def test_a_stale_background_answer_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    call = BackgroundCall(lambda: ["x"], "test-call", fresh_for=5)
    call.join()
    later = time.monotonic() + 6
    monkeypatch.setattr(background.time, "monotonic", lambda: later)
    assert call.take() is None


def test_take_waits_for_the_call() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "done"

    call = BackgroundCall(slow, "test-call")
    started.wait(5)
    threading.Timer(0.05, release.set).start()
    assert call.take() == "done"
