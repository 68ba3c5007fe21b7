"""RFC 5322 bytes to ``Message``: fast, and never raising.

The fast path is fast-mail-parser (Rust). Its output is checked where it is
known to be weak, and only the doubtful piece is redone from the raw header
text: address headers whose mailbox count does not add up (groups, several
From addresses, empty or invalid entries, comments, missing commas), names
or subjects left encoded, 8-bit headers that are not UTF-8, and body text
that shows a wrong charset. When the fast parser refuses a message (a broken
transfer encoding in a body part, too deep a MIME structure), the body is
read again with the standard library's lenient parser. Header sections over
64 KiB skip the fast parser, which slows down quadratically on thousands of
encoded words; so do messages it might not survive (``structure.native_safe``:
more than 100 ``multipart`` declarations in a message over 12 KiB) or that
hold more than 4,096 encoded words, which the standard library reads to a
bounded depth instead.

Everything in the result is storable (``storable.storable_message``): text
without NUL or other controls, ids short enough to index, References
bounded. ``limits`` (the channel's ``Limits``) bounds the body text and the
participants kept.

Problems never raise; they become short strings in ``Message.warnings``:

* ``missing-message-id`` / ``bad-message-id`` (a stable id was synthesised);
* ``missing-date`` / ``bad-date``: no usable Date header, and then
  ``date-from-received`` (the topmost Received header's date was used, when
  there was no provider date) or ``date-unknown`` (neither: the epoch, a
  fixed value so that re-imports agree);
* ``date-after-arrival``: the Date header ran more than a day ahead of the
  arrival date (the provider's, else the topmost Received header's), which
  was used instead;
* ``bad-address:<header>``: an entry that is not an address (kept as an
  invalid ``Address``); ``missing-comma``: two mailboxes with no comma
  between them (both kept); ``header-truncated:<header>``: an address header
  over 1 MiB, or past the 1 MiB all of a message's address headers may
  take together, was cut; ``header-scanned:<header>``: an address header
  past the 128 KiB of unusual forms (comments, groups, quoting) a message
  may have read in full gave its addresses without names;
  ``participants-truncated:<total>``: only the first
  ``max_participants`` of ``<total>`` participants were kept (From first);
* ``calendar-too-large:<characters>``: the message's calendar parts held
  more than ``MAX_CALENDAR_CHARS`` (512 KiB) together; those past it are
  not read as an invitation (they stay attachments);
* ``text-truncated``: the body text was cut to ``max_text_chars``;
  ``html-truncated``: the HTML was cut to ``max_html_chars``;
  ``html-too-deep``: HTML nested too deep to sanitise (none kept);
  ``subject-truncated``, ``name-truncated``: over-long header text was cut;
* ``nul-removed``, ``control-removed``, ``surrogate-replaced``,
  ``id-repaired``, ``id-hashed``, ``references-truncated:<total>``: repairs
  that make the message storable (see ``storable``); ``filename-repaired``:
  direction controls that would disguise an attachment's name were removed;
* ``sender-unverified:<method>``: the receiving server's topmost
  Authentication-Results header says the From domain did not send the
  message (``dmarc=fail``, or Exchange Online's ``compauth=fail``; see
  ``authres``);
* ``line-ends-repaired``: CR-only line ends were read as CRLF;
* ``charset-repaired:<charset>``: text decoded with another charset than the
  declared one; ``header-charset-repaired``: 8-bit headers that are not
  UTF-8, read as Windows-1252;
* ``fallback-parser:<reason>``: the standard-library reader took over
  (``deep-mime`` when the fast parser was not trusted with the structure,
  ``many-encoded-words`` with thousands of encoded words);
  ``mime-too-deep``, ``mime-parts-truncated``: it stopped descending, or
  reading parts; ``attachments-truncated:<total>``: only the first 1,000 of
  ``<total>`` attachments were kept; ``bad-attachment-encoding``: an
  attachment's size is estimated; ``body-unreadable:<reason>``,
  ``bad-part:<error>``: what could not be read;
* ``parser:<kind>``: another repair the fast parser reported;
* ``internal-error:<error>``: a bug; only the basics were kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import fast_mail_parser as fmp

from ..model import UNVERIFIED_SENDER, Detail, Limits, Message, Participant
from .authres import failed_sender_check
from .content import body_text, fast_content
from .headers import (
    EPOCH,
    LARGE_HEADER,
    ROLE_HEADERS,
    AddressBudget,
    as_utc,
    decode_words,
    header_block,
    mime_headers_only,
    msg_ids,
    parse_date,
    participant,
    participants,
    raw_headers,
    raw_values,
    received_date,
    synthetic_id,
    token,
)
from .html import capture_html
from .parts import Content, stdlib_content
from .storable import MAX_NAME_CHARS, MAX_SUBJECT_CHARS, storable_message
from .structure import NATIVE_SAFE_BYTES, crlf_line_ends, native_refusal, native_safe
from .text import collapse, snippet

__all__ = ["MAX_CALENDAR_CHARS", "MAX_DATE_AHEAD", "parse_message"]

#: Calendar text a message's calendar parts may hold together (an invitation
#: is a few to a few hundred KB; reading one costs 0.5-3 µs a character, the
#: library's reader the most). Parts past it are not kept
#: (``calendar-too-large:<characters>``).
MAX_CALENDAR_CHARS = 512 << 10
#: How far a Date header may run ahead of the message's arrival (a sender's
#: clock or time zone set wrong) before the arrival date is used instead.
MAX_DATE_AHEAD = timedelta(days=1)

# Bodies larger than this are not handed to the (slow) standard-library reader.
_STDLIB_MAX = 64 * 1024 * 1024
# Address headers and the fast parser's attribute for them.
_FAST_ADDRESSES = {"from": "from_", "to": "to", "cc": "cc", "bcc": "bcc", "reply-to": "reply_to"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Longest subject or other single header value read as text; longer ones are
# cut before they are decoded and collapsed (the result is cut further when
# it is stored, see storable).
_SUBJECT_SCAN = 4 * MAX_SUBJECT_CHARS
_TEXT_SCAN = 4 * MAX_NAME_CHARS
_DEFAULT_LIMITS = Limits()
# How far a line end is looked for before a message counts as CR-only.
_LINE_PROBE = 64 * 1024
# Mailboxes of the fast parser with longer names or addresses are read again
# by our own reader (which bounds and repairs them); see headers.participant.
_CACHED_NAME = 256
_MAX_ADDRESS = 320

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
    limits: Limits | None = None,
) -> Message:
    """Parse one RFC 5322 message into a ``Message``. Never raises.

    With ``Detail.METADATA`` only the header section is read (``raw`` may
    hold nothing else) and ``body`` is ``None``. A message without a
    Message-ID gets a stable synthesised one derived from its headers, so
    headers-only and full fetches of it agree.

    The date is the Date header's; when it is missing or unreadable,
    ``fallback_date`` (the provider's date of arrival), else the date of the
    topmost Received header (written by the receiving server), else the
    epoch with the warning ``date-unknown``: a fixed value rather than the
    time of parsing, so that importing the message again gives the same
    record. A Date header more than ``MAX_DATE_AHEAD`` (a day) after that
    arrival date is the sender's invention (a message dated years ahead
    would head every timeline it is on): the arrival date is used instead,
    with the warning ``date-after-arrival``.

    ``limits`` (default ``Limits()``) bounds what is kept: body text over
    ``max_text_chars`` is cut (``text-truncated``); participants past
    ``max_participants`` are dropped, in header order From, Sender, To, Cc,
    Bcc, Reply-To, with ``participants-truncated:<total>`` giving how many
    there were (the policy's recipient count can use it; addresses past
    ``max_participants`` are counted, not checked).
    """
    warnings: list[str] = []
    limits = limits or _DEFAULT_LIMITS
    try:
        data = raw if isinstance(raw, bytes) else bytes(raw)
        message = _parse(
            data, provider_id, detail, fallback_date, folders, thread_hint, limits, warnings
        )
    except Exception as exc:  # the promise is "never raises": keep what can be kept
        warnings.append(f"internal-error:{type(exc).__name__}")
        message = _last_resort(raw, provider_id, fallback_date, folders, thread_hint, warnings)
    try:
        # Participants are built storable (see addrlist and _trusted).
        return storable_message(message, True)
    except Exception as exc:  # pragma: no cover - a bug in the repairs themselves
        warnings.append(f"internal-error:{type(exc).__name__}")
        return _last_resort(raw, provider_id, fallback_date, (), None, warnings)


def _parse(
    raw: bytes,
    provider_id: str,
    detail: Detail,
    fallback_date: datetime | None,
    folders: tuple[str, ...],
    thread_hint: str | None,
    limits: Limits,
    warnings: list[str],
) -> Message:
    size = len(raw)
    if raw.find(b"\n", 0, _LINE_PROBE) < 0:  # cheap: the first line end
        fixed = crlf_line_ends(raw)
        if fixed is not raw:
            warnings.append("line-ends-repaired")
            raw = fixed
    src = _Source(raw)
    full = detail is Detail.FULL
    max_chars = limits.max_text_chars
    content: Content | None = None
    # shared by the message's address headers
    budget = AddressBudget(limits.max_participants)
    if len(raw) > LARGE_HEADER and len(src.block) > LARGE_HEADER:
        # The fast parser slows down quadratically on thousands of encoded
        # words: read such headers here and give it only the MIME headers.
        warnings.append("fallback-parser:large-header")
        hdrs, subject, date, found = _raw_head(src.block, warnings, budget)
        if full:
            rest = mime_headers_only(src.block) + raw[len(src.block) :]
            content = _content(rest, max_chars, limits.max_html_chars, warnings)
    elif len(raw) > NATIVE_SAFE_BYTES and (refusal := native_refusal(raw)) is not None:
        # A structure the fast parser might not survive, or would take long
        # over: headers from the header section alone, the body from the
        # bounded reader.
        warnings.append(f"fallback-parser:{refusal}")
        hdrs, subject, date, found = _head_only(src, src.block, warnings, budget)
        content = _stdlib_content(raw, warnings) if full else None
    else:
        mark = len(warnings)
        try:
            mail: _FastMail = (
                fmp.parse_email(raw, mode="lazy") if full else fmp.parse_email(raw, mode="metadata")
            )
            hdrs, subject, date, found = _fast_head(mail, src, warnings, budget)
            if isinstance(mail, fmp.PyLazyMail):
                content = fast_content(mail, raw, max_chars, warnings, limits.max_html_chars)
        except Exception as exc:  # a refusal, or an error from the parsed result
            del warnings[mark:]
            warnings.append(f"fallback-parser:{_kebab(type(exc).__name__)}")
            budget = AddressBudget(limits.max_participants)
            if isinstance(exc, fmp.ParseError):
                hdrs, subject, date, found = _head_only(src, src.raw, warnings, budget)
            else:
                hdrs, subject, date, found = _raw_head(src.block, warnings, budget)
            content = _stdlib_content(raw, warnings) if full else None

    message_id, synthetic = _message_id(hdrs, raw, warnings)
    verdicts = hdrs.get("authentication-results")
    if verdicts:
        failed = failed_sender_check(verdicts)
        if failed is not None:  # first, so that no number of other warnings buries it
            warnings.insert(0, f"{UNVERIFIED_SENDER}:{failed}")
    if date is None:
        date = _fallback_date("date" in hdrs, fallback_date, hdrs.get("received"), warnings)
    else:
        date = _not_ahead_of_arrival(date, fallback_date, hdrs.get("received"), warnings)
    total = len(found) + budget.unread
    if total > limits.max_participants:
        warnings.append(f"participants-truncated:{total}")
        del found[limits.max_participants :]
    body = None if content is None else body_text(content, max_chars, warnings)
    html = None
    if content is not None and content.html:
        html = capture_html(content.html, limits.max_html_chars, warnings)
    if len(subject) > _SUBJECT_SCAN:
        subject = subject[:_SUBJECT_SCAN]
        warnings.append("subject-truncated")
    irt = hdrs.get("in-reply-to")
    refs = hdrs.get("references")
    list_id = hdrs.get("list-id")
    unsubscribe = hdrs.get("list-unsubscribe")
    precedence = hdrs.get("precedence")
    auto = hdrs.get("auto-submitted")
    calendars = _bounded_calendars(content.calendar_parts if content is not None else (), warnings)
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
        html=html,
        snippet=snippet(body) if body else "",
        attachments=content.attachments if content is not None else (),
        calendar_parts=calendars,
        list_id=_list_id(list_id[0][:_TEXT_SCAN]) if list_id else "",
        list_unsubscribe=collapse(unsubscribe[0][:_TEXT_SCAN]) if unsubscribe else "",
        precedence=token(precedence[0][:_TEXT_SCAN]) if precedence else "",
        auto_submitted=token(auto[0][:_TEXT_SCAN]) if auto else "",
        size=size,
        synthetic_id=synthetic,
        warnings=tuple(dict.fromkeys(warnings)) if warnings else (),
    )


def _head_only(src: _Source, data: bytes, warnings: list[str], budget: AddressBudget) -> _Head:
    """Headers of a message whose body the fast parser refused or is not given.

    ``data`` is what the fast parser may read: the whole message, or its
    header section alone.
    """
    try:
        if not native_safe(data):
            return _raw_head(src.block, warnings, budget)
        mail = fmp.parse_email(data, mode="metadata")
    except fmp.ParseError:
        return _raw_head(src.block, warnings, budget)
    return _fast_head(mail, src, warnings, budget)


def _content(data: bytes, max_chars: int, html_chars: int, warnings: list[str]) -> Content:
    refusal = native_refusal(data)
    if refusal is not None:
        warnings.append(f"fallback-parser:{refusal}")
        return _stdlib_content(data, warnings)
    try:
        mail = fmp.parse_email(data, mode="lazy")
    except fmp.ParseError as exc:
        warnings.append(f"fallback-parser:{_kebab(type(exc).__name__)}")
        return _stdlib_content(data, warnings)
    return fast_content(mail, data, max_chars, warnings, html_chars)


def _stdlib_content(data: bytes, warnings: list[str]) -> Content:
    if len(data) > _STDLIB_MAX:
        warnings.append("body-unreadable:too-large")
        return Content()
    try:
        return stdlib_content(data, warnings)
    except Exception as exc:  # e.g. RecursionError on absurdly deep nesting
        warnings.append(f"body-unreadable:{type(exc).__name__}")
        return Content()


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


def _fast_head(mail: _FastMail, src: _Source, warnings: list[str], budget: AddressBudget) -> _Head:
    headers = mail.headers
    hdrs = {name.lower(): values for name, values in headers.items()}
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
            values = raw_values(src.block, name) or shown
            mailboxes = _dedupe(participants(name, values, warnings, budget))
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
    if len(parsed) > 1 and value.count(",") + value.count(";") < len(parsed) - 1:
        return None  # a missing comma, recovered and reported by our own reader
    if not parsed:
        stripped = value.strip()
        return [] if not stripped or stripped.endswith(";") else None
    out = []
    for mailbox in parsed:
        name = mailbox.display_name
        address = mailbox.address
        # Encoded words left in, replacement characters, controls, or names or
        # addresses too long for the participant cache: our own reader
        # decodes, bounds, repairs and reports.
        if name and (
            "=?" in name or "\ufffd" in name or len(name) > _CACHED_NAME or not name.isprintable()
        ):
            return None
        if len(address) > _MAX_ADDRESS:
            return None
        found = participant(address, name or "", header)
        if not found.address.valid:
            return None
        out.append(found)
    return _dedupe(out) if len(out) > 1 else out


def _raw_head(block: bytes, warnings: list[str], budget: AddressBudget) -> _Head:
    hdrs, repaired = raw_headers(block)
    if repaired:
        warnings.append("header-charset-repaired")
    found: list[Participant] = []
    for name in ROLE_HEADERS:
        values = hdrs.get(name)
        if values:
            mailboxes = _dedupe(participants(name, values, warnings, budget))
            if any(not p.address.valid for p in mailboxes):
                warnings.append(f"bad-address:{name}")
            found.extend(mailboxes)
    subject = _decoded(hdrs.get("subject", [""])[:1], warnings)
    return hdrs, subject, parse_date(_first(hdrs, "date")), found


def _bounded_calendars(parts: Sequence[str], warnings: list[str]) -> tuple[str, ...]:
    """The calendar parts that fit in ``MAX_CALENDAR_CHARS``, in order."""
    kept: list[str] = []
    room = MAX_CALENDAR_CHARS
    for part in parts:
        if len(part) <= room:
            kept.append(part)
            room -= len(part)
    if len(kept) < len(parts):
        warnings.append(f"calendar-too-large:{sum(map(len, parts))}")
    return tuple(kept)


def _decoded(values: Sequence[str], warnings: list[str]) -> str:
    value = values[0] if values else ""
    if len(value) > 2 * _SUBJECT_SCAN:  # encoded words shrink when decoded
        value = value[: 2 * _SUBJECT_SCAN]
        warnings.append("subject-truncated")
    text, repair = decode_words(value)
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


def _not_ahead_of_arrival(
    date: datetime,
    fallback: datetime | None,
    received: Sequence[str] | None,
    warnings: list[str],
) -> datetime:
    """The Date header's date, or the arrival date when the header runs more
    than ``MAX_DATE_AHEAD`` ahead of it (see ``parse_message``)."""
    arrival = as_utc(fallback)
    if arrival is None and received:
        arrival = received_date(received)
    if arrival is not None and date - arrival > MAX_DATE_AHEAD:
        warnings.append("date-after-arrival")
        return arrival
    return date


def _fallback_date(
    present: bool,
    fallback: datetime | None,
    received: Sequence[str] | None,
    warnings: list[str],
) -> datetime:
    """The date of a message without a usable Date header (see ``parse_message``)."""
    warnings.append("bad-date" if present else "missing-date")
    arrival = as_utc(fallback)
    if arrival is not None:
        return arrival
    date = received_date(received) if received else None
    if date is not None:
        warnings.append("date-from-received")
        return date
    warnings.append("date-unknown")
    return EPOCH


def _list_id(value: str) -> str:
    ids = msg_ids(value) if "<" in value else ()
    return ids[0] if ids else collapse(value)


def _first(hdrs: Mapping[str, Sequence[str]], name: str) -> str:
    values = hdrs.get(name)
    return values[0] if values else ""


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
        date = _fallback_date(False, fallback_date, None, warnings)
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
