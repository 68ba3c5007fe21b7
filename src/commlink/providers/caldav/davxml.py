"""WebDAV/CalDAV request bodies and multistatus parsing (pure: no IO).

Parsers take parsed ``xml.etree`` elements and return small frozen values;
``MultistatusReader`` turns a multistatus document into its
``DAV:response`` elements while it arrives, holding one at a time. Hrefs
are kept as the server sent them, reduced to their path; ``href_key``
gives the form to compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element, XMLPullParser, fromstring

import attrs

__all__ = [
    "MultistatusReader",
    "calendar_query_body",
    "parse_tree",
    "CalendarInfo",
    "DataItem",
    "ListedObject",
    "SyncReply",
    "calendar_props_body",
    "href_key",
    "href_path",
    "is_unauthenticated",
    "listing_body",
    "multiget_body",
    "parse_calendars",
    "parse_data",
    "parse_href_prop",
    "parse_listing",
    "parse_query_objects",
    "parse_sync",
    "home_set_body",
    "preconditions",
    "principal_body",
    "sync_collection_body",
]

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_NS = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"'

#: what XML text content must not hold as it is (xml.sax.saxutils.escape's
#: three, without the module: it imports urllib.request and http.client)
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: str) -> str:
    """``text`` as XML character data."""
    return text.translate(_ESCAPES)


class Node(Protocol):
    """The subset of the ElementTree element API the parsers use."""

    @property
    def tag(self) -> object: ...

    @property
    def text(self) -> str | None: ...

    def find(self, path: str) -> Node | None: ...

    def findall(self, path: str) -> Sequence[Node]: ...

    def iter(self, tag: str = ...) -> Iterator[Node]: ...

    def get(self, key: str, default: str = ...) -> str | None: ...

    def __iter__(self) -> Iterator[Node]: ...


@attrs.frozen(slots=True)
class CalendarInfo:
    """A collection found under the calendar home."""

    href: str
    name: str
    is_calendar: bool
    has_events: bool = True
    sync_token: str = ""
    ctag: str = ""


@attrs.frozen(slots=True)
class ListedObject:
    """One calendar object in a listing."""

    href: str
    etag: str = ""
    modified: str = ""


@attrs.frozen(slots=True)
class SyncReply:
    """A sync-collection answer: what changed, what went, the new token."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    token: str
    truncated: bool = False


@attrs.frozen(slots=True)
class DataItem:
    """One multiget answer: the object's data, or the status why there is none."""

    href: str
    status: int
    etag: str = ""
    data: str | None = None
    modified: str = ""


# -- request bodies ------------------------------------------------------------


def _propfind(props: str) -> str:
    return f"{_HEAD}<d:propfind {_NS}><d:prop>{props}</d:prop></d:propfind>"


def calendar_props_body(*, sync_token: bool = True, ctag: bool = True) -> str:
    """PROPFIND body for the collections of a calendar home (or one calendar).

    Servers compute a sync token or ctag from the whole collection (Radicale
    hashes every item for each), so only the ones needed are asked for.
    """
    wanted = ("<d:sync-token/>" if sync_token else "") + ("<cs:getctag/>" if ctag else "")
    return _propfind(
        f"<d:resourcetype/><d:displayname/>{wanted}<c:supported-calendar-component-set/>"
    )


def principal_body() -> str:
    return _propfind("<d:current-user-principal/>")


def home_set_body() -> str:
    return _propfind("<c:calendar-home-set/>")


def listing_body() -> str:
    """PROPFIND body listing a calendar's objects with their ETags."""
    return _propfind("<d:resourcetype/><d:getetag/><d:getlastmodified/>")


def sync_collection_body(token: str, *, data: bool = False) -> str:
    """An RFC 6578 sync-collection REPORT asking for changed hrefs and ETags
    (and, with ``data``, their calendar data: RFC 6578 section 3.2 lets the
    REPORT ask for any property)."""
    wanted = "<d:getetag/><c:calendar-data/>" if data else "<d:getetag/>"
    return (
        f"{_HEAD}<d:sync-collection {_NS}><d:sync-token>{escape(token)}</d:sync-token>"
        f"<d:sync-level>1</d:sync-level><d:prop>{wanted}</d:prop></d:sync-collection>"
    )


