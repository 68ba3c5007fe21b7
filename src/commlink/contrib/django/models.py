"""The tables of ``DjangoStore``: the reference schema on the Django ORM.

They mirror the reference SQL store (``commlink.stores.sql_tables``) table
for table, but are named ``commlink_orm_<name>`` so that both stores can
share one database without clashing. Every model has an integer ``id``; the
natural key of each table is a unique constraint. Rows refer to each other
by plain integer columns (``message_pk``, ``event_pk``) rather than foreign
keys: the store deletes dependent rows itself, one statement per table,
without Django's per-object cascade.

Content is kept per channel (see ``commlink.stores.copies``): one logical
message per Message-ID (``Message``) with one copy per channel holding it
(``MessageCopy``, with its ``Participant`` and ``MessageRef`` rows), and one
``Event`` row per channel, iCalendar UID and recurrence id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

__all__ = [
    "AddressLink",
    "Attendee",
    "Channel",
    "ChannelState",
    "Cursor",
    "Erasure",
    "Event",
    "EventAssoc",
    "Lease",
    "Message",
    "MessageAssoc",
    "MessageCopy",
    "MessageRef",
    "OAuthGrant",
    "OutboxConsumer",
    "OutboxEvent",
    "Participant",
    "PushSubscription",
    "SkipRecord",
    "ThreadTarget",
]


def _table(name: str) -> str:
    return f"commlink_orm_{name}"


# typed field factories (the models are checked without the django-stubs plugin)


def _text(**options: Any) -> models.TextField[str, str]:
    return models.TextField(**options)


def _blank() -> models.TextField[str, str]:
    return models.TextField(default="", blank=True)


def _nullable_text() -> models.TextField[str | None, str | None]:
    return models.TextField(null=True)


def _auto() -> models.BigAutoField[int, int]:
    return models.BigAutoField(primary_key=True)


def _int() -> models.IntegerField[int, int]:
    return models.IntegerField()


def _bigint(**options: Any) -> models.BigIntegerField[int, int]:
    return models.BigIntegerField(**options)


def _bool() -> models.BooleanField[bool, bool]:
    return models.BooleanField()


def _moment(**options: Any) -> models.DateTimeField[datetime, datetime]:
    return models.DateTimeField(**options)


def _nullable_moment() -> models.DateTimeField[datetime | None, datetime | None]:
    return models.DateTimeField(null=True)


class Channel(models.Model):
    """A connected mailbox or calendar with its settings (a JSON document)."""

    id = _text(primary_key=True)
    user_id = _text()
    kind = _text()
    provider = _text()
    visibility = _text()
    settings = _text()

    class Meta:
        db_table = _table("channel")


class ChannelState(models.Model):
    """A channel's sync status, failures and schedule."""

    channel_id = _text(primary_key=True)
    status = _text()
    stage = _text()
    failures = _int()
    last_error = _blank()
    next_attempt = _nullable_moment()
    last_success = _nullable_moment()
    aliases = _blank()  # discovered owner aliases, a JSON list ('' for none)

    class Meta:
        db_table = _table("channel_state")


class Lease(models.Model):
    """Which runner holds a channel, until when."""

    channel_id = _text(primary_key=True)
    holder = _text()
    expires_at = _moment()

    class Meta:
        db_table = _table("lease")


class Cursor(models.Model):
    """The sync cursor of a channel's scope."""

    id = _auto()
    channel_id = _text()
    scope_id = _text()
    cursor = _text()

    class Meta:
        db_table = _table("cursor")
        constraints = (
            models.UniqueConstraint(
                fields=["channel_id", "scope_id"], name="commlink_orm_cursor_uq"
            ),
        )


class Message(models.Model):
    """A logical message: one per Message-ID, with its thread."""

    id = _auto()
    message_id = _text(unique=True)
    thread_id = _text(db_index=True)

    class Meta:
        db_table = _table("message")


