"""Threading: which thread each message belongs to.

Messages are nodes joined by their Message-ID, In-Reply-To and References
(and, when the provider groups messages itself, a per-channel thread node).
A connected group takes the thread id already stored for any of its
Message-IDs, merging stored threads it joins; a new group gets an id that
depends only on its members, never on the order they arrive in.

Across batches, groups are joined through the store's index
(``Store.threads_by_message_ids``) of Message-IDs, references and provider
thread nodes (stored as a record's ``thread_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..model import Message

__all__ = ["ThreadAssignment", "assign_threads", "lookup_ids", "root_candidate", "thread_node"]


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
    messages: Sequence[Message], known: Mapping[str, str], channel_id: str
) -> ThreadAssignment:
    """Assign a thread id to every message.

    ``known`` maps Message-IDs to stored thread ids (the store's answer for
    ``lookup_ids(messages)``). A group touching stored threads takes the
    smallest of their ids and the others are merged into it; otherwise its
    id is the smallest root candidate of its messages.
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
        thread = known.get(node)
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
        else:
            chosen[root] = candidate
    return ThreadAssignment(
        by_provider_id={pid: chosen[find(a)] for pid, a in anchors.items()},
        merges=tuple(sorted(merges)),
    )


# Prefix of stored-thread nodes; NUL never occurs in a Message-ID.
_STORED = "\x00"


def _header_ids(message: Message) -> list[str]:
    return [i for i in (message.message_id, *message.in_reply_to, *message.references) if i]


def _own_node(message: Message) -> str:
    # A message without a Message-ID (normally synthesised) stands for itself.
    return message.message_id or f"<{message.provider_id}>"
