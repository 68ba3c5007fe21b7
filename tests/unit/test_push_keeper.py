"""``PushKeeper``'s planning against a push source that records its calls:
what is created, renewed, replaced and dropped, and how failures stay
with their channel. (Graph end to end: tests/integration/graph.)"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from commlink.credentials import Secret
from commlink.errors import AuthError, ProviderError, RateLimited, TransientError
from commlink.model import Channel, ChannelKind, ChannelSettings, Folder, FolderKind
from commlink.ports import PushSource, Scope
from commlink.records import PushSubscription
from commlink.stores.memory import MemoryStore
from commlink.stores.push_memory import MemorySubscriptionStore
from commlink.sync.push import PushKeeper
from commlink.testing.fake import FakeMailbox, FakeMailProvider

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
LIFETIME = timedelta(days=7)


@attrs.define
class Remote:
    """The provider's side: live subscriptions by id, and how renewals go."""

    live: dict[str, tuple[str, datetime]] = attrs.field(factory=dict)
    renew_in_place: bool = True
    ids: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))


@attrs.define
class PushingMailbox(FakeMailProvider):
    """A fake mailbox that is also a ``PushSource`` (one resource per folder)."""

    remote: Remote = attrs.field(factory=Remote)
    now: datetime = NOW

    def push_resources(self, scopes: Sequence[Scope]) -> Sequence[str]:
        self._call("push_resources")
        return [f"folders/{s.id}" for s in scopes]

    def subscribe(
        self, channel_id: str, resource: str, current: PushSubscription | None
    ) -> PushSubscription:
        self._call("subscribe")
        expires = self.now + LIFETIME
        if current is not None and current.id in self.remote.live and self.remote.renew_in_place:
            self.remote.live[current.id] = (resource, expires)
            return attrs.evolve(current, expires_at=expires)
        sub_id = f"sub-{next(self.remote.ids)}"
        self.remote.live[sub_id] = (resource, expires)
        return PushSubscription(
            sub_id, channel_id, "fake", resource, expires, secret=Secret(f"s{sub_id}")
        )

    def unsubscribe(self, subscription: PushSubscription) -> None:
        self._call("unsubscribe")
        self.remote.live.pop(subscription.id, None)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def channel(channel_id: str = "c1", *, exclude: frozenset[str] = frozenset()) -> Channel:
    from commlink.model import FolderSelection

    settings = ChannelSettings(owner="owner@home.example", folders=FolderSelection(exclude=exclude))
    return Channel(channel_id, "u1", ChannelKind.MAIL, "fake", settings)


@attrs.define
class World:
    store: MemoryStore
    subs: MemorySubscriptionStore
    providers: dict[str, PushingMailbox]
    clock: Clock
    keeper: PushKeeper


@pytest.fixture
def world() -> World:
    store, subs, clock = MemoryStore(), MemorySubscriptionStore(), Clock()
    providers: dict[str, PushingMailbox] = {}

    remote = Remote()  # one provider account, as Graph's subscription ids are global

    def connect(ch: Channel) -> PushingMailbox:
        if ch.id not in providers:
            providers[ch.id] = PushingMailbox(box=FakeMailbox.standard(), remote=remote)
        provider = providers[ch.id]
        provider.now = clock()
        return provider

    store.save_channel(channel("c1"))
    store.save_channel(channel("c2"))
    keeper = PushKeeper(store, subs, connect, clock=clock)
    return World(store, subs, providers, clock, keeper)


def test_the_fake_is_a_push_source() -> None:
    assert isinstance(PushingMailbox(), PushSource)


def test_selected_folders_are_subscribed_once(world: World) -> None:
    report = world.keeper.keep()
    assert report.created == 6  # INBOX, Sent, Archive per channel; Spam never
    resources = {s.resource for s in world.subs.subscriptions(channel_id="c1")}
    assert resources == {"folders/INBOX", "folders/Sent", "folders/Archive"}
    again = world.keeper.keep()
    assert (again.created, again.renewed, again.removed) == (0, 0, 0)
    assert [c.kept for c in again.channels] == [3, 3]
    assert world.providers["c1"].calls.count("close") == 2  # each pass closes it