def calendar_query_body() -> str:
    """An RFC 4791 calendar-query REPORT for every object holding a VEVENT,
    with its ETag, modification time and data."""
    return (
        f"{_HEAD}<c:calendar-query {_NS}><d:prop><d:getetag/><d:getlastmodified/>"
        '<c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR">'
        '<c:comp-filter name="VEVENT"/></c:comp-filter></c:filter></c:calendar-query>'
    )


def multiget_body(hrefs: Iterable[str]) -> str:
    """An RFC 4791 calendar-multiget REPORT for these hrefs."""
    refs = "".join(f"<d:href>{escape(h)}</d:href>" for h in hrefs)
    return (
        f"{_HEAD}<c:calendar-multiget {_NS}><d:prop><d:getetag/><c:calendar-data/></d:prop>"
        f"{refs}</c:calendar-multiget>"
    )


# -- parsing -------------------------------------------------------------------


def parse_tree(data: bytes) -> Node:
    """A whole (small) XML answer."""
    return cast(Node, fromstring(data))


class MultistatusReader:
    """Feed it a multistatus document in chunks; each ``feed`` returns the
    ``DAV:response`` elements completed so far, detached from the document
    so that only one is held at a time. ``sync_token`` is the document's
    own ``DAV:sync-token`` (servers put it first or last)."""

    def __init__(self) -> None:
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._open: list[Element] = []
        self.sync_token = ""

    def feed(self, chunk: bytes) -> list[Node]:
        self._parser.feed(chunk)
        return self._events()

    def close(self) -> list[Node]:
        self._parser.close()
        return self._events()

    def _events(self) -> list[Node]:
        done: list[Node] = []
        for event, element in cast("Iterator[tuple[str, Element]]", self._parser.read_events()):
            if event == "start":
                self._open.append(element)
                continue
            self._open.pop()
            if len(self._open) != 1:
                continue
            if element.tag == f"{DAV}response":
                done.append(cast(Node, element))
                self._open[0].remove(element)
            elif element.tag == f"{DAV}sync-token":
                self.sync_token = (element.text or "").strip()
        return done


def href_path(text: str) -> str:
    """The path of an href (absolute URLs are reduced to their path)."""
    text = text.strip()
    if "://" in text:
        return urlsplit(text).path or "/"
    return text


def href_key(href: str) -> str:
    """The comparison form of an href: its decoded path without a trailing slash."""
    return unquote(href_path(href)).rstrip("/") or "/"


def _status(text: str | None) -> int:
    parts = (text or "").split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 200


def _responses(tree: Node | None) -> list[Node]:
    if tree is None:
        return []
    if tree.tag == f"{DAV}response":
        return [tree]
    return list(tree.iter(f"{DAV}response"))


def _props(response: Node) -> dict[object, Node]:
    """Properties found with a 2xx status (a 404 propstat means absent)."""
    found: dict[object, Node] = {}
    for propstat in response.findall(f"{DAV}propstat"):
        if not 200 <= _status(_text(propstat.find(f"{DAV}status"))) < 300:
            continue
        for prop in propstat.findall(f"{DAV}prop"):
            for child in prop:
                found[child.tag] = child
    return found


