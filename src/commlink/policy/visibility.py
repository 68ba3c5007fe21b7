"""Visibility: what is stored for a channel, and what a viewer may see of it.

The channel owner sees everything stored; other users see what the
channel's visibility allows (``METADATA`` < ``SUBJECT`` < ``FULL``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..model import ChannelSettings, Detail, Event, Message, Visibility
from ..records import EventSummary, MessageView, ThreadSummary

__all__ = [
    "detail_for",
    "effective_visibility",
    "minimise_event",
    "minimise_message",
    "redact_event",
    "redact_message",
    "redact_summary",
]


def detail_for(settings: ChannelSettings) -> Detail:
    """How much to fetch: a metadata-only channel never downloads bodies."""
    return Detail.METADATA if settings.visibility is Visibility.METADATA else Detail.FULL


def minimise_message(message: Message, visibility: Visibility) -> Message:
    """What is stored of a message for a channel with this visibility.

    ``METADATA`` drops the body, HTML, snippet and calendar parts; subject,
    participants and attachment metadata stay (the owner sees them).
    """
    if visibility is not Visibility.METADATA:
        return message
    if (
        message.body is None
        and message.html is None
        and not message.snippet
        and not message.calendar_parts
    ):
        return message
    return attrs.evolve(message, body=None, html=None, snippet="", calendar_parts=())


def minimise_event(event: Event, visibility: Visibility) -> Event:
    """What is stored of an event for a channel with this visibility.

    ``METADATA`` drops the description, location and conference link (a
    join link often carries the meeting's passcode); title, times,
    organiser and attendees stay (the owner sees them).
    """
    if visibility is not Visibility.METADATA:
        return event
    if not event.description and not event.location and not event.conference_url:
        return event
    return attrs.evolve(event, description="", location="", conference_url="")


def effective_visibility(
    viewer_user_id: str, channels: Iterable[tuple[str, Visibility]]
) -> Visibility:
    """What a viewer may see of an item stored through several channels.

    ``channels`` holds ``(owner user id, channel visibility)`` pairs: the
    viewer sees everything when they own any of them, else the most
    generous setting; ``METADATA`` when there are none.
    """
    best = Visibility.METADATA
    for owner, visibility in channels:
        if owner == viewer_user_id:
            return Visibility.FULL
        if visibility.rank > best.rank:
            best = visibility
    return best


def redact_summary(summary: ThreadSummary, visibility: Visibility) -> ThreadSummary:
    """A thread summary as seen at ``visibility`` (subject from ``SUBJECT``;
    snippet at ``FULL``)."""
    return attrs.evolve(
        summary,
        visibility=visibility,
        subject=summary.subject if visibility.rank >= Visibility.SUBJECT.rank else None,
        snippet=summary.snippet if visibility is Visibility.FULL else None,
    )


def redact_message(view: MessageView, visibility: Visibility) -> MessageView:
    """A message as seen at ``visibility`` (subject from ``SUBJECT``; body,
    HTML and attachments at ``FULL``)."""
    full = visibility is Visibility.FULL
    return attrs.evolve(
        view,
        visibility=visibility,
        subject=view.subject if visibility.rank >= Visibility.SUBJECT.rank else None,
        body=view.body if full else None,
        html=view.html if full else None,
        attachments=view.attachments if full else (),
    )


def redact_event(summary: EventSummary, visibility: Visibility) -> EventSummary:
    """An event as seen at ``visibility`` (title from ``SUBJECT``; description,
    location and conference link at ``FULL``)."""
    full = visibility is Visibility.FULL
    return attrs.evolve(
        summary,
        visibility=visibility,
        title=summary.title if visibility.rank >= Visibility.SUBJECT.rank else None,
        description=summary.description if full else None,
        location=summary.location if full else None,
        conference_url=summary.conference_url if full else None,
    )
