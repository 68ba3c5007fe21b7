"""What a privacy removal leaves in a SQLite store's files: nothing of the
removed mail, on every SQLite build (Debian's overwrites deleted content by
default, pysqlite3's and many others' do not), with the store still open."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import event

from commlink.model import Visibility
from commlink.records import AddressLinks, Link, TargetKind
from commlink.stores.sql import SqlStore
from commlink.testing.conformance_data import batch, channel, message, setup_channels

#: in the removed mail only: gone from the index once no row holds it
_GONE_WORD = "vanishingsecretword"
#: in every message body (the index keeps it for the mail that stays)
_FILLER = " ".join(f"filler{i:04d}" for i in range(900))
_SENDER = "bob@evil.example"


def _module(name: str) -> dict[str, Any]:
    if name == "stdlib":
        return {}
    return {"module": pytest.importorskip("pysqlite3.dbapi2")}


@pytest.fixture(params=["stdlib", "pysqlite3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path}/store.sqlite", engine_options=_module(request.param))
    setup_channels(store)
    yield store
    store.close()


def _fill(store: SqlStore) -> None:
    """Forty messages of two to three overflow pages each; the odd ones are
    from ``_SENDER`` and carry ``_GONE_WORD``."""
    records = []
    for i in range(40):
        odd = i % 2 == 1
        body = f"MARKER{i:03d} {_GONE_WORD if odd else 'keptword'} {_FILLER}"
        records.append(message(f"m{i}", body=body, sender=_SENDER if odd else "alice@acme.example"))
    store.commit(batch(messages=tuple(records)))


def _files(store: SqlStore) -> bytes:
    folder = Path(str(store.engine.url.database)).parent
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def _markers(data: bytes) -> set[int]:
    found = set()
    at = data.find(b"MARKER")
    while at >= 0:
        found.add(int(data[at + 6 : at + 9]))
        at = data.find(b"MARKER", at + 1)
    return found


def _erase(store: SqlStore) -> None:
    store.erase_address(_SENDER)


def _block(store: SqlStore) -> None:
    old = channel()
    blocking = attrs.evolve(old.settings, blocklist=frozenset({"@evil.example"}))
    store.save_channel(attrs.evolve(old, settings=blocking))


def _remove(store: SqlStore) -> None:
    store.remove_channel("c1")


def _minimise(store: SqlStore) -> None:
    store.save_channel(channel(visibility=Visibility.METADATA))


@pytest.mark.parametrize(
    ("removal", "left"),
    [
        (_erase, set(range(0, 40, 2))),
        (_block, set(range(0, 40, 2))),
        (_remove, set()),
        (_minimise, set()),
    ],
)
def test_removed_mail_leaves_nothing_in_the_files(
    store: SqlStore, removal: Callable[[SqlStore], None], left: set[int]
) -> None:
    _fill(store)
    before = _files(store)
    assert _markers(before) == set(range(40))
    assert _GONE_WORD.encode() in before
    removal(store)
    after = _files(store)
    assert _markers(after) == left
    # neither the copy of the text nor the search index's word lists keep it
    assert _GONE_WORD[4:].encode() not in after


def test_the_store_overwrites_deleted_content_whatever_the_build_default(
    store: SqlStore,
) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_an_erasure_that_removed_nothing_leaves_the_index_alone(store: SqlStore) -> None:
    _fill(store)
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        report = store.erase_address("nobody@elsewhere.example")
        assert (report.messages, report.events, report.skips, report.links) == (0, 0, 0, 0)
        assert not [s for s in statements if "optimize" in s]
        store.erase_address(_SENDER)
        assert [s for s in statements if "optimize" in s]
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)


def test_an_erasure_of_links_alone_clears_the_files_too(store: SqlStore) -> None:
    # the link's pages (address and CRM record) leave the log as mail does
    linked = "carol@partner.example"
    store.commit(
        batch(
            messages=(message("m1", body="hello", sender=linked),),
            links=(AddressLinks(linked, (Link(TargetKind.PERSON, "crm-person-7731"),)),),
        )
    )
    store.commit(batch(deleted=("m1",)))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    report = store.erase_address(linked)
    assert (report.messages, report.events, report.links) == (0, 0, 1)
    assert [s for s in statements if "optimize" in s]
    assert b"crm-person-7731" not in _files(store)


def test_a_reader_on_an_older_snapshot_delays_nothing_but_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.sqlite"
    store = SqlStore(f"sqlite:///{path}", engine_options={"connect_args": {"timeout": 0.2}})
    setup_channels(store)
    _fill(store)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM commlink_message_copies").fetchone()
        store.commit(batch(messages=(message("late"),)))  # the reader's snapshot is older
        with caplog.at_level(logging.WARNING, logger="commlink.stores"):
            report = store.erase_address(_SENDER)
        assert report.messages == 20
        assert "a reader kept the SQLite log" in caplog.text
        assert _GONE_WORD.encode() in Path(f"{path}-wal").read_bytes()
    finally:
        reader.execute("COMMIT")
        reader.close()
    store.remove_channel("c1")  # the next removal empties the log
    assert _markers(_files(store)) == set()
    assert Path(f"{path}-wal").stat().st_size == 0
    store.close()
