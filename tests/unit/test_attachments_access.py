"""``open_attachment`` over the reference store with a recording provider:
visibility is checked before the provider is asked, a content id finds an
inline part, the next place is tried when one no longer has the message."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from commlink.attachments import AttachmentTooLarge, open_attachment
from commlink.errors import ConfigError, InvalidInput, NotFound
from commlink.model import Attachment, Visibility
from commlink.ports import AttachmentSource, Scope
from commlink.records import Viewer
from commlink.stores.memory import MemoryStore
from commlink.testing.conformance_data import batch, message, setup_channels

PARTS = (
    Attachment("a.pdf", "application/pdf", 4, part="2"),
    Attachment("", "image/png", 3, inline=True, content_id="logo@x", part="3"),
)
OWNER, COLLEAGUE = Viewer("ua"), Viewer("uc")


class Recording:
    """An ``AttachmentSource`` that serves ``content`` from ``held`` places."""

    def __init__(self, held: set[tuple[str, str]]) -> None:
        self.held = held
        self.calls: list[tuple[str, str, int, int]] = []

    @contextmanager
    def open_attachment(
        self,
        scope: Scope,
        provider_id: str,
        attachments: Sequence[Attachment],
        index: int,
        max_bytes: int,
    ) -> Iterator[Iterator[bytes]]:
        self.calls.append((scope.id, provider_id, index, max_bytes))
        if (scope.id, provider_id) not in self.held:
            raise NotFound("gone")
        yield iter([attachments[index].filename.encode() or b"png", b"!"])


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    setup_channels(store, ("ca", "ua", Visibility.SUBJECT))
    record = message("p1", "m@x", thread="t", attachments=PARTS)
    store.commit(batch("ca", "Archive", messages=(record,)))
    store.commit(
        batch("ca", "INBOX", messages=(message("p2", "m@x", thread="t", attachments=PARTS),))
    )
    return store


def _read(store: MemoryStore, provider: object, viewer: Viewer = OWNER, **which: object) -> bytes:
    opened = open_attachment(store, lambda _c: provider, "t", "m@x", viewer, **which)  # type: ignore[arg-type]
    with opened as content:
        return b"".join(content.chunks)


def test_the_next_place_is_tried_when_one_lost_the_message(store: MemoryStore) -> None:
    provider = Recording({("INBOX", "p2")})
    assert isinstance(provider, AttachmentSource)
    assert _read(store, provider, index=0) == b"a.pdf!"
    assert [c[:2] for c in provider.calls] == [("Archive", "p1"), ("INBOX", "p2")]
    with pytest.raises(NotFound):
        _read(store, Recording(set()), index=0)


@pytest.mark.parametrize("cid", ["logo@x", "cid:logo@x", "CID:<logo@x>", " <logo@x> "])
def test_an_inline_part_by_its_content_id(store: MemoryStore, cid: str) -> None:
    assert _read(store, Recording({("INBOX", "p2")}), content_id=cid) == b"png!"


def test_visibility_first_and_the_provider_never_asked(store: MemoryStore) -> None:
    provider = Recording({("INBOX", "p2")})
    with pytest.raises(NotFound):
        _read(store, provider, viewer=COLLEAGUE, index=0)
    with pytest.raises(NotFound):
        _read(store, provider, index=5)
    with pytest.raises(NotFound):
        _read(store, provider, content_id="cid:other@x")
    with pytest.raises(AttachmentTooLarge):
        _read(store, provider, index=0, max_bytes=3)
    assert provider.calls == []


def test_wrong_requests(store: MemoryStore) -> None:
    provider = Recording({("INBOX", "p2")})
    with pytest.raises(InvalidInput):
        _read(store, provider)
    with pytest.raises(InvalidInput):
        _read(store, provider, index=0, content_id="logo@x")
    with pytest.raises(InvalidInput):
        _read(store, provider, index=0, max_bytes=0)
    with pytest.raises(ConfigError):
        _read(store, object(), index=0)