class MessageCopy(models.Model):
    """A channel's copy of a logical message, kept while the channel has an
    association with it."""

    id = _auto()
    message_pk = _bigint()
    channel_id = _text()
    sent_at = _moment()
    subject = _blank()
    snippet = _blank()
    body = _nullable_text()
    html = _nullable_text()
    attachments = _blank()
    warnings = _text(default="[]")
    # digest of the copy, its participants and references: a re-committed
    # message with the same digest is left as it is
    content_hash = _blank()

    class Meta:
        db_table = _table("message_copy")
        constraints = (
            models.UniqueConstraint(
                fields=["message_pk", "channel_id"], name="commlink_orm_message_copy_uq"
            ),
        )


class Participant(models.Model):
    """A participant of a copy (the timeline links a thread through any copy's)."""

    id = _auto()
    message_pk = _bigint()
    channel_id = _text()
    pos = _int()
    role = _text()
    key = _blank()
    domain = _blank()
    email = _blank()
    name = _blank()
    valid = _bool()
    raw = _blank()

    class Meta:
        db_table = _table("participant")
        constraints = (
            models.UniqueConstraint(
                fields=["message_pk", "channel_id", "pos"], name="commlink_orm_participant_uq"
            ),
        )
        indexes = (
            models.Index(fields=["key"], name="commlink_orm_participant_key"),
            models.Index(fields=["domain"], name="commlink_orm_participant_dom"),
        )


class MessageRef(models.Model):
    """In-Reply-To, References and thread keys of a copy (for threading)."""

    id = _auto()
    message_pk = _bigint()
    channel_id = _text()
    pos = _int()
    ref_id = _text(db_index=True)

    class Meta:
        db_table = _table("message_ref")
        constraints = (
            models.UniqueConstraint(
                fields=["message_pk", "channel_id", "pos"], name="commlink_orm_message_ref_uq"
            ),
        )


class MessageAssoc(models.Model):
    """A provider id of a channel's scope pointing at a logical message."""

    id = _auto()
    channel_id = _text()
    scope_id = _text()
    provider_id = _text()
    message_pk = _bigint(db_index=True)
    generation = _bigint()
    folders = _blank()
    direction = _text()

    class Meta:
        db_table = _table("message_assoc")
        constraints = (
            models.UniqueConstraint(
                fields=["channel_id", "scope_id", "provider_id"],
                name="commlink_orm_message_assoc_uq",
            ),
        )


class Event(models.Model):
    """A channel's copy of an event (its most recent version by SEQUENCE,
    then update time)."""

    id = _auto()
    uid = _text()
    rid_key = _text()
    channel_id = _text()
    recurrence_id = _nullable_moment()
    starts_at = _moment()
    ends_at = _moment()
    title = _blank()
    description = _blank()
    location = _blank()
    all_day = _bool()
    timezone = _blank()
    recurrence = _blank()
    status = _text()
    conference_url = _blank()
    calendar_id = _blank()
    sequence = _int()
    updated = _nullable_moment()

    class Meta:
        db_table = _table("event")
        constraints = (
            models.UniqueConstraint(
                fields=["uid", "rid_key", "channel_id"], name="commlink_orm_event_uq"
            ),
        )


class Attendee(models.Model):
    """An attendee of an event row; position -1 holds its organizer."""

    id = _auto()
    event_pk = _bigint()
    pos = _int()
    key = _blank()
    domain = _blank()
    email = _blank()
    name = _blank()
    valid = _bool()
    raw = _blank()
    status = _text()
    organizer = _bool()
    optional = _bool()

    class Meta:
        db_table = _table("attendee")
        constraints = (
            models.UniqueConstraint(fields=["event_pk", "pos"], name="commlink_orm_attendee_uq"),
        )
        indexes = (
            models.Index(fields=["key"], name="commlink_orm_attendee_key"),
            models.Index(fields=["domain"], name="commlink_orm_attendee_dom"),
        )


