"""RFC 5322 bytes to ``Message``: fast, and never raising.

The fast path is fast-mail-parser (Rust). Its output is checked where it is
known to be weak, and only the doubtful piece is redone from the raw header
text: address headers whose mailbox count does not add up (groups, several
From addresses, empty or invalid entries, comments), names or subjects left
encoded, 8-bit headers that are not UTF-8, and body text that shows a wrong
charset. When the fast parser refuses a message (a broken transfer encoding
in a body part, too deep a MIME structure), the body is read again with the
standard library's lenient parser. Header sections over 64 KiB skip the fast
parser, which slows down quadratically on thousands of encoded words.

Problems never raise; they become short strings in ``Message.warnings``:

* ``missing-message-id`` / ``bad-message-id`` (a stable id was synthesised),
  ``missing-date`` / ``bad-date`` (the provider's date was used) and
  ``date-unknown`` (there was none: the epoch);
* ``bad-address:<header>``: an entry that is not an address (kept as an
  invalid ``Address``);
* ``charset-repaired:<charset>``: text decoded with another charset than the
  declared one; ``header-charset-repaired``: 8-bit headers that are not
  UTF-8, read as Windows-1252;
* ``fallback-parser:<reason>``: the standard-library reader took over;
  ``bad-attachment-encoding``: an attachment's size is estimated;
  ``body-unreadable:<reason>``, ``bad-part:<error>``: what could not be read;
* ``parser:<kind>``: another repair the fast parser reported;
* ``internal-error:<error>``: a bug; only the basics were kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

import fast_mail_parser as fmp

from ..model import Attachment, Detail, Message, Participant
from .headers import (
    EPOCH,
    ROLE_HEADERS,
    decode_words,
    header_block,
    mime_headers_only,
    msg_ids,
    parse_date,
    participant,
    participants,
    raw_headers,
    raw_values,
    synthetic_id,
    token,
)
from .parts import (
    FORWARD_TYPES,
    Content,
    attachment,
    calendar_text,
    estimate_size,
    forward_name,
    is_calendar,
    stdlib_content,
)
from .text import collapse, decode_bytes, html_to_text, looks_mojibake, snippet

__all__ = ["parse_message"]

# Header sections larger than this are read without the fast parser.
_LARGE_HEADER = 64 * 1024
# Bodies larger than this are not handed to the (slow) standard-library reader.
_STDLIB_MAX = 64 * 1024 * 1024
# Address headers and the fast parser's attribute for them.
_FAST_ADDRESSES = {"from": "from_", "to": "to", "cc": "cc", "bcc": "bcc", "reply-to": "reply_to"}
# Fast-parser warnings that this module handles itself.
_HANDLED = frozenset({"charset-fallback", "address-unparseable", "date-unparseable"})
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

_FastMail = fmp.PyLazyMail | fmp.PyMailMetadata


# What the header section says, from either parser: lower-cased headers,
# subject, date and participants.
_Head = tuple[Mapping[str, Sequence[str]], str, "datetime | None", list[Participant]]


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
    src = _Source(raw)
    full = detail is Detail.FULL
    content: Content | None = None
    if len(raw) > _LARGE_HEADER and len(src.block) > _LARGE_HEADER:
        # The fast parser slows down quadratically on thousands of encoded
        # words: read such headers here and give it only the MIME headers.
        warnings.append("fallback-parser:large-header")
        hdrs, subject, date, found = _raw_head(src.block, warnings)
        if full:
            content = _content(mime_headers_only(src.block) + raw[len(src.block) :], warnings)
    else:
        mark = len(warnings)
        try:
            mail: _FastMail = (
                fmp.parse_email(raw, mode="lazy") if full else fmp.parse_email(raw, mode="metadata")
            )
            hdrs, subject, date, found = _fast_head(mail, src, warnings)
            if isinstance(mail, fmp.PyLazyMail):
                content = _fast_content(mail, raw, warnings)
                _note(mail, warnings)
        except Exception as exc:  # a refusal, or an error from the parsed result
            del warnings[mark:]
            warnings.append(f"fallback-parser:{_kebab(type(exc).__name__)}")
            if isinstance(exc, fmp.ParseError):
                hdrs, subject, date, found = _head_only(src, warnings)
            else:
                hdrs, subject, date, found = _raw_head(src.block, warnings)
            content = _stdlib_content(raw, warnings) if full else None

    message_id, synthetic = _message_id(hdrs, raw, warnings)
    if date is None:
        date = _fallback_date("date" in hdrs, fallback_date, warnings)
    body = None if content is None else _body(content)
    irt = hdrs.get("in-reply-to")
    refs = hdrs.get("references")
    list_id = hdrs.get("list-id")
    unsubscribe = hdrs.get("list-unsubscribe")
    precedence = hdrs.get("precedence")
    auto = hdrs.get("auto-submitted")
    return Message(
        provider_id=provider_id,
        message_id=message_id,
        date=date,
        subject=" ".join(subject.split()),
        participants=tuple(found),
        in_reply_to=msg_ids(irt[0]) if irt else (),
        references=msg_ids(" ".join(refs)) if refs else (),
        thread_hint=thread_hint,
        folders=tuple(folders),
        body=body,
        snippet=snippet(body) if body else "",
        attachments=content.attachments if content is not None else (),
        calendar_parts=content.calendar_parts if content is not None else (),
        list_id=_list_id(list_id[0]) if list_id else "",
        list_unsubscribe=collapse(unsubscribe[0]) if unsubscribe else "",
        precedence=token(precedence[0]) if precedence else "",
        auto_submitted=token(auto[0]) if auto else "",
        size=len(raw),
        synthetic_id=synthetic,
        warnings=tuple(dict.fromkeys(warnings)) if warnings else (),
    )


def _head_only(src: _Source, warnings: list[str]) -> _Head:
    """Headers of a message whose body the fast parser refused."""
    try:
        mail = fmp.parse_email(src.raw, mode="metadata")
    except fmp.ParseError:
        return _raw_head(src.block, warnings)
    return _fast_head(mail, src, warnings)


def _content(data: bytes, warnings: list[str]) -> Content:
    try:
        mail = fmp.parse_email(data, mode="lazy")
    except fmp.ParseError as exc:
        warnings.append(f"fallback-parser:{_kebab(type(exc).__name__)}")
        return _stdlib_content(data, warnings)
    content = _fast_content(mail, data, warnings)
    _note(mail, warnings)
    return content


def _stdlib_content(data: bytes, warnings: list[str]) -> Content:
    if len(data) > _STDLIB_MAX:
        warnings.append("body-unreadable:too-large")
        return Content()
    try:
        return stdlib_content(data, warnings)
    except Exception as exc:  # e.g. RecursionError on absurdly deep nesting
        warnings.append(f"body-unreadable:{type(exc).__name__}")
        return Content()


def _note(mail: fmp.PyLazyMail, warnings: list[str]) -> None:
    """Record the fast parser's own repairs that are not handled here."""
    notes = mail.warnings
    if notes:
        warnings.extend(f"parser:{w.kind}" for w in notes if w.kind not in _HANDLED)


