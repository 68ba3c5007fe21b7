"""``MimeContent`` through ``GetItem``, streamed.

exchangelib reads a SOAP answer whole, builds its XML tree (the base64
``MimeContent`` text included), copies that text out and decodes it: a 25 MB
message costs some 150 MB at once. Here the same ``GetItem`` request
(exchangelib builds the envelope and sends it, with its authentication and
error handling) is answered as a stream: an lxml parser target decodes each
``MimeContent`` as its text arrives, and builds the tree of everything else
(small) so exchangelib's own code reads the response messages and faults.
A message that decodes to more than ``limit`` bytes is dropped as it comes,
and only its size is kept.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import Any

from .account import ExchangeConnection

__all__ = ["read_mime"]

_TNS = "http://schemas.microsoft.com/exchange/services/2006/types"
_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_MIME = f"{{{_TNS}}}MimeContent"
_INDEX = "commlink-mime"
_CHUNK = 1 << 16


class _Base64:
    """Decodes base64 text as it arrives; past ``limit`` bytes only counts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.pending = ""
        self.error: str | None = None

    def feed(self, text: str) -> None:
        text = self.pending + "".join(text.split())
        cut = len(text) - len(text) % 4
        self.pending = text[cut:]
        if cut:
            self._add(text[:cut])

    def _add(self, text: str) -> None:
        if self.error is not None:
            return
        try:
            data = binascii.a2b_base64(text)
        except (binascii.Error, ValueError) as exc:
            self.error = f"unreadable MIME content: {exc}"
            self.parts.clear()
            return
        self.size += len(data)
        if self.size > self.limit:
            self.parts.clear()
        else:
            self.parts.append(data)

    def result(self) -> bytes | int | str:
        """The content, its size when above the limit, or why it is unreadable."""
        if self.pending:
            self._add(self.pending + "=" * (-len(self.pending) % 4))
            self.pending = ""
        if self.error is not None:
            return self.error
        if self.size > self.limit:
            return self.size
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class _Target:
    """An lxml parser target: a tree of the answer without ``MimeContent``
    text, which goes to a decoder; each decoded content is numbered on its
    element (``commlink-mime``)."""

    def __init__(self, limit: int) -> None:
        from lxml import etree  # type: ignore[import-untyped]

        self.tree = etree.TreeBuilder()
        self.limit = limit
        self.contents: list[bytes | int | str] = []
        self.sink: _Base64 | None = None

    def start(self, tag: str, attrib: dict[str, str], nsmap: Any = None) -> Any:
        element = self.tree.start(tag, attrib, nsmap) if nsmap else self.tree.start(tag, attrib)
        if tag == _MIME:
            self.sink = _Base64(self.limit)
            element.set(_INDEX, str(len(self.contents)))
            self.contents.append(b"")
        return element

    def data(self, text: str) -> None:
        if self.sink is not None:
            self.sink.feed(text)
        else:
            self.tree.data(text)

    def end(self, tag: str) -> Any:
        if tag == _MIME and self.sink is not None:
            self.contents[-1] = self.sink.result()
            self.sink = None
        return self.tree.end(tag)

    def close(self) -> Any:
        return self.tree.close()


def read_mime(
    connection: ExchangeConnection, ids: Sequence[str], limit: int
) -> list[tuple[str, bytes | int | BaseException | str]]:
    """One ``GetItem`` of ``MimeContent`` for ``ids``: per id the MIME bytes,
    its size when it decodes to more than ``limit`` bytes, the exchangelib
    error of a failed item, or why its content is unreadable. A fault (a busy
    server, say) raises exchangelib's error for ``Caller`` to handle."""
    from exchangelib.fields import FieldPath
    from exchangelib.items import Message
    from exchangelib.properties import ItemId
    from exchangelib.services import GetItem
    from exchangelib.util import post_ratelimited
    from lxml import etree

    account = connection.account
    protocol = account.protocol
    service = GetItem(account=account, chunk_size=len(ids))
    field = FieldPath(field=Message.get_field_by_fieldname("mime_content"))
    payload = service.get_payload(
        items=[ItemId(id=i) for i in ids], additional_fields=[field], shape="IdOnly"
    )
    envelope = service.wrap(content=payload, api_version=protocol.config.version.api_version)
    session = protocol.get_session()
    response, session = post_ratelimited(
        protocol=protocol,
        session=session,
        url=protocol.service_endpoint,
        headers=service._extra_headers(),
        data=envelope,
        stream=True,
        timeout=protocol.TIMEOUT,
    )
    target = _Target(limit)
    try:
        parser = etree.XMLParser(
            target=target, resolve_entities=False, huge_tree=True, recover=True
        )
        for chunk in response.iter_content(_CHUNK):
            parser.feed(chunk)
        root = parser.close()
    finally:
        response.close()
        protocol.release_session(session)
    body = root.find(f"{{{_SOAP}}}Body")
    if body is None:
        from exchangelib.errors import MalformedResponseError

        raise MalformedResponseError("No Body element in SOAP response")
    found: list[tuple[str, bytes | int | BaseException | str]] = []
    elements = service._get_elements_in_response(response=service._get_soap_messages(body=body))
    for item_id, element in zip(ids, elements, strict=False):
        if isinstance(element, BaseException):
            found.append((item_id, element))
            continue
        mime = element.find(_MIME) if isinstance(element, etree._Element) else None
        index = mime.get(_INDEX) if mime is not None else None
        if index is None:
            found.append((item_id, "no MIME content"))
            continue
        found.append((item_id, target.contents[int(index)]))
        target.contents[int(index)] = b""
    return found
