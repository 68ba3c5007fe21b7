"""The engine's own cursor: where a scope's sync stands, as one JSON string.

A scope is either in a full pass (``mode="full"``: the snapshot taken before
listing, the page token to resume from, the generation stamped on what the
pass sees) or incremental (``mode="incremental"``: the provider's cursor).
The folder-selection fingerprint forces a full pass when the selection
changes, so single-scope providers (Gmail labels) reconcile too;
``refetch`` makes a full pass re-read what is already stored; ``held``
(how many ids the scope held when the pass began) lets the engine refuse a
sweep that would empty it.
"""

from __future__ import annotations

import json
from typing import Literal

import attrs

__all__ = ["ScopeCursor"]

Mode = Literal["full", "incremental"]


@attrs.frozen(slots=True)
class ScopeCursor:
    mode: Mode
    provider: str = ""
    page: str | None = None
    generation: int = 1
    selection: str = ""
    done: int = 0
    refetch: bool = False
    #: Ids the scope held when the pass's snapshot was taken (-1: unknown);
    #: the sweep guard compares it with what the listing found.
    held: int = -1

    def encode(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> ScopeCursor | None:
        """The stored cursor, or ``None`` when absent or unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            mode = raw["mode"]
            if mode not in ("full", "incremental"):
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
            )
        except (ValueError, KeyError, TypeError):
            return None

    def restart(self, *, refetch: bool = False) -> ScopeCursor:
        """A new full pass (a snapshot is taken first), one generation on."""
        return ScopeCursor("full", "", None, self.generation, self.selection, 0, refetch)
