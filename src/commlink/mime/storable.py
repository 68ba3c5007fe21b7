"""Values every store can hold, made so at parse time.

PostgreSQL ``text`` cannot hold NUL, SQLite's ``json_each`` cuts a string at
NUL, a lone surrogate cannot be encoded as UTF-8, and a btree index entry
holds about 2,700 bytes. So what a parser hands on is normalised here:

* text: NUL and the other C0 controls except tab, line feed and carriage
  return are removed, lone surrogates become U+FFFD (``clean_text``);
* ids (Message-ID, In-Reply-To, References, thread hints, iCalendar UIDs):
  controls (tab and line ends too) and lone surrogates are removed, and an
  id longer than ``MAX_ID_BYTES`` in UTF-8 becomes a stable hash of itself
  (``storable_id``), so equal ids stay equal and threading still works;
* ``storable_message`` applies both to every field of a ``Message``, with
  bounds on References, names and other header text, removes explicit
  direction controls from attachment file names (they only disguise one),
  and reports each repair as a warning. Normal mail pays for one cheap check.

Pure functions; nothing here raises on any ``str``.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Sequence

import attrs

from ..model import Address, Attachment, Message, Participant
from .text import snippet as make_snippet

__all__ = [
    "HASHED_DOMAIN",
    "MAX_ID_BYTES",
    "MAX_NAME_CHARS",
    "MAX_REFERENCES",
    "MAX_SUBJECT_CHARS",
    "clean_text",
    "hashed_id",
    "repair_codes",
    "storable_id",
    "storable_message",
    "text_is_clean",
]

#: Longest id kept as it is, in UTF-8 bytes; longer ones are hashed.
MAX_ID_BYTES = 512
#: The domain of a hashed id: ``<sha256 hex>@hashed.commlink.invalid``.
HASHED_DOMAIN = "hashed.commlink.invalid"
#: References kept: the newest (last) ones, as References grow at the end.
#: In-Reply-To ids past this many are dropped too (the first ones are kept).
MAX_REFERENCES = 100
#: Longest subject kept, in characters.
MAX_SUBJECT_CHARS = 2000
#: Longest display name, invalid address text, file name or other header
#: text (List-Unsubscribe, content types, folders) kept, in characters.
MAX_NAME_CHARS = 1000

# What text may not hold: C0 controls other than \t \n \r, and lone surrogates.
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# What an id may not hold: any control (tab and line ends too), DEL, lone surrogates.
_BAD_ID = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Explicit direction controls (embeddings, overrides, isolates): in a file
# name they only serve to disguise it ("invoice\u202efdp.exe" shows as
# "invoiceexe.pdf"); names in right-to-left scripts need none of them.
_DIRECTION = re.compile("[\u202a-\u202e\u2066-\u2069]")
_CONTROLS = tuple(chr(c) for c in range(32) if chr(c) not in "\t\n\r")
# An id of at most this many characters is at most MAX_ID_BYTES in UTF-8.
_SHORT_ID = MAX_ID_BYTES // 4
# Text up to this long is checked with str.isprintable (fast, but per character).
_SHORT_TEXT = 256


def text_is_clean(text: str) -> bool:
    """Whether ``text`` holds no C0 control (other than tab, LF, CR) and no lone surrogate.

    Cheap: short text is accepted by ``str.isprintable``; long text is
    searched with one ``in`` per control (``memchr``) and, when not ASCII,
    encoded once (which fails on a lone surrogate).
    """
    if len(text) <= _SHORT_TEXT:
        return text.isprintable() or _BAD_TEXT.search(text) is None
    for control in _CONTROLS:
        if control in text:
            return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(text: str) -> str:
    """``text`` without NUL and other C0 controls (tab, LF, CR stay); lone surrogates as U+FFFD."""
    if _BAD_TEXT.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def repair_codes(text: str) -> list[str]:
    """The warning codes for what ``clean_text`` changes in ``text``."""
    codes = []
    if "\x00" in text:
        codes.append("nul-removed")
    if _CONTROL.search(text.replace("\x00", "")) is not None:
        codes.append("control-removed")
    if _SURROGATE.search(text) is not None:
        codes.append("surrogate-replaced")
    return codes


def hashed_id(value: str) -> str:
    """The stable stand-in for an id too long to index: ``<sha256>@hashed.commlink.invalid``."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{digest}@{HASHED_DOMAIN}"


