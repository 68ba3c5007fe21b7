"""``EwsServer``: a local Exchange Web Services endpoint for tests.

It answers the SOAP subset a read-only sync needs, following the EWS
schema closely enough that exchangelib parses every answer: GetFolder
(distinguished and by id), FindFolder (shallow or deep, paged),
SyncFolderItems (opaque sync states, ``MaxChangesReturned`` paging,
``IncludesLastItemInRange``, ``ErrorInvalidSyncStateData`` for a stale
state) and GetItem (``MimeContent``, headers, calendar properties).
Requests need HTTP basic auth (401 otherwise). Tests seed and change the
mailbox through ``server.mailbox`` and the helpers here, inject
``ErrorServerBusy`` faults with ``BackOffMilliseconds``, and read
``requests`` (every HTTP request, by operation).
"""

from __future__ import annotations

import base64
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import attrs

from .ews_items import write_folder, write_item
from .ews_mailbox import CalendarEntry, EwsMailbox, MailItem, Person, SyncStateError
from .ews_xml import M, S, T, envelope, error_message, server_busy_fault, sub, success_message

__all__ = ["CalendarEntry", "EwsServer", "Person"]

PATH = "/EWS/Exchange.asmx"
#: The most changes one SyncFolderItems answer carries, as in Exchange.
MAX_SYNC_CHANGES = 512


@attrs.define
class _Busy:
    operation: str
    times: int
    back_off_ms: int


