"""Attachment content as a stream: transfer decoding a chunk at a time, and the size cap.

Providers hand over an attachment's bytes as they arrive; these helpers
decode them (base64, quoted-printable) without holding the whole part and
stop a part that grows past its limit.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator

from ..errors import AttachmentTooLarge

__all__ = [
    "CHUNK_BYTES",
    "capped",
    "decoded",
    "transfer_encoding",
]

#: Size of the chunks providers read and yield.
CHUNK_BYTES = 256 * 1024

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_ENCODING = re.compile(r"[a-z0-9-]{1,40}")


def transfer_encoding(value: str | None) -> str:
    """A ``Content-Transfer-Encoding`` value as a known token (``7bit`` when odd)."""
    token = (value or "").strip().lower()
    return token if _ENCODING.fullmatch(token) else "7bit"


def decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """``chunks`` of a part's body with its transfer encoding undone.

    Lenient as mail readers are: characters outside the base64 alphabet are
    skipped, a short final base64 group is dropped, and unknown encodings
    pass through unchanged.
    """
    encoding = transfer_encoding(encoding)
    if encoding == "base64":
        return _base64(chunks)
    if encoding == "quoted-printable":
        return _quoted_printable(chunks)
    return (c for c in chunks if c)


def _base64(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        data = rest + _NOT_BASE64.sub(b"", chunk)
        whole = len(data) - len(data) % 4
        rest = data[whole:]
        if whole:
            yield binascii.a2b_base64(data[:whole])
    if len(rest) >= 2:  # a final group without its padding
        yield binascii.a2b_base64(rest + b"=" * (-len(rest) % 4))


def _quoted_printable(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > 4 * CHUNK_BYTES:  # a line without end
            escape = data.rfind(b"=", len(data) - 3)  # keep "=XX" whole
            cut = escape if escape > 0 else len(data)
        rest = data[cut:]
        if cut:
            yield binascii.a2b_qp(data[:cut])
    if rest:
        yield binascii.a2b_qp(rest)


def capped(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """``chunks`` unchanged, raising ``AttachmentTooLarge`` once they pass ``max_bytes``."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise AttachmentTooLarge(max_bytes)
        if chunk:
            yield chunk
