"""The pages about mail itself: one conversation and its attachments, "why is
this email missing?", and the signed-in user's connected accounts."""

from __future__ import annotations

from typing import Any

import attrs
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from commlink.addresses import blocklist_match, in_domains, is_role_address, parse_address
from commlink.contrib.django.attachments import attachment_response
from commlink.contrib.django.channels import ConfiguredChannel
from commlink.contrib.django.conf import get_directory
from commlink.errors import InvalidInput
from commlink.model import Address, Attachment, Channel, Visibility
from commlink.records import MessageView, PageRequest, Reason, Skip
from commlink.sync.engine import SyncEngine

from .access import page_size, people_by_address, store, viewer_for
from .channels import configured_channels, signed_in_account, sync_channel
from .rendering import attachment_url, safe_html
from .views import MAX_PARAMETER, with_people

#: what each skip reason means, in the words of the "missing" page
REASONS = {
    Reason.INTERNAL: "Every participant is inside the organisation: internal mail is not imported.",
    Reason.GROUP: "It looks like group or automated mail (a list, a newsletter, a no-reply).",
    Reason.BLOCKED: "A participant matches the mailbox owner's blocklist.",
    Reason.EXCLUDED_FOLDER: "It is in a folder that is not synced (spam, trash, drafts...).",
    Reason.INVALID: "The message could not be read well enough to import.",
    Reason.ERROR: "Importing it failed; the next sync tries again.",
    Reason.ERASED: "A participant's address was erased on request; its mail is never imported.",
    Reason.UNVERIFIED: "Its sender was forged (the mail server's sender check failed), and this "
    "mailbox leaves such mail out.",
    Reason.IMPORTED: "It was imported.",
}
#: at most this many skip records are shown for an address search
MAX_SHOWN_SKIPS = 50


@attrs.frozen
class ShownMessage:
    view: MessageView
    #: (header role, address, id of the CRM person holding it)
    participants: tuple[tuple[str, Address, str | None], ...]
    html: str | None
    #: (attachment, the URL it downloads from; ``None`` below full visibility)
    attachments: tuple[tuple[Attachment, str | None], ...]
    #: the receiving server says the sender's domain did not send it
    unverified: bool


def _shown(
    thread_id: str, view: MessageView, people: tuple[tuple[Address, str | None], ...]
) -> ShownMessage:
    full = view.visibility is Visibility.FULL
    links = tuple(
        (a, attachment_url(thread_id, view.message_id, n=str(n)) if full else None)
        for n, a in enumerate(view.attachments)
    )
    html = safe_html(view, thread_id)
    return ShownMessage(view, _with_roles(view, people), html, links, view.sender_unverified)


@login_required
def thread(request: HttpRequest) -> HttpResponse:
    thread_id = request.GET.get("id", "")
    if not thread_id:
        raise Http404("no thread given")
    after = request.GET.get("after") or None
    try:
        page = PageRequest(limit=page_size(), after=after)
        view = store().thread(thread_id, viewer_for(request.user), page)
    except InvalidInput:
        return HttpResponseBadRequest("that page link is not valid any more")
    if view is None:
        raise Http404("no such conversation")
    shown = list(view.messages)
    linked = with_people([[p.address for p in m.participants] for m in shown])
    subject = next((m.subject for m in shown if m.subject), None)
    return render(
        request,
        "crm/thread.html",
        {
            "thread_id": thread_id,
            "subject": subject,
            "thread_messages": [
                _shown(thread_id, m, people) for m, people in zip(shown, linked, strict=True)
            ],
            "next": view.next,
            "paged": after is not None,
        },
    )


