"""Re-judging a mailbox-wide scope when its folder selection changes.

Gmail is one scope for the whole mailbox: its listing covers every message
whatever labels exist, and the policy keeps or leaves out a message by its
labels. Whether a label is selected depends only on the selection and the
label's id and kind, so a label appearing or disappearing changes no
verdict by itself: its messages gain or lose it through the mailbox's
history like any label change. A changed selection (a label included or
excluded) is different: it re-judges only the labels whose selection
changed, each listed on its own (``LabelSource.label_page``):

- a label now selected: its messages that are neither stored nor skipped
  for a settled reason are fetched and judged (they were left out for
  their folder);
- a label no longer selected: its stored messages are fetched and judged
  again (kept when another selected label holds them, removed otherwise; a
  message skipped for another reason keeps that reason).

A reconciling full pass (the history expired) fetches no stored message, so
the labels a stored message gained meanwhile are not seen in it; it ends by
re-judging the stored messages under each label the selection leaves out
(``recheck_plan``): none with the default selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from ..model import ALWAYS_EXCLUDED_KINDS, Folder, FolderSelection
from ..ports import IdPage, Scope
from .cursor import ScopeCursor

__all__ = ["GAINED", "LOST", "LabelSource", "recheck_plan", "relabel_plan", "relabelled"]

#: Plan entries: the label is now selected / no longer selected.
GAINED = "+"
LOST = "-"


@runtime_checkable
class LabelSource(Protocol):
    """A provider whose mailbox-wide scope can list the ids under one label."""

    def label_page(self, scope: Scope, label_id: str, page: str | None, /) -> IdPage:
        """One page of the ids carrying ``label_id``, newest first (none
        when the label no longer exists)."""
        ...


def relabel_plan(
    before: FolderSelection, after: FolderSelection, labels: Sequence[Folder]
) -> tuple[str, ...]:
    """The labels whose selection differs, as ``"+id"`` (now selected) or
    ``"-id"`` (no longer selected), in label id order."""
    plan: list[str] = []
    for label in sorted(labels, key=lambda f: f.id):
        was, now = before.selects(label), after.selects(label)
        if now and not was:
            plan.append(GAINED + label.id)
        elif was and not now:
            plan.append(LOST + label.id)
    return tuple(dict.fromkeys(plan))


def recheck_plan(selection: FolderSelection, labels: Sequence[Folder]) -> tuple[str, ...]:
    """``"-id"`` for each label ``selection`` leaves out (spam, trash and
    drafts aside: a listing never shows their messages as kept)."""
    return tuple(
        LOST + label.id
        for label in sorted(labels, key=lambda f: f.id)
        if label.kind not in ALWAYS_EXCLUDED_KINDS and not selection.selects(label)
    )


def relabelled(cursor: ScopeCursor) -> ScopeCursor:
    """The incremental cursor of a scope whose labels were re-judged: judged
    under the selection the pass applied."""
    return attrs.evolve(cursor, mode="incremental", page=None, folders=cursor.target, target=None)
