"""Message bodies from the fast parser, and the body text a message keeps.

``fast_content`` reads what fast-mail-parser decoded, checking text for a
wrong charset; ``body_text`` turns either parser's ``Content`` into the
stored body, cut to the channel's ``max_text_chars`` without holding a huge
text more often than needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs
import fast_mail_parser as fmp

from ..model import Attachment
from .headers import LARGE_HEADER, header_block
from .part_kinds import ESTIMATED_MIN_BYTES
from .parts import (
    FORWARD_TYPES,
    Content,
    attachment,
    calendar_text,
    estimate_size,
    forward_name,
    is_calendar,
    number_parts,
    section_leaves,
)
from .structure import MAX_PARTS, native_safe
from .text import decode_bytes, html_to_text, looks_mojibake

__all__ = ["HTML_FACTOR", "MAX_FORWARD_DEPTH", "body_text", "fast_content", "tree_safe"]

#: HTML longer than this many times ``max_text_chars`` is cut before it is
#: converted (markup is mostly not text; converting megabytes costs seconds).
HTML_FACTOR = 16

#: Forwarded messages within forwarded messages looked into before the fast
#: parser may walk a message's structure (``tree_safe``); deeper: it may not.
MAX_FORWARD_DEPTH = 16

# Fast-parser warnings handled here or by the header code (the rest are recorded).
_HANDLED = frozenset({"charset-fallback", "address-unparseable", "date-unparseable"})
_Headers = Mapping[str, Sequence[str]]
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)


def fast_content(
    mail: fmp.PyLazyMail, raw: bytes, max_chars: int, warnings: list[str], html_chars: int = 0
) -> Content:
    """The body of a message read by the fast parser, and its repairs (``parser:<kind>``).

    At most ``structure.MAX_PARTS`` attachments are read (warning
    ``attachments-truncated:<total>``), each with its part number from the
    message's structure (``attachment-parts-unknown`` when that cannot be
    read again, or may not be: ``tree_safe``; the attachments then have
    none). A large base64 file is measured, not decoded
    (``part_kinds.ESTIMATED_MIN_BYTES``). Body text is cut to
    ``2 * max_chars + 1`` characters as soon as it is read (CRs are dropped
    later, so up to twice the limit may still be needed), so a huge text
    part is not held beyond this call. The HTML part is read when there is
    no plain text, or when ``html_chars`` (``Limits.max_html_chars``) asks
    for it to be kept, cut to what either needs.
    """
    cap = 2 * max_chars + 1
    html_cap = max(HTML_FACTOR * max_chars, html_chars) + 1
    parts = mail.attachments
    walkable = tree_safe(parts)
    notes = mail.warnings  # built anew on each read
    if notes:  # the fast parser's own repairs
        warnings.extend(f"parser:{w.kind}" for w in notes if w.kind not in _HANDLED)
    # Each read of text_plain/text_html builds new strings: read each at most once.
    plains = mail.text_plain
    plain = plains[0] if plains else None
    del plains
    if plain is not None and len(plain) > cap:
        plain = plain[:cap]
    html = None
    if html_chars or not _has_text(plain):
        htmls = mail.text_html
        html = htmls[0][:html_cap] if htmls else None
        del htmls
    if plain is not None and (html is None or _has_text(plain)):
        plain = _checked(plain, "text/plain", "text_plain[0]", notes, raw, warnings, walkable)
        if len(plain) > cap:
            plain = plain[:cap]
    if html is not None:
        html = _checked(html, "text/html", "text_html[0]", notes, raw, warnings, walkable)
        html = html[:html_cap]

    attachments: list[Attachment] = []
    calendars: list[str] = []
    # large files not decoded yet, by their place in ``attachments``
    undecoded: dict[int, fmp.PyLazyAttachment] = {}
    if len(parts) > MAX_PARTS:
        warnings.append(f"attachments-truncated:{len(parts)}")
        parts = parts[:MAX_PARTS]
    for part in parts:
        ctype = (part.mimetype or "application/octet-stream").strip().lower()
        filename = part.filename or ""
        if (
            part.encoded_size >= ESTIMATED_MIN_BYTES
            and ctype not in FORWARD_TYPES
            and not is_calendar(ctype, filename)
        ):
            undecoded[len(attachments)] = part
            attachments.append(attachment(filename, ctype, 0, part.disposition, part.content_id))
            continue
        data = _decoded(part, warnings)
        size = len(data) if data is not None else estimate_size(part.encoded_size)
        if ctype in FORWARD_TYPES:
            filename = filename or forward_name(data or b"")
        elif data is not None and is_calendar(ctype, filename):
            calendars.append(calendar_text(data, warnings))
            # An invitation's text/calendar alternative is not an attachment.
            if ctype == "text/calendar" and (part.disposition or "").lower() != "attachment":
                continue
        attachments.append(attachment(filename, ctype, size, part.disposition, part.content_id))
    if not attachments and not calendars:  # the common case
        return Content(plain, html)
    leaves: dict[str, _Headers] = {}
    if attachments and not walkable:
        warnings.append("attachment-parts-unknown")
    elif attachments:
        try:
            tree = fmp.parse_email_tree(raw, mode="metadata")
            numbered = section_leaves(tree)
            attachments = list(number_parts(attachments, numbered))
            if undecoded:
                leaves = {path: node.headers for path, node in numbered}
        except fmp.ParseError:
            warnings.append("attachment-parts-unknown")
    first = raw.find(b"\n")
    line_end = 2 if first > 0 and raw[first - 1] == 13 else 1  # CRLF, else LF
    for at, part in undecoded.items():
        headers = leaves.get(attachments[at].part)
        estimated = _base64_size(headers, part.encoded_size, line_end)
        if estimated is None:
            data = _decoded(part, warnings)
            estimated = len(data) if data is not None else estimate_size(part.encoded_size)
        attachments[at] = attrs.evolve(attachments[at], size=estimated)
    # An invitation often comes twice: inline and as an .ics attachment.
    return Content(plain, html, tuple(attachments), tuple(dict.fromkeys(calendars)))


def tree_safe(parts: Sequence[fmp.PyLazyAttachment], depth: int = 0) -> bool:
    """Whether ``fmp.parse_email_tree`` may walk the message with these attachments.

    The tree parser decodes each forwarded message (``message/rfc822``) and
    parses it natively, nested multiparts and all. ``native_safe`` on the
    message's own bytes cannot see inside a base64 or quoted-printable
    forward, so each forward's decoded bytes must pass it too, and so must
    the forwards inside it, ``MAX_FORWARD_DEPTH`` levels at most. A forward
    whose header section is over ``headers.LARGE_HEADER`` is not walked
    either: the fast parser's time grows with the square of its encoded
    words.
    """
    for part in parts:
        if part.mimetype.strip().lower() != "message/rfc822":
            continue
        if depth >= MAX_FORWARD_DEPTH:
            return False
        try:
            data = part.content
            if len(header_block(data[: LARGE_HEADER + 1])) > LARGE_HEADER:
                return False  # the walk would read its header with the fast parser
            if not native_safe(data):
                return False
            inner = fmp.parse_email(data, mode="lazy").attachments
        except fmp.ParseError:
            return False
        if not tree_safe(inner, depth + 1):
            return False
    return True


def _decoded(part: fmp.PyLazyAttachment, warnings: list[str]) -> bytes | None:
    try:
        return part.content
    except fmp.ParseError:
        warnings.append("bad-attachment-encoding")
        return None


def _base64_size(headers: _Headers | None, encoded_size: int, line_end: int) -> int | None:
    """The estimated decoded size of a base64 part with these headers
    (``None`` for any other encoding, or no headers): decoding hundreds of
    kilobytes only to count them would cost more than the rest of the parse."""
    if headers is None:
        return None
    if _header(headers, "content-transfer-encoding").strip().lower() != "base64":
        return None
    return estimate_size(encoded_size, line_end)


def _checked(
    text: str,
    kind: str,
    path: str,
    notes: Sequence[fmp.ParseWarning],
    raw: bytes,
    warnings: list[str],
    walkable: bool,
) -> str:
    """Body text, decoded again from its bytes when its charset looks wrong
    (and the message may be walked: ``tree_safe``)."""
    flagged = bool(notes) and any(
        w.kind == "charset-fallback" and w.part_path == path for w in notes
    )
    if not walkable or (not flagged and not looks_mojibake(text)):
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


def body_text(content: Content, max_chars: int, warnings: list[str]) -> str:
    """The text a message keeps: its plain text, else its HTML as text; CRs dropped.

    Text over ``max_chars`` characters is cut (warning ``text-truncated``);
    HTML over ``HTML_FACTOR * max_chars`` is cut before it is converted.
    """
    plain, html = content.plain, content.html
    if plain is not None and (html is None or _has_text(plain)):
        text = plain
    else:
        html = html or ""
        if len(html) > HTML_FACTOR * max_chars:
            html = html[: HTML_FACTOR * max_chars]
            warnings.append("text-truncated")
        text = html_to_text(html)
    if len(text) <= max_chars:
        return _without_cr(text)
    # Cut before dropping CRs: a CRLF text needs at most twice the characters.
    kept = _without_cr(text[: 2 * max_chars])
    if len(kept) > max_chars or len(text) > 2 * max_chars:
        warnings.append("text-truncated")
        kept = kept[:max_chars]
    return kept


def _without_cr(text: str) -> str:
    """``text`` without CRs; ASCII text by way of bytes, whose ``replace`` uses ``memchr``."""
    if text.isascii():
        return text.encode("ascii").replace(b"\r", b"").decode("ascii")
    return text.replace("\r", "")
