"""The EWS operations ``EwsServer`` answers, on the mailbox model.

Each handler reads its request element and appends one response message
per requested folder or item to ``messages``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime

from .ews_attachments import get_attachment
from .ews_items import write_folder, write_item
from .ews_mailbox import CalendarEntry, EwsMailbox, MailItem, SyncStateError
from .ews_xml import M, T, error_message, sub, success_message

__all__ = ["DISTINGUISHED_NAMES", "EMAIL_KEYS", "MAX_SYNC_CHANGES", "OPERATIONS", "schema_error"]

#: The most changes one SyncFolderItems answer carries, as in Exchange.
MAX_SYNC_CHANGES = 512

#: DistinguishedFolderIdNameType of the Exchange 2016 schema (2019 and SE
#: share it); any other name fails schema validation.
DISTINGUISHED_NAMES = frozenset(
    {
        "calendar",
        "contacts",
        "deleteditems",
        "drafts",
        "inbox",
        "journal",
        "notes",
        "outbox",
        "sentitems",
        "tasks",
        "msgfolderroot",
        "publicfoldersroot",
        "root",
        "junkemail",
        "searchfolders",
        "voicemail",
        "recoverableitemsroot",
        "recoverableitemsdeletions",
        "recoverableitemsversions",
        "recoverableitemspurges",
        "archiveroot",
        "archivemsgfolderroot",
        "archivedeleteditems",
        "archiveinbox",
        "archiverecoverableitemsroot",
        "archiverecoverableitemsdeletions",
        "archiverecoverableitemsversions",
        "archiverecoverableitemspurges",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
        "recipientcache",
        "quickcontacts",
        "conversationhistory",
        "adminauditlogs",
        "todosearch",
        "mycontacts",
        "directory",
        "imcontactlist",
        "peopleconnect",
        "favorites",
    }
)


def schema_error(request: ET.Element) -> str | None:
    """Why the request fails schema validation (an unknown distinguished folder), if it does."""
    for elem in request.iter(f"{{{T}}}DistinguishedFolderId"):
        name = elem.get("Id", "")
        if name not in DISTINGUISHED_NAMES:
            return f"The 'Id' attribute is invalid - The value '{name}' is invalid"
    return None


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


def _folder_ref(mailbox: EwsMailbox, elem: ET.Element) -> str | None:
    """The id of a ``FolderId`` or ``DistinguishedFolderId`` element, if it exists."""
    name = elem.tag.rpartition("}")[2]
    value = str(elem.get("Id", ""))
    if name == "DistinguishedFolderId":
        found = mailbox.distinguished(value)
        return found.id if found is not None else None
    return value if value in mailbox.folders else None


def _get_folder(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "FolderShape")
    ids = request.find(f"{{{M}}}FolderIds")
    for elem in list(ids) if ids is not None else []:
        folder_id = _folder_ref(mailbox, elem)
        if folder_id is None:
            error_message(
                messages, "GetFolder", "ErrorFolderNotFound", "The folder does not exist."
            )
            continue
        message = success_message(messages, "GetFolder")
        write_folder(sub(message, M, "Folders"), mailbox.folders[folder_id], fields, shape)


def _find_folder(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "FolderShape")
    deep = request.get("Traversal", "Shallow") == "Deep"
    view = request.find(f"{{{M}}}IndexedPageFolderView")
    size = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    offset = int(view.get("Offset", "0")) if view is not None else 0
    parents = request.find(f"{{{M}}}ParentFolderIds")
    for elem in list(parents) if parents is not None else []:
        parent = _folder_ref(mailbox, elem)
        if parent is None:
            error_message(
                messages, "FindFolder", "ErrorFolderNotFound", "The folder does not exist."
            )
            continue
        found = mailbox.descendants(parent)
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


def _sync_folder_items(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "ItemShape")
    ref = request.find(f"{{{M}}}SyncFolderId")
    folder_id = _folder_ref(mailbox, ref[0]) if ref is not None and len(ref) else None
    if folder_id is None:
        _sync_error(messages, "ErrorFolderNotFound", "The folder does not exist.")
        return
    state = request.findtext(f"{{{M}}}SyncState", "") or ""
    limit = int(request.findtext(f"{{{M}}}MaxChangesReturned", "100") or 100)
    limit = max(1, min(limit, MAX_SYNC_CHANGES))
    try:
        changes, new_state, last = mailbox.sync(folder_id, state.strip(), limit)
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
        item = mailbox.items.get(item_id)
        if kind == "Delete" or item is None:
            sub(change, T, "ItemId", Id=item_id, ChangeKey="CK1")
        else:
            write_item(change, item, fields, shape)


def _sync_error(messages: ET.Element, code: str, text: str) -> None:
    # Exchange still writes the (empty) sync state elements in an error answer
    message = error_message(messages, "SyncFolderItems", code, text)
    sub(message, M, "SyncState")
    sub(message, M, "IncludesLastItemInRange", "true")


def _get_item(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "ItemShape")
    ids = request.find(f"{{{M}}}ItemIds")
    for elem in list(ids) if ids is not None else []:
        item = mailbox.items.get(str(elem.get("Id", "")))
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


def _received(item: MailItem | CalendarEntry) -> datetime:
    return item.received if isinstance(item, MailItem) else item.modified_at


def _restricted(
    request: ET.Element, items: list[MailItem | CalendarEntry]
) -> list[MailItem | CalendarEntry] | None:
    """The items a ``DateTimeReceived`` comparison keeps (``None``: a
    restriction this server does not evaluate)."""
    restriction = request.find(f"{{{M}}}Restriction")
    if restriction is None:
        return items
    if len(restriction) != 1:
        return None
    test = restriction[0]
    operator = test.tag.rpartition("}")[2]
    field = test.find(f"{{{T}}}FieldURI")
    constant = test.find(f"{{{T}}}FieldURIOrConstant/{{{T}}}Constant")
    if field is None or field.get("FieldURI") != "item:DateTimeReceived" or constant is None:
        return None
    try:
        bound = datetime.fromisoformat(str(constant.get("Value", "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    compare = {
        "IsLessThanOrEqualTo": lambda when: when <= bound,
        "IsLessThan": lambda when: when < bound,
        "IsGreaterThanOrEqualTo": lambda when: when >= bound,
        "IsGreaterThan": lambda when: when > bound,
    }.get(operator)
    if compare is None:
        return None
    # like Exchange, compare the stored times (finer than the whole seconds shown)
    return [i for i in items if compare(_received(i))]


def _find_item(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    shape, fields = _shape(request, "ItemShape")
    view = request.find(f"{{{M}}}IndexedPageItemView")
    size = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    offset = int(view.get("Offset", "0")) if view is not None else 0
    order = request.find(f"{{{M}}}SortOrder/{{{T}}}FieldOrder")
    descending = order is None or order.get("Order") == "Descending"
    parents = request.find(f"{{{M}}}ParentFolderIds")
    for elem in list(parents) if parents is not None else []:
        folder_id = _folder_ref(mailbox, elem)
        if folder_id is None:
            error_message(messages, "FindItem", "ErrorFolderNotFound", "The folder does not exist.")
            continue
        found = _restricted(request, mailbox.in_folder(folder_id))
        if found is None:
            error_message(
                messages, "FindItem", "ErrorUnsupportedQueryFilter", "Restriction not supported."
            )
            continue
        found.sort(key=lambda i: (_received(i), i.number), reverse=descending)
        page = found[offset : offset + size]
        message = success_message(messages, "FindItem")
        root = sub(
            message,
            M,
            "RootFolder",
            IndexedPagingOffset=str(offset + len(page)),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange=str(offset + len(page) >= len(found)).lower(),
        )
        container = sub(root, T, "Items")
        for item in page:
            write_item(container, item, fields, shape)


#: The schema's keys for a contact's addresses (EmailAddressKeyType): a
#: resolved directory entry shows at most this many of its addresses.
EMAIL_KEYS = ("EmailAddress1", "EmailAddress2", "EmailAddress3")


def _resolves(mailbox: EwsMailbox, entry: str) -> bool:
    """Whether ``entry`` names the mailbox's directory entry: with a routing
    type (``smtp:x``, ``sip:x``), a partial match against its addresses;
    without one, its primary SMTP address or the start of its display name."""
    wanted = entry.strip().lower()
    if not wanted:
        return False
    scheme, colon, rest = wanted.partition(":")
    if colon and "@" not in scheme:
        return any(
            a.lower().startswith(f"{scheme}:") and rest in a.lower().partition(":")[2]
            for a in mailbox.directory_addresses()
        )
    return wanted == mailbox.email.lower() or mailbox.display_name.lower().startswith(wanted)


def _resolve_names(mailbox: EwsMailbox, request: ET.Element, messages: ET.Element) -> None:
    """The mailbox's own directory entry (this server knows no other, and no
    contacts folder entries)."""
    entry = request.findtext(f"{{{M}}}UnresolvedEntry", "") or ""
    scope = request.get("SearchScope", "ActiveDirectoryContacts")
    if scope == "Contacts" or not _resolves(mailbox, entry):
        error_message(
            messages, "ResolveNames", "ErrorNameResolutionNoResults", "No results were found."
        )
        return
    message = success_message(messages, "ResolveNames")
    found = sub(message, M, "ResolutionSet", TotalItemsInView="1", IncludesLastItemInRange="true")
    resolution = sub(found, T, "Resolution")
    person = sub(resolution, T, "Mailbox")
    sub(person, T, "Name", mailbox.display_name)
    sub(person, T, "EmailAddress", mailbox.email)
    sub(person, T, "RoutingType", "SMTP")
    sub(person, T, "MailboxType", "Mailbox")
    if request.get("ReturnFullContactData", "false").lower() not in ("true", "1"):
        return
    contact = sub(resolution, T, "Contact")
    sub(contact, T, "DisplayName", mailbox.display_name)
    addresses = sub(contact, T, "EmailAddresses")
    # the schema has three keys: entries beyond them are not shown
    for key, address in zip(EMAIL_KEYS, mailbox.directory_addresses(), strict=False):
        sub(addresses, T, "Entry", address, Key=key)
    sub(contact, T, "ContactSource", "ActiveDirectory")


OPERATIONS: dict[str, Callable[[EwsMailbox, ET.Element, ET.Element], None]] = {
    "GetFolder": _get_folder,
    "FindFolder": _find_folder,
    "SyncFolderItems": _sync_folder_items,
    "GetItem": _get_item,
    "FindItem": _find_item,
    "ResolveNames": _resolve_names,
    "GetAttachment": get_attachment,
}
