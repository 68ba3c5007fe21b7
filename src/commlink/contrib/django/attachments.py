"""Attachments as Django responses: ``attachment_response`` streams one to a
viewer, with the headers that keep its sender's code off the host's site."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

from django.http import Http404, HttpResponse, StreamingHttpResponse

from ...attachments.access import DEFAULT_MAX_BYTES, open_attachment
from ...attachments.cache import AttachmentCache
from ...errors import AttachmentTooLarge, ConfigError, NotFound
from ...ports import MessageSources
from ...records import Viewer
from .conf import get_store
from .runtime import open_provider

__all__ = ["attachment_response"]


class _Stream:
    """An opened attachment's chunks; closing it (Django does, once the
    response is sent or dropped) closes the provider's answer and the provider."""

    def __init__(self, stack: ExitStack, chunks: Iterator[bytes]) -> None:
        self._stack = stack
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self._stack.close()


def attachment_response(
    viewer: Viewer,
    thread_id: str,
    message_id: str,
    *,
    index: int | None = None,
    content_id: str | None = None,
    inline: bool = False,
    max_bytes: int | None = None,
    cache: AttachmentCache | None = None,
) -> HttpResponse | StreamingHttpResponse:
    """One attachment of a message, as ``viewer`` may open it, streamed.

    The attachment is chosen by ``index`` or ``content_id`` and read as
    ``commlink.attachments.open_attachment`` does, through the channel's
    provider from ``COMMLINK["CHANNELS"]``. A message or attachment the viewer
    may not open raises ``Http404``; one over ``max_bytes`` (by default the
    channel's ``limits.max_attachment_bytes``) answers 413. The response
    carries ``response_headers``: a download unless ``inline`` is asked for
    a plain picture.
    """
    store = get_store()
    if not isinstance(store, MessageSources):
        raise ConfigError("the configured store cannot say which copy a viewer may open")
    channel = None
    if max_bytes is None:  # the limit of the channel whose copy the viewer is shown
        source = store.message_source(thread_id, message_id, viewer)
        channel = store.channel(source.channel_id) if source is not None else None
        max_bytes = channel.settings.limits.max_attachment_bytes if channel else DEFAULT_MAX_BYTES
    stack = ExitStack()
    try:

        def providers(channel_id: str) -> object:
            # the channel read for the limit is the one shown: not read twice
            known = channel is not None and channel.id == channel_id
            stored = channel if known else store.channel(channel_id)
            if stored is None:
                raise NotFound("the channel is gone")
            provider = open_provider(stored)
            stack.callback(provider.close)
            return provider

        content = stack.enter_context(
            open_attachment(
                store,
                providers,
                thread_id,
                message_id,
                viewer,
                index=index,
                content_id=content_id,
                max_bytes=max_bytes,
                cache=cache,
            )
        )
    except NotFound as exc:
        stack.close()
        raise Http404("no such attachment") from exc
    except AttachmentTooLarge:
        stack.close()
        return HttpResponse(b"attachment too large", status=413, content_type="text/plain")
    except BaseException:
        stack.close()
        raise
    response = StreamingHttpResponse(_Stream(stack, content.chunks))
    for name, value in content.headers(inline=inline):
        response[name] = value
    return response
