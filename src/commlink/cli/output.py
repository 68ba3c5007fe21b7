"""Plain-text rendering of timelines, meetings and skip reasons for the CLI.

Everything shown comes from outsiders' mail and events, so every line goes
through ``terminal_safe`` before it reaches a terminal.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from functools import wraps
from typing import Any

import attrs

from ..model import Participant, Role
from ..records import EventSummary, Skip, ThreadSummary, ThreadView
from ..sync.aliases import effective_aliases

__all__ = [
    "AliasInEffect",
    "aliases_in_effect",
    "as_json",
    "format_aliases",
    "format_events",
    "format_skips",
    "format_thread",
    "format_threads",
    "terminal_safe",
    "when_relative",
]

# C0 and C1 controls (escape sequences, BEL, backspace, carriage return...),
# DEL, and the characters that reorder text (bidi embeddings, overrides and
# isolates, direction marks), which can make a line read as something else.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str) -> str:
    """``text`` with control and bidi characters shown as escapes
    (``\\x1b``, ``\\u202e``) instead of acting on the terminal."""
    return text if _UNSAFE.search(text) is None else _UNSAFE.sub(_escape, text)


def _safe_lines(render: Callable[..., list[str]]) -> Callable[..., list[str]]:
    @wraps(render)
    def safe(*args: object) -> list[str]:
        return [terminal_safe(line) for line in render(*args)]

    return safe


def when_relative(value: datetime, now: datetime | None = None) -> str:
    """``"5 minutes ago (2026-12-03 13:10 UTC)"``, ``"in 2 hours (...)"``."""
    now = now or datetime.now(timezone.utc)
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if span >= size:
            count = int(span // size)
            amount = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    else:
        amount = "seconds" if span >= 1 else ""
    relative = "now" if not amount else (f"in {amount}" if seconds > 0 else f"{amount} ago")
    return f"{relative} ({value.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC)"


@attrs.frozen(slots=True)
class AliasInEffect:
    """An owner alias the policy uses, and where it comes from (both may hold)."""

    address: str
    configured: bool
    discovered: bool


def aliases_in_effect(
    configured: Iterable[str], discovered: Iterable[str], owner: str
) -> list[AliasInEffect]:
    """The aliases a sync judges mail with (configured ones and those the
    provider reported), sorted, each marked with its origin."""
    configured, discovered = list(configured), list(discovered)
    mine = {a.lower() for a in configured}
    found = {a.lower() for a in discovered}
    return [
        AliasInEffect(a, a.lower() in mine, a.lower() in found)
        for a in sorted(effective_aliases(configured, discovered, owner))
    ]


def format_aliases(aliases: Sequence[AliasInEffect]) -> str:
    """``aliases: a@x.example (configured); b@x.example (discovered)``."""

    def origin(alias: AliasInEffect) -> str:
        marks = [
            m
            for m, on in (("configured", alias.configured), ("discovered", alias.discovered))
            if on
        ]
        return ", ".join(marks)

    listed = "; ".join(f"{a.address} ({origin(a)})" for a in aliases)
    return terminal_safe(f"aliases: {listed}")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def as_json(value: Any) -> str:
    """Records (attrs values, enums, dates) as JSON text; ``ensure_ascii``
    so no control or bidi character reaches a terminal raw."""
    return json.dumps(_plain(value), indent=2, ensure_ascii=True)


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


@_safe_lines
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


@_safe_lines
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


@_safe_lines
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


@_safe_lines
def format_skips(skips: Sequence[Skip]) -> list[str]:
    if not skips:
        return ["  (nothing skipped)"]
    return [
        f"  {s.reason.value:<16} {s.subject or s.message_id or s.provider_id}"
        + (f"  <{s.sender}>" if s.sender else "")
        + (f"  ({s.detail})" if s.detail else "")
        for s in skips
    ]
