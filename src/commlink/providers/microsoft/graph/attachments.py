"""An attachment's content from Microsoft Graph: ``.../attachments/{id}/$value``, streamed.

The message's attachments are listed first (``id``, ``name``,
``contentType``, ``size``; no content) and the stored one is matched by
name, type and position (``providers.attachment_matching``); its raw content is
then read as it arrives, never whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

from ....errors import NotFound
from ....model import Attachment
from ...attachment_matching import match_attachment
from ...attachment_streams import CHUNK_BYTES, capped
from .client import GraphClient

__all__ = ["open_graph_attachment"]

_FIELDS = "id,name,contentType,size,isInline"


@contextmanager
def open_graph_attachment(
    client: GraphClient,
    message_path: str,
    attachments: Sequence[Attachment],
    index: int,
    max_bytes: int,
) -> Iterator[Iterator[bytes]]:
    """The content of ``attachments[index]`` of the message at ``message_path``."""
    listed = [
        item
        for page in client.pages(f"{message_path}/attachments", {"$select": _FIELDS})
        for item in page.get("value", [])
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]
    names = [(str(i.get("name") or ""), str(i.get("contentType") or "")) for i in listed]
    found = match_attachment(attachments, index, names)
    if found is None:
        raise NotFound("the message has no such attachment at the provider")
    path = f"{message_path}/attachments/{quote(str(listed[found]['id']), safe='')}/$value"
    with client.stream_bytes(path, CHUNK_BYTES) as chunks:
        yield capped(chunks, max_bytes)
