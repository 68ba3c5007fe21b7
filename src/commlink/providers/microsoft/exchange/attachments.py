"""An attachment's content from Exchange: ``GetItem`` of the item's
``Attachments``, then ``GetAttachment``.

The stored attachment is matched among the item's attachments by name,
type and position (``providers.attachment_matching``). A file attachment's
``Content`` is read as a stream (exchangelib's streaming ``GetAttachment``
parser decodes the base64 as the XML arrives); a forwarded message (an item
attachment) comes as its ``MimeContent``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ....errors import NotFound, ProviderError, TransientError
from ....model import Attachment
from ...attachment_matching import match_attachment
from ...attachment_streams import CHUNK_BYTES, capped
from .account import ExchangeConnection
from .errors import Caller

__all__ = ["open_exchange_attachment"]


@contextmanager
def open_exchange_attachment(
    connection: ExchangeConnection,
    caller: Caller,
    item_id: str,
    attachments: Sequence[Attachment],
    index: int,
    max_bytes: int,
) -> Iterator[Iterator[bytes]]:
    """The content of ``attachments[index]`` of the item ``item_id``."""
    listed = caller("GetItem", lambda: _listed(connection.account, item_id))
    names = [(str(a.name or ""), str(a.content_type or "")) for a in listed]
    found = match_attachment(attachments, index, names)
    if found is None:
        raise NotFound("the item has no such attachment")
    chosen = listed[found]
    account = connection.fork().account
    try:
        if _is_item(chosen):
            mime = caller("GetAttachment", lambda: _item_mime(account, chosen.attachment_id))
            yield capped(_sliced(mime), max_bytes)
        else:
            yield capped(_streamed(account, chosen.attachment_id), max_bytes)
    finally:
        account.protocol.close()


def _listed(account: Any, item_id: str) -> list[Any]:
    from exchangelib import errors as e
    from exchangelib.fields import FieldPath
    from exchangelib.items import Message
    from exchangelib.properties import ItemId
    from exchangelib.services import GetItem

    field = FieldPath(field=Message.get_field_by_fieldname("attachments"))
    found = list(
        GetItem(account=account, chunk_size=1).call(
            items=[ItemId(id=item_id)], additional_fields=[field], shape="IdOnly"
        )
    )
    if not found or isinstance(found[0], e.ErrorItemNotFound):
        raise NotFound(f"EWS item {item_id[:40]} is gone")
    if isinstance(found[0], BaseException):
        raise found[0]
    return list(found[0].attachments or [])


def _is_item(attachment: Any) -> bool:
    from exchangelib.attachments import ItemAttachment

    return isinstance(attachment, ItemAttachment)


def _item_mime(account: Any, attachment_id: Any) -> bytes:
    from exchangelib.services import GetAttachment

    found = list(
        GetAttachment(account=account).call(
            items=[attachment_id],
            include_mime_content=True,
            body_type=None,
            filter_html_content=None,
            additional_fields=None,
        )
    )
    item = getattr(found[0], "item", None) if found else None
    mime = getattr(item, "mime_content", None)
    if isinstance(mime, str):
        return mime.encode("utf-8", "surrogateescape")
    return mime if isinstance(mime, bytes) else b""


def _sliced(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES]


def _streamed(account: Any, attachment_id: Any) -> Iterator[bytes]:
    """The file attachment's content as exchangelib's streaming parser decodes it."""
    from exchangelib import errors as e
    from exchangelib.services import GetAttachment

    service = GetAttachment(account=account)
    try:
        yield from service.stream_file_content(attachment_id)
    except (e.ErrorItemNotFound, e.ErrorInvalidIdNotAnItemAttachmentId) as exc:
        raise NotFound(f"the attachment is gone: {exc}") from exc
    except (e.TransportError, OSError) as exc:
        raise TransientError(f"GetAttachment: {type(exc).__name__}: {exc}"[:500]) from exc
    except e.EWSError as exc:
        raise ProviderError(f"GetAttachment: {type(exc).__name__}: {exc}"[:500]) from exc
