"""RFC 2047 encoded words in header text, and the lenient base64 they may use.

Pure functions that never raise.
"""

from __future__ import annotations

import binascii
import re
from functools import lru_cache

from .text import decode_bytes

__all__ = ["decode_words", "lenient_b64decode"]

# Longest text whose decoding is cached (huge header values must not be kept
# alive by the cache).
_CACHED = 4096

# RFC 2047 encoded word; the text may not contain "?" or whitespace.
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_GAP = re.compile(r"\s*")


def decode_words(text: str) -> tuple[str, str | None]:
    """Decode RFC 2047 encoded words in ``text``.

    Whitespace between adjacent encoded words is dropped, and adjacent words
    in one charset are decoded together (mailers split multi-byte characters
    across words). Returns the text and the label of a repair charset if one
    was needed. Never raises.
    """
    if "=?" not in text:
        return text, None
    if len(text) > _CACHED:
        return _decode(text)
    return _decode_words(text)


@lru_cache(maxsize=8192)
def _decode_words(text: str) -> tuple[str, str | None]:
    return _decode(text)


def _decode(text: str) -> tuple[str, str | None]:
    out: list[str] = []
    repair: str | None = None
    pending: list[bytes] = []
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal repair, pending_charset
        if pending:
            decoded, used = decode_bytes(b"".join(pending), pending_charset)
            out.append(decoded)
            repair = repair or used
            pending.clear()
        pending_charset = ""

    for match in _WORD.finditer(text):
        gap = text[pos : match.start()]
        if gap and not (pending and _GAP.fullmatch(gap)):
            flush()
            out.append(gap)
        charset = match.group(1).lower()
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(_word_bytes(match.group(2), match.group(3)))
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out), repair


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    return lenient_b64decode(data)


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def lenient_b64decode(data: bytes) -> bytes:
    """Base64 decoding that skips invalid characters and repairs padding."""
    data = _B64_JUNK.sub(b"", data)
    if len(data) % 4 == 1:  # a lone trailing character carries no whole byte
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # pragma: no cover - the input is sanitised above
        return b""