class EventAssoc(models.Model):
    """A provider id (a calendar object) of a channel's scope pointing at an event row."""

    id = _auto()
    channel_id = _text()
    scope_id = _text()
    provider_id = _text()
    event_pk = _bigint(db_index=True)
    generation = _bigint()

    class Meta:
        db_table = _table("event_assoc")
        constraints = (
            models.UniqueConstraint(
                fields=["channel_id", "scope_id", "provider_id", "event_pk"],
                name="commlink_orm_event_assoc_uq",
            ),
        )


class AddressLink(models.Model):
    """An address key linked to a CRM record."""

    id = _auto()
    key = _text()
    kind = _text()
    target_id = _text()

    class Meta:
        db_table = _table("address_link")
        constraints = (
            models.UniqueConstraint(
                fields=["key", "kind", "target_id"], name="commlink_orm_address_link_uq"
            ),
        )
        indexes = (models.Index(fields=["kind", "target_id"], name="commlink_orm_link_target"),)


class ThreadTarget(models.Model):
    """A thread on a CRM record's timeline, with the time of its latest
    message: the timeline reads one index range in order. Derived from
    messages, copies, participants and links; every write refreshes the
    rows of the threads it touches."""

    id = _auto()
    kind = _text()
    target_id = _text()
    thread_id = _text(db_index=True)
    last_at = _moment()

    class Meta:
        db_table = _table("thread_target")
        constraints = (
            models.UniqueConstraint(
                fields=["kind", "target_id", "thread_id"],
                name="commlink_orm_thread_target_uq",
            ),
        )
        indexes = (
            models.Index(
                fields=["kind", "target_id", "last_at", "thread_id"],
                name="commlink_orm_timeline",
            ),
        )


class SkipRecord(models.Model):
    """Why a message was left out (kept as the channel's settings allow)."""

    id = _auto()
    channel_id = _text()
    provider_id = _text()
    reason = _text()
    detail = _blank()
    message_id = _blank()
    subject = _blank()
    sender = _blank()
    sent_at = _nullable_moment()

    class Meta:
        db_table = _table("skip")
        constraints = (
            models.UniqueConstraint(
                fields=["channel_id", "provider_id"], name="commlink_orm_skip_uq"
            ),
        )
        indexes = (
            models.Index(fields=["channel_id", "message_id"], name="commlink_orm_skip_message"),
        )


class Erasure(models.Model):
    """An erased address key (a tombstone: the key and the time only)."""

    key = _text(primary_key=True)
    erased_at = _moment()

    class Meta:
        db_table = _table("erasure")


class OAuthGrant(models.Model):
    """An OAuth grant of ``DjangoTokenStore`` (tokens sealed when it has a key)."""

    key = _text(primary_key=True)
    access_token = _text()
    refresh_token = _nullable_text()
    expires_at = _nullable_moment()
    scopes = _blank()
    account = _blank()
    updated_at = _moment()

    class Meta:
        db_table = _table("oauth_grant")


class PushSubscription(models.Model):
    """A push subscription of ``DjangoSubscriptionStore``."""

    id = _text(primary_key=True)
    channel_id = _text(db_index=True)
    provider = _text()
    resource = _blank()
    expires_at = _moment(db_index=True)
    account = _blank()
    secret = _nullable_text()
    data = _blank()

    class Meta:
        db_table = _table("push_subscription")
        indexes = (models.Index(fields=["provider", "account"], name="commlink_orm_push_account"),)


class OutboxEvent(models.Model):
    """A host event (``commlink.events.HostEvent``) waiting for its consumers;
    ``id`` follows commit order."""

    id = _auto()
    type = _text()
    channel_id = _text()
    at = _moment()
    data = _text()  # the event's other fields, JSON

    class Meta:
        db_table = _table("outbox")


class OutboxConsumer(models.Model):
    """A named consumer of the outbox: the highest id it acknowledged, and
    the lease of the worker delivering to it."""

    name = _text(primary_key=True)
    position = _bigint(default=0)
    holder = _blank()
    expires_at = _nullable_moment()

    class Meta:
        db_table = _table("outbox_consumer")
