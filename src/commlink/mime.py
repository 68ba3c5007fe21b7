"""RFC 5322 bytes to ``Message``: fast, and never raising.

The fast path is fast-mail-parser (Rust). Its output is checked where it is
known to be weak, and only the doubtful piece is redone from the raw
header text: address headers whose mailbox count does not add up (groups,
several From addresses, empty entries), names or subjects left encoded,
8-bit headers that are not UTF-8, and body text that shows a wrong
charset. When the fast parser refuses a message outright (a broken
transfer encoding in a body part, say), the whole body is read again with
the standard library's lenient parser and a ``fallback-parser:<reason>``
warning is recorded.

Problems never raise: they become short strings in ``Message.warnings``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

import attrs
import fast_mail_parser as fmp

from .mime_headers import (
    EPOCH,
    ROLE_HEADERS,
    decode_words,
    header_block,
    msg_ids,
    parse_date,
    participant,
    participants,
    raw_headers,
    raw_values,
    synthetic_id,
    token,
)
from .mime_parts import (
    FORWARD_TYPES,
    Content,
    attachment,
    calendar_text,
    estimate_size,
    forward_name,
    is_calendar,
    stdlib_content,
)
from .mime_text import collapse, decode_bytes, html_to_text, looks_mojibake, snippet
from .model import Attachment, Detail, Message, Participant

__all__ = ["parse_message"]

# Fast-parser warnings that this module handles itself.
_HANDLED = frozenset({"charset-fallback", "address-unparseable", "date-unparseable"})
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

FastMail = fmp.PyLazyMail | fmp.PyMailMetadata


@attrs.frozen(slots=True)
class _Head:
    """What the header section says, from either parser."""

    headers: Mapping[str, Sequence[str]]
    subject: str
    date: datetime | None
    participants: tuple[Participant, ...]


def parse_message(
    raw: bytes,
    *,
    provider_id: str,
    detail: Detail = Detail.FULL,
    fallback_date: datetime | None = None,
    folders: tuple[str, ...] = (),
    thread_hint: str | None = None,
) -> Message:
    """Parse one RFC 5322 message into a ``Message``. Never raises.

    With ``Detail.METADATA`` only the header section is read (``raw`` may
    hold nothing else) and ``body`` is ``None``. ``fallback_date`` (the
    provider's date) is used when the Date header is missing or unreadable.
    A message without a Message-ID gets a stable synthesised one derived from
    its headers, so headers-only and full fetches of it agree.
    """
    warnings: list[str] = []
    try:
        data = raw if isinstance(raw, bytes) else bytes(raw)
        return _parse(data, provider_id, detail, fallback_date, folders, thread_hint, warnings)
    except Exception as exc:  # the promise is "never raises": keep what can be kept
        warnings.append(f"internal-error:{type(exc).__name__}")
        return _last_resort(raw, provider_id, fallback_date, folders, thread_hint, warnings)


def _parse(
    raw: bytes,
    provider_id: str,
    detail: Detail,
    fallback_date: datetime | None,
    folders: tuple[str, ...],
    thread_hint: str | None,
    warnings: list[str],
) -> Message:
    block = header_block(raw)
    full = detail is Detail.FULL
    content: Content | None = None
    try:
        mail: FastMail = (
            fmp.parse_email(raw, mode="lazy") if full else fmp.parse_email(block, mode="metadata")
        )
    except fmp.ParseError as exc:
        warnings.append(f"fallback-parser:{_kebab(type(exc).__name__)}")
        head = _raw_head(block, warnings)
        if full:
            content = stdlib_content(raw, warnings)
    else:
        head = _fast_head(mail, block, warnings)
        if isinstance(mail, fmp.PyLazyMail):
            content = _fast_content(mail, raw, warnings)
            notes = mail.warnings
            if notes:
                warnings.extend(f"parser:{w.kind}" for w in notes if w.kind not in _HANDLED)

    hdrs = head.headers
    message_id, synthetic = _message_id(hdrs, raw, warnings)
    body = None if content is None else _body(content)
    return Message(
        provider_id=provider_id,
        message_id=message_id,
        date=_date(head.date, "date" in hdrs, fallback_date, warnings),
        subject=collapse(head.subject),
        participants=head.participants,
        in_reply_to=msg_ids(_first(hdrs, "in-reply-to")),
        references=msg_ids(" ".join(hdrs.get("references", ()))),
        thread_hint=thread_hint,
        folders=tuple(folders),
        body=body,
        snippet=snippet(body) if body else "",
        attachments=content.attachments if content is not None else (),
        calendar_parts=content.calendar_parts if content is not None else (),
        list_id=_list_id(_first(hdrs, "list-id")),
        list_unsubscribe=collapse(_first(hdrs, "list-unsubscribe")),
        precedence=token(_first(hdrs, "precedence")),
        auto_submitted=token(_first(hdrs, "auto-submitted")),
        size=len(raw),
        synthetic_id=synthetic,
        warnings=tuple(dict.fromkeys(warnings)),
    )


# --- headers ---------------------------------------------------------------------


def _fast_head(mail: FastMail, block: bytes, warnings: list[str]) -> _Head:
    headers = mail.headers
    hdrs = {name.lower(): values for name, values in headers.items()}
    if len(hdrs) != len(headers):  # one name in several spellings: keep every value
        hdrs = {}
        for name, values in headers.items():
            key = name.lower()
            hdrs[key] = hdrs[key] + values if key in hdrs else values
    # The fast parser reads 8-bit headers that are not UTF-8 as Latin-1 and
    # drops C1 bytes from names: such headers are decoded from the raw text.
    eight_bit = not block.isascii() and not _is_utf8(block)
    if eight_bit:
        warnings.append("header-charset-repaired")

    subject = mail.subject
    if eight_bit or "=?" in subject or "\ufffd" in subject:
        subject = _decoded(raw_values(block, "subject") or hdrs.get("subject", []), warnings)

    found: list[Participant] = []
    for name in ROLE_HEADERS:
        values = hdrs.get(name)
        if not values:
            continue
        trusted = None if eight_bit else _trusted(mail, name, values)
        if trusted is None:
            trusted = _dedupe(participants(name, raw_values(block, name) or values))
            if any(not p.address.valid for p in trusted):
                warnings.append(f"bad-address:{name}")
        found.extend(trusted)

    date = mail.date_parsed
    if date is None and "date" in hdrs:
        date = parse_date(hdrs["date"][0])
    return _Head(hdrs, subject, date, tuple(found))


def _trusted(mail: FastMail, header: str, values: Sequence[str]) -> list[Participant] | None:
    """The fast parser's mailboxes for one header, or ``None`` when they look wrong."""
    if len(values) != 1:
        return None
    value = values[0]
    if header == "from":
        parsed = [mail.from_] if mail.from_ is not None else []
    elif header == "to":
        parsed = mail.to
    elif header == "cc":
        parsed = mail.cc
    elif header == "reply-to":
        parsed = mail.reply_to
    elif header == "bcc":
        parsed = mail.bcc
    else:
        return None
    # Every mailbox has one "@"; a mismatch means a dropped or merged entry
    # (several From addresses, "@" in a quoted name or comment, an empty entry).
    if value.count("@") != len(parsed):
        return None
    if not parsed:
        stripped = value.strip()
        return [] if not stripped or stripped.endswith(";") else None
    out = []
    seen = set()
    for mailbox in parsed:
        name = mailbox.display_name or ""
        if "=?" in name or "\ufffd" in name:
            return None
        found = participant(mailbox.address, name, header)
        address = found.address
        if not address.valid:
            return None
        if address.key not in seen:
            seen.add(address.key)
            out.append(found)
    return out


def _raw_head(block: bytes, warnings: list[str]) -> _Head:
    hdrs, repaired = raw_headers(block)
    if repaired:
        warnings.append("header-charset-repaired")
    found: list[Participant] = []
    for name in ROLE_HEADERS:
        values = hdrs.get(name)
        if values:
            mailboxes = _dedupe(participants(name, values))
            if any(not p.address.valid for p in mailboxes):
                warnings.append(f"bad-address:{name}")
            found.extend(mailboxes)
    subject = _decoded(hdrs.get("subject", [""])[:1], warnings)
    return _Head(hdrs, subject, parse_date(_first(hdrs, "date")), tuple(found))


def _decoded(values: Sequence[str], warnings: list[str]) -> str:
    text, repair = decode_words(values[0] if values else "")
    if repair is not None:
        warnings.append(f"charset-repaired:{repair}")
    return text


def _dedupe(found: Iterable[Participant]) -> list[Participant]:
    """Participants of one role, each address once (invalid ones by their text)."""
    seen: set[str] = set()
    out = []
    for p in found:
        address = p.address
        key = address.key if address.valid else "\x00" + address.raw
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _message_id(
    hdrs: Mapping[str, Sequence[str]], raw: bytes, warnings: list[str]
) -> tuple[str, bool]:
    value = _first(hdrs, "message-id")
    ids = msg_ids(value)
    if ids:
        return ids[0], False
    warnings.append("bad-message-id" if value.strip() else "missing-message-id")
    return synthetic_id(raw), True


def _date(
    parsed: datetime | None,
    present: bool,
    fallback: datetime | None,
    warnings: list[str],
) -> datetime:
    if parsed is not None:
        return parsed
    warnings.append("bad-date" if present else "missing-date")
    if fallback is not None:
        try:
            if fallback.tzinfo is None:
                return fallback.replace(tzinfo=timezone.utc)
            return fallback.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            pass
    warnings.append("date-unknown")
    return EPOCH


def _list_id(value: str) -> str:
    ids = msg_ids(value) if "<" in value else ()
    return ids[0] if ids else collapse(value)


def _first(hdrs: Mapping[str, Sequence[str]], name: str) -> str:
    values = hdrs.get(name)
    return values[0] if values else ""


# --- body ------------------------------------------------------------------------


def _fast_content(mail: fmp.PyLazyMail, raw: bytes, warnings: list[str]) -> Content:
    plain = mail.text_plain[0] if mail.text_plain else None
    html = mail.text_html[0] if mail.text_html else None
    if _uses_plain(plain, html):
        assert plain is not None
        plain = _checked(plain, "text/plain", "text_plain[0]", mail, raw, warnings)
    elif html is not None:
        html = _checked(html, "text/html", "text_html[0]", mail, raw, warnings)

    attachments: list[Attachment] = []
    calendars: list[str] = []
    for part in mail.attachments:
        ctype = (part.mimetype or "application/octet-stream").strip().lower()
        filename = part.filename or ""
        data: bytes | None
        try:
            data = part.content
        except fmp.ParseError:
            data = None
            warnings.append("bad-attachment-encoding")
        size = len(data) if data is not None else estimate_size(part.encoded_size)
        if ctype in FORWARD_TYPES:
            filename = filename or forward_name(data or b"")
        elif data is not None and is_calendar(ctype, filename):
            calendars.append(calendar_text(data, warnings))
            # An invitation's text/calendar alternative is not an attachment.
            if ctype == "text/calendar" and (part.disposition or "").lower() != "attachment":
                continue
        attachments.append(attachment(filename, ctype, size, part.disposition, part.content_id))
    return Content(plain, html, tuple(attachments), tuple(calendars))


def _checked(
    text: str, kind: str, path: str, mail: fmp.PyLazyMail, raw: bytes, warnings: list[str]
) -> str:
    """Body text, decoded again from its bytes when its charset looks wrong."""
    notes = mail.warnings
    flagged = bool(notes) and any(
        w.kind == "charset-fallback" and w.part_path == path for w in notes
    )
    if not flagged and not looks_mojibake(text):
        return text
    redone = _redecode(raw, kind)
    if redone is None:
        return text
    fixed, repair = redone
    if repair is not None:
        warnings.append(f"charset-repaired:{repair}")
    return fixed


def _redecode(raw: bytes, kind: str) -> tuple[str, str | None] | None:
    """Decode the first body part of ``kind`` from its bytes and declared charset."""
    try:
        stack = [fmp.parse_email_tree(raw, mode="lazy")]
        while stack:
            node = stack.pop()
            if node.is_message:
                continue  # a forwarded message: not this message's body
            if node.children:
                stack.extend(reversed(node.children))
                continue
            disposition = (node.disposition or "").lower()
            if node.content_type.lower() == kind and disposition != "attachment":
                data = node.content or b""
                match = _CHARSET_PARAM.search(_header(node.headers, "content-type"))
                return decode_bytes(data, match.group(1) if match else None)
    except fmp.ParseError:
        return None
    return None


def _header(headers: Mapping[str, Sequence[str]], name: str) -> str:
    for key, values in headers.items():
        if key.lower() == name and values:
            return values[0]
    return ""


def _uses_plain(plain: str | None, html: str | None) -> bool:
    return plain is not None and (html is None or bool(plain.strip()))


def _body(content: Content) -> str:
    if _uses_plain(content.plain, content.html):
        text = content.plain or ""
    else:
        text = html_to_text(content.html or "")
    text = text.replace("\r\n", "\n")
    return text.replace("\r", "\n") if "\r" in text else text


# --- odds and ends ---------------------------------------------------------------


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _kebab(name: str) -> str:
    return _CAMEL.sub("-", name).lower()


def _last_resort(
    raw: object,
    provider_id: str,
    fallback_date: datetime | None,
    folders: Iterable[str],
    thread_hint: str | None,
    warnings: list[str],
) -> Message:
    """A bare message for input that defeated every parser."""
    data = raw if isinstance(raw, bytes) else b""
    try:
        message_id = synthetic_id(data)
    except Exception:
        message_id = synthetic_id(b"")
    try:
        date = _date(None, False, fallback_date, warnings)
    except Exception:
        date = EPOCH
    return Message(
        provider_id=provider_id,
        message_id=message_id,
        date=date,
        folders=tuple(folders),
        thread_hint=thread_hint,
        size=len(data),
        synthetic_id=True,
        warnings=tuple(dict.fromkeys(warnings)),
    )