def storable_id(value: str) -> tuple[str, list[str]]:
    """An id a store can hold and index, and the repairs made (warning codes).

    Controls (tab and line ends too), DEL and lone surrogates are removed
    (``id-repaired``); an id over ``MAX_ID_BYTES`` in UTF-8 is replaced by
    ``hashed_id`` of the repaired id (``id-hashed``). The same input always
    gives the same id.
    """
    repairs: list[str] = []
    if _BAD_ID.search(value) is not None:
        value = _BAD_ID.sub("", value)
        repairs.append("id-repaired")
    if len(value) > _SHORT_ID and len(value.encode("utf-8")) > MAX_ID_BYTES:
        value = hashed_id(value)
        repairs.append("id-hashed")
    return value, repairs


_NAMES = operator.attrgetter("address.name")
_RAWS = operator.attrgetter("address.raw")


def _needs_repair(m: Message, participants: bool) -> bool:
    """The cheap check: whether any field of ``m`` needs ``storable_message``'s repairs.

    Ordinary mail costs one ``isprintable`` of its ids and subject together
    (regular expressions run only when that fails, e.g. on a no-break
    space) and ``text_is_clean`` of its body, and allocates no container;
    the other fields are looked at only when they are set. A message may
    pass as needing repair when it needs none; the repair then changes
    nothing.
    """
    refs = m.references
    irt = m.in_reply_to
    if len(refs) > MAX_REFERENCES or len(irt) > MAX_REFERENCES:
        return True
    heads = m.message_id + "".join(irt) + "".join(refs) + m.subject
    if not heads.isprintable() and _dirty_heads(m):
        return True
    # ASCII text of at most MAX_ID_BYTES holds no id and no subject too long.
    if (len(heads) > MAX_ID_BYTES or not heads.isascii()) and _long_heads(m):
        return True
    if (
        participants
        or m.thread_hint is not None
        or m.folders
        or m.attachments
        or m.list_id
        or m.list_unsubscribe
        or m.precedence
        or m.auto_submitted
    ) and _others_need(m, participants):
        return True
    body = m.body
    if body is not None:
        if len(body) <= _SHORT_TEXT:
            if not (body.isprintable() or _BAD_TEXT.search(body) is None):
                return True
        else:  # text_is_clean, inlined: this runs for every message
            for control in _CONTROLS:
                if control in body:
                    return True
            if not body.isascii() and not text_is_clean(body):
                return True
    return bool(m.calendar_parts) and not all(map(text_is_clean, m.calendar_parts))


def _dirty_heads(m: Message) -> bool:
    ids = m.message_id + "".join(m.in_reply_to) + "".join(m.references)
    return _BAD_ID.search(ids) is not None or _BAD_TEXT.search(m.subject) is not None


def _long_heads(m: Message) -> bool:
    if len(m.subject) > MAX_SUBJECT_CHARS:
        return True
    text = m.message_id + "".join(m.in_reply_to) + "".join(m.references)
    if len(text) <= _SHORT_ID or (text.isascii() and len(text) <= MAX_ID_BYTES):
        return False
    return _long_id((m.message_id, *m.in_reply_to, *m.references))


def _long_id(ids: Sequence[str]) -> bool:
    """Whether an id is over ``MAX_ID_BYTES`` in UTF-8 (cheap for ids of ASCII)."""
    return any(
        len(value) > _SHORT_ID
        and (
            len(value) > MAX_ID_BYTES or len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
        )
        for value in ids
    )


def _others_need(m: Message, participants: bool) -> bool:
    """The check of the fields that ordinary mail leaves empty, and of participants."""
    if m.thread_hint is not None:
        hint = m.thread_hint
        if _BAD_ID.search(hint) is not None or _long_id((hint,)):
            return True
    texts = [m.list_id, m.list_unsubscribe, m.precedence, m.auto_submitted, *m.folders]
    if participants:
        texts += map(_NAMES, m.participants)
        texts += map(_RAWS, m.participants)
    for at in m.attachments:
        texts += (at.filename, at.content_type, at.content_id)
    joined = "".join(texts)
    if not joined.isprintable() and (
        _BAD_TEXT.search(joined) is not None
        or any(_DIRECTION.search(at.filename) is not None for at in m.attachments)
    ):
        return True
    return len(joined) > MAX_NAME_CHARS and max(map(len, texts)) > MAX_NAME_CHARS


