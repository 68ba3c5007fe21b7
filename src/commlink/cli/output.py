"""Plain-text rendering of timelines, meetings and skip reasons for the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from ..model import Participant, Role
from ..records import EventSummary, Skip, ThreadSummary, ThreadView

__all__ = ["format_events", "format_skips", "format_thread", "format_threads"]


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _people(participants: Iterable[Participant], limit: int = 4) -> str:
    names: list[str] = []
    for p in participants:
        if p.role in (Role.REPLY_TO, Role.SENDER):
            continue
        label = p.address.name or p.address.email or p.address.raw
        if label not in names:
            names.append(label)
    more = f" +{len(names) - limit}" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _hidden(value: str | None) -> str:
    return value if value is not None else "(hidden)"


def format_threads(threads: Sequence[ThreadSummary]) -> list[str]:
    if not threads:
        return ["  (no email)"]
    lines = []
    for t in threads:
        count = f"{t.message_count} message" + ("s" if t.message_count != 1 else "")
        lines.append(f"  {_when(t.last_at)}  {_hidden(t.subject)}  [{count}, {t.visibility.value}]")
        lines.append(f"      with {_people(t.participants)}")
        if t.snippet:
            lines.append(f"      {t.snippet[:90]}")
    return lines


def format_thread(view: ThreadView) -> list[str]:
    lines = []
    for m in view.messages:
        sender = next((p for p in m.participants if p.role is Role.FROM), None)
        who = (sender.address.name or sender.address.email) if sender else "?"
        lines.append(f"  {_when(m.date)}  {who} ({m.direction.value}): {_hidden(m.subject)}")
        if m.body:
            text = [line.strip() for line in m.body.splitlines() if line.strip()]
            lines.extend(f"      {line}" for line in text[:3])
    return lines


def format_events(events: Sequence[EventSummary]) -> list[str]:
    if not events:
        return ["  (no meetings)"]
    lines = []
    for e in events:
        who = ", ".join(a.address.name or a.address.email for a in e.attendees[:4])
        link = f"  {e.conference_url}" if e.conference_url else ""
        lines.append(f"  {_when(e.start)}  {_hidden(e.title)}  [{e.visibility.value}]{link}")
        lines.append(f"      with {who}")
    return lines


def format_skips(skips: Sequence[Skip]) -> list[str]:
    if not skips:
        return ["  (nothing skipped)"]
    return [
        f"  {s.reason.value:<16} {s.subject or s.message_id or s.provider_id}"
        + (f"  <{s.sender}>" if s.sender else "")
        + (f"  ({s.detail})" if s.detail else "")
        for s in skips
    ]
