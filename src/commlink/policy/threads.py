"""Threading: which thread each message belongs to.

Messages are nodes joined by their Message-ID, In-Reply-To and References
(and, when the provider groups messages itself, a per-channel thread node).
A connected group takes the thread id already stored for any of its
Message-IDs, merging stored threads it joins; a new group gets an id that
depends only on its members, never on the order they arrive in.

Across batches, groups are joined through the store's index
(``Store.thread_links``) of Message-IDs, references and provider thread
nodes (stored as a record's ``thread_keys``). Every id in a message comes
from its sender, so a batch joins only the stored threads its own channel
vouches for (``joinable_threads``): an outsider who knows a Message-ID of
another mailbox's conversation cannot thread mail into it, nor merge two
conversations by referencing both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from ..model import Message
from ..records import ThreadLinks

__all__ = [
    "ThreadAssignment",
    "assign_threads",
    "joinable_threads",
    "lookup_ids",
    "root_candidate",
    "thread_node",
]


@attrs.frozen(slots=True)
class ThreadAssignment:
    """Thread ids by provider id, and stored threads merged (old id -> kept id)."""

    by_provider_id: dict[str, str]
    merges: tuple[tuple[str, str], ...] = ()


def lookup_ids(messages: Iterable[Message], channel_id: str | None = None) -> set[str]:
    """The ids to ask the store about: own ids, In-Reply-To and References,
    and (given the channel) the provider thread nodes."""
    ids: set[str] = set()
    for m in messages:
        ids.update(_header_ids(m))
        if channel_id is not None and m.thread_hint:
            ids.add(thread_node(channel_id, m.thread_hint))
    return ids


def joinable_threads(
    links: ThreadLinks, messages: Iterable[Message]
) -> dict[str, str | frozenset[str]]:
    """The stored threads a channel's batch may join, by id, from the store's
    ``thread_links`` answer for ``lookup_ids(messages, channel_id)``.

    A message's own Message-ID leads to its stored record's thread wherever
    that is held (the same message seen from two mailboxes). An In-Reply-To
    or reference leads to a stored message's thread only when the channel
    holds a copy of that message. Any id also leads to the threads of the
    channel's own copies that reference it. An id leading to two threads
    maps to both: the batch joins them.
    """
    own = {m.message_id for m in messages if m.message_id}
    known: dict[str, str | frozenset[str]] = dict(links.referenced)
    for message_id, thread in links.stored.items():
        if message_id in own or message_id in links.held:
            also = links.referenced.get(message_id, thread)
            known[message_id] = thread if also == thread else frozenset((thread, also))
    return known


def thread_node(channel_id: str, thread_hint: str) -> str:
    """The node (and fallback thread id) of a provider's own thread id."""
    return f"{channel_id}:{thread_hint}"


def root_candidate(message: Message, channel_id: str) -> str:
    """The id a message proposes for a new thread: the first reference, else
    the first In-Reply-To, else the provider thread node, else its own id."""
    for ids in (message.references, message.in_reply_to):
        for i in ids:
            if i:
                return i
    if message.thread_hint:
        return thread_node(channel_id, message.thread_hint)
    return _own_node(message)


def assign_threads(
    messages: Sequence[Message],
    known: Mapping[str, str | frozenset[str]],
    channel_id: str,
    claimed: Collection[str] = frozenset(),
) -> ThreadAssignment:
    """Assign a thread id to every message.

    ``known`` maps ids to the stored thread id (or ids) the batch may join
    (``joinable_threads``). A group touching stored threads takes the
    smallest of their ids and the others are merged into it; otherwise its
    id is the smallest root candidate of its messages, qualified by the
    channel when that id is among ``claimed`` (``ThreadLinks.claimed``): a
    thread the batch may not join may already carry that name.
    """
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        root = parent.setdefault(node, node)
        while root != parent[root]:
            root = parent[root]
        while node != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            # Attach the larger root under the smaller: keeps results order-free.
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra

    anchors: dict[str, str] = {}
    for m in messages:
        nodes = _header_ids(m) or [_own_node(m)]
        if m.thread_hint:
            nodes.append(thread_node(channel_id, m.thread_hint))
        first = nodes[0]
        parent.setdefault(first, first)
        for node in nodes[1:]:
            union(first, node)
        anchors[m.provider_id] = first

    # Stored threads join the graph too: two groups of this batch that touch
    # the same stored thread are one thread.
    for node in list(parent):
        found = known.get(node)
        for thread in (found,) if isinstance(found, str) else found or ():
            if thread:
                union(node, _STORED + thread)
    stored: dict[str, set[str]] = {}
    for node in parent:
        if node.startswith(_STORED):
            stored.setdefault(find(node), set()).add(node[len(_STORED) :])
    proposed: dict[str, str] = {}
    for m in messages:
        root = find(anchors[m.provider_id])
        candidate = root_candidate(m, channel_id)
        if root not in proposed or candidate < proposed[root]:
            proposed[root] = candidate

    merges: set[tuple[str, str]] = set()
    chosen: dict[str, str] = {}
    for root, candidate in proposed.items():
        threads = stored.get(root)
        if threads:
            keep = min(threads)
            merges.update((t, keep) for t in threads if t != keep)
            chosen[root] = keep
        elif candidate in claimed:
            chosen[root] = _qualified(channel_id, candidate)
        else:
            chosen[root] = candidate
    return ThreadAssignment(
        by_provider_id={pid: chosen[find(a)] for pid, a in anchors.items()},
        merges=tuple(sorted(merges)),
    )


# Prefix of stored-thread nodes; NUL never occurs in a Message-ID.
_STORED = "\x00"


def _qualified(channel_id: str, candidate: str) -> str:
    # Parsed ids never hold a space (``mime.headers.msg_ids``), so no id an
    # outsider writes can name a thread of this form.
    return f"{channel_id} {candidate}"


def _header_ids(message: Message) -> list[str]:
    return [i for i in (message.message_id, *message.in_reply_to, *message.references) if i]


def _own_node(message: Message) -> str:
    # A message without a Message-ID (normally synthesised) stands for itself.
    return message.message_id or f"<{message.provider_id}>"