class _Source:
    """The raw message, with its header section split off on first use."""

    __slots__ = ("_block", "_eight_bit", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._block: bytes | None = None
        self._eight_bit: bool | None = None

    @property
    def block(self) -> bytes:
        if self._block is None:
            self._block = header_block(self.raw)
        return self._block

    @property
    def eight_bit(self) -> bool:
        """Whether the header section has 8-bit bytes that are not UTF-8.

        The fast parser reads those as Latin-1 (and drops C1 bytes from
        names), so such headers are decoded again from the raw text.
        """
        if self._eight_bit is None:
            block = self.block
            self._eight_bit = not block.isascii() and not _is_utf8(block)
        return self._eight_bit

    @property
    def checked_eight_bit(self) -> bool:
        """Whether 8-bit headers were looked for, and found."""
        return bool(self._eight_bit)


# --- headers ---------------------------------------------------------------------


def _fast_head(mail: _FastMail, src: _Source, warnings: list[str]) -> _Head:
    headers = mail.headers
    hdrs = dict(zip(map(str.lower, headers), headers.values(), strict=True))
    if len(hdrs) != len(headers):  # one name in several spellings: keep every value
        hdrs = {}
        for name, values in headers.items():
            key = name.lower()
            hdrs[key] = hdrs[key] + values if key in hdrs else values

    subject = mail.subject
    if "=?" in subject or "\ufffd" in subject or (not subject.isascii() and src.eight_bit):
        subject = _decoded(raw_values(src.block, "subject") or hdrs.get("subject", []), warnings)

    found: list[Participant] = []
    for name in ROLE_HEADERS:
        shown = hdrs.get(name)
        if not shown:
            continue
        mailboxes = None
        if shown[0].isascii() or not src.eight_bit:
            mailboxes = _trusted(mail, name, shown)
        if mailboxes is None:
            mailboxes = _dedupe(participants(name, raw_values(src.block, name) or shown))
            if any(not p.address.valid for p in mailboxes):
                warnings.append(f"bad-address:{name}")
        found.extend(mailboxes)
    if src.checked_eight_bit:
        warnings.append("header-charset-repaired")

    try:
        date = mail.date_parsed
    except (ValueError, OverflowError):  # e.g. a year past 9999
        date = None
    if date is None and "date" in hdrs:
        date = parse_date(hdrs["date"][0])
    return hdrs, subject, date, found


def _trusted(mail: _FastMail, header: str, values: Sequence[str]) -> list[Participant] | None:
    """The fast parser's mailboxes for one header, or ``None`` when they look wrong."""
    attr = _FAST_ADDRESSES.get(header)
    if attr is None or len(values) != 1:
        return None
    value = values[0]
    parsed = getattr(mail, attr)
    if header == "from":
        parsed = [] if parsed is None else [parsed]
    # Every mailbox has one "@"; a mismatch means a dropped or merged entry
    # (several From addresses, "@" in a quoted name or comment, an empty entry).
    # Comments may hold the only display name, which the fast parser drops.
    if value.count("@") != len(parsed) or "(" in value:
        return None
    if not parsed:
        stripped = value.strip()
        return [] if not stripped or stripped.endswith(";") else None
    out = []
    for mailbox in parsed:
        name = mailbox.display_name
        if name and ("=?" in name or "\ufffd" in name):
            return None
        found = participant(mailbox.address, name or "", header)
        if not found.address.valid:
            return None
        out.append(found)
    return _dedupe(out) if len(out) > 1 else out


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
    return hdrs, subject, parse_date(_first(hdrs, "date")), found


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
    if value[:1] == "<" and value[-1:] == ">" and value.count("<") == 1:
        found = value[1:-1].strip()
        if found and " " not in found:
            return found, False
    ids = msg_ids(value)
    if ids:
        return ids[0], False
    warnings.append("bad-message-id" if value.strip() else "missing-message-id")
    return synthetic_id(raw), True


def _fallback_date(present: bool, fallback: datetime | None, warnings: list[str]) -> datetime:
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
    # Each read of text_plain/text_html builds new strings: read each at most once.
    plains = mail.text_plain
    plain = plains[0] if plains else None
    html = None
    if not _has_text(plain):
        htmls = mail.text_html
        html = htmls[0] if htmls else None
    if plain is not None and (html is None or _has_text(plain)):
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
    # An invitation often comes twice: inline and as an .ics attachment.
    return Content(plain, html, tuple(attachments), tuple(dict.fromkeys(calendars)))


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


def _has_text(text: str | None) -> bool:
    return bool(text and not text.isspace())


def _uses_plain(plain: str | None, html: str | None) -> bool:
    return plain is not None and (html is None or _has_text(plain))


def _body(content: Content) -> str:
    if _uses_plain(content.plain, content.html):
        text = content.plain or ""
    else:
        text = html_to_text(content.html or "")
    return text.replace("\r", "")


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
        date = _fallback_date(False, fallback_date, warnings)
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
