"""The CRM's record pages: lists, and each record with its Emails and
Calendar tabs, read through commlink's store as the signed-in user."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs
from django.contrib.auth.decorators import login_required
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from commlink.errors import InvalidInput
from commlink.model import Address
from commlink.records import (
    EventSummary,
    Page,
    PageRequest,
    Target,
    TargetKind,
    ThreadSummary,
    Viewer,
    Window,
)

from .access import page_size, people_by_address, store, viewer_for
from .models import Company, Opportunity, Person

#: how far the Calendar tab looks ahead, and how much of the past one page shows
UPCOMING = timedelta(days=90)
PAST_STEP = timedelta(days=90)
#: at most this many past meetings are read for one page (a busy quarter)
MAX_PAST = 200
#: the calendar pages back no further than this year
EARLIEST_YEAR = 1900
#: longer query parameters are cut (page tokens, dates, searches)
MAX_PARAMETER = 1000

KINDS: dict[str, tuple[type[Model], TargetKind, str]] = {
    "person": (Person, TargetKind.PERSON, "people"),
    "company": (Company, TargetKind.COMPANY, "companies"),
    "opportunity": (Opportunity, TargetKind.OPPORTUNITY, "opportunities"),
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "crm/home.html",
        {
            "companies": Company.objects.all(),
            "opportunities": Opportunity.objects.select_related("company"),
            "people": Person.objects.select_related("company"),
        },
    )


@login_required
def record_list(request: HttpRequest, kind: str) -> HttpResponse:
    model, _, plural = KINDS[kind]
    rows = model._default_manager.all()
    return render(request, "crm/list.html", {"kind": kind, "plural": plural, "rows": rows})


@attrs.frozen
class ShownThread:
    """A timeline entry with its participants' CRM records, for the template."""

    summary: ThreadSummary
    participants: tuple[tuple[Address, str | None], ...]


@attrs.frozen
class ShownEvent:
    event: EventSummary
    attendees: tuple[tuple[Address, str | None], ...]

    @property
    def join_url(self) -> str | None:
        """The conference link, when it is a web link (safe to put in an ``href``)."""
        url = self.event.conference_url or ""
        return url if url.lower().startswith(("https://", "http://")) else None


def with_people(groups: list[list[Address]]) -> list[tuple[tuple[Address, str | None], ...]]:
    """Pair each address with the id of the CRM person holding it (one read)."""
    known = people_by_address(a.key for group in groups for a in group)
    return [tuple((a, known[a.key].id if a.key in known else None) for a in g) for g in groups]


def _distinct(addresses: Iterable[Address]) -> list[Address]:
    """Each address once (a thread lists its participants per message and role)."""
    seen: dict[str, Address] = {}
    for address in addresses:
        seen.setdefault(address.key or address.raw, address)
    return list(seen.values())


def _emails(target: Target, viewer: Viewer, after: str | None) -> dict[str, Any]:
    page = store().timeline(target, viewer, PageRequest(limit=page_size(), after=after))
    threads = list(page.items)
    linked = with_people([_distinct(p.address for p in t.participants) for t in threads])
    return {
        "threads": [ShownThread(t, people) for t, people in zip(threads, linked, strict=True)],
        "next": page.next,
        "paged": after is not None,
    }


def _events(
    target: Target, viewer: Viewer, window: Window, limit: int, after: str | None
) -> Page[EventSummary]:
    return store().events(target, viewer, window, PageRequest(limit=limit, after=after))


def _shown(events: list[EventSummary]) -> list[ShownEvent]:
    groups = [[a.address for a in e.attendees] for e in events]
    linked = with_people(groups)
    return [ShownEvent(e, people) for e, people in zip(events, linked, strict=True)]


def _calendar(
    target: Target, viewer: Viewer, after: str | None, before: datetime | None
) -> dict[str, Any]:
    now = timezone.now()
    upcoming = _events(target, viewer, Window(now, now + UPCOMING), page_size(), after)
    end = min(before or now, now)
    past: list[EventSummary] = []
    token: str | None = None
    while len(past) < MAX_PAST:
        page = _events(target, viewer, Window(end - PAST_STEP, end), MAX_PAST, token)
        past.extend(page.items)
        token = page.next
        if token is None:
            break
    past.reverse()
    return {
        "upcoming": _shown(list(upcoming.items)),
        "upcoming_next": upcoming.next,
        "past": _shown(past[:MAX_PAST]),
        "past_from": end - PAST_STEP,
        "past_to": end,
        "earlier": (end - PAST_STEP).isoformat(),
    }


def _moment(text: str) -> datetime | Literal[False] | None:
    """An aware date and time from a page link (``None`` if none was given,
    ``False`` if it is not one, or too far back to page from)."""
    if not text:
        return None
    try:
        moment = parse_datetime(text[:MAX_PARAMETER])
    except ValueError:
        return False
    if moment is None or moment.tzinfo is None or moment.year < EARLIEST_YEAR:
        return False
    return moment


@login_required
def record(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    try:
        model, target_kind, plural = KINDS[kind]
    except KeyError:
        raise Http404("no such kind of record") from None
    row = get_object_or_404(model, pk=pk)
    target = Target(target_kind, str(row.pk))
    viewer = viewer_for(request.user)
    tab = "calendar" if request.GET.get("tab") == "calendar" else "emails"
    context: dict[str, Any] = {
        "kind": kind,
        "plural": plural,
        "row": row,
        "tab": tab,
        "edit_url": f"admin:crm_{model._meta.model_name}_change",
    }
    try:
        if tab == "emails":
            context.update(_emails(target, viewer, request.GET.get("after") or None))
        else:
            before = _moment(request.GET.get("before", ""))
            if before is False:
                return HttpResponseBadRequest("before must be an ISO date and time with a zone")
            context.update(_calendar(target, viewer, request.GET.get("after") or None, before))
    except InvalidInput:
        return HttpResponseBadRequest("that page link is not valid any more")
    return render(request, f"crm/{kind}.html", context)
