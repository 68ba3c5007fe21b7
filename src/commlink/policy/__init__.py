"""The pure policy layer: what is kept, who it links to, who sees what, which thread.

Nothing here does IO; the directory is reached only through its batched
methods.
"""

from __future__ import annotations

from .contacts import contacts_to_create, event_contacts_to_create, names_for
from .filters import decide, decide_event, direction, org_domains
from .matching import match_addresses
from .pipeline import Evaluation, EventEvaluation, evaluate, evaluate_events
from .skips import minimise_skip, visible_skips
from .threads import ThreadAssignment, assign_threads, lookup_ids
from .visibility import (
    detail_for,
    effective_visibility,
    minimise_event,
    minimise_message,
    redact_event,
    redact_message,
    redact_summary,
)

__all__ = [
    "EventEvaluation",
    "Evaluation",
    "ThreadAssignment",
    "assign_threads",
    "contacts_to_create",
    "decide",
    "decide_event",
    "detail_for",
    "direction",
    "effective_visibility",
    "evaluate",
    "evaluate_events",
    "event_contacts_to_create",
    "lookup_ids",
    "match_addresses",
    "minimise_event",
    "minimise_message",
    "minimise_skip",
    "names_for",
    "org_domains",
    "redact_event",
    "redact_message",
    "redact_summary",
    "visible_skips",
]
