"""Size-aware fetch planning shared by the mail providers.

A provider learns each message's size from cheap metadata first (IMAP
``RFC822.SIZE``, Gmail ``sizeEstimate``, Graph ``PidTagMessageSize``, EWS
``Size``, a file's length), then ``plan_fetch`` decides: a message larger
than ``Limits.max_message_bytes`` is fetched headers only (and imported with
the warning ``too-large:<bytes>``); the rest are grouped into requests of at
most ``fetch_batch_bytes`` (and the provider's count limit). A message above
the byte budget but within the size limit goes alone, and so does one whose
size is unknown.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

import attrs

from ..model import Limits

__all__ = ["DEFAULT_LIMITS", "FetchPlan", "plan_fetch", "read_at_most"]

K = TypeVar("K", bound=Hashable)

#: The default ``limits`` of a provider (``Limits()``; it is frozen).
DEFAULT_LIMITS = Limits()


@attrs.frozen
class FetchPlan(Generic[K]):
    """``oversize``: key -> size of the messages to fetch headers only;
    ``batches``: the keys of each body request, in the order given."""

    oversize: dict[K, int]
    batches: tuple[tuple[K, ...], ...]


def plan_fetch(
    sizes: Iterable[tuple[K, int | None]],
    limits: Limits,
    *,
    max_count: int,
    budget: int | None = None,
) -> FetchPlan[K]:
    """Split messages (key, size in bytes or ``None``) into headers-only ones
    and body requests of at most ``budget`` bytes (``fetch_batch_bytes``
    unless given) and ``max_count`` messages."""
    limit = limits.max_message_bytes
    share = max(1, limits.fetch_batch_bytes if budget is None else budget)
    count = max(1, max_count)
    oversize: dict[K, int] = {}
    batches: list[tuple[K, ...]] = []
    current: list[K] = []
    total = 0
    for key, size in sizes:
        if size is not None and size > limit:
            oversize[key] = size
            continue
        if size is None:  # unknown: alone, and the reader enforces the limit
            batches.append((key,))
            continue
        if current and (total + size > share or len(current) >= count):
            batches.append(tuple(current))
            current, total = [], 0
        current.append(key)
        total += size
    if current:
        batches.append(tuple(current))
    return FetchPlan(oversize, tuple(batches))


def read_at_most(chunks: Iterable[bytes], limit: int) -> bytes | None:
    """The concatenated chunks, or ``None`` as soon as they pass ``limit``
    bytes (the rest is not read)."""
    parts: list[bytes] = []
    total = 0
    iterator: Iterator[bytes] = iter(chunks)
    for chunk in iterator:
        total += len(chunk)
        if total > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)
