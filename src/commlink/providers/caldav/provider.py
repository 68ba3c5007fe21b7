"""CalDAV calendars as a ``CalendarProvider`` (``pip install commlink[caldav]``).

Each calendar under the user's calendar home is a scope. Provider ids are
object hrefs (paths). Incremental sync uses RFC 6578 sync-collection with the
sync token as cursor; servers without it (or ``use_sync_collection=False``)
fall back to the calendar's ctag: unchanged ctag, nothing to do; a changed
one raises ``CursorExpired`` and the engine reconciles with a listing. In that
mode an id carries the object's ETag (``href#etag=...``), so an edited object
is a new id and its old id is swept.

Requests, per step: the calendar listing taken by ``calendars()`` records
each calendar's sync token (or ctag), which ``snapshot()`` and a following
``changes()`` use without asking again, so a quiet step costs one PROPFIND
for the whole channel. A full listing is one calendar-query REPORT (RFC 4791
section 7.8) that returns every object's ETag and data, and sync-collection
asks for the data of what changed; both answers are parsed as they arrive
and their data is held (up to ``Limits.fetch_batch_bytes``) until
``fetch()`` takes it. Objects whose data did not come that way are fetched
with calendar-multiget, one REPORT per chunk.

While every calendar of a step so far got a full listing (a first sync),
the listing of the next calendar is asked for as soon as one has arrived,
so the server prepares it while this one is parsed and stored; at most one
such answer is read ahead (``transport.ReadAhead``), and it is dropped when
the next calendar turns out to need only its changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import attrs

from ...closing import Closing
from ...credentials import is_loopback_host, redact_url
from ...errors import AuthError, ConfigError, CursorExpired, NotFound, ProviderError
from ...model import Folder, FolderKind, Limits
from ...ports import ChangeSet, FetchedEvent, IdPage, Scope
from ..background import BackgroundCall
from ..sizing import DEFAULT_LIMITS
from . import davxml as dav
from .transport import DavTransport, Multistatus, Unsupported

__all__ = ["CalDavProvider"]

_ETAG_MARK = "#etag="
_HASH_PREFIX = "sha256-"


class CalDavProvider(Closing):
    """Calendars of one CalDAV account.

    ``url`` is the server's CalDAV root (or the principal or calendar home
    URL). ``use_sync_collection``: ``None`` uses RFC 6578 where the server
    announces a sync token, ``False`` always uses the ctag/ETag fallback,
    ``True`` always tries sync-collection. ``requests`` counts the HTTP
    requests made so far.

    ``auth`` is how credentials are sent: ``"basic"`` (the default) or
    ``"digest"`` with the first request, or ``None`` to wait for the
    server's 401 challenge. A server that answers as for an anonymous user
    (``current-user-principal`` is ``<unauthenticated/>``) raises
    ``AuthError``: its listing would be empty, not the user's.

    ``limits``: calendar data held between a listing and ``fetch()`` stays
    within ``fetch_batch_bytes``; an object larger than
    ``max_message_bytes`` is skipped with a reason.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        verify: bool | str = True,
        use_sync_collection: bool | None = None,
        page_size: int = 500,
        multiget_size: int = 100,
        auth: str | None = "basic",
        allow_plaintext: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if not url:
            raise ConfigError("a CalDAV URL is required", field="url")
        url, username, password = _split_credentials(url, username, password)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) URL: {redact_url(url)}", field="url")
        if (
            parts.scheme == "http"
            and (username is not None or password is not None)
            and not allow_plaintext
            and not is_loopback_host(parts.hostname)
        ):
            raise ConfigError(
                f"refusing to send credentials to {redact_url(url)} over plain http: "
                "use https (or set allow_plaintext=True)",
                field="url",
            )
        self.url = url if url.endswith("/") else url + "/"
        self.use_sync_collection = use_sync_collection
        self.page_size = max(1, page_size)
        self.multiget_size = max(1, multiget_size)
        self.limits = limits
        self._http = DavTransport(
            self.url,
            username=username,
            password=password,
            timeout=timeout,
            verify=verify,
            auth=auth,
        )
        self._home: str | None = None
        self._info: dict[str, dav.CalendarInfo] = {}
        self._fresh: set[str] = set()  # calendars whose listed token no changes() used yet
        self._unsnapped: set[str] = set()  # ... and that no snapshot() used yet
        self._fallback: set[str] = set()  # calendars whose server refused sync-collection
        self._listings: dict[str, list[dav.ListedObject]] = {}
        # calendar data that came with a listing or a change set, by provider id
        self._prefetched: dict[str, str] = {}
        self._held = 0  # characters in _prefetched
        self._no_query: set[str] = set()  # calendars whose server refused calendar-query
        # the snapshot of each calendar whose full listing has not started yet,
        # and the snapshot a completed listing (taken after it) covers
        self._snapshots: dict[str, str] = {}
        self._covered: dict[str, str] = {}
        self._listed_from: dict[str, str] = {}  # listings under way: their snapshot
        self._order: list[Scope] = []  # the scopes of this step, in the order given
        self._all_full = False  # no scope of this step asked for its changes yet
        self._listed_now: set[str] = set()  # ... but those fully listed in it
        self._ahead: dict[str, Multistatus] = {}  # full listings asked for ahead
        self._warming: BackgroundCall[list[Folder]] | None = None  # see warm()

    @property
    def requests(self) -> int:
        """HTTP requests made by this provider."""
        return self._http.requests

    # -- discovery -----------------------------------------------------------

    def _absolute(self, href: str) -> str:
        return urljoin(self.url, href)

    def _calendar_home(self) -> str:
        if self._home is None:
            found = self._http.propfind(self.url, dav.principal_body(), depth=0)
            if dav.is_unauthenticated(found.tree):
                # a listing as nobody would be empty: never take it for the user's
                raise AuthError(
                    f"{redact_url(self.url)} answered as for an anonymous user (unauthenticated)"
                )
            principal = dav.parse_href_prop(found.tree, f"{dav.DAV}current-user-principal")
            principal_url = self._absolute(principal) if principal else self.url
            found = self._http.propfind(principal_url, dav.home_set_body(), depth=0)
            home = dav.parse_href_prop(found.tree, f"{dav.CALDAV}calendar-home-set")
            self._home = self._absolute(home) if home else principal_url
        return self._home

    def warm(self) -> None:
        """Start discovery (the calendar home, its calendars and their sync
        tokens) in a thread of its own; the next ``calendars()`` within a
        minute takes that answer, or raises its error (``ports.Warmable``)."""
        if self._warming is None:
            self._http.prepare()  # imports here: the thread only waits on the server
            self._warming = BackgroundCall(self._list_calendars, "commlink-caldav-warm")

    def calendars(self) -> Sequence[Folder]:
        """Event calendars under the calendar home (id: the calendar's path)."""
        warming, self._warming = self._warming, None
        found = warming.take() if warming is not None else None
        return found if found is not None else self._list_calendars()

    def _list_calendars(self) -> list[Folder]:
        home = self._calendar_home()
        sync = self.use_sync_collection is not False
        body = dav.calendar_props_body(sync_token=sync, ctag=not sync)
        found = self._http.propfind(home, body, depth=1)
        infos = [i for i in dav.parse_calendars(found.tree) if i.is_calendar and i.has_events]
        if sync and not self.use_sync_collection and any(not i.sync_token for i in infos):
            # a server without RFC 6578 for some calendar: their ctags, then
            ctags = self._http.propfind(home, dav.calendar_props_body(sync_token=False), depth=1)
            by_href = {c.href: c.ctag for c in dav.parse_calendars(ctags.tree)}
            infos = [attrs.evolve(i, ctag=by_href.get(i.href, "")) for i in infos]
        self._drop_ahead()
        self._info = {i.href: i for i in infos}
        self._fresh = set(self._info)
        self._unsnapped = set(self._info)
        self._all_full = True
        self._listed_now = set()
        return [Folder(i.href, i.name, FolderKind.CALENDAR) for i in infos]

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        scopes = [Scope(c.id, c) for c in calendars if c.kind is FolderKind.CALENDAR]
        self._order = scopes
        return scopes

    def _calendar(self, scope: Scope, *, refresh: bool = False) -> dav.CalendarInfo:
        info = self._info.get(scope.id)
        if info is None or refresh:
            found = self._http.propfind(
                self._absolute(scope.id), dav.calendar_props_body(), depth=0
            )  # both tokens: one calendar is cheap
            infos = [i for i in dav.parse_calendars(found.tree) if i.is_calendar]
            if not infos:
                raise NotFound(f"{scope.id} is not a calendar")
            info = infos[0]
            self._info[scope.id] = info
            self._fresh.discard(scope.id)
            self._unsnapped.discard(scope.id)
        return info

    def _mode(self, scope: Scope) -> str:
        """``sync`` (RFC 6578), ``ctag``, or ``etags`` (a digest of the listing)."""
        allowed = self.use_sync_collection is not False and scope.id not in self._fallback
        if allowed and (self.use_sync_collection or self._calendar(scope).sync_token):
            return "sync"
        return "ctag" if self._calendar(scope).ctag else "etags"

    # -- cursors -------------------------------------------------------------

    def snapshot(self, scope: Scope) -> str:
        """The calendar's current sync token (or ctag, or listing digest).

        A calendar listed by ``calendars()`` in this step keeps the token that
        listing saw: it is older than the listing that follows, so nothing
        is missed."""
        if scope.id not in self._unsnapped:
            self._drop_ahead(scope.id)  # a listing asked for before this snapshot covers nothing
            self._calendar(scope, refresh=True)
        self._unsnapped.discard(scope.id)
        self._fresh.discard(scope.id)
        cursor = self._snapshot(scope)
        self._snapshots[scope.id] = cursor
        return cursor

    def _snapshot(self, scope: Scope) -> str:
        mode = self._mode(scope)
        if mode == "sync":
            token = self._calendar(scope).sync_token
            if not token:
                try:
                    token = self._sync(scope, "", data=False).token
                except Unsupported:
                    self._fallback.add(scope.id)
                    return self._snapshot(scope)
            return f"sync:{token}"
        if mode == "ctag":
            return f"ctag:{self._calendar(scope).ctag}"
        return f"etags:{self._digest(self._list(scope))}"

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """What changed since ``cursor``; ``CursorExpired`` when it is stale
        (or, in the fallback modes, when anything changed at all)."""
        kind, _, value = cursor.partition(":")
        if scope.id not in self._listed_now:  # (a full pass asks for changes at its end)
            self._all_full = False
        self._drop_ahead(scope.id)
        mode = self._mode(scope)
        if kind != mode:
            raise CursorExpired(f"cursor of {scope.id} is not a {mode} cursor")
        # a snapshot used as a cursor: listings from now on cover nothing
        self._snapshots.pop(scope.id, None)
        self._listed_from.pop(scope.id, None)
        if self._covered.get(scope.id) == cursor:
            # a full listing taken after this cursor was read to its end: what
            # changed before it is in it, what changed after it shows next step
            del self._covered[scope.id]
            return ChangeSet((), (), cursor)
        listed = self._info.get(scope.id) if scope.id in self._fresh else None
        self._fresh.discard(scope.id)
        if mode == "sync":
            if listed is not None and listed.sync_token == value:
                return ChangeSet((), (), cursor)
            try:
                reply = self._sync(scope, value)
            except Unsupported as exc:
                self._fallback.add(scope.id)
                raise CursorExpired(f"{scope.id}: sync-collection refused") from exc
            if not reply.token:
                raise ProviderError(f"{scope.id}: sync-collection reply without a sync token")
            return ChangeSet(
                reply.changed, reply.deleted, f"sync:{reply.token}", complete=not reply.truncated
            )
        if mode == "ctag":
            current = (listed or self._calendar(scope, refresh=True)).ctag
            if current and current == value:
                return ChangeSet((), (), cursor)
            raise CursorExpired(f"{scope.id} changed (ctag)")
        digest = self._digest(self._list(scope))
        if digest and digest == value:
            return ChangeSet((), (), cursor)
        raise CursorExpired(f"{scope.id} changed (ETags)")

    def _sync(self, scope: Scope, token: str, *, data: bool = True) -> dav.SyncReply:
        """One sync-collection REPORT, parsed as it arrives; the data of the
        changed objects is kept for ``fetch()``."""
        self._drop_held()
        body = dav.sync_collection_body(token, data=data)
        answer = self._http.multistatus(self._absolute(scope.id), body, depth=0, sync=True)
        changed: list[str] = []
        deleted: list[str] = []
        truncated = False
        for response in answer:
            reply = dav.parse_sync(response, scope.id)
            changed.extend(reply.changed)
            deleted.extend(reply.deleted)
            truncated = truncated or reply.truncated
            if reply.changed:
                for item in dav.parse_data(response):
                    if item.data is not None:
                        self._hold(item.href, item.data)
        return dav.SyncReply(tuple(changed), tuple(deleted), answer.sync_token, truncated)

    # -- listing -------------------------------------------------------------

    def _list(self, scope: Scope) -> list[dav.ListedObject]:
        """Hrefs and ETags of the calendar's objects (PROPFIND, no data)."""
        found = self._http.propfind(self._absolute(scope.id), dav.listing_body(), depth=1)
        listing = sorted(dav.parse_listing(found.tree, scope.id), key=_order)
        self._listings[scope.id] = listing
        return listing

    def _query(self, scope: Scope) -> list[dav.ListedObject]:
        """Every VEVENT object with its ETag, in one calendar-query REPORT whose
        data is kept for ``fetch()`` (the PROPFIND listing where the server
        refuses the REPORT)."""
        if scope.id in self._no_query:
            return self._list(scope)
        self._drop_held()
        answer = self._ahead.pop(scope.id, None) or self._http.multistatus(
            self._absolute(scope.id), dav.calendar_query_body(), depth=1
        )
        listing: list[dav.ListedObject] = []
        try:
            for response in answer:
                for listed, data in dav.parse_query_objects(response, scope.id):
                    listing.append(listed)
                    if data is not None:
                        self._hold(self._id(scope, listed.href, listed.etag, data), data)
        except Unsupported:
            self._no_query.add(scope.id)
            return self._list(scope)
        listing.sort(key=_order)
        self._listings[scope.id] = listing
        self._listed_now.add(scope.id)
        self._query_ahead(scope)
        return listing

    def _query_ahead(self, scope: Scope) -> None:
        """Ask for the next scope's full listing now, while every scope of the
        step so far got one, its listed token is still unused (so it is older
        than this listing) and its mode needs no request to tell."""
        ids = [s.id for s in self._order]
        if not self._all_full or scope.id not in ids or self._ahead:
            return
        position = ids.index(scope.id) + 1
        if position >= len(ids):
            return
        following = self._order[position]
        if following.id not in self._unsnapped or following.id in self._no_query:
            return
        if following.id not in self._info or self._mode(following) == "etags":
            return  # a listing digest is taken with a PROPFIND first
        self._ahead[following.id] = self._http.multistatus(
            self._absolute(following.id), dav.calendar_query_body(), depth=1, ahead=True
        )

    def _drop_ahead(self, scope_id: str | None = None) -> None:
        """Stop reading listings asked for ahead (of one scope, or all)."""
        for key in [scope_id] if scope_id is not None else list(self._ahead):
            answer = self._ahead.pop(key, None) if key is not None else None
            if answer is not None:
                answer.cancel()

    def _id(self, scope: Scope, href: str, etag: str, data: str | None = None) -> str:
        """The provider id of an object: its href, or (ctag and ETag modes)
        its href and version."""
        if self._mode(scope) == "sync":
            return href
        version = etag or (_content_hash(data) if data is not None else "")
        return f"{href}{_ETAG_MARK}{version}"

    def _hold(self, provider_id: str, data: str) -> None:
        """Keep an object's data for ``fetch()`` while within the budget."""
        if self._held + len(data) > self.limits.fetch_batch_bytes:
            return  # fetched again with calendar-multiget when asked for
        self._prefetched[provider_id] = data
        self._held += len(data)

    def _drop_held(self) -> None:
        self._prefetched.clear()
        self._held = 0

    @staticmethod
    def _digest(listing: Sequence[dav.ListedObject]) -> str:
        """A digest of hrefs and ETags; empty (never equal) if an ETag is missing."""
        if any(not o.etag for o in listing):
            return ""
        text = "\n".join(sorted(f"{dav.href_key(o.href)} {o.etag}" for o in listing))
        return hashlib.sha256(text.encode()).hexdigest()

    def list_page(self, scope: Scope, page: str | None) -> IdPage:
        """Object ids, most recently modified first, ``page_size`` at a time.

        The page token is the sort key of the last id returned, so a resumed
        listing neither repeats nor skips objects that did not change.
        """
        listing = self._listings.get(scope.id) if page is not None else None
        if listing is None:
            # a listing taken now covers a snapshot taken before it
            started = self._snapshots.pop(scope.id, None)
            listing = self._query(scope)
        else:
            started = self._listed_from.get(scope.id)
        if page is not None:
            try:
                stamp, href = json.loads(page)
                after = (float(stamp), str(href))
            except (ValueError, TypeError) as exc:
                raise CursorExpired(f"invalid CalDAV page token {page!r}") from exc
            listing = [o for o in listing if _order(o) > after]
        chunk = listing[: self.page_size]
        more = len(listing) > len(chunk)
        self._listed_from.pop(scope.id, None)
        if started is not None:
            if more:
                self._listed_from[scope.id] = started
            else:
                self._covered[scope.id] = started
        token = json.dumps(list(_order(chunk[-1]))) if more and chunk else None
        if self._mode(scope) == "sync":
            return IdPage(tuple(o.href for o in chunk), token)
        return IdPage(tuple(self._versioned_ids(scope, chunk)), token)

    def _versioned_ids(self, scope: Scope, chunk: Sequence[dav.ListedObject]) -> list[str]:
        """``href#etag=ETAG`` ids; objects without an ETag are identified by a
        hash of their content (downloaded here if the listing did not carry it)."""
        held = {dav.href_key(i.split(_ETAG_MARK, 1)[0]): i for i in self._prefetched}
        missing = [o.href for o in chunk if not o.etag and dav.href_key(o.href) not in held]
        for item in self._multiget(scope, missing):
            if item.data is not None:
                provider_id = self._id(scope, item.href, "", item.data)
                self._prefetched[provider_id] = item.data
                held[dav.href_key(item.href)] = provider_id
        ids = []
        for obj in chunk:
            if obj.etag:
                ids.append(f"{obj.href}{_ETAG_MARK}{obj.etag}")
            elif dav.href_key(obj.href) in held:
                ids.append(held[dav.href_key(obj.href)])
        return ids

    # -- fetching ------------------------------------------------------------

    def _multiget(self, scope: Scope, hrefs: Sequence[str]) -> Iterator[dav.DataItem]:
        url = self._absolute(scope.id)
        for start in range(0, len(hrefs), self.multiget_size):
            chunk = hrefs[start : start + self.multiget_size]
            found = self._http.report(url, dav.multiget_body(chunk), depth=1)
            yield from dav.parse_data(found.tree)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        """The events of each object (from the data a listing or change set
        brought, else calendar-multiget), or why there are none."""
        by_href: dict[str, list[str]] = {}
        data: dict[str, str] = {}
        for provider_id in ids:
            held = self._prefetched.pop(provider_id, None)
            if held is not None:
                self._held -= len(held)
                data[provider_id] = held
                continue
            href = provider_id.split(_ETAG_MARK, 1)[0]
            by_href.setdefault(dav.href_key(href), []).append(provider_id)
        wanted = [ids_[0].split(_ETAG_MARK, 1)[0] for ids_ in by_href.values()]
        for item in self._multiget(scope, wanted):
            for provider_id in by_href.get(dav.href_key(item.href), ()):
                if item.data is not None:
                    data[provider_id] = item.data
        limit = self.limits.max_message_bytes
        for provider_id in ids:
            text = data.pop(provider_id, None)
            if text is None:
                yield FetchedEvent(provider_id, error="not found on the server")
            elif len(text) > limit and len(text.encode("utf-8", "replace")) > limit:
                size = len(text.encode("utf-8", "replace"))
                yield FetchedEvent(
                    provider_id, error=f"calendar object of {size} bytes is over max_message_bytes"
                )
            else:
                yield _parsed(provider_id, text, scope.id)

    def close(self) -> None:
        if self._warming is not None:
            self._warming.join()  # its requests end before the client closes
            self._warming = None
        self._drop_ahead()
        self._listings.clear()
        self._drop_held()
        self._http.close()


