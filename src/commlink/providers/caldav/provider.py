"""CalDAV calendars as a ``CalendarProvider`` (``pip install commlink[caldav]``).

Each calendar under the user's calendar home is a scope. Provider ids are
object hrefs (paths). Incremental sync uses RFC 6578 sync-collection with the
sync token as cursor; objects are fetched with calendar-multiget, one REPORT
per chunk. Servers without sync-collection (or ``use_sync_collection=False``)
fall back to the calendar's ctag: unchanged ctag, nothing to do; a changed
one raises ``CursorExpired`` and the engine reconciles with a listing. In that
mode an id carries the object's ETag (``href#etag=...``), so an edited object
is a new id and its old id is swept.

The calendar listing taken by ``calendars()`` also records each calendar's
sync token (or ctag); a following ``changes()`` whose cursor equals it answers
without a request, so a quiet step costs one PROPFIND for the whole channel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ...calendar.ical import parse_calendar, skipped_uids
from ...credentials import is_loopback_host, redact_url
from ...errors import AuthError, ConfigError, CursorExpired, NotFound, ProviderError
from ...model import Folder, FolderKind
from ...ports import ChangeSet, FetchedEvent, IdPage, Scope
from . import davxml as dav
from .transport import DavTransport, Unsupported

__all__ = ["CalDavProvider"]

_ETAG_MARK = "#etag="
_HASH_PREFIX = "sha256-"


class CalDavProvider:
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
        self._fallback: set[str] = set()  # calendars whose server refused sync-collection
        self._listings: dict[str, list[dav.ListedObject]] = {}
        self._prefetched: dict[str, str] = {}  # data downloaded to hash ETag-less objects

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

    def calendars(self) -> Sequence[Folder]:
        """Event calendars under the calendar home (id: the calendar's path)."""
        found = self._http.propfind(self._calendar_home(), dav.calendar_props_body(), depth=1)
        infos = [i for i in dav.parse_calendars(found.tree) if i.is_calendar and i.has_events]
        self._info = {i.href: i for i in infos}
        self._fresh = set(self._info)
        return [Folder(i.href, i.name, FolderKind.CALENDAR) for i in infos]

    def scopes(self, calendars: Sequence[Folder]) -> Sequence[Scope]:
        return [Scope(c.id, c) for c in calendars if c.kind is FolderKind.CALENDAR]

    def _calendar(self, scope: Scope, *, refresh: bool = False) -> dav.CalendarInfo:
        info = self._info.get(scope.id)
        if info is None or refresh:
            found = self._http.propfind(
                self._absolute(scope.id), dav.calendar_props_body(), depth=0
            )
            infos = [i for i in dav.parse_calendars(found.tree) if i.is_calendar]
            if not infos:
                raise NotFound(f"{scope.id} is not a calendar")
            info = infos[0]
            self._info[scope.id] = info
            self._fresh.discard(scope.id)
        return info

    def _mode(self, scope: Scope) -> str:
        """``sync`` (RFC 6578), ``ctag``, or ``etags`` (a digest of the listing)."""
        allowed = self.use_sync_collection is not False and scope.id not in self._fallback
        if allowed and (self.use_sync_collection or self._calendar(scope).sync_token):
            return "sync"
        return "ctag" if self._calendar(scope).ctag else "etags"

    # -- cursors -------------------------------------------------------------

    def snapshot(self, scope: Scope) -> str:
        """The calendar's current sync token (or ctag, or listing digest)."""
        self._calendar(scope, refresh=True)
        mode = self._mode(scope)
        if mode == "sync":
            token = self._calendar(scope).sync_token
            if not token:
                try:
                    token = self._sync(scope, "").token
                except Unsupported:
                    self._fallback.add(scope.id)
                    return self.snapshot(scope)
            return f"sync:{token}"
        if mode == "ctag":
            return f"ctag:{self._calendar(scope).ctag}"
        return f"etags:{self._digest(self._list(scope))}"

    def changes(self, scope: Scope, cursor: str) -> ChangeSet:
        """What changed since ``cursor``; ``CursorExpired`` when it is stale
        (or, in the fallback modes, when anything changed at all)."""
        kind, _, value = cursor.partition(":")
        mode = self._mode(scope)
        if kind != mode:
            raise CursorExpired(f"cursor of {scope.id} is not a {mode} cursor")
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

    def _sync(self, scope: Scope, token: str) -> dav.SyncReply:
        found = self._http.report(
            self._absolute(scope.id), dav.sync_collection_body(token), depth=0, sync=True
        )
        return dav.parse_sync(found.tree, scope.id)

    # -- listing -------------------------------------------------------------

    def _list(self, scope: Scope) -> list[dav.ListedObject]:
        found = self._http.propfind(self._absolute(scope.id), dav.listing_body(), depth=1)
        listing = sorted(dav.parse_listing(found.tree, scope.id), key=_order)
        self._listings[scope.id] = listing
        return listing

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
            listing = self._list(scope)
        if page is not None:
            try:
                stamp, href = json.loads(page)
                after = (float(stamp), str(href))
            except (ValueError, TypeError) as exc:
                raise CursorExpired(f"invalid CalDAV page token {page!r}") from exc
            listing = [o for o in listing if _order(o) > after]
        chunk = listing[: self.page_size]
        more = len(listing) > len(chunk)
        token = json.dumps(list(_order(chunk[-1]))) if more and chunk else None
        if self._mode(scope) == "sync":
            return IdPage(tuple(o.href for o in chunk), token)
        return IdPage(tuple(self._versioned_ids(scope, chunk)), token)

    def _versioned_ids(self, scope: Scope, chunk: Sequence[dav.ListedObject]) -> list[str]:
        """``href#etag=ETAG`` ids; objects without an ETag are downloaded and
        identified by a hash of their content instead."""
        self._prefetched.clear()
        missing = [o.href for o in chunk if not o.etag]
        hashed: dict[str, str] = {}
        for item in self._multiget(scope, missing):
            if item.data is not None:
                digest = _HASH_PREFIX + hashlib.sha256(item.data.encode()).hexdigest()[:32]
                hashed[dav.href_key(item.href)] = digest
                self._prefetched[f"{item.href}{_ETAG_MARK}{digest}"] = item.data
        ids = []
        for obj in chunk:
            version = obj.etag or hashed.get(dav.href_key(obj.href), "")
            if version:
                ids.append(f"{obj.href}{_ETAG_MARK}{version}")
        return ids

    # -- fetching ------------------------------------------------------------

    def _multiget(self, scope: Scope, hrefs: Sequence[str]) -> Iterator[dav.DataItem]:
        url = self._absolute(scope.id)
        for start in range(0, len(hrefs), self.multiget_size):
            chunk = hrefs[start : start + self.multiget_size]
            found = self._http.report(url, dav.multiget_body(chunk), depth=1)
            yield from dav.parse_data(found.tree)

    def fetch(self, scope: Scope, ids: Sequence[str]) -> Iterator[FetchedEvent]:
        """The events of each object (calendar-multiget), or why there are none."""
        by_href: dict[str, list[str]] = {}
        data: dict[str, str] = {}
        for provider_id in ids:
            if provider_id in self._prefetched:
                data[provider_id] = self._prefetched[provider_id]
                continue
            href = provider_id.split(_ETAG_MARK, 1)[0]
            by_href.setdefault(dav.href_key(href), []).append(provider_id)
        wanted = [ids_[0].split(_ETAG_MARK, 1)[0] for ids_ in by_href.values()]
        for item in self._multiget(scope, wanted):
            for provider_id in by_href.get(dav.href_key(item.href), ()):
                if item.data is not None:
                    data[provider_id] = item.data
        for provider_id in ids:
            text = data.get(provider_id)
            if text is None:
                yield FetchedEvent(provider_id, error="not found on the server")
            else:
                yield _parsed(provider_id, text, scope.id)

    def close(self) -> None:
        self._listings.clear()
        self._prefetched.clear()
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
