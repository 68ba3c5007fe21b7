"""An attachment's content from IMAP: ``UID FETCH n (BODY.PEEK[<part>])``, streamed.

The part's own header (``BODY.PEEK[<part>.MIME]``) gives its transfer
encoding; the body literal is then read off the connection a chunk at a
time and decoded as it comes, so a 30 MB part never sits in memory. Each
open uses a connection of its own (the sync's connection keeps its folder
and its fetch ahead) and closes it after; ``BODY.PEEK`` sets no flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email.parser import BytesHeaderParser
from email.policy import compat32

from ...errors import NotFound, TransientError
from ...mime.parts import valid_part
from ...model import Attachment
from ..attachment_streams import CHUNK_BYTES, capped, decoded
from .connection import DROPPED, ImapConnection, ImapSettings
from .fetch_stream import ConnectionLost, Fetch, String
from .responses import parse_id

__all__ = ["open_imap_attachment"]

_MAX_MIME_HEADER = 64 * 1024
_LITERAL_END = re.compile(rb"~?\{([0-9]{1,12})\}\r\n\Z")
_NIL_BODY = re.compile(rb"BODY\[[0-9.]+\](?:<[0-9]+>)? (?:NIL|\"\")", re.IGNORECASE)


@contextmanager
def open_imap_attachment(
    settings: ImapSettings,
    folder: str,
    provider_id: str,
    attachments: Sequence[Attachment],
    index: int,
    max_bytes: int,
) -> Iterator[Iterator[bytes]]:
    """The decoded content of ``attachments[index]`` of the message
    ``provider_id`` in ``folder``; ``NotFound`` when the message (or its
    UIDVALIDITY) or the part is gone."""
    if not 0 <= index < len(attachments) or not valid_part(attachments[index].part):
        raise NotFound("the attachment has no readable part number")
    part = attachments[index].part
    parsed = parse_id(provider_id)
    if parsed is None:
        raise NotFound(f"not an IMAP message id: {provider_id!r}")
    validity, uid = parsed
    conn = ImapConnection(settings)
    in_step = [True]  # False while a body is being read
    try:
        if conn.examine(folder).uidvalidity != validity:
            raise NotFound("the folder was rebuilt (UIDVALIDITY changed)")
        encoding = _transfer_encoding(conn, uid, part)
        client = conn.open()
        chunks = _body_chunks(conn, client._imap, uid, part, in_step)
        yield capped(decoded(chunks, encoding), max_bytes)
    except DROPPED as exc:
        raise TransientError(f"IMAP connection lost: {exc}") from exc
    finally:
        if in_step[0]:
            conn.close()
        else:
            conn.drop()  # a body left half read puts the connection out of step


def _transfer_encoding(conn: ImapConnection, uid: int, part: str) -> str:
    """The part's ``Content-Transfer-Encoding``; ``NotFound`` when the message is gone."""
    section = f"BODY.PEEK[{part}.MIME]"
    found = None
    for response in conn.call(
        lambda client: list(
            conn.stream_uid(client, "FETCH", str(uid), f"({section})", max_literal=_MAX_MIME_HEADER)
        ),
        counted=False,
    ):
        if isinstance(response, Fetch) and response.uid in (None, uid):
            for name, value in response.items.items():
                if name.startswith("BODY[") and isinstance(value, String):
                    found = value.data
                elif name.startswith("BODY["):
                    found = b""
    if found is None:
        raise NotFound(f"message {uid} is gone")
    header = BytesHeaderParser(policy=compat32).parsebytes(found)
    return str(header.get("content-transfer-encoding", "7bit"))


def _body_chunks(
    conn: ImapConnection, imap: object, uid: int, part: str, in_step: list[bool]
) -> Iterator[bytes]:
    """The part's body literal, a chunk at a time, as the server sends it;
    ``in_step[0]`` is False from the command until its completion is read."""
    conn._tags += 1
    tag = b"cl%d" % conn._tags
    send = imap.send  # type: ignore[attr-defined]
    readline = imap.readline  # type: ignore[attr-defined]
    read = imap.read  # type: ignore[attr-defined]
    in_step[0] = False
    send(tag + b" UID FETCH %d (BODY.PEEK[%s])\r\n" % (uid, part.encode("ascii")))
    conn.round_trips += 1
    seen = False
    while True:
        line = readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionLost("connection closed in the middle of a response")
        if line.startswith(tag + b" "):
            in_step[0] = True
            if not line[len(tag) + 1 :].upper().startswith(b"OK"):
                raise NotFound(f"the server refused part {part}: {line[:200]!r}")
            if not seen:
                raise NotFound(f"message {uid} is gone")
            return
        literal = _LITERAL_END.search(line)
        if literal is None:
            if b" FETCH " in line.upper() and _NIL_BODY.search(line):
                raise NotFound(f"message {uid} has no part {part}")
            continue
        size = int(literal.group(1))
        fetch_line = b" FETCH " in line.upper() and b"BODY[" in line.upper()
        left = size
        while left:
            chunk = read(min(left, CHUNK_BYTES))
            if not chunk:
                raise ConnectionLost("connection closed in the middle of a literal")
            left -= len(chunk)
            if fetch_line:
                yield chunk
        if fetch_line:
            if size == 0:
                raise NotFound(f"message {uid} has no part {part}")
            seen = True
