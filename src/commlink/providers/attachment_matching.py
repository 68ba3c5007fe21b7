"""Finding a stored attachment among a provider's own list (Graph, EWS).

Those APIs name attachments by their own ids and list them in the order of
the message's parts. The stored attachment is the k-th of its file name
and type among the stored ones; the provider's k-th attachment of that name
and type is the one. When names differ (a forwarded message is named by its
subject), the type alone decides, then the position.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import Attachment

__all__ = ["match_attachment"]


def _same_type(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def match_attachment(
    attachments: Sequence[Attachment], index: int, listed: Sequence[tuple[str, str]]
) -> int | None:
    """The position in ``listed`` (the provider's ``(name, content type)``
    pairs, in order) of ``attachments[index]``; ``None`` when none fits."""
    if not 0 <= index < len(attachments):
        return None
    wanted = attachments[index]
    for by_name in (True, False):

        def fits(a: Attachment, name: str, ctype: str, by_name: bool = by_name) -> bool:
            return _same_type(a.content_type, ctype) and (not by_name or a.filename == name)

        ordinal = sum(fits(a, wanted.filename, wanted.content_type) for a in attachments[:index])
        found = [n for n, (name, ctype) in enumerate(listed) if fits(wanted, name, ctype)]
        if ordinal < len(found):
            return found[ordinal]
    if len(listed) == len(attachments):
        return index
    return None
