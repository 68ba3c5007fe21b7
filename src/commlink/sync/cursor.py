"""The engine's own cursor: where a scope's sync stands, as one JSON string.

A scope is in a full pass (``mode="full"``: the snapshot taken before
listing, the page token to resume from, the generation stamped on what the
pass sees), incremental (``mode="incremental"``: the provider's cursor), or
re-judging labels (``mode="labels"``: a mailbox-wide scope whose folder
selection changed goes through the labels whose selection changed, one
label listing after another, then back to incremental).

What a scope covers and how its items were judged are kept apart: the
provider's listing of a mailbox-wide scope (Gmail) covers the whole mailbox
whatever labels exist, while ``folders`` records the folder selection its
stored items and skip records were judged under, so a label appearing or
disappearing costs nothing by itself and a selection change re-judges only
the labels it concerns. ``judged`` is the key of the judging settings the
scope's skip records were made under (``settled.judging_key``): while it
holds, a reconciling pass does not fetch skipped messages again.
``refetch`` makes a full pass re-read what is already stored; ``held``
(how many ids the scope held when the pass began) lets the engine refuse a
sweep that would empty it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ..model import Folder, FolderSelection

__all__ = [
    "MARKERS",
    "ScopeCursor",
    "legacy_selection",
    "remembered",
    "selection_from_json",
    "selection_to_json",
]

Mode = Literal["full", "incremental", "labels"]
_MODES = ("full", "incremental", "labels")

#: How many recently judged ids a scope remembers (``ScopeCursor.markers``).
MARKERS = 16


def selection_to_json(selection: FolderSelection | None) -> dict[str, list[str]] | None:
    if selection is None:
        return None
    return {"include": sorted(selection.include), "exclude": sorted(selection.exclude)}


def selection_from_json(raw: object) -> FolderSelection | None:
    """A recorded folder selection; ``None`` when absent or malformed."""
    if not isinstance(raw, Mapping):
        return None
    include, exclude = raw.get("include"), raw.get("exclude")
    if not isinstance(include, list) or not isinstance(exclude, list):
        return None
    return FolderSelection(frozenset(map(str, include)), frozenset(map(str, exclude)))


def _strings(raw: object) -> tuple[str, ...]:
    return tuple(str(x) for x in raw) if isinstance(raw, list) else ()


def legacy_selection(selected: Sequence[Folder]) -> str:
    """The fingerprint earlier versions kept of a mailbox-wide scope's
    selected folders (``ScopeCursor.selection``)."""
    text = "|".join(sorted(f.id for f in selected))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def remembered(new: Iterable[str], old: Iterable[str]) -> tuple[str, ...]:
    """``MARKERS`` ids, the newly judged first."""
    return tuple(dict.fromkeys((*new, *old)))[:MARKERS]


@attrs.frozen(slots=True)
class ScopeCursor:
    mode: Mode
    provider: str = ""
    page: str | None = None
    generation: int = 1
    #: The fingerprint of the selected folders written by earlier versions;
    #: read only to adopt their cursors without a re-judging pass.
    selection: str = ""
    done: int = 0
    refetch: bool = False
    #: Ids the scope held when the pass's snapshot was taken (-1: unknown);
    #: the sweep guard compares it with what the listing found.
    held: int = -1
    #: The folder selection a mailbox-wide scope was judged under (``None``
    #: for a per-folder scope, or unknown).
    folders: FolderSelection | None = None
    #: The judging key the scope's skip records were made under ("": unknown).
    judged: str = ""
    #: A full pass: the judging key every page of it ran under ("": several).
    pass_key: str = ""
    #: A full pass: the listing has reached an id the scope judged before,
    #: so the skip records of the ids after it are the scope's own.
    trusting: bool = False
    #: A full pass that reconciles what the scope held (not a first import).
    reconciling: bool = False
    #: Ids of the scope judged most recently (see ``settled``).
    markers: tuple[str, ...] = ()
    #: Labels mode: the selection being applied, and the labels left to list
    #: (``"+id"``: now selected, ``"-id"``: no longer selected).
    target: FolderSelection | None = None
    pending: tuple[str, ...] = ()

    def encode(self) -> str:
        raw: dict[str, Any] = attrs.asdict(self, recurse=False)
        raw.update(
            folders=selection_to_json(self.folders),
            target=selection_to_json(self.target),
            markers=list(self.markers),
            pending=list(self.pending),
        )
        return json.dumps(raw, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> ScopeCursor | None:
        """The stored cursor, or ``None`` when absent or unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            mode = raw["mode"]
            if mode not in _MODES:
                return None
            return cls(
                mode=mode,
                provider=str(raw.get("provider", "")),
                page=raw.get("page"),
                generation=int(raw.get("generation", 1)),
                selection=str(raw.get("selection", "")),
                done=int(raw.get("done", 0)),
                refetch=bool(raw.get("refetch", False)),
                held=int(raw.get("held", -1)),
                folders=selection_from_json(raw.get("folders")),
                judged=str(raw.get("judged", "")),
                pass_key=str(raw.get("pass_key", "")),
                trusting=bool(raw.get("trusting", False)),
                reconciling=bool(raw.get("reconciling", False)),
                markers=_strings(raw.get("markers")),
                target=selection_from_json(raw.get("target")),
                pending=_strings(raw.get("pending")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def restart(self, *, refetch: bool = False) -> ScopeCursor:
        """A new full pass (a snapshot is taken first), one generation on.

        The selection and judging key its items were judged under carry
        over; a scope caught halfway through re-judging labels was judged
        under two selections, so the new pass re-reads everything."""
        labels = self.mode == "labels"
        return ScopeCursor(
            "full",
            "",
            None,
            self.generation,
            self.selection,
            0,
            refetch or labels,
            folders=None if labels else self.folders,
            judged=self.judged,
            markers=self.markers,
        )
