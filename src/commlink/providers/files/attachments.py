"""An attachment's content from a file mailbox (mbox, Maildir).

The message is read again by its provider id (within
``Limits.max_message_bytes``, as a sync reads it) and split into its parts
by the bounded walker of ``mime.structure``; the wanted section's body is
decoded a slice at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from ...errors import NotFound
from ...mime.parts import valid_part
from ...mime.structure import sections
from ...model import Attachment, Detail
from ...ports import FetchedMessage, Scope
from ..attachment_streams import CHUNK_BYTES, capped, decoded

__all__ = ["open_file_attachment", "part_body"]


def part_body(raw: bytes, part: str) -> tuple[str, bytes] | None:
    """The transfer encoding and the still-encoded body of section ``part``
    of ``raw``; ``None`` when there is no such single part."""
    for section, found in sections(raw, []):
        if section == part:
            payload = found.get_payload()
            body = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
            return str(found.get("content-transfer-encoding", "7bit")), body
    return None


def _slices(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES]


@contextmanager
def open_file_attachment(
    fetch: Callable[[Scope, Sequence[str], Detail], Iterable[FetchedMessage]],
    scope: Scope,
    provider_id: str,
    attachments: Sequence[Attachment],
    index: int,
    max_bytes: int,
) -> Iterator[Iterator[bytes]]:
    """The decoded content of ``attachments[index]`` of message ``provider_id``."""
    if not 0 <= index < len(attachments) or not valid_part(attachments[index].part):
        raise NotFound("the attachment has no readable part number")
    raw = next((f.raw for f in fetch(scope, [provider_id], Detail.FULL) if f.raw), None)
    if raw is None:
        raise NotFound(f"message {provider_id} is gone")
    found = part_body(raw, attachments[index].part)
    del raw
    if found is None:
        raise NotFound(f"the message has no part {attachments[index].part}")
    encoding, body = found
    yield capped(decoded(_slices(body), encoding), max_bytes)