def _text(node: Node | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _href(response: Node) -> str:
    return href_path(_text(response.find(f"{DAV}href")))


def _etag(node: Node | None) -> str:
    text = _text(node)
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


def parse_href_prop(tree: Node | None, prop: str) -> str:
    """The first href inside property ``prop`` (e.g. ``{DAV:}current-user-principal``)."""
    for response in _responses(tree):
        node = _props(response).get(prop)
        if node is not None:
            href = node.find(f"{DAV}href")
            if href is not None and _text(href):
                return href_path(_text(href))
    return ""


def is_unauthenticated(tree: Node | None) -> bool:
    """Whether ``current-user-principal`` says ``<unauthenticated/>`` (RFC 5397):
    the server answered as for an anonymous user (Cyrus, Xandikos do so
    instead of asking for credentials with a 401)."""
    for response in _responses(tree):
        node = _props(response).get(f"{DAV}current-user-principal")
        if node is not None and node.find(f"{DAV}unauthenticated") is not None:
            return True
    return False


def parse_calendars(tree: Node | None) -> list[CalendarInfo]:
    """Collections of a depth-1 PROPFIND, with their tokens."""
    found: list[CalendarInfo] = []
    for response in _responses(tree):
        href = _href(response)
        if not href:
            continue
        props = _props(response)
        kinds = props.get(f"{DAV}resourcetype")
        is_calendar = kinds is not None and kinds.find(f"{CALDAV}calendar") is not None
        comps = props.get(f"{CALDAV}supported-calendar-component-set")
        names = {
            str(c.get("name", "")).upper()
            for c in (comps.findall(f"{CALDAV}comp") if comps is not None else [])
        }
        name = _text(props.get(f"{DAV}displayname"))
        found.append(
            CalendarInfo(
                href=href,
                name=name or href_key(href).rsplit("/", 1)[-1],
                is_calendar=is_calendar,
                has_events=not names or "VEVENT" in names,
                sync_token=_text(props.get(f"{DAV}sync-token")),
                ctag=_text(props.get(f"{CS}getctag")),
            )
        )
    return found


def parse_listing(tree: Node | None, collection: str) -> list[ListedObject]:
    """Objects (not collections) of a depth-1 PROPFIND on ``collection``."""
    return [listed for listed, _ in parse_query_objects(tree, collection)]


def parse_query_objects(
    tree: Node | None, collection: str
) -> list[tuple[ListedObject, str | None]]:
    """Objects of a calendar-query answer on ``collection``, each with its
    data (``None`` when the answer did not carry it): ``parse_listing`` and
    ``parse_data`` in one reading of each response."""
    own = href_key(collection)
    found: list[tuple[ListedObject, str | None]] = []
    for response in _responses(tree):
        href = _href(response)
        if not href or href_key(href) == own:
            continue
        props = _props(response)
        kinds = props.get(f"{DAV}resourcetype")
        if kinds is not None and kinds.find(f"{DAV}collection") is not None:
            continue
        listed = ListedObject(
            href, _etag(props.get(f"{DAV}getetag")), _text(props.get(f"{DAV}getlastmodified"))
        )
        data_node = props.get(f"{CALDAV}calendar-data")
        found.append((listed, data_node.text if data_node is not None else None))
    return found


def parse_sync(tree: Node | None, collection: str) -> SyncReply:
    """A sync-collection multistatus: changed and deleted hrefs, new token.

    A ``507`` response for the collection itself marks a truncated reply
    (RFC 6578 section 3.6): the caller repeats the REPORT with the new token.
    """
    own = href_key(collection)
    changed: list[str] = []
    deleted: list[str] = []
    truncated = False
    for response in _responses(tree):
        href = _href(response)
        status = _status(_text(response.find(f"{DAV}status")))
        if href_key(href) == own:
            truncated = truncated or status == 507
            continue
        if status == 404:
            deleted.append(href)
            continue
        kinds = _props(response).get(f"{DAV}resourcetype")
        if kinds is not None and kinds.find(f"{DAV}collection") is not None:
            continue
        changed.append(href)
    token = ""
    if tree is not None:
        node = tree.find(f"{DAV}sync-token")
        token = _text(node)
    return SyncReply(tuple(changed), tuple(deleted), token, truncated)


def parse_data(tree: Node | None) -> list[DataItem]:
    """The answers of a calendar-multiget or calendar-query, one per href."""
    found: list[DataItem] = []
    for response in _responses(tree):
        href = _href(response)
        if not href:
            continue
        status = _status(_text(response.find(f"{DAV}status")))
        props = _props(response)
        data_node = props.get(f"{CALDAV}calendar-data")
        data = data_node.text if data_node is not None else None
        if data is None and status < 300:
            status = 404 if not response.findall(f"{DAV}propstat") else _propstat_status(response)
        modified = _text(props.get(f"{DAV}getlastmodified"))
        found.append(DataItem(href, status, _etag(props.get(f"{DAV}getetag")), data, modified))
    return found


def _propstat_status(response: Node) -> int:
    for propstat in response.findall(f"{DAV}propstat"):
        status = _status(_text(propstat.find(f"{DAV}status")))
        if status >= 300:
            return status
    return 404


def preconditions(tree: Node | None) -> list[str]:
    """Tags of the conditions in a ``DAV:error`` body."""
    if tree is None or tree.tag != f"{DAV}error":
        return []
    return [str(child.tag) for child in tree if isinstance(child.tag, str)]