def test_renewal_in_place_and_replacement(world: World) -> None:
    world.keeper.keep()
    before = {s.id for s in world.subs.subscriptions()}
    world.clock.now = NOW + LIFETIME - timedelta(days=1)  # inside the 2-day margin
    report = world.keeper.keep()
    assert report.renewed == 6
    assert {s.id for s in world.subs.subscriptions()} == before
    assert all(s.expires_at == world.clock.now + LIFETIME for s in world.subs.subscriptions())
    world.providers["c1"].remote.renew_in_place = False  # e.g. Google Calendar channels
    world.clock.now += LIFETIME - timedelta(days=1)
    report = world.keeper.keep()
    assert [c.replaced for c in report.channels] == [3, 3]
    now_held = {s.id for s in world.subs.subscriptions()}
    assert len(now_held) == 6
    assert not now_held & before  # the old records went with their replacement
    assert set(world.providers["c1"].remote.live) >= now_held


def test_a_deselected_folder_and_a_duplicate_are_dropped(world: World) -> None:
    world.keeper.keep()
    extra = PushSubscription("dup", "c1", "fake", "folders/INBOX", NOW + timedelta(days=1))
    world.subs.save_subscription(extra)
    world.providers["c1"].remote.live["dup"] = ("folders/INBOX", NOW + timedelta(days=1))
    world.store.save_channel(channel("c1", exclude=frozenset({"Archive"})))
    report = world.keeper.keep()
    assert report.removed == 2
    held = {s.resource for s in world.subs.subscriptions(channel_id="c1")}
    assert held == {"folders/INBOX", "folders/Sent"}
    assert "dup" not in world.providers["c1"].remote.live  # the longer-lived one stays


def test_one_failing_resource_and_one_failing_channel_do_not_stop_the_rest(
    world: World,
) -> None:
    world.keeper.keep()
    world.subs.delete_subscription(world.subs.subscriptions(channel_id="c1")[0].id)
    world.subs.delete_subscription(world.subs.subscriptions(channel_id="c2")[0].id)
    world.providers["c1"].faults.fail("subscribe", ProviderError("HTTP 400 refused"))
    world.providers["c2"].faults.fail("folders", TransientError("down"))
    report = world.keeper.keep()
    assert set(report.errors) == {"c1", "c2"}
    assert "refused" in report.errors["c1"]
    assert report.channels[1].error.startswith("TransientError")
    assert report.reconnect == []
    assert world.keeper.keep().created == 2  # both recovered on the next pass


def test_refused_credentials_and_throttling_stop_only_that_channel(world: World) -> None:
    world.providers.clear()
    world.keeper.keep()
    world.clock.now = NOW + LIFETIME - timedelta(hours=1)
    world.providers["c1"].faults.fail("subscribe", AuthError("invalid_grant"))
    world.providers["c2"].faults.fail("subscribe", RateLimited("slow down", 30))
    report = world.keeper.keep()
    assert report.reconnect == ["c1"]
    assert report.channels[1].error.startswith("RateLimited")
    assert world.providers["c1"].calls.count("subscribe") == 4  # stopped at the first
    assert world.providers["c2"].calls.count("subscribe") == 4


def test_a_connect_that_raises_is_reported(world: World) -> None:
    def refuse(ch: Channel) -> PushingMailbox:
        raise AuthError("consent revoked")

    report = PushKeeper(world.store, world.subs, refuse).keep()
    assert report.reconnect == ["c1", "c2"]
    assert world.subs.subscriptions() == []


