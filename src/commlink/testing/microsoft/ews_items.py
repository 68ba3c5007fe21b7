"""Folders and items as EWS XML, with the properties a shape asks for."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from datetime import datetime

from .ews_attachments import write_attachments
from .ews_mailbox import CalendarEntry, MailItem, Person, StoredFolder
from .ews_xml import T, stamp, sub

__all__ = ["write_folder", "write_item"]

_DEFAULT_ITEM = frozenset(
    {"item:Subject", "item:DateTimeReceived", "item:ItemClass", "calendar:Start", "calendar:End"}
)


def write_folder(
    parent: ET.Element, folder: StoredFolder, fields: Collection[str], shape: str
) -> None:
    tag = "CalendarFolder" if folder.folder_class == "IPF.Appointment" else "Folder"
    elem = sub(parent, T, tag)
    sub(elem, T, "FolderId", Id=folder.id, ChangeKey=f"CK{folder.epoch}")
    everything = shape != "IdOnly"
    if (everything or "folder:ParentFolderId" in fields) and folder.parent:
        sub(elem, T, "ParentFolderId", Id=folder.parent, ChangeKey="CK1")
    if (everything or "folder:FolderClass" in fields) and folder.folder_class:
        sub(elem, T, "FolderClass", folder.folder_class)
    if everything or "folder:DisplayName" in fields:
        sub(elem, T, "DisplayName", folder.name)
    if folder.distinguished and "folder:DistinguishedFolderId" in fields:
        sub(elem, T, "DistinguishedFolderId", folder.distinguished)


def write_item(
    parent: ET.Element,
    item: MailItem | CalendarEntry,
    fields: Collection[str],
    shape: str,
    *,
    changekey: str = "CK1",
) -> None:
    """The item element with its id and the requested properties."""
    wanted = set(fields) | (_DEFAULT_ITEM if shape != "IdOnly" else set())
    if isinstance(item, MailItem):
        elem = sub(parent, T, "Message")
        writers = _MAIL
    else:
        elem = sub(parent, T, "CalendarItem")
        writers = _CALENDAR
    for uri, write in writers:
        if uri == "item:ItemId" or uri in wanted:
            write(elem, item, changekey)


def _mailbox(parent: ET.Element, tag: str, person: Person) -> ET.Element:
    outer = sub(parent, T, tag)
    box = sub(outer, T, "Mailbox")
    if person.name:
        sub(box, T, "Name", person.name)
    if person.email:
        sub(box, T, "EmailAddress", person.email)
    sub(box, T, "RoutingType", "SMTP")
    return outer


# -- messages ------------------------------------------------------------------

Writer = Callable[[ET.Element, object, str], None]


def _m_id(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem | CalendarEntry)
    sub(elem, T, "ItemId", Id=item.id, ChangeKey=changekey)


def _m_mime(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    sub(elem, T, "MimeContent", base64.b64encode(item.mime).decode(), CharacterSet="UTF-8")


def _m_class(elem: ET.Element, item: object, changekey: str) -> None:
    sub(elem, T, "ItemClass", "IPM.Note" if isinstance(item, MailItem) else "IPM.Appointment")


def _m_subject(elem: ET.Element, item: object, changekey: str) -> None:
    if isinstance(item, MailItem):
        subject = dict(item.headers()).get("Subject", "")
    else:
        assert isinstance(item, CalendarEntry)
        subject = item.subject
    sub(elem, T, "Subject", subject)


def _m_received(elem: ET.Element, item: object, changekey: str) -> None:
    if isinstance(item, MailItem):
        sub(elem, T, "DateTimeReceived", stamp(item.received))
    elif isinstance(item, CalendarEntry):
        sub(elem, T, "DateTimeReceived", stamp(item.modified_at))


def _m_size(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    sub(elem, T, "Size", str(len(item.mime)))


def _m_headers(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    headers = sub(elem, T, "InternetMessageHeaders")
    for name, value in item.headers():
        sub(headers, T, "InternetMessageHeader", value, HeaderName=name)


def _m_conversation(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    sub(elem, T, "ConversationId", Id=item.conversation_id)


def _m_message_id(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    if item.message_id:
        sub(elem, T, "InternetMessageId", f"<{item.message_id}>")


def _m_attachments(elem: ET.Element, item: object, changekey: str) -> None:
    assert isinstance(item, MailItem)
    write_attachments(elem, item)


_MAIL: list[tuple[str, Writer]] = [
    ("item:MimeContent", _m_mime),
    ("item:ItemId", _m_id),
    ("item:ItemClass", _m_class),
    ("item:Subject", _m_subject),
    ("item:DateTimeReceived", _m_received),
    ("item:Size", _m_size),
    ("item:InternetMessageHeaders", _m_headers),
    ("item:ConversationId", _m_conversation),
    ("message:InternetMessageId", _m_message_id),
    ("item:Attachments", _m_attachments),
]


# -- calendar items ------------------------------------------------------------


def _c(write: Callable[[ET.Element, CalendarEntry], object]) -> Writer:
    def writer(elem: ET.Element, item: object, changekey: str) -> None:
        assert isinstance(item, CalendarEntry)
        write(elem, item)

    return writer


def _text(tag: str, value: Callable[[CalendarEntry], str]) -> Writer:
    return _c(lambda elem, item: sub(elem, T, tag, value(item)))


def _when(tag: str, value: Callable[[CalendarEntry], datetime]) -> Writer:
    return _text(tag, lambda item: stamp(value(item)))


def _body(elem: ET.Element, item: CalendarEntry) -> None:
    if item.body:
        sub(elem, T, "Body", item.body, BodyType="Text")


def _organizer(elem: ET.Element, item: CalendarEntry) -> None:
    if item.organizer is not None:
        _mailbox(elem, "Organizer", item.organizer)


def _attendees(tag: str, pick: Callable[[CalendarEntry], tuple[Person, ...]]) -> Writer:
    def write(elem: ET.Element, item: CalendarEntry) -> None:
        people = pick(item)
        if not people:
            return
        outer = sub(elem, T, tag)
        for person in people:
            attendee = _mailbox(outer, "Attendee", person)
            sub(attendee, T, "ResponseType", person.response)

    return _c(write)


def _recurrence(elem: ET.Element, item: CalendarEntry) -> None:
    if not item.recurrence:
        return
    outer = sub(elem, T, "Recurrence")
    for key in ("pattern", "boundary"):
        value = item.recurrence.get(key)
        if not isinstance(value, tuple) or len(value) != 2:
            continue
        name, parts = value
        part = sub(outer, T, str(name))
        for field, text in parts:
            sub(part, T, str(field), str(text))


def _modified(elem: ET.Element, item: CalendarEntry) -> None:
    if not item.modified:
        return
    outer = sub(elem, T, "ModifiedOccurrences")
    for item_id, start, end, original in item.modified:
        occurrence = sub(outer, T, "Occurrence")
        sub(occurrence, T, "ItemId", Id=item_id, ChangeKey="CK1")
        sub(occurrence, T, "Start", stamp(start))
        sub(occurrence, T, "End", stamp(end))
        sub(occurrence, T, "OriginalStart", stamp(original))


def _deleted(elem: ET.Element, item: CalendarEntry) -> None:
    if not item.deleted:
        return
    outer = sub(elem, T, "DeletedOccurrences")
    for start in item.deleted:
        sub(sub(outer, T, "DeletedOccurrence"), T, "Start", stamp(start))


def _kind(item: CalendarEntry) -> str:
    return "RecurringMaster" if item.recurrence else "Single"


_CALENDAR: list[tuple[str, Writer]] = [
    ("item:ItemId", _m_id),
    ("item:DateTimeReceived", _m_received),
    ("item:ItemClass", _m_class),
    ("item:Subject", _m_subject),
    ("item:Body", _c(_body)),
    ("item:LastModifiedTime", _when("LastModifiedTime", lambda i: i.modified_at)),
    ("calendar:UID", _text("UID", lambda i: i.uid)),
    ("calendar:Start", _when("Start", lambda i: i.start)),
    ("calendar:End", _when("End", lambda i: i.end)),
    ("calendar:IsAllDayEvent", _text("IsAllDayEvent", lambda i: str(i.all_day).lower())),
    ("calendar:Location", _text("Location", lambda i: i.location)),
    ("calendar:IsCancelled", _text("IsCancelled", lambda i: str(i.cancelled).lower())),
    ("calendar:CalendarItemType", _text("CalendarItemType", _kind)),
    ("calendar:Organizer", _c(_organizer)),
    ("calendar:RequiredAttendees", _attendees("RequiredAttendees", lambda i: i.required)),
    ("calendar:OptionalAttendees", _attendees("OptionalAttendees", lambda i: i.optional)),
    (
        "calendar:AppointmentSequenceNumber",
        _text("AppointmentSequenceNumber", lambda i: str(i.sequence)),
    ),
    ("calendar:Recurrence", _c(_recurrence)),
    ("calendar:StartTimeZone", _c(lambda e, i: sub(e, T, "StartTimeZone", Id=i.timezone))),
    ("calendar:ModifiedOccurrences", _c(_modified)),
    ("calendar:DeletedOccurrences", _c(_deleted)),
]