class EwsServer:
    """A local EWS endpoint on ``127.0.0.1`` for one mailbox (``user``)."""

    def __init__(self, user: str = "owner@home.example", password: str = "secret") -> None:
        self.user = user
        self.password = password
        self.mailbox = EwsMailbox(user)
        self.requests: Counter[str] = Counter()
        self.log: list[str] = []
        self._busy: list[_Busy] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> EwsServer:
        handler = type("_BoundHandler", (_Handler,), {"app": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EwsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The service endpoint, ``http://127.0.0.1:PORT/EWS/Exchange.asmx``."""
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{PATH}"

    # -- test controls --------------------------------------------------------

    def add_message(self, folder: str, raw: bytes, received: datetime | None = None) -> str:
        """Store a message in a folder (distinguished name, display name or id)."""
        return self.mailbox.add_message(folder, raw, received)

    def add_folder(self, name: str, parent: str = "msgfolderroot", calendar: bool = False) -> str:
        folder_class = "IPF.Appointment" if calendar else "IPF.Note"
        return self.mailbox.add_folder(name, parent, folder_class)

    def put_event(
        self,
        folder: str,
        uid: str,
        subject: str,
        start: datetime,
        end: datetime | None = None,
        **fields: object,
    ) -> str:
        """Create or update (same UID) a calendar item; ``fields`` are
        ``CalendarEntry`` attributes (attendees are ``Person``s)."""
        entry = CalendarEntry(
            "",
            "",
            uid,
            subject,
            start,
            end or start + timedelta(hours=1),
            0,
            **fields,  # type: ignore[arg-type]
        )
        return self.mailbox.put_event(folder, entry)

    def find(self, message_id: str) -> str:
        return self.mailbox.find(message_id)

    def delete(self, item_id: str) -> None:
        self.mailbox.delete(item_id)

    def move(self, item_id: str, folder: str) -> str:
        return self.mailbox.move(item_id, folder)

    def invalidate_sync_states(self, folder: str) -> None:
        self.mailbox.invalidate(folder)

    def break_item(self, item_id: str) -> None:
        """Answer GetItem for this item with ``ErrorItemCorrupt``."""
        with self.mailbox.lock:
            item = self.mailbox.items[item_id]
            if isinstance(item, CalendarEntry):
                item.broken = True
            else:
                self.mailbox.items[item_id] = MailItem(
                    item.id, item.folder, b"", item.received, item.number
                )

    def server_busy(self, operation: str = "", times: int = 1, back_off_ms: int = 50) -> None:
        """Throttle the next ``times`` requests (of ``operation``, or any)."""
        with self._lock:
            self._busy.append(_Busy(operation, times, back_off_ms))

    @property
    def request_count(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    # -- dispatch -------------------------------------------------------------

    def _throttled(self, operation: str) -> int | None:
        with self._lock:
            for busy in self._busy:
                if busy.times > 0 and busy.operation in ("", operation):
                    busy.times -= 1
                    return busy.back_off_ms
        return None

    def answer(self, body: bytes) -> tuple[int, bytes]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 400, b"not XML"
        soap_body = root.find(f"{{{S}}}Body")
        if soap_body is None or len(soap_body) == 0:
            return 400, b"no SOAP body"
        request = soap_body[0]
        operation = request.tag.rpartition("}")[2]
        with self._lock:
            self.requests[operation] += 1
            self.log.append(operation)
        back_off = self._throttled(operation)
        if back_off is not None:
            return 500, server_busy_fault(back_off)
        handler = _OPERATIONS.get(operation)
        if handler is None:
            return 500, _fault("ErrorInvalidRequest", f"{operation} is not supported here")
        response = ET.Element(f"{{{M}}}{operation}Response")
        messages = sub(response, M, "ResponseMessages")
        with self.mailbox.lock:
            handler(self, request, messages)
        return 200, envelope(response)


def _fault(code: str, text: str) -> bytes:
    root = ET.Element(f"{{{S}}}Envelope")
    fault = sub(sub(root, S, "Body"), S, "Fault")
    ET.SubElement(fault, "faultcode").text = f"a:{code}"
    ET.SubElement(fault, "faultstring").text = text
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _shape(request: ET.Element, tag: str) -> tuple[str, set[str]]:
    shape = request.find(f"{{{M}}}{tag}")
    if shape is None:
        return "IdOnly", set()
    base = shape.findtext(f"{{{T}}}BaseShape", "IdOnly").strip()
    fields = {
        str(f.get("FieldURI"))
        for f in shape.iterfind(f"{{{T}}}AdditionalProperties/{{{T}}}FieldURI")
        if f.get("FieldURI")
    }
    return base, fields


def _folder_ref(app: EwsServer, elem: ET.Element) -> str | None:
    """The id of a ``FolderId`` or ``DistinguishedFolderId`` element, if it exists."""
    name = elem.tag.rpartition("}")[2]
    value = str(elem.get("Id", ""))
    mailbox = app.mailbox
    if name == "DistinguishedFolderId":
        found = mailbox.distinguished(value)
        return found.id if found is not None else None
    return value if value in mailbox.folders else None


def _get_folder(app: EwsServer, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "FolderShape")
    ids = request.find(f"{{{M}}}FolderIds")
    for elem in list(ids) if ids is not None else []:
        folder_id = _folder_ref(app, elem)
        if folder_id is None:
            error_message(
                messages, "GetFolder", "ErrorFolderNotFound", "The folder does not exist."
            )
            continue
        message = success_message(messages, "GetFolder")
        write_folder(sub(message, M, "Folders"), app.mailbox.folders[folder_id], fields, shape)


def _find_folder(app: EwsServer, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "FolderShape")
    deep = request.get("Traversal", "Shallow") == "Deep"
    view = request.find(f"{{{M}}}IndexedPageFolderView")
    size = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    offset = int(view.get("Offset", "0")) if view is not None else 0
    parents = request.find(f"{{{M}}}ParentFolderIds")
    for elem in list(parents) if parents is not None else []:
        parent = _folder_ref(app, elem)
        if parent is None:
            error_message(
                messages, "FindFolder", "ErrorFolderNotFound", "The folder does not exist."
            )
            continue
        found = app.mailbox.descendants(parent)
        if not deep:
            found = [f for f in found if f.parent == parent]
        page = found[offset : offset + size]
        last = offset + len(page) >= len(found)
        message = success_message(messages, "FindFolder")
        root = sub(
            message,
            M,
            "RootFolder",
            IndexedPagingOffset=str(offset + len(page)),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange=str(last).lower(),
        )
        container = sub(root, T, "Folders")
        for folder in page:
            write_folder(container, folder, fields, shape)


def _sync_folder_items(app: EwsServer, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "ItemShape")
    ref = request.find(f"{{{M}}}SyncFolderId")
    folder_id = _folder_ref(app, ref[0]) if ref is not None and len(ref) else None
    if folder_id is None:
        _sync_error(messages, "ErrorFolderNotFound", "The folder does not exist.")
        return
    state = request.findtext(f"{{{M}}}SyncState", "") or ""
    limit = int(request.findtext(f"{{{M}}}MaxChangesReturned", "100") or 100)
    limit = max(1, min(limit, MAX_SYNC_CHANGES))
    try:
        changes, new_state, last = app.mailbox.sync(folder_id, state.strip(), limit)
    except SyncStateError:
        _sync_error(
            messages,
            "ErrorInvalidSyncStateData",
            "The synchronization state data is corrupt or otherwise invalid.",
        )
        return
    message = success_message(messages, "SyncFolderItems")
    sub(message, M, "SyncState", new_state)
    sub(message, M, "IncludesLastItemInRange", str(last).lower())
    container = sub(message, M, "Changes")
    for kind, item_id in changes:
        change = sub(container, T, kind)
        item = app.mailbox.items.get(item_id)
        if kind == "Delete" or item is None:
            sub(change, T, "ItemId", Id=item_id, ChangeKey="CK1")
        else:
            write_item(change, item, fields, shape)


def _sync_error(messages: ET.Element, code: str, text: str) -> None:
    # Exchange still writes the (empty) sync state elements in an error answer
    message = error_message(messages, "SyncFolderItems", code, text)
    sub(message, M, "SyncState")
    sub(message, M, "IncludesLastItemInRange", "true")


def _get_item(app: EwsServer, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "ItemShape")
    ids = request.find(f"{{{M}}}ItemIds")
    for elem in list(ids) if ids is not None else []:
        item = app.mailbox.items.get(str(elem.get("Id", "")))
        if item is None:
            error_message(
                messages,
                "GetItem",
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            )
            continue
        if (isinstance(item, CalendarEntry) and item.broken) or (
            isinstance(item, MailItem) and not item.mime
        ):
            error_message(messages, "GetItem", "ErrorItemCorrupt", "The item is corrupt.")
            continue
        message = success_message(messages, "GetItem")
        write_item(sub(message, M, "Items"), item, fields, shape)


_OPERATIONS: dict[str, Callable[[EwsServer, ET.Element, ET.Element], None]] = {
    "GetFolder": _get_folder,
    "FindFolder": _find_folder,
    "SyncFolderItems": _sync_folder_items,
    "GetItem": _get_item,
}


class _Handler(BaseHTTPRequestHandler):
    app: EwsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user.lstrip("\\").lower() == self.app.user.lower() and password == self.app.password

    def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        headers = {
            "Date": self.date_time_string(),
            "Content-Type": "text/xml; charset=utf-8",
            "Content-Length": str(len(body)),
            **(extra or {}),
        }
        lines = [f"{self.protocol_version} {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        # status, headers and body in one write: a separate small write would
        # wait for the client's delayed ACK on every keep-alive request
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length)
        if self.path.split("?")[0].lower() != PATH.lower():
            self._send(404, b"")
            return
        if not self._authorized():
            with self.app._lock:
                self.app.requests["unauthorized"] += 1
            self._send(401, b"", {"WWW-Authenticate": 'Basic realm="127.0.0.1"'})
            return
        status, answer = self.app.answer(body)
        self._send(status, answer)

    def do_GET(self) -> None:
        self._send(405, b"")