def _split_credentials(
    url: str, username: str | None, password: str | None
) -> tuple[str, str | None, str | None]:
    """``url`` without the ``user:password@`` it may carry, and the
    credentials (those given explicitly win over the URL's)."""
    try:
        parts = urlsplit(url)
        url_user, url_password = parts.username, parts.password
    except ValueError:
        raise ConfigError(f"invalid CalDAV URL {redact_url(url)}", field="url") from None
    if url_user is None and url_password is None:
        return url, username, password
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if username is None and url_user is not None:
        username = unquote(url_user)
    if password is None and url_password is not None:
        password = unquote(url_password)
    return bare, username, password


def _content_hash(data: str) -> str:
    return _HASH_PREFIX + hashlib.sha256(data.encode()).hexdigest()[:32]


def _order(obj: dav.ListedObject) -> tuple[float, str]:
    """Sort key: most recently modified first, then by href."""
    stamp = 0.0
    if obj.modified:
        try:
            stamp = parsedate_to_datetime(obj.modified).timestamp()
        except (TypeError, ValueError, IndexError):
            stamp = 0.0
    return (-stamp, obj.href)


def _parsed(provider_id: str, text: str, calendar_id: str) -> FetchedEvent:
    # imported on first use: a step that fetches nothing loads no parser
    from ...calendar.ical import parse_calendar, skipped_uids

    result = parse_calendar(text, provider_id=provider_id, calendar_id=calendar_id)
    if result.events:
        present = {e.uid for e in result.events}
        dropped = tuple(
            (uid, code) for uid, code in sorted(skipped_uids(result).items()) if uid not in present
        )
        return FetchedEvent(provider_id, result.events, dropped=dropped)
    if not result.warnings:  # a to-do or journal: nothing to keep
        return FetchedEvent(provider_id)
    reasons = sorted(set(skipped_uids(result).values())) or list(result.warnings) or ["no events"]
    return FetchedEvent(provider_id, error=f"unusable calendar object: {', '.join(reasons)}"[:500])