@login_required
def attachment(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """One attachment, for a user shown its message in full: streamed from the
    mailbox, as a download unless it is a plain picture asked for inline."""
    query = request.GET
    index, content_id = query.get("n"), query.get("cid")
    if (index is None) == (content_id is None) or not _small_number(index or "0"):
        return HttpResponseBadRequest("give n (a number) or cid")
    return attachment_response(
        viewer_for(request.user),
        query.get("thread", ""),
        query.get("message", ""),
        index=int(index) if index is not None else None,
        content_id=content_id[:MAX_PARAMETER] if content_id is not None else None,
        inline=query.get("inline") == "1",
    )


def _small_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 6


def _with_roles(
    view: MessageView, people: tuple[tuple[Address, str | None], ...]
) -> tuple[tuple[str, Address, str | None], ...]:
    roles = (p.role.value.replace("_", "-") for p in view.participants)
    return tuple((role, a, pid) for role, (a, pid) in zip(roles, people, strict=True))


def _clean_message_id(text: str) -> str:
    return text.strip().removeprefix("<").removesuffix(">").strip()


def _by_message_id(request: HttpRequest, message_id: str) -> dict[str, Any]:
    reader, viewer = store(), viewer_for(request.user)
    threads = reader.threads_by_message_ids([message_id])
    found: list[tuple[Channel, Skip, str]] = []
    for channel in reader.channels():
        for skip in reader.skips(channel.id, viewer, message_id=message_id):
            found.append((channel, skip, REASONS.get(skip.reason, skip.reason.value)))
    return {
        "thread_id": threads.get(message_id),
        "skips": found,
        "states": _states(reader.channels()),
    }


def _by_address(request: HttpRequest, text: str) -> dict[str, Any]:
    address = parse_address(text)
    if not address.valid:
        return {"invalid": True}
    reader, viewer = store(), viewer_for(request.user)
    key = address.key
    domain = key.rpartition("@")[2]
    channels = reader.channels()
    own = [c for c in channels if c.user_id == viewer.user_id]
    found: list[tuple[Channel, Skip, str]] = []
    for channel in own:  # only the owner sees who a left-out message was from
        for skip in reader.skips(channel.id, viewer):
            if skip.sender and parse_address(skip.sender).key == key:
                found.append((channel, skip, REASONS.get(skip.reason, skip.reason.value)))
    return {
        "address": address,
        "erased": key in reader.erased([key]),
        "person": people_by_address([key]).get(key),
        "stored": key in reader.stored_addresses([key]),
        "role": is_role_address(key),
        "internal": [c for c in own if in_domains(domain, c.settings.org_domains)],
        "blocked": [c for c in own if blocklist_match(key, c.settings.blocklist)],
        "skips": found[:MAX_SHOWN_SKIPS],
        "more_skips": len(found) > MAX_SHOWN_SKIPS,
        "states": _states(channels),
    }


def _states(channels: Any) -> list[tuple[Channel, Any]]:
    states = store().channel_states()
    return [(c, states.get(c.id)) for c in channels]


@login_required
def missing(request: HttpRequest) -> HttpResponse:
    """Why is this email missing? By Message-ID or by address."""
    message_id = _clean_message_id(request.GET.get("message_id", "")[:MAX_PARAMETER])
    address = request.GET.get("address", "")[:MAX_PARAMETER].strip()
    context: dict[str, Any] = {"message_id": message_id, "address_text": address}
    if message_id:
        context["by_id"] = _by_message_id(request, message_id)
    elif address:
        context["by_address"] = _by_address(request, address)
    return render(request, "crm/missing.html", context)


def _connection(config: ConfiguredChannel) -> dict[str, Any] | None:
    """Where an OAuth channel is (re)connected, and the account it is signed in to."""
    if "oauth" not in config.options:
        return None
    url = reverse("commlink:connect", args=[config.channel.id])
    return {"url": url, "account": signed_in_account(config)}


@login_required
def accounts(request: HttpRequest) -> HttpResponse:
    """The signed-in user's mailboxes and calendars, with their sync status."""
    viewer = viewer_for(request.user)
    reader = store()
    stored = {c.id: c for c in reader.channels()}
    states = reader.channel_states()
    rows = []
    for config in configured_channels():
        if config.channel.user_id != viewer.user_id:
            continue
        channel = stored.get(config.channel.id, config.channel)
        rows.append(
            {
                "channel": channel,
                "state": states.get(channel.id),
                "stored": channel.id in stored,
                "connection": _connection(config),
            }
        )
    return render(
        request,
        "crm/accounts.html",
        {"rows": rows, "levels": [v.value for v in Visibility]},
    )


def _own_config(request: HttpRequest, channel_id: str) -> ConfiguredChannel:
    viewer = viewer_for(request.user)
    for config in configured_channels():
        if config.channel.id == channel_id and config.channel.user_id == viewer.user_id:
            return config
    raise Http404("no such account of yours")


@login_required
@require_POST
def set_visibility(request: HttpRequest, channel_id: str) -> HttpResponse:
    """The owner changes what colleagues see of a channel. Lowering applies at
    once (the store minimises what it holds); raising brings content back
    with a full re-read of the mailbox."""
    config = _own_config(request, channel_id)
    try:
        level = Visibility(request.POST.get("visibility", ""))
    except ValueError:
        return HttpResponseBadRequest("unknown visibility")
    reader = store()
    channel = reader.channel(channel_id)
    if channel is None:
        return HttpResponseBadRequest("sync the account first")
    before = channel.settings.visibility
    reader.save_channel(
        attrs.evolve(channel, settings=attrs.evolve(channel.settings, visibility=level))
    )
    if _rank(level) > _rank(before):
        SyncEngine(reader, get_directory()).request_resync(channel_id, refetch=True)
        sync_channel(config)
    messages.success(request, f"{channel_id}: colleagues now see {level.value}")
    return redirect("accounts")


def _rank(level: Visibility) -> int:
    return [Visibility.METADATA, Visibility.SUBJECT, Visibility.FULL].index(level)


@login_required
@require_POST
def sync_now(request: HttpRequest, channel_id: str) -> HttpResponse:
    report = sync_channel(_own_config(request, channel_id))
    messages.info(request, f"synced {report.summary()}")
    return redirect("accounts")
