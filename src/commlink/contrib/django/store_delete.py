"""Deletions of ``DjangoStore``: associations, blocklist matches, garbage
collection of copies, messages and events, and the timeline rows
(``ThreadTarget``) that every write keeps in step.

A channel's copy of a message goes when the channel's last association with
it goes; the logical message when no copy is left. An event row is one
channel's copy and goes with that channel's last association to it. Every
function runs inside the caller's transaction on the alias ``using``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import reduce
from operator import or_

from django.db import connections
from django.db.models import Q

from ...stores.common import parse_entries
from . import models as m
from .store_events import CommitEvents
from .store_rows import chunked

__all__ = [
    "collect",
    "delete_assocs",
    "forget_unstored_links",
    "refresh_threads",
    "remove_matching",
    "threads_of_keys",
]


def threads_of_keys(using: str, keys: Collection[str]) -> set[str]:
    """Threads with a message one of these address keys took part in."""
    # explicit key lists at each step: a semi-join over the whole table may
    # be planned as a scan of it
    pks: set[int] = set()
    for part in chunked(sorted(keys)):
        holders = m.Participant.objects.using(using).filter(key__in=part)
        pks.update(holders.values_list("message_pk", flat=True))
    found: set[str] = set()
    for pk_part in chunked(sorted(pks)):
        rows = m.Message.objects.using(using).filter(id__in=pk_part)
        found.update(rows.values_list("thread_id", flat=True))
    return found


def refresh_threads(using: str, thread_ids: Collection[str]) -> None:
    """Rebuild the timeline rows (``ThreadTarget``) of these threads from
    their messages, copies, participants and the address links: a thread is
    on a record's timeline when any copy's valid participants link to it,
    at the time of its latest copy."""
    for part in chunked(sorted(set(thread_ids))):
        m.ThreadTarget.objects.using(using).filter(thread_id__in=part).delete()
        messages = m.Message.objects.using(using).filter(thread_id__in=part)
        thread_of = dict(messages.values_list("id", "thread_id"))
        last: dict[str, datetime] = {}
        threads_by_key: dict[str, set[str]] = {}
        for pks in chunked(sorted(thread_of)):
            copies = m.MessageCopy.objects.using(using).filter(message_pk__in=pks)
            for pk, sent_at in copies.values_list("message_pk", "sent_at"):
                thread = thread_of[pk]
                if thread not in last or sent_at > last[thread]:
                    last[thread] = sent_at
            people = m.Participant.objects.using(using).filter(message_pk__in=pks, valid=True)
            for pk, key in people.exclude(key="").values_list("message_pk", "key").distinct():
                threads_by_key.setdefault(key, set()).add(thread_of[pk])
        for threads in threads_by_key.values():
            threads &= last.keys()  # a thread is on a timeline through a copy
        rows: dict[tuple[str, str, str], datetime] = {}
        for key_part in chunked(sorted(threads_by_key)):
            links = m.AddressLink.objects.using(using).filter(key__in=key_part)
            for key, kind, target in links.values_list("key", "kind", "target_id"):
                for thread in threads_by_key[key]:
                    rows[(kind, target, thread)] = last[thread]
        # a commit of another channel touching the same thread may have
        # written its rows since they were deleted here (PostgreSQL)
        _keep_latest(using, rows)


def _keep_latest(using: str, rows: dict[tuple[str, str, str], datetime]) -> None:
    """Insert timeline rows; a row another commit wrote meanwhile keeps the
    later of the two times (``bulk_create`` can only take the new one)."""
    connection = connections[using]
    ordered = sorted(rows.items())
    later = {"postgresql": "GREATEST", "sqlite": "MAX"}.get(connection.vendor)
    if later is None:  # another database: the last writer's time
        m.ThreadTarget.objects.using(using).bulk_create(
            [
                m.ThreadTarget(kind=kind, target_id=target, thread_id=thread, last_at=at)
                for (kind, target, thread), at in ordered
            ],
            update_conflicts=True,
            unique_fields=["kind", "target_id", "thread_id"],
            update_fields=["last_at"],
        )
        return
    if not ordered:
        return
    quote = connection.ops.quote_name
    meta = m.ThreadTarget._meta
    table = quote(meta.db_table)
    # plain fields: each column carries its field's name
    kind, target, thread, at = (quote(n) for n in ("kind", "target_id", "thread_id", "last_at"))
    sql = (
        f"INSERT INTO {table} ({kind}, {target}, {thread}, {at}) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT ({kind}, {target}, {thread}) "
        f"DO UPDATE SET {at} = {later}({table}.{at}, excluded.{at})"
    )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*key, adapt(moment)) for key, moment in ordered])


def delete_assocs(
    using: str,
    channel_id: str,
    scope_id: str | None,
    provider_ids: Collection[str] | None,
    changes: CommitEvents | None = None,
) -> tuple[set[int], set[int]]:
    """Delete associations of a channel (one scope, some provider ids, when
    given); returns the message and event pks that lost one. ``changes``
    learns which provider ids went."""
    messages: set[int] = set()
    events: set[int] = set()
    parts = [None] if provider_ids is None else list(chunked(sorted(set(provider_ids))))
    for part in parts:
        for model, column, dropped, report in (
            (m.MessageAssoc, "message_pk", messages, changes and changes.removed_messages),
            (m.EventAssoc, "event_pk", events, changes and changes.removed_events),
        ):
            rows = model.objects.using(using).filter(channel_id=channel_id)
            if scope_id is not None:
                rows = rows.filter(scope_id=scope_id)
            if part is not None:
                rows = rows.filter(provider_id__in=part)
            removed = list(rows.values_list(column, "provider_id"))
            dropped.update(int(pk) for pk, _ in removed)
            if report:
                report(removed)
            rows.delete()
    return messages, events


def _matching(entries: Collection[str]) -> Q | None:
    """Participant or attendee rows matching blocklist entries (addresses,
    or ``@domain`` with its subdomains)."""
    keys, domains = parse_entries(entries)
    conditions = []
    if keys:
        conditions.append(Q(key__in=sorted(keys)))
    if domains:
        conditions.append(Q(domain__in=sorted(domains)))
        conditions.extend(Q(domain__endswith="." + d) for d in sorted(domains))
    return reduce(or_, conditions) if conditions else None


def remove_matching(
    using: str,
    channel_id: str | None,
    entries: Collection[str],
    gone_keys: set[str] | None = None,
) -> tuple[int, int]:
    """Delete the associations of one channel (of every channel for
    ``None``) whose message or one of whose events has, in that channel's
    copy, a participant matching blocklist entries, and collect; returns
    how many message and event associations went. ``gone_keys`` collects the
    address keys of the participant and attendee rows deleted."""
    matching = _matching(entries)
    if matching is None:
        return 0, 0
    mine = {} if channel_id is None else {"channel_id": channel_id}
    dropped: dict[str, tuple[set[int], set[int]]] = {}
    # a channel's own copy: another channel's copy never deletes one
    people = m.Participant.objects.using(using).filter(matching, **mine)
    hits = set(people.values_list("message_pk", "channel_id").distinct())
    message_count = 0
    for pk_part in chunked(sorted({pk for pk, _ in hits})):
        assocs = m.MessageAssoc.objects.using(using).filter(message_pk__in=pk_part, **mine)
        doomed = [
            (pk, ch, message_pk)
            for pk, ch, message_pk in assocs.values_list("id", "channel_id", "message_pk")
            if (message_pk, ch) in hits
        ]
        for _pk, ch, message_pk in doomed:
            dropped.setdefault(ch, (set(), set()))[0].add(int(message_pk))
        for id_part in chunked([pk for pk, _, _ in doomed]):
            m.MessageAssoc.objects.using(using).filter(id__in=id_part).delete()
        message_count += len(doomed)
    # an association is a provider id: it goes as a whole when any of its
    # events matches (a calendar object may hold a series and overrides)
    hit_events = m.Attendee.objects.using(using).filter(matching)
    objects: set[tuple[str, str, str]] = set()
    for pk_part in chunked(sorted(set(hit_events.values_list("event_pk", flat=True)))):
        objects.update(
            m.EventAssoc.objects.using(using)
            .filter(event_pk__in=pk_part, **mine)
            .values_list("channel_id", "scope_id", "provider_id")
        )
    by_scope: dict[tuple[str, str], list[str]] = {}
    for ch, scope, provider_id in objects:
        by_scope.setdefault((ch, scope), []).append(provider_id)
    for (ch, scope), provider_ids in sorted(by_scope.items()):
        _, events = delete_assocs(using, ch, scope, provider_ids)
        dropped.setdefault(ch, (set(), set()))[1].update(events)
    for ch in sorted(dropped):
        collect(using, ch, *dropped[ch], gone_keys=gone_keys)
    return message_count, len(objects)


def collect(
    using: str,
    channel_id: str,
    message_pks: Collection[int],
    event_pks: Collection[int],
    *,
    gone_keys: set[str] | None = None,
) -> None:
    """After associations of ``channel_id`` went: delete the channel's copies
    of the given messages that it no longer has an association with, the
    messages left without a copy, and the given events left without an
    association; rebuild the timeline rows of the threads concerned.
    ``gone_keys`` collects the address keys of the participant and attendee
    rows deleted (see ``forget_unstored_links``)."""
    threads: set[str] = set()
    for pk_part in chunked(sorted(message_pks)):
        copies = m.MessageCopy.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=pk_part
        )
        held = set(copies.values_list("message_pk", flat=True))
        still = m.MessageAssoc.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=sorted(held)
        )
        dead = sorted(held - set(still.values_list("message_pk", flat=True)))
        if not dead:
            continue
        logical = m.Message.objects.using(using).filter(id__in=dead)
        threads.update(logical.values_list("thread_id", flat=True))
        people = m.Participant.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=dead
        )
        if gone_keys is not None:
            gone_keys.update(people.values_list("key", flat=True))
        people.delete()
        m.MessageRef.objects.using(using).filter(
            channel_id=channel_id, message_pk__in=dead
        ).delete()
        copies.filter(message_pk__in=dead).delete()
        others = m.MessageCopy.objects.using(using).filter(message_pk__in=dead)
        kept = set(others.values_list("message_pk", flat=True))
        logical.exclude(id__in=sorted(kept)).delete()
    refresh_threads(using, threads)
    for pk_part in chunked(sorted(event_pks)):
        linked = m.EventAssoc.objects.using(using).filter(event_pk__in=pk_part)
        gone = sorted(set(pk_part) - set(linked.values_list("event_pk", flat=True)))
        if not gone:
            continue
        attendees = m.Attendee.objects.using(using).filter(event_pk__in=gone)
        if gone_keys is not None:
            gone_keys.update(attendees.values_list("key", flat=True))
        attendees.delete()
        m.Event.objects.using(using).filter(id__in=gone).delete()


def forget_unstored_links(using: str, keys: Collection[str]) -> None:
    """Delete the links of the address keys among ``keys`` that no stored
    participant or attendee holds any more (their last copy went)."""
    for part in chunked(sorted(k for k in keys if k)):
        held = set(
            m.Participant.objects.using(using).filter(key__in=part).values_list("key", flat=True)
        )
        held.update(
            m.Attendee.objects.using(using).filter(key__in=part).values_list("key", flat=True)
        )
        unheld = sorted(set(part) - held)
        if unheld:
            m.AddressLink.objects.using(using).filter(key__in=unheld).delete()