def test_an_empty_listing_never_drops_what_is_held(world: World) -> None:
    world.keeper.keep()
    box = world.providers["c1"].box
    box.folders.clear()
    report = world.keeper.keep()
    assert "listed no folders" in report.errors["c1"]
    assert len(world.subs.subscriptions(channel_id="c1")) == 3


def test_another_process_holding_the_channel_is_left_alone(world: World) -> None:
    assert world.store.acquire_lease("c1#push", "elsewhere", timedelta(minutes=5))
    report = world.keeper.keep()
    assert [c.busy for c in report.channels] == [True, False]
    assert world.subs.subscriptions(channel_id="c1") == []


def test_forget_keeps_what_failed_for_a_passing_reason(world: World) -> None:
    world.keeper.keep()
    c1 = {s.id for s in world.subs.subscriptions(channel_id="c1")}
    world.providers["c1"].faults.fail("unsubscribe", TransientError("down"))
    outcome = world.keeper.forget_channel("c1")
    assert outcome.removed == 2
    assert len(world.subs.subscriptions(channel_id="c1")) == 1
    world.store.remove_channel("c1")
    report = world.keeper.keep()  # the leftover of a removed channel
    assert [c.channel_id for c in report.channels] == ["c2", "c1"]
    assert world.subs.subscriptions(channel_id="c1") == []
    assert not c1 & set(world.providers["c1"].remote.live)  # unsubscribed at the provider


def test_refresh_renews_or_recreates_one_subscription(world: World) -> None:
    world.keeper.keep()
    sub = world.subs.subscriptions(channel_id="c2")[0]
    world.clock.now = NOW + timedelta(hours=1)
    renewed = world.keeper.refresh(sub.id)
    assert renewed is not None
    assert renewed.id == sub.id
    assert renewed.expires_at == world.clock.now + LIFETIME
    recreated = world.keeper.refresh(sub.id, recreate=True)
    assert recreated is not None
    assert recreated.id != sub.id
    assert world.subs.subscription(sub.id) is None
    assert world.keeper.refresh("nobody") is None


def test_refresh_while_busy_leaves_the_subscription_due(world: World) -> None:
    world.keeper.keep()
    sub = world.subs.subscriptions(channel_id="c2")[0]
    world.store.acquire_lease("c2#push", "elsewhere", timedelta(minutes=5))
    world.clock.now = NOW + timedelta(hours=2)
    assert world.keeper.refresh(sub.id) is None
    due = world.subs.subscription(sub.id)
    assert due is not None
    assert due.expires_at == world.clock.now
    assert world.keeper.next_due() == world.clock.now - world.keeper.renew_margin


def test_next_due_and_summary(world: World) -> None:
    assert world.keeper.next_due() is None
    report = world.keeper.keep()
    assert world.keeper.next_due() == NOW + LIFETIME - timedelta(days=2)
    assert report.summary() == (
        "push: 2 channels, 6 created, 0 renewed, 0 removed, 0 failed, 0 to reconnect"
    )


def test_a_channel_whose_provider_does_not_push_keeps_nothing(world: World) -> None:
    stale = PushSubscription("old", "c1", "fake", "folders/INBOX", NOW + LIFETIME)
    world.subs.save_subscription(stale)
    folders = [Folder("INBOX", "Inbox", FolderKind.INBOX)]
    box = FakeMailbox()
    for folder in folders:
        box.add_folder(folder)
    report = PushKeeper(world.store, world.subs, lambda ch: FakeMailProvider(box=box)).keep()
    assert report.removed == 1
    assert world.subs.subscriptions() == []


def test_a_channel_that_needs_the_user_is_not_tried(world: World) -> None:
    from commlink.records import ChannelState, ChannelStatus

    world.store.save_channel_state(ChannelState("c2", ChannelStatus.FAILED_AUTH))
    report = world.keeper.keep()
    assert report.reconnect == ["c2"]
    assert "c2" not in world.providers  # never connected
    assert report.created == 3
