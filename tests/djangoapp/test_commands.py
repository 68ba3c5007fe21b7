"""The management commands (sync, watch, status) and the host-event signals
they send, on the demo mailbox."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from crm_host.models import Person
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from host_fixtures import host_fixture, host_settings, mailbox  # noqa: F401  (the host fixture)

from commlink.contrib.django.conf import get_config, get_store
from commlink.contrib.django.signals import (
    DjangoSignalSink,
    channel_state_changed,
    commlink_event,
    message_changed,
)
from commlink.contrib.django.store_testing import clear_store
from commlink.contrib.django.wake import flag_wake
from commlink.errors import ConfigError
from commlink.events import CHANNEL_STATE_CHANGED, MESSAGE_CREATED, HostEvent
from commlink.records import ChannelStatus, PageRequest, Target, TargetKind, Viewer


def run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def received() -> Iterator[list[HostEvent]]:
    """The events sent through ``commlink_event``."""
    found: list[HostEvent] = []

    def receive(sender: Any, event: HostEvent, **_: Any) -> None:
        found.append(event)

    commlink_event.connect(receive)
    yield found
    commlink_event.disconnect(receive)


def test_sync_imports_and_status_reports(host: Any) -> None:
    Person.objects.create(id="hank", email="hank@globex.example")
    out = run("commlink_sync")
    assert "alice-mail" in out
    page = get_store().timeline(Target(TargetKind.PERSON, "hank"), Viewer("alice"), PageRequest())
    assert page.items
    status = json.loads(run("commlink_status", "--json"))
    assert [s["channel"] for s in status] == ["alice-mail"]
    assert status[0]["status"] == "active"
    assert status[0]["last_success"] is not None
    assert "alice-mail: active" in run("commlink_status")


def test_sync_of_an_unknown_channel_is_refused(host: Any) -> None:
    with pytest.raises(ConfigError, match="no channel 'nope'"):
        run("commlink_sync", "--channel", "nope")


def test_a_failing_channel_fails_the_command(host: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mbox"
    broken.write_bytes(b"From x\n")
    channels = [mailbox(), mailbox("gone", path=str(broken))]
    with override_settings(COMMLINK=host_settings(CHANNELS=channels)):
        get_config()  # read while the file is there; it goes before the sync
        broken.unlink()
        with pytest.raises(CommandError):
            run("commlink_sync")
        states = {s["channel"]: s for s in json.loads(run("commlink_status", "--json"))}
    assert states["alice-mail"]["status"] == "active"
    assert states["gone"]["status"] != "active"
    assert states["gone"]["last_error"]


def test_watch_syncs_and_takes_the_flags_of_push_views(host: Any) -> None:
    flag_wake(get_store(), "alice-mail")
    out = run("commlink_watch", "--seconds", "2", "--tick", "0.2", "--no-watch")
    assert "watching" in out
    state = get_store().channel_state("alice-mail")
    assert state is not None
    assert state.status is ChannelStatus.ACTIVE
    # the flag was taken: a fresh probe finds none
    from commlink.contrib.django.wake import take_woken

    assert take_woken(get_store(), ["alice-mail"]) == []


@pytest.mark.parametrize("store", ["orm", "sql"])
@pytest.mark.parametrize("events", ["hook", "outbox"])
def test_sync_sends_host_event_signals(
    events: str, store: str, tmp_path: Path, received: list[HostEvent]
) -> None:
    families: list[str] = []

    def on_state(sender: Any, event: HostEvent, **_: Any) -> None:
        families.append(event.type)

    channel_state_changed.connect(on_state)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    settings = host_settings(STORE="orm" if store == "orm" else url, EVENTS=events)
    clear_store()
    try:
        with override_settings(COMMLINK=settings):
            run("commlink_sync")
            first = len(received)
            run("commlink_sync")  # nothing changed: no new message events
    finally:
        channel_state_changed.disconnect(on_state)
    types = [e.type for e in received]
    assert types.count(MESSAGE_CREATED) >= 5
    assert all(e.channel_id == "alice-mail" for e in received)
    assert not any(e.type == MESSAGE_CREATED for e in received[first:])
    assert CHANNEL_STATE_CHANGED in families
    if events == "outbox":
        ids = [e.id for e in received]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)


def test_an_unknown_events_setting_is_refused(host: Any) -> None:
    with (
        override_settings(COMMLINK=host_settings(EVENTS="sideways")),
        pytest.raises(ConfigError, match="EVENTS"),
    ):
        get_store()


def test_the_sink_waits_for_the_commit(received: list[HostEvent]) -> None:
    messages: list[HostEvent] = []

    def on_message(sender: Any, event: HostEvent, **_: Any) -> None:
        messages.append(event)

    message_changed.connect(on_message)
    event = HostEvent(MESSAGE_CREATED, "alice-mail", datetime.now(timezone.utc), message_id="<a@x>")
    try:
        with transaction.atomic():
            DjangoSignalSink().deliver([event])
            assert received == []
        assert received == [event]
        assert messages == [event]
        DjangoSignalSink().deliver([])
        assert received == [event]
    finally:
        message_changed.disconnect(on_message)


def test_commands_use_the_clean_store(host: Any) -> None:
    run("commlink_sync")
    clear_store()
    assert json.loads(run("commlink_status", "--json"))[0]["status"] == "not_synced"


def test_the_watch_process_keeps_push_subscriptions_with_push_settings(host: Any) -> None:
    from commlink.contrib.django.runtime import build_runner, watch_duties

    push = {"public_url": "https://crm.example/commlink", "renew_every_minutes": 15}
    with override_settings(COMMLINK=host_settings(PUSH=push)):
        runner = build_runner(watch=False)
        duties = {d.name: d for d in watch_duties(runner, timedelta(seconds=1))}
    assert set(duties) == {"woken channels", "host events", "push subscriptions"}
    assert duties["push subscriptions"].every == timedelta(minutes=15)
    runner = build_runner(watch=False)
    assert {d.name for d in watch_duties(runner, timedelta(seconds=1))} == {
        "woken channels",
        "host events",
    }
