"""Conformance tests for ``MessageSources``: which copy a viewer may fetch
attachments from.

Subclass ``SourcesConformance`` with a ``store`` fixture (a fresh store
implementing ``Store`` and ``MessageSources``). The rules: only the copy the
viewer is shown, and only when shown in ``FULL``; a copy in another channel
carrying a forged identical Message-ID never serves a viewer who is shown
their own copy; the part numbers stored are returned unchanged.

Alice (``ua``) owns ``ca``; Bob (``ub``) owns ``cb``, which received a forged
copy of Alice's message; Colin (``uc``) owns neither.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from ..model import Attachment, Visibility
from ..ports import MessageSources, Store
from ..records import MessageRecord, Viewer
from .conformance_data import T0, batch, message, setup_channels

__all__ = ["SourcesConformance"]

FULL, SUBJECT, METADATA = Visibility.FULL, Visibility.SUBJECT, Visibility.METADATA
ALICE, BOB, COLIN = Viewer("ua"), Viewer("ub"), Viewer("uc")
SHARED = "shared@x"
REAL = (
    Attachment("alice.pdf", "application/pdf", 10, part="2"),
    Attachment("logo.png", "image/png", 5, inline=True, content_id="logo@x", part="1.2"),
)
FORGED = (Attachment("forged.exe", "application/octet-stream", 10, part="2"),)


def _real(provider_id: str = "a1") -> MessageRecord:
    return message(provider_id, SHARED, thread="t", subject="Alice's", attachments=REAL)


def _forged() -> MessageRecord:
    later = T0 + timedelta(days=1)
    return message("b1", SHARED, thread="t", date=later, subject="Forged", attachments=FORGED)


class SourcesConformance:
    """Needs a ``store`` fixture: an empty store that is also ``MessageSources``."""

    def _sources(self, store: Store) -> MessageSources:
        assert isinstance(store, MessageSources)
        return store

    def test_the_owner_gets_their_copy_with_its_parts_and_places(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", METADATA))
        store.commit(batch("ca", "INBOX", messages=(_real("a1"),)))
        store.commit(batch("ca", "Archive", messages=(_real("a7"),)))
        source = self._sources(store).message_source("t", SHARED, ALICE)
        assert source is not None
        assert (source.channel_id, source.message_id) == ("ca", SHARED)
        assert source.attachments == REAL
        assert source.locations == (("Archive", "a7"), ("INBOX", "a1"))

    @pytest.mark.parametrize("visibility", [METADATA, SUBJECT])
    def test_a_colleague_below_full_gets_nothing(
        self, store: Store, visibility: Visibility
    ) -> None:
        setup_channels(store, ("ca", "ua", visibility))
        store.commit(batch("ca", messages=(_real(),)))
        assert self._sources(store).message_source("t", SHARED, COLIN) is None

    def test_a_colleague_gets_a_full_channels_copy(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", FULL))
        store.commit(batch("ca", messages=(_real(),)))
        source = self._sources(store).message_source("t", SHARED, COLIN)
        assert source is not None
        assert (source.channel_id, source.locations) == ("ca", (("INBOX", "a1"),))

    def test_a_forged_copy_never_serves_the_owner_of_the_real_one(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", SUBJECT), ("cb", "ub", FULL))
        store.commit(batch("ca", messages=(_real(),)))
        store.commit(batch("cb", messages=(_forged(),)))
        sources = self._sources(store)
        mine = sources.message_source("t", SHARED, ALICE)
        assert mine is not None
        assert (mine.channel_id, mine.attachments, mine.locations) == (
            "ca",
            REAL,
            (("INBOX", "a1"),),
        )
        bobs = sources.message_source("t", SHARED, BOB)
        assert bobs is not None
        assert (bobs.channel_id, bobs.attachments) == ("cb", FORGED)
        # Colin is shown Bob's copy (the most open): never Alice's parts through it
        colins = sources.message_source("t", SHARED, COLIN)
        assert colins is not None
        assert (colins.channel_id, colins.attachments) == ("cb", FORGED)

    def test_the_copy_shown_below_full_is_not_replaced_by_another(self, store: Store) -> None:
        # Colin is shown Alice's copy (SUBJECT, the most open): no source,
        # and never Bob's less open copy in its place
        setup_channels(store, ("ca", "ua", SUBJECT), ("cb", "ub", METADATA))
        store.commit(batch("ca", messages=(_real(),)))
        store.commit(batch("cb", messages=(_forged(),)))
        assert self._sources(store).message_source("t", SHARED, COLIN) is None

    def test_unknown_messages_threads_and_deleted_copies(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", FULL))
        store.commit(batch("ca", messages=(_real(),)))
        sources = self._sources(store)
        assert sources.message_source("t", "other@x", ALICE) is None
        assert sources.message_source("other-thread", SHARED, ALICE) is None
        store.commit(batch("ca", deleted=("a1",)))
        assert sources.message_source("t", SHARED, ALICE) is None

    def test_a_refetch_without_parts_keeps_what_it_says(self, store: Store) -> None:
        setup_channels(store, ("ca", "ua", FULL))
        store.commit(batch("ca", messages=(_real(),)))
        plain = tuple(attrs.evolve(a, part="") for a in REAL)
        again = attrs.evolve(_real(), message=attrs.evolve(_real().message, attachments=plain))
        store.commit(batch("ca", messages=(again,), generation=2))
        source = self._sources(store).message_source("t", SHARED, ALICE)
        assert source is not None
        assert [a.part for a in source.attachments] == ["", ""]