class _Repairs:
    """Repairs made to one message, as warning codes in first-seen order."""

    def __init__(self) -> None:
        self.codes: dict[str, None] = {}

    def text(self, value: str, limit: int | None = None, code: str = "name-truncated") -> str:
        """Multi-line text (a body, a folder name) made storable."""
        if limit is not None and len(value) > limit:
            value = value[:limit].rstrip()
            self.codes[code] = None
        if text_is_clean(value):
            return value
        self.codes.update(dict.fromkeys(repair_codes(value)))
        return clean_text(value)

    def line(self, value: str, limit: int = MAX_NAME_CHARS, code: str = "name-truncated") -> str:
        """Header text (whitespace collapsed) made storable, collapsed again."""
        fixed = self.text(value, limit, code)
        return fixed if fixed is value else " ".join(fixed.split())

    def id(self, value: str) -> str:
        fixed, repairs = storable_id(value)
        self.codes.update(dict.fromkeys(repairs))
        return fixed

    def ids(self, values: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v in map(self.id, values) if v))


def _address(a: Address, r: _Repairs) -> Address:
    name = r.line(a.name)
    raw = r.line(a.raw)
    if name == a.name and raw == a.raw:
        return a
    return attrs.evolve(a, name=name, raw=raw)


def _attachment(at: Attachment, r: _Repairs) -> Attachment:
    filename = r.line(at.filename)
    if _DIRECTION.search(filename) is not None:
        filename = " ".join(_DIRECTION.sub("", filename).split())
        r.codes["filename-repaired"] = None
    return attrs.evolve(
        at,
        filename=filename,
        content_type=r.line(at.content_type),
        content_id=r.line(at.content_id),
    )


def storable_message(message: Message, participants_checked: bool = False) -> Message:
    """``message`` with every field storable (see the module docstring).

    Repairs are appended to ``warnings``: ``nul-removed`` (NUL),
    ``control-removed`` (another C0 control) and ``surrogate-replaced`` in
    text; ``id-repaired`` and ``id-hashed`` for ids;
    ``references-truncated:<total>`` when only the last ``MAX_REFERENCES``
    of ``<total>`` were kept (``in-reply-to-truncated:<total>``: the first);
    ``subject-truncated`` and ``name-truncated``
    for over-long header text; ``filename-repaired`` when explicit direction
    controls (U+202A-U+202E, U+2066-U+2069) were removed from an attachment's
    file name. A Message-ID that repair leaves empty is
    replaced by ``hashed_id`` of its original text. Returns ``message``
    itself when nothing needs repair, which is checked cheaply.

    ``participants_checked`` skips the check of display names and invalid
    address text, for a caller that built them storable (``parse_message``
    does: see ``addrlist``); they are still repaired when anything else is.
    """
    if not _needs_repair(message, not participants_checked):
        return message
    r = _Repairs()
    refs = message.references
    if len(refs) > MAX_REFERENCES:
        r.codes[f"references-truncated:{len(refs)}"] = None
        refs = refs[-MAX_REFERENCES:]
    parents = message.in_reply_to
    if len(parents) > MAX_REFERENCES:
        r.codes[f"in-reply-to-truncated:{len(parents)}"] = None
        parents = parents[:MAX_REFERENCES]
    body = message.body
    snippet = message.snippet
    if body is not None and not (text_is_clean(body) and text_is_clean(snippet)):
        body = r.text(body)
        snippet = make_snippet(body)
    repaired = attrs.evolve(
        message,
        message_id=r.id(message.message_id) or hashed_id(message.message_id),
        subject=r.line(message.subject, MAX_SUBJECT_CHARS, "subject-truncated"),
        participants=tuple(
            Participant(_address(p.address, r), p.role) for p in message.participants
        ),
        in_reply_to=r.ids(parents),
        references=r.ids(refs),
        thread_hint=None if message.thread_hint is None else r.id(message.thread_hint),
        folders=tuple(r.text(f, MAX_NAME_CHARS) for f in message.folders),
        body=body,
        snippet=snippet,
        attachments=tuple(_attachment(at, r) for at in message.attachments),
        calendar_parts=tuple(r.text(c) for c in message.calendar_parts),
        list_id=r.line(message.list_id),
        list_unsubscribe=r.line(message.list_unsubscribe),
        precedence=r.line(message.precedence),
        auto_submitted=r.line(message.auto_submitted),
    )
    warnings = tuple(dict.fromkeys((*message.warnings, *r.codes)))
    return attrs.evolve(repaired, warnings=warnings)
