"""Converting values to SQL rows and back (no IO)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
from sqlalchemy.engine import RowMapping

from ..model import (
    Address,
    Attachment,
    Attendee,
    CalendarContactPolicy,
    Channel,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Event,
    EventStatus,
    FolderSelection,
    Limits,
    Participant,
    ResponseStatus,
    Role,
    Visibility,
)
from ..records import ChannelState, ChannelStatus, MessageRecord, Reason, Skip, SyncStage
from .common import StoredMessage, stored_warnings

__all__ = [
    "COPY_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "SKIP_COLUMNS",
    "attachments_from_json",
    "attendee_rows",
    "channel_from_row",
    "channel_row",
    "event_from_rows",
    "content_hash",
    "copy_tuple",
    "event_row",
    "folders_json",
    "participant_tuples",
    "rid_key",
    "settings_from_json",
    "settings_to_json",
    "skip_from_row",
    "skip_tuple",
    "state_from_row",
    "state_row",
    "stored_message",
]

Row = RowMapping

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_ENCODER = json.JSONEncoder(check_circular=False)


def settings_to_json(settings: ChannelSettings) -> str:
    return json.dumps(
        {
            "owner": settings.owner,
            "aliases": sorted(settings.aliases),
            "org_domains": sorted(settings.org_domains),
            "visibility": settings.visibility.value,
            "contact_policy": settings.contact_policy.value,
            "calendar_contact_policy": settings.calendar_contact_policy.value,
            "folders": {
                "include": sorted(settings.folders.include),
                "exclude": sorted(settings.folders.exclude),
            },
            "sync_internal": settings.sync_internal,
            "blocklist": sorted(settings.blocklist),
            "create_companies": settings.create_companies,
            "sync_invites": settings.sync_invites,
            "limits": attrs.asdict(settings.limits),
            "skip_details": settings.skip_details,
            "skip_unverified": settings.skip_unverified,
        },
        sort_keys=True,
    )


def settings_from_json(text: str) -> ChannelSettings:
    data: dict[str, Any] = json.loads(text)
    default = ChannelSettings(owner="")
    folders = data.get("folders", {})
    return ChannelSettings(
        owner=str(data["owner"]),
        aliases=frozenset(data.get("aliases", ())),
        org_domains=frozenset(data.get("org_domains", ())),
        visibility=Visibility(data.get("visibility", default.visibility.value)),
        contact_policy=ContactPolicy(data.get("contact_policy", default.contact_policy.value)),
        calendar_contact_policy=CalendarContactPolicy(
            data.get("calendar_contact_policy", default.calendar_contact_policy.value)
        ),
        folders=FolderSelection(
            include=frozenset(folders.get("include", ())),
            exclude=frozenset(folders.get("exclude", ())),
        ),
        sync_internal=bool(data.get("sync_internal", default.sync_internal)),
        blocklist=frozenset(data.get("blocklist", ())),
        create_companies=bool(data.get("create_companies", default.create_companies)),
        sync_invites=bool(data.get("sync_invites", default.sync_invites)),
        limits=limits_from_json(data.get("limits")),
        skip_details=bool(data.get("skip_details", default.skip_details)),
        skip_unverified=bool(data.get("skip_unverified", default.skip_unverified)),
    )


def limits_from_json(data: object) -> Limits:
    """Stored limits; unknown or unreadable entries keep their defaults."""
    if not isinstance(data, dict):
        return Limits()
    known = {f.name for f in attrs.fields(Limits)}
    values = {k: v for k, v in data.items() if k in known and isinstance(v, int) and v > 0}
    return Limits(**values)


def channel_row(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "user_id": channel.user_id,
        "kind": channel.kind.value,
        "provider": channel.provider,
        "visibility": channel.settings.visibility.value,
        "settings": settings_to_json(channel.settings),
    }


def channel_from_row(row: Row) -> Channel:
    return Channel(
        id=row["id"],
        user_id=row["user_id"],
        kind=ChannelKind(row["kind"]),
        provider=row["provider"],
        settings=settings_from_json(row["settings"]),
    )


def state_row(state: ChannelState) -> dict[str, Any]:
    return {
        "channel_id": state.channel_id,
        "status": state.status.value,
        "stage": state.stage.value,
        "failures": state.failures,
        "last_error": state.last_error,
        "next_attempt": state.next_attempt,
        "last_success": state.last_success,
        "aliases": json.dumps(list(state.aliases)) if state.aliases else "",
    }


def state_from_row(row: Row) -> ChannelState:
    return ChannelState(
        channel_id=row["channel_id"],
        status=ChannelStatus(row["status"]),
        stage=SyncStage(row["stage"]),
        failures=int(row["failures"]),
        last_error=row["last_error"],
        next_attempt=row["next_attempt"],
        last_success=row["last_success"],
        aliases=_aliases(row.get("aliases") or ""),
    )


def _aliases(text: str) -> tuple[str, ...]:
    """The ``aliases`` column: a JSON list of address keys, '' for none."""
    if not text:
        return ()
    found = json.loads(text)
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


def _attachments_json(attachments: Sequence[Attachment]) -> str:
    if not attachments:
        return "[]"
    return json.dumps(
        [[a.filename, a.content_type, a.size, a.inline, a.content_id, a.part] for a in attachments]
    )


def attachments_from_json(text: str) -> tuple[Attachment, ...]:
    """Stored attachments; rows written before ``part`` existed have five fields."""
    if not text:
        return ()
    return tuple(
        Attachment(
            filename=f, content_type=t, size=int(s), inline=bool(i), content_id=c, part=str(p)
        )
        for f, t, s, i, c, *rest in json.loads(text)
        for p in (rest[0] if rest else "",)
    )


def folders_json(folders: Sequence[str]) -> str:
    """The ``folders`` column of a message association."""
    return json.dumps(list(folders)) if folders else "[]"


#: Columns of ``copy_tuple``, in order.
COPY_COLUMNS = (
    "message_pk",
    "channel_id",
    "sent_at",
    "subject",
    "snippet",
    "body",
    "html",
    "attachments",
    "warnings",
    "content_hash",
)


def copy_tuple(
    message_pk: int, channel_id: str, record: MessageRecord, digest: str
) -> tuple[Any, ...]:
    """A ``message_copies`` row in ``COPY_COLUMNS`` order."""
    msg = record.message
    return (
        message_pk,
        channel_id,
        msg.date,
        msg.subject,
        msg.snippet,
        msg.body,
        msg.html,
        _attachments_json(msg.attachments),
        _warnings_json(msg.warnings),
        digest,
    )


def _warnings_json(warnings: Sequence[str]) -> str:
    """The ``warnings`` column of a copy: what ``stored_warnings`` keeps."""
    kept = stored_warnings(warnings)
    return json.dumps(list(kept)) if kept else "[]"


def _warnings(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    found = json.loads(text)
    if not isinstance(found, list):
        return ()
    return tuple(str(w) for w in found)


def _address_fields(address: Address) -> tuple[str, str, str, bool, str]:
    return (address.key, address.email, address.name, address.valid, address.raw)


def content_hash(record: MessageRecord) -> str:
    """A digest of what committing ``record`` writes into its channel's copy:
    the ``message_copies`` row (warnings included), participants and
    references (not the thread, which belongs to the logical message, nor the
    provider id, folders or direction, which belong to the association)."""
    msg = record.message
    fields: list[Any] = [
        (msg.date - _EPOCH) // _MICROSECOND,
        msg.subject,
        msg.snippet,
        None if msg.body is None else len(msg.body),
        _attachments_json(msg.attachments),
        _warnings_json(msg.warnings),
        [(p.role.value, *_address_fields(p.address)) for p in msg.participants],
        msg.in_reply_to,
        msg.references,
        record.thread_keys,
    ]
    if msg.html is not None:  # (copies without HTML keep the digest they had)
        fields.append(len(msg.html))
    head = _ENCODER.encode(fields)
    # the JSON head is self-delimiting and holds the body's and HTML's lengths:
    # no two different records feed the same bytes
    digest = hashlib.sha1(head.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    if msg.body:
        digest.update(msg.body.encode("utf-8", "surrogatepass"))
    if msg.html:
        digest.update(msg.html.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _address_columns(address: Address) -> dict[str, Any]:
    return {
        "key": address.key,
        "domain": address.domain,
        "email": address.email,
        "name": address.name,
        "valid": address.valid,
        "raw": address.raw,
    }


def _address(row: Row) -> Address:
    return Address(
        key=row["key"],
        email=row["email"],
        name=row["name"],
        valid=bool(row["valid"]),
        raw=row["raw"],
    )


#: Columns of ``participant_tuples``, in order.
PARTICIPANT_COLUMNS = (
    "message_pk",
    "channel_id",
    "pos",
    "role",
    "key",
    "domain",
    "email",
    "name",
    "valid",
    "raw",
)


def participant_tuples(
    message_pk: int, channel_id: str, participants: Sequence[Participant]
) -> list[tuple[Any, ...]]:
    """``participants`` rows of a copy in ``PARTICIPANT_COLUMNS`` order."""
    return [
        (
            message_pk,
            channel_id,
            pos,
            p.role.value,
            p.address.key,
            p.address.domain,
            p.address.email,
            p.address.name,
            p.address.valid,
            p.address.raw,
        )
        for pos, p in enumerate(participants)
    ]


def participant_from_row(row: Row) -> Participant:
    return Participant(address=_address(row), role=Role(row["role"]))


def stored_message(row: Mapping[Any, Any], participants: Sequence[Participant]) -> StoredMessage:
    """A copy as the read path needs it (``body`` and ``warnings`` may be left
    out of ``row``)."""
    return StoredMessage(
        message_id=row["message_id"],
        thread_id=row["thread_id"],
        date=row["sent_at"],
        subject=row["subject"],
        snippet=row["snippet"],
        body=row.get("body"),
        attachments=attachments_from_json(row["attachments"]),
        participants=tuple(participants),
        warnings=_warnings(row.get("warnings")),
        html=row.get("html"),
    )


def rid_key(recurrence_id: datetime | None) -> str:
    """A non-null key for ``(uid, recurrence_id)`` uniqueness ('' for masters)."""
    if recurrence_id is None:
        return ""
    return recurrence_id.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def event_row(event: Event, channel_id: str) -> dict[str, Any]:
    """An ``events`` row: a channel's copy of the event."""
    return {
        "uid": event.uid,
        "rid_key": rid_key(event.recurrence_id),
        "channel_id": channel_id,
        "recurrence_id": event.recurrence_id,
        "starts_at": event.start,
        "ends_at": event.end,
        "title": event.title,
        "description": event.description,
        "location": event.location,
        "all_day": event.all_day,
        "timezone": event.timezone,
        "recurrence": json.dumps(list(event.recurrence)) if event.recurrence else "[]",
        "status": event.status.value,
        "conference_url": event.conference_url,
        "calendar_id": event.calendar_id,
        "sequence": event.sequence,
        "updated": event.updated,
    }


