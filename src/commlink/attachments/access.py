"""Opening an attachment for a viewer: visibility first, then the provider, streamed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import attrs

from ..errors import AttachmentTooLarge, ConfigError, InvalidInput, NotFound
from ..mime.parse import parse_message
from ..mime.parts import fill_left_out
from ..model import Attachment, Detail, Limits
from ..ports import AttachmentSource, MailProvider, MessageSources, Scope
from ..records import MessageSource, Viewer
from .cache import AttachmentCache, cache_key
from .serving import response_headers

__all__ = ["AttachmentContent", "open_attachment"]

#: The default for ``max_bytes`` (``Limits.max_attachment_bytes``).
DEFAULT_MAX_BYTES = Limits().max_attachment_bytes


@attrs.frozen(slots=True)
class AttachmentContent:
    """An attachment being read: its stored description and its content in chunks.

    ``chunks`` is read once, inside the ``with`` block that opened it; it
    raises ``AttachmentTooLarge`` if the content passes the limit after all.
    """

    attachment: Attachment
    chunks: Iterator[bytes] = attrs.field(repr=False)

    @property
    def filename(self) -> str:
        return self.attachment.filename

    @property
    def content_type(self) -> str:
        return self.attachment.content_type

    @property
    def size(self) -> int:
        """The size recorded at sync time (the content may differ slightly)."""
        return self.attachment.size

    def headers(self, *, inline: bool = False) -> tuple[tuple[str, str], ...]:
        """The HTTP headers to serve it with (see ``serving.response_headers``):
        a download unless ``inline`` and it is a plain picture."""
        return response_headers(self.attachment, inline=inline)


def _index_of(source: MessageSource, index: int | None, content_id: str | None) -> int:
    found = source.attachments
    if (index is None) == (content_id is None):
        raise InvalidInput("give either index or content_id")
    if index is not None:
        if not 0 <= index < len(found):
            raise NotFound(f"the message has no attachment {index}")
        return index
    wanted = _bare_content_id(content_id or "")
    for n, attachment in enumerate(found):
        if wanted and attachment.content_id == wanted:
            return n
    raise NotFound("the message has no part with that content id")


def _bare_content_id(value: str) -> str:
    """A ``cid:`` URL or ``<id>`` as the bare content id attachments record."""
    value = value.strip()
    if value[:4].lower() == "cid:":
        value = value[4:]
    return value.strip().strip("<>").strip()


@contextmanager
def open_attachment(
    store: MessageSources,
    providers: Callable[[str], object],
    thread_id: str,
    message_id: str,
    viewer: Viewer,
    *,
    index: int | None = None,
    content_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    cache: AttachmentCache | None = None,
) -> Iterator[AttachmentContent]:
    """Open one attachment of a message for ``viewer``, by ``index`` in the
    message's attachments or by ``content_id`` (a ``cid:`` URL of its HTML).

    The store says which copy the viewer is shown; only a copy shown in
    ``FULL`` is read (``NotFound`` otherwise, the same as for a message that
    is not there, so nothing leaks). ``providers(channel_id)`` gives that
    channel's provider, which must implement ``AttachmentSource``. An
    attachment recorded larger than ``max_bytes`` raises
    ``AttachmentTooLarge`` before any request; one that turns out larger
    while streaming raises it from ``chunks``. The content is not stored
    unless ``cache`` is given.
    """
    if max_bytes < 1:
        raise InvalidInput("max_bytes must be positive")
    source = store.message_source(thread_id, message_id, viewer)
    if source is None:
        raise NotFound("no such message for this viewer")
    n = _index_of(source, index, content_id)
    attachment = source.attachments[n]
    if attachment.size > max_bytes:
        raise AttachmentTooLarge(max_bytes)
    part = attachment.part or f"#{n}"
    with ExitStack() as stack:
        chunks = _cached(cache, source, part)
        if chunks is not None:
            stack.callback(getattr(chunks, "close", lambda: None))
        else:
            provider = providers(source.channel_id)
            if not isinstance(provider, AttachmentSource):
                raise ConfigError(
                    f"the provider of channel {source.channel_id} cannot fetch attachments"
                )
            chunks = _opened(stack, provider, source, n, max_bytes)
            if cache is not None:
                key = cache_key(source.channel_id, source.locations[0][1], part)
                chunks = cache.put(key, chunks)
        yield AttachmentContent(attachment, chunks)


def _cached(
    cache: AttachmentCache | None, source: MessageSource, part: str
) -> Iterator[bytes] | None:
    if cache is None:
        return None
    return cache.get(cache_key(source.channel_id, source.locations[0][1], part))


def _opened(
    stack: ExitStack, provider: AttachmentSource, source: MessageSource, n: int, max_bytes: int
) -> Iterator[bytes]:
    """The content from the first place the channel holds the message that still has it."""
    missing: NotFound | None = None
    for scope_id, provider_id in source.locations:
        scope = Scope(scope_id)
        try:
            attachments: Sequence[Attachment] = source.attachments
            if not attachments[n].part:
                attachments = _numbered(provider, scope, provider_id, attachments, n)
            opened = provider.open_attachment(scope, provider_id, attachments, n, max_bytes)
            return stack.enter_context(opened)
        except NotFound as exc:
            missing = exc
    raise missing or NotFound("the message is no longer at the provider")


def _same(a: Attachment, b: Attachment) -> bool:
    return attrs.evolve(a, part="") == attrs.evolve(b, part="")


def _numbered(
    provider: object, scope: Scope, provider_id: str, attachments: Sequence[Attachment], n: int
) -> Sequence[Attachment]:
    """``attachments`` with the part number of the ``n``-th filled in, for a
    copy stored before part numbers were recorded: the message is fetched
    and parsed again (a provider that is not a ``MailProvider`` is asked as it is)."""
    if not isinstance(provider, MailProvider):
        return attachments
    parsed: Sequence[Attachment] = ()
    for fetched in provider.fetch(scope, [provider_id], Detail.FULL):
        if fetched.raw:
            message = parse_message(fetched.raw, provider_id=provider_id)
            parsed = fill_left_out(message, fetched.left_out, fetched.size).attachments
    wanted = attachments[n]
    ordinal = sum(_same(a, wanted) for a in attachments[:n])
    found = [a for a in parsed if _same(a, wanted)]
    if ordinal >= len(found) or not found[ordinal].part:
        raise NotFound("the attachment is no longer in the message")
    return (*attachments[:n], found[ordinal], *attachments[n + 1 :])
