"""``EwsServer``: a local Exchange Web Services endpoint for tests.

It answers the SOAP subset a read-only sync needs, following the EWS
schema closely enough that exchangelib parses every answer: GetFolder
(distinguished and by id), FindFolder (shallow or deep, paged),
SyncFolderItems (opaque sync states, ``MaxChangesReturned`` paging,
``IncludesLastItemInRange``, ``ErrorInvalidSyncStateData`` for a stale
state), FindItem (paged, sorted and restricted by ``DateTimeReceived``),
GetItem (``MimeContent``, headers, calendar properties), ResolveNames (the
mailbox's own directory entry: ``mailbox.proxy_addresses``) and streaming
notifications.
Requests need HTTP basic auth or a bearer token (401 otherwise). Tests seed and change the
mailbox through ``server.mailbox`` and the helpers here, inject
``ErrorServerBusy`` faults with ``BackOffMilliseconds``, and read
``requests`` (every HTTP request, by operation).
"""

from __future__ import annotations

import base64
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

import attrs

from ..local_http import HttpAnswer, LocalHttpServer
from .ews_mailbox import CalendarEntry, EwsMailbox, MailItem, Person
from .ews_operations import OPERATIONS, schema_error
from .ews_streaming import Subscriptions
from .ews_xml import E, M, S, envelope, server_busy_fault, sub

__all__ = ["CalendarEntry", "EwsServer", "Person"]

PATH = "/EWS/Exchange.asmx"
_XML = {"Content-Type": "text/xml; charset=utf-8"}


@attrs.define
class _Injected:
    """A failure for the next ``times`` requests: a busy fault, or an HTTP status."""

    operation: str
    times: int
    back_off_ms: int = 0
    status: int = 0


class EwsServer(LocalHttpServer):
    """A local EWS endpoint on ``127.0.0.1`` for one mailbox (``user``).

    Clients authenticate with HTTP basic auth (``user``/``password``) or,
    when ``token`` is set, with that OAuth2 bearer token.
    """

    def __init__(
        self, user: str = "owner@home.example", password: str = "secret", token: str | None = None
    ) -> None:
        self.user = user
        self.password = password
        self.token = token
        self.mailbox = EwsMailbox(user)
        #: streaming subscriptions; ``subscriptions.stream_seconds`` caps a stream
        self.subscriptions = Subscriptions(self.mailbox)
        self.requests: Counter[str] = Counter()
        self.log: list[str] = []
        self._injected: list[_Injected] = []
        self._lock = threading.Lock()

    def stop(self) -> None:
        self.subscriptions.stopping.set()  # end open streams first
        super().stop()

    @property
    def url(self) -> str:
        """The service endpoint, ``http://127.0.0.1:PORT/EWS/Exchange.asmx``."""
        return self.root_url + PATH.lstrip("/")

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
            self._injected.append(_Injected(operation, times, back_off_ms))

    def http_error(self, status: int, operation: str = "", times: int = 1) -> None:
        """Answer the next ``times`` requests (of ``operation``, or any) with
        a bare HTTP ``status`` (an IIS error page, not SOAP)."""
        with self._lock:
            self._injected.append(_Injected(operation, times, status=status))

    @property
    def request_count(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    # -- dispatch -------------------------------------------------------------

    def _injected_failure(self, operation: str) -> tuple[int, bytes] | None:
        with self._lock:
            for failure in self._injected:
                if failure.times > 0 and failure.operation in ("", operation):
                    failure.times -= 1
                    if failure.status:
                        page = f"<html><body>HTTP Error {failure.status}</body></html>"
                        return failure.status, page.encode()
                    return 500, server_busy_fault(failure.back_off_ms)
        return None

    def answer_http(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        if method != "POST":
            return 405, _XML, b""
        if path.split("?")[0].lower() != PATH.lower():
            return 404, _XML, b""
        if not self._authorized(headers.get("authorization", "")):
            with self._lock:
                self.requests["unauthorized"] += 1
            return 401, {**_XML, "WWW-Authenticate": 'Basic realm="127.0.0.1"'}, b""
        status, answer = self.answer(body)
        return status, _XML, answer

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self.token is not None and value.strip() == self.token
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user.lstrip("\\").lower() == self.user.lower() and password == self.password

    def answer(self, body: bytes) -> tuple[int, bytes | Iterator[bytes]]:
        """The status and SOAP answer (a stream of envelopes for GetStreamingEvents)."""
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
        failure = self._injected_failure(operation)
        if failure is not None:
            return failure
        if operation == "GetStreamingEvents":
            return 200, self.subscriptions.stream(request)
        own = {
            "Subscribe": self.subscriptions.subscribe,
            "Unsubscribe": self.subscriptions.unsubscribe,
        }
        invalid = schema_error(request)
        if invalid is not None:
            return 500, _fault("ErrorSchemaValidation", invalid)
        handler = OPERATIONS.get(operation) or own.get(operation)
        if handler is None:
            return 500, _fault("ErrorInvalidRequest", f"{operation} is not supported here")
        response = ET.Element(f"{{{M}}}{operation}Response")
        messages = sub(response, M, "ResponseMessages")
        with self.mailbox.lock:
            handler(self.mailbox, request, messages)
        return 200, envelope(response)


def _fault(code: str, text: str) -> bytes:
    root = ET.Element(f"{{{S}}}Envelope")
    fault = sub(sub(root, S, "Body"), S, "Fault")
    ET.SubElement(fault, "faultcode").text = f"a:{code}"
    ET.SubElement(fault, "faultstring").text = text
    detail = ET.SubElement(fault, "detail")
    sub(detail, E, "ResponseCode", code)
    sub(detail, E, "Message", text)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