def _attendee_row(event_pk: int, pos: int, attendee: Attendee) -> dict[str, Any]:
    return {
        "event_pk": event_pk,
        "pos": pos,
        **_address_columns(attendee.address),
        "status": attendee.status.value,
        "organizer": attendee.organizer,
        "optional": attendee.optional,
    }


def attendee_rows(event_pk: int, event: Event) -> list[dict[str, Any]]:
    rows = [_attendee_row(event_pk, pos, a) for pos, a in enumerate(event.attendees)]
    if event.organizer is not None:
        rows.append(_attendee_row(event_pk, -1, event.organizer))
    return rows


def _attendee(row: Row) -> Attendee:
    return Attendee(
        address=_address(row),
        status=ResponseStatus(row["status"]),
        organizer=bool(row["organizer"]),
        optional=bool(row["optional"]),
    )


def event_from_rows(row: Row, people: Sequence[Row], provider_id: str = "") -> Event:
    """An event from its row and its attendee rows (ordered by position)."""
    organizer = next((_attendee(p) for p in people if p["pos"] == -1), None)
    return Event(
        provider_id=provider_id,
        uid=row["uid"],
        start=row["starts_at"],
        end=row["ends_at"],
        title=row["title"],
        description=row["description"],
        location=row["location"],
        all_day=bool(row["all_day"]),
        timezone=row["timezone"],
        recurrence_id=row["recurrence_id"],
        recurrence=tuple(json.loads(row["recurrence"] or "[]")),
        status=EventStatus(row["status"]),
        organizer=organizer,
        attendees=tuple(_attendee(p) for p in people if p["pos"] >= 0),
        conference_url=row["conference_url"],
        calendar_id=row["calendar_id"],
        sequence=int(row["sequence"]),
        updated=row["updated"],
    )


#: Columns of ``skip_tuple``, in order.
SKIP_COLUMNS = (
    "channel_id",
    "provider_id",
    "reason",
    "detail",
    "message_id",
    "subject",
    "sender",
    "sent_at",
)


def skip_tuple(channel_id: str, skip: Skip) -> tuple[Any, ...]:
    """A ``skips`` row in ``SKIP_COLUMNS`` order."""
    return (
        channel_id,
        skip.provider_id,
        skip.reason.value,
        skip.detail,
        skip.message_id,
        skip.subject,
        skip.sender,
        skip.date,
    )


def skip_from_row(row: Row) -> Skip:
    return Skip(
        provider_id=row["provider_id"],
        reason=Reason(row["reason"]),
        detail=row["detail"],
        message_id=row["message_id"],
        subject=row["subject"],
        sender=row["sender"],
        date=row["sent_at"],
    )
