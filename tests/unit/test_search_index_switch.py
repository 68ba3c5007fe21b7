"""``SqlStore.set_search_index``: a database that keeps no search index,
or one without the words of bodies (SQLite and PostgreSQL).

Off, commits write no index rows, ``search`` refuses with ``InvalidInput``
and the rows an earlier index held are gone; on again, the index is built
from every stored copy and finds what was committed while it was off.
Without bodies, people and subjects are found and body words are neither
found nor held by the index. The setting is the database's: another store
on the same database follows it, and a switch made while another connection
commits leaves every copy indexed as the new setting says (on PostgreSQL
that test fails without the switch's table lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.errors import InvalidInput
from commlink.model import Visibility
from commlink.records import PageRequest, SearchQuery
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import SCHEMA_VERSION
from commlink.testing.conformance_data import batch, message, setup_channels
from commlink.testing.conformance_search import OWNER
from commlink.testing.postgres import emptied


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Engine]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    yield emptied(request.getfixturevalue("pg_engine"))


def index_rows(store: SqlStore) -> int:
    """Rows of the search index (SQLite: the FTS5 table's as well)."""
    tables = ["commlink_search_docs"]
    if store.engine.dialect.name == "sqlite":
        tables.append("commlink_search_text")
    with store.engine.connect() as conn:
        return sum(
            int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables
        )


def found(store: SqlStore, text: str) -> list[str]:
    return [hit.message_id for hit in store.search(SearchQuery(text), OWNER).items]


def indexed(store: SqlStore, word: str) -> bool:
    """Whether any index row holds ``word`` (SQLite: in any FTS5 column)."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            sql = "SELECT count(*) FROM commlink_search_vocab WHERE term = :word"
        else:
            sql = (
                "SELECT count(*) FROM commlink_search_docs "
                "WHERE terms @@ to_tsquery('simple', :word)"
            )
        return bool(conn.execute(sa.text(sql), {"word": word}).scalar_one())


def test_off_commits_no_index_and_on_builds_it(url: str | Engine) -> None:
    store = SqlStore(url)
    setup_channels(store)
    assert store.search_index  # a new database keeps it
    store.commit(batch(messages=(message("m1", subject="Walrus pricing"),), cursor="1"))
    assert found(store, "walrus") == ["m1@mail.example"]

    store.set_search_index(False)
    assert not store.search_index
    assert index_rows(store) == 0  # what the index held is gone
    store.commit(batch(messages=(message("m2", body="Narwhal contract"),), cursor="2"))
    assert index_rows(store) == 0
    with pytest.raises(InvalidInput, match="set_search_index"):
        store.search(SearchQuery("walrus"), OWNER)
    other = SqlStore(url)  # the setting is the database's
    assert not other.search_index
    other.commit(batch(messages=(message("m3", subject="Walrus renewal"),), cursor="3"))
    assert index_rows(store) == 0
    other.close()
    assert store.thread("thread-m2@mail.example", OWNER) is not None  # stored all the same

    store.set_search_index(True)
    assert store.search_index
    assert found(store, "walrus") == ["m3@mail.example", "m1@mail.example"]
    assert found(store, "narwhal") == ["m2@mail.example"]
    store.set_search_index(True)  # already on: nothing is built again
    store.commit(batch(messages=(message("m4", subject="Walrus lunch"),), cursor="4"))
    assert len(found(store, "walrus")) == 3
    store.close()


def test_switching_off_twice_and_minimising_without_an_index(url: str | Engine) -> None:
    store = SqlStore(url)
    setup_channels(store)
    store.set_search_index(False)
    store.set_search_index(False)
    store.commit(batch(messages=(message("m1", body="Narwhal contract"),), cursor="1"))
    # lowering the channel's visibility drops stored bodies, and writes no index rows
    (channel,) = store.channels()
    lower = attrs.evolve(channel.settings, visibility=Visibility.METADATA)
    store.save_channel(attrs.evolve(channel, settings=lower))
    assert index_rows(store) == 0
    store.set_search_index(True)
    assert found(store, "narwhal") == []  # the body is gone, so are its words
    store.close()


def test_an_index_without_bodies_finds_people_and_subjects_only(url: str | Engine) -> None:
    store = SqlStore(url)
    setup_channels(store)
    store.commit(
        batch(messages=(message("m1", subject="Walrus pricing", body="Narwhal contract"),))
    )
    assert found(store, "narwhal") == ["m1@mail.example"]

    store.set_search_index(True, bodies=False)
    assert store.search_index
    assert not store.search_bodies
    assert not indexed(store, "narwhal")  # the body's words left the index
    assert found(store, "walrus") == ["m1@mail.example"]
    assert found(store, "alice") == ["m1@mail.example"]  # the sender's name
    assert found(store, "narwhal") == []
    other = SqlStore(url)  # the setting is the database's
    assert not other.search_bodies
    other.commit(batch(messages=(message("m2", subject="Orca", body="Beluga terms"),), cursor="2"))
    other.close()
    assert found(store, "orca") == ["m2@mail.example"]
    assert found(store, "beluga") == []
    assert not indexed(store, "beluga")
    # lowering a channel's visibility drops stored bodies: no body words to drop
    (channel,) = store.channels()
    lower = attrs.evolve(channel.settings, visibility=Visibility.METADATA)
    store.save_channel(attrs.evolve(channel, settings=lower))

    store.set_search_index(True)  # bodies again: built from the stored copies
    assert store.search_bodies
    assert found(store, "beluga") == []  # the body is gone, so are its words
    store.save_channel(channel)
    store.commit(batch(messages=(message("m3", subject="Seal", body="Beluga again"),), cursor="3"))
    assert found(store, "beluga") == ["m3@mail.example"]
    store.set_search_index(False, bodies=False)
    assert not store.search_index
    assert not store.search_bodies
    store.set_search_index(True)
    assert found(store, "beluga") == ["m3@mail.example"]
    store.close()


def _as_schema(url: str | Engine, version: int, dropped: tuple[str, ...]) -> None:
    """Make the database look as schema ``version`` left it."""
    engine = url if isinstance(url, Engine) else sa.create_engine(url)
    with engine.begin() as conn:
        for column in dropped:
            conn.exec_driver_sql(f"ALTER TABLE commlink_schema DROP COLUMN {column}")
        conn.exec_driver_sql(f"UPDATE commlink_schema SET version = {version}")
    if not isinstance(url, Engine):
        engine.dispose()


@pytest.mark.parametrize(
    ("version", "dropped"), [(11, ("search_index", "search_bodies")), (12, ("search_bodies",))]
)
def test_an_older_database_keeps_its_index(
    url: str | Engine, version: int, dropped: tuple[str, ...]
) -> None:
    assert SCHEMA_VERSION == 13
    store = SqlStore(url)
    setup_channels(store)
    store.commit(
        batch(messages=(message("m1", subject="Walrus pricing", body="Narwhal contract"),))
    )
    store.close()
    _as_schema(url, version, dropped)
    store = SqlStore(url)
    assert store.search_index
    assert store.search_bodies
    assert found(store, "walrus") == ["m1@mail.example"]
    assert found(store, "narwhal") == ["m1@mail.example"]
    store.commit(batch(messages=(message("m2", subject="Walrus renewal"),), cursor="2"))
    assert len(found(store, "walrus")) == 2
    store.close()


@pytest.mark.parametrize("state", ["on", "headers", "off"])
def test_a_switch_while_another_process_commits_leaves_every_copy_right(
    url: str | Engine, state: str
) -> None:
    """Commits run on another connection while the index is switched: every
    copy committed before, during and after ends up indexed (on; headers:
    without its body's words), or none does (off)."""
    on = state != "off"
    store = SqlStore(url)
    setup_channels(store)
    store.set_search_index(state == "headers")
    writer = SqlStore(url)
    done = threading.Event()
    failures: list[BaseException] = []

    def commit_batches() -> None:
        try:
            for n in range(40):
                messages = tuple(
                    message(f"m{n}-{i}", subject=f"Walrus {n}", body="Narwhal") for i in range(5)
                )
                writer.commit(batch(messages=messages, cursor=str(n)))
                if n == 5:
                    done.set()
        except BaseException as exc:  # reported by the assertions below
            failures.append(exc)
            done.set()

    thread = threading.Thread(target=commit_batches)
    thread.start()
    done.wait(30)
    store.set_search_index(on, bodies=state == "on")
    thread.join(60)
    assert not failures
    with store.engine.connect() as conn:
        copies = conn.execute(sa.text("SELECT count(*) FROM commlink_message_copies")).scalar()
        docs = conn.execute(sa.text("SELECT count(*) FROM commlink_search_docs")).scalar()
    assert copies == 200
    assert docs == (200 if on else 0)
    if on:
        assert len(store.search(SearchQuery("walrus"), OWNER, PageRequest(limit=500)).items) == 200
        narwhals = store.search(SearchQuery("narwhal"), OWNER, PageRequest(limit=500)).items
        assert len(narwhals) == (200 if state == "on" else 0)
    writer.close()
    store.close()
