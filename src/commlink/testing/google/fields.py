"""Google's partial responses (the ``fields`` parameter), as the real APIs
apply them: ``a,b/c,items(id,start)`` keeps those members and drops the rest.

The grammar: a comma-separated list of selectors; a selector is a path of
names joined by ``/``, optionally followed by a parenthesised sub-list that
applies to the value there (to each element of a list); ``*`` keeps every
member at its level.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError

__all__ = ["apply_fields", "parse_fields"]

Selection = dict[str, "Selection | None"]  # None: the whole value


def parse_fields(text: str) -> Selection:
    """Parse a ``fields`` value; raises ``ApiError(400)`` on a malformed one."""
    selection, rest = _list(text.replace(" ", ""), 0)
    if rest != len(text.replace(" ", "")):
        raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
    return selection


def _list(text: str, at: int) -> tuple[Selection, int]:
    found: Selection = {}
    while at < len(text) and text[at] != ")":
        name_end = at
        while name_end < len(text) and text[name_end] not in ",()":
            name_end += 1
        path = text[at:name_end].split("/")
        if not all(path):
            raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
        sub: Selection | None = None
        at = name_end
        if at < len(text) and text[at] == "(":
            sub, at = _list(text, at + 1)
            if at >= len(text) or text[at] != ")":
                raise ApiError(400, "invalidParameter", f"Invalid field selection {text}")
            at += 1
        _merge(found, path, sub)
        if at < len(text) and text[at] == ",":
            at += 1
    return found, at


def _merge(into: Selection, path: list[str], sub: Selection | None) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        into[head] = sub if head not in into or into[head] is not None else None
        return
    child = into.get(head)
    if head in into and child is None:
        return  # the whole value is kept already
    child = child or {}
    _merge(child, rest, sub)
    into[head] = child


def apply_fields(value: Any, selection: Selection | None) -> Any:
    """``value`` reduced to ``selection`` (``None`` keeps it whole)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [apply_fields(v, selection) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        return {k: apply_fields(v, selection.get(k)) for k, v in value.items()}
    return {k: apply_fields(value[k], sub) for k, sub in selection.items() if k in value}
