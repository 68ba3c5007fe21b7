"""Builders and a full-state dump for the store conformance suite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ..model import (
    Address,
    Attachment,
    Attendee,
    Channel,
    ChannelKind,
    ChannelSettings,
    Direction,
    Event,
    EventStatus,
    Message,
    Participant,
    Role,
    Visibility,
)
from ..ports import Store
from ..records import (
    AddressLinks,
    EventRecord,
    Link,
    MessageRecord,
    PageRequest,
    SyncBatch,
    Target,
    TargetKind,
    Viewer,
    Window,
)

__all__ = [
    "owner_of",
    "ALICE",
    "BOB",
    "CAROL",
    "T0",
    "UTC",
    "WIDE",
    "addr",
    "all_events",
    "all_threads",
    "attendee",
    "batch",
    "channel",
    "dump",
    "event",
    "links",
    "message",
    "person",
    "setup_channels",
]

UTC = timezone.utc
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
#: A window wide enough for every event the suite creates.
WIDE = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

ALICE = "alice@acme.example"
BOB = "bob@sub.acme.example"
CAROL = "carol@other.example"


def owner_of(store: Store, channel_id: str) -> Viewer:
    """The ``Viewer`` who owns a stored channel (to read its skip records as kept)."""
    found = store.channel(channel_id)
    if found is None:
        raise LookupError(f"no channel {channel_id!r}")
    return Viewer(found.user_id)


def addr(key: str, name: str = "") -> Address:
    return Address(key=key, email=key, name=name)


def person(person_id: str) -> Target:
    return Target(kind=TargetKind.PERSON, id=person_id)


def links(key: str, *person_ids: str, kind: TargetKind = TargetKind.PERSON) -> AddressLinks:
    return AddressLinks(key=key, links=tuple(Link(kind=kind, id=p) for p in person_ids))


def channel(
    channel_id: str = "c1", user_id: str = "u1", visibility: Visibility = Visibility.FULL
) -> Channel:
    return Channel(
        id=channel_id,
        user_id=user_id,
        kind=ChannelKind.MAIL,
        provider="imap",
        settings=ChannelSettings(owner=f"{user_id}@org.example", visibility=visibility),
    )


def setup_channels(store: Store, *specs: tuple[str, str, Visibility]) -> None:
    """Save channels given as ``(channel_id, user_id, visibility)``."""
    for channel_id, user_id, visibility in specs or (("c1", "u1", Visibility.FULL),):
        store.save_channel(channel(channel_id, user_id, visibility))


def message(
    provider_id: str,
    message_id: str | None = None,
    *,
    thread: str | None = None,
    date: datetime = T0,
    sender: str = ALICE,
    to: Sequence[str] = ("u1@org.example",),
    subject: str = "Quarterly plan",
    body: str | None = "The body text",
    snippet: str = "The snippet",
    attachments: Sequence[Attachment] = (),
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    direction: Direction = Direction.INCOMING,
    extra: Sequence[Participant] = (),
    warnings: Sequence[str] = (),
) -> MessageRecord:
    mid = message_id or f"{provider_id}@mail.example"
    participants = (
        Participant(addr(sender, sender.split("@")[0].title()), Role.FROM),
        *(Participant(addr(key), Role.TO) for key in to),
        *extra,
    )
    return MessageRecord(
        message=Message(
            provider_id=provider_id,
            message_id=mid,
            date=date,
            subject=subject,
            participants=participants,
            in_reply_to=tuple(in_reply_to),
            references=tuple(references),
            folders=("INBOX",),
            body=body,
            snippet=snippet,
            attachments=tuple(attachments),
            warnings=tuple(warnings),
        ),
        thread_id=thread or f"thread-{mid}",
        direction=direction,
    )


def attendee(key: str, organizer: bool = False) -> Attendee:
    return Attendee(address=addr(key), organizer=organizer)


def event(
    provider_id: str,
    uid: str | None = None,
    *,
    start: datetime = T0,
    duration: timedelta = timedelta(hours=1),
    title: str = "Pricing call",
    attendees: Iterable[str] = (ALICE,),
    recurrence: Sequence[str] = (),
    recurrence_id: datetime | None = None,
    status: EventStatus = EventStatus.CONFIRMED,
    timezone_name: str = "",
) -> EventRecord:
    return EventRecord(
        Event(
            provider_id=provider_id,
            uid=uid or f"{provider_id}-uid",
            start=start,
            end=start + duration,
            title=title,
            description="Agenda: discount",
            location="Room 4",
            conference_url="https://meet.example/abc",
            timezone=timezone_name,
            recurrence=tuple(recurrence),
            recurrence_id=recurrence_id,
            status=status,
            organizer=attendee("u1@org.example", organizer=True),
            attendees=tuple(attendee(k) for k in attendees),
        )
    )


def batch(channel_id: str = "c1", scope_id: str = "INBOX", **fields: Any) -> SyncBatch:
    return SyncBatch(channel_id=channel_id, scope_id=scope_id, **fields)


def all_threads(store: Store, target: Target, viewer: Viewer, limit: int = 50) -> list[Any]:
    """Every timeline page of a target, concatenated."""
    items: list[Any] = []
    after: str | None = None
    while True:
        page = store.timeline(target, viewer, PageRequest(limit=limit, after=after))
        items.extend(page.items)
        if page.next is None:
            return items
        after = page.next


def all_events(
    store: Store, target: Target, viewer: Viewer, window: Window = WIDE, limit: int = 50
) -> list[Any]:
    items: list[Any] = []
    after: str | None = None
    while True:
        page = store.events(target, viewer, window, PageRequest(limit=limit, after=after))
        items.extend(page.items)
        if page.next is None:
            return items
        after = page.next


def dump(
    store: Store,
    *,
    targets: Iterable[Target] = (person("p1"), person("p2")),
    viewers: Iterable[Viewer] = (Viewer("u1"), Viewer("u2"), Viewer("nobody")),
    ids: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything observable through the read API, for before/after comparisons."""
    state: dict[str, Any] = {"channels": list(store.channels())}
    universe = sorted(ids)
    for ch in store.channels():
        scopes = sorted(store.scope_ids(ch.id))
        state[f"scopes {ch.id}"] = scopes
        state[f"skips {ch.id}"] = list(store.skips(ch.id, Viewer(ch.user_id)))
        state[f"skips {ch.id} seen by others"] = list(store.skips(ch.id, Viewer("nobody")))
        state[f"state {ch.id}"] = store.channel_state(ch.id)
        state[f"thread links {ch.id}"] = store.thread_links(ch.id, universe)
        for scope in {*scopes, "INBOX"}:
            state[f"cursor {ch.id} {scope}"] = store.cursor(ch.id, scope)
            state[f"known {ch.id} {scope}"] = sorted(store.known_ids(ch.id, scope, universe))
    state["stored"] = sorted(store.stored_addresses())
    state["threads of ids"] = dict(sorted(store.threads_by_message_ids(universe).items()))
    for target in targets:
        state[f"linked {target}"] = sorted(store.linked_addresses(target))
        for viewer in viewers:
            threads = all_threads(store, target, viewer)
            state[f"timeline {target} {viewer}"] = threads
            for summary in threads:
                state[f"thread {summary.thread_id} {viewer}"] = store.thread(
                    summary.thread_id, viewer
                )
            state[f"events {target} {viewer}"] = all_events(store, target, viewer)
    return state
