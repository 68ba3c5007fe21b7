"""The SQL store's write path: unchanged messages are not rewritten, content
digests, a copy per channel, driver-level bulk writes and key sets, on
SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine

from commlink.model import Attachment, Direction, Participant, Role
from commlink.records import MessageRecord, Viewer
from commlink.stores.sql import SqlStore
from commlink.stores.sql_bulk import among_sql, fetch, key_set, write_rows
from commlink.stores.sql_rows import content_hash
from commlink.stores.sql_schema import (
    cursors,
    message_copies,
    messages,
    metadata,
    participants,
    skips,
)
from commlink.stores.sql_write import ERASURE_LOCK
from commlink.testing.conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
    addr,
    batch,
    channel,
    message,
)
from commlink.testing.conformance_data import (
    event as make_event,
)
from commlink.testing.postgres import emptied

U1 = Viewer("u1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        found = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield found
        found.close()
        return
    engine: Engine = request.getfixturevalue("pg_engine")
    emptied(engine)
    yield SqlStore(engine)


class Statements:
    """Records the SQL an engine sends while active."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sql: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, *args: Any) -> None:
        self.sql.append(" ".join(str(args[2]).split()))

    def writes_to(self, table: sa.Table) -> list[str]:
        return [
            s
            for s in self.sql
            if s.upper().startswith(("INSERT", "UPDATE", "DELETE")) and f" {table.name} " in s + " "
        ]


def _records(count: int) -> tuple[MessageRecord, ...]:
    return tuple(
        message(f"m{i}", thread=f"t{i // 3}", references=(f"m{i - 1}@mail.example",) if i else ())
        for i in range(count)
    )


def _stored(store: SqlStore, message_id: str, channel_id: str = "c1") -> tuple[Any, ...]:
    """The thread of a logical message and the subject and digest of a channel's copy."""
    copies = message_copies.c
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(messages.c.thread_id, copies.subject, copies.content_hash)
            .join(message_copies, copies.message_pk == messages.c.pk)
            .where(messages.c.message_id == message_id, copies.channel_id == channel_id)
        ).one()
    return tuple(row)


def test_an_unchanged_batch_rewrites_no_message(store: SqlStore) -> None:
    store.save_channel(channel())
    records = _records(50)
    store.commit(batch(messages=records, cursor="k1", generation=1))
    before = store.thread("t0", U1)
    with Statements(store.engine) as seen:
        store.commit(batch(messages=records, cursor="k1", generation=1))
    for table in metadata.sorted_tables:
        if table.name not in (skips.name, cursors.name):  # the cursor upsert is unconditional
            assert seen.writes_to(table) == [], table.name
    assert store.thread("t0", U1) == before


def test_only_changed_messages_are_rewritten(store: SqlStore) -> None:
    store.save_channel(channel())
    records = _records(10)
    store.commit(batch(messages=records))
    digest = _stored(store, "m3@mail.example")[2]
    changed = list(records)
    changed[3] = message("m3", thread="t1", subject="A new subject", sender=CAROL)
    with Statements(store.engine) as seen:
        store.commit(batch(messages=tuple(changed)))
    assert seen.writes_to(messages) == []  # m3 stays in its thread
    assert len(seen.writes_to(message_copies)) == 1
    thread_id, subject, new_digest = _stored(store, "m3@mail.example")
    assert (thread_id, subject) == ("t1", "A new subject")
    assert new_digest != digest
    assert new_digest == content_hash(changed[3])
    assert CAROL in store.stored_addresses()


def test_a_merged_thread_is_restored_by_recommitting_the_record(store: SqlStore) -> None:
    store.save_channel(channel())
    record = message("m1", thread="t1")
    store.commit(batch(messages=(record,)))
    store.commit(batch(thread_merges=(("t1", "t9"),)))
    assert _stored(store, "m1@mail.example")[:2] == ("t9", "Quarterly plan")
    store.commit(batch(messages=(record,)))
    assert _stored(store, "m1@mail.example")[:2] == ("t1", "Quarterly plan")


def test_a_moved_association_is_rewritten(store: SqlStore) -> None:
    store.save_channel(channel())
    store.commit(batch(messages=(message("m1", thread="t1"),), generation=1))
    moved = message("m1", thread="t1", direction=Direction.OUTGOING)
    store.commit(batch(messages=(moved,), generation=2))
    view = store.thread("t1", U1)
    assert view is not None
    assert view.messages[0].direction is Direction.OUTGOING
    store.commit(batch(generation=3, sweep=True, seen=("m1",)))
    assert store.known_ids("c1", "INBOX", ["m1"]) == {"m1"}


def test_each_channel_writes_its_own_copy(store: SqlStore) -> None:
    store.save_channel(channel())
    store.save_channel(channel("c2", "u2"))
    mine = message("m1", thread="t1", sender=CAROL)
    store.commit(batch(messages=(mine,)))
    with Statements(store.engine) as seen:
        store.commit(batch("c2", messages=(message("x1", "m1@mail.example", thread="t1"),)))
    assert seen.writes_to(messages) == []  # same Message-ID, same thread
    assert len(seen.writes_to(message_copies)) == 1
    for statement in seen.writes_to(participants):
        assert "c1" not in statement
    assert _stored(store, "m1@mail.example", "c1")[1:] == ("Quarterly plan", content_hash(mine))
    with store.engine.connect() as conn:
        keys = conn.execute(
            sa.select(participants.c.channel_id, participants.c.key).order_by(
                participants.c.channel_id, participants.c.pos
            )
        ).all()
    assert [tuple(k) for k in keys] == [
        ("c1", CAROL),
        ("c1", "u1@org.example"),
        ("c2", ALICE),
        ("c2", "u1@org.example"),
    ]
    # the channel's last association goes: its copy goes, the others stay
    store.commit(batch("c2", deleted=("x1",)))
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(message_copies.c.channel_id)).scalars().all()
        people = conn.execute(sa.select(participants.c.channel_id).distinct()).scalars().all()
    assert (left, people) == (["c1"], ["c1"])


def test_delete_matching_removes_a_provider_ids_whole_event_association(
    store: SqlStore,
) -> None:
    store.save_channel(channel())
    series = make_event("e1", uid="u-a", attendees=(ALICE,))
    override = make_event("e1", uid="u-b", attendees=(BOB,))
    store.commit(batch(events=(series, override)))
    assert store.delete_matching("c1", ["@sub.acme.example"]) == 1
    assert store.known_ids("c1", "INBOX", ["e1"]) == set()
    assert store.stored_addresses() == set()


@pytest.mark.parametrize("size", [1, 3, 12_000])
def test_key_sets_are_one_parameter(store: SqlStore, size: int) -> None:
    keys = [f"id-{i}@x" for i in range(size)]
    with store.engine.begin() as conn:
        write_rows(conn, messages, ("message_id", "thread_id"), [(k, "t") for k in keys])
        with Statements(store.engine) as seen:
            found = fetch(
                conn,
                f"SELECT message_id FROM {messages.name} "
                f"WHERE {among_sql(conn, messages.c.message_id)}",
                key_set(conn, [*keys[::2], "missing@x"]),
            )
    assert sorted(m for (m,) in found) == sorted(keys[::2])
    assert len(seen.sql) == 1


def test_write_rows_upserts_with_the_last_row_per_key(store: SqlStore) -> None:
    store.save_channel(channel())
    columns = ("channel_id", "provider_id", "reason", "detail", "sent_at")
    later = datetime(2025, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    rows = [
        ("c1", "p1", "group", "first", T0),
        ("c1", "p2", "invalid", "", None),
        ("c1", "p1", "error", "second", later),
    ]
    with store.engine.begin() as conn:
        write_rows(
            conn, skips, columns, rows, conflict=("channel_id", "provider_id"), update=columns[2:]
        )
        write_rows(
            conn, skips, columns, [("c1", "p2", "group", "kept?", None)], conflict=columns[:2]
        )
    found = {s.provider_id: s for s in store.skips("c1", U1)}
    assert (found["p1"].reason.value, found["p1"].detail, found["p1"].date) == (
        "error",
        "second",
        later,
    )
    assert found["p1"].date is not None
    assert found["p1"].date.tzinfo is timezone.utc
    assert (found["p2"].reason.value, found["p2"].detail) == ("invalid", "")


def test_write_rows_refuses_naive_datetimes(store: SqlStore) -> None:
    store.save_channel(channel())
    with pytest.raises(ValueError, match="naive"), store.engine.begin() as conn:
        write_rows(
            conn,
            skips,
            ("channel_id", "provider_id", "reason", "sent_at"),
            [("c1", "p1", "group", datetime(2025, 1, 1))],
        )


@pytest.mark.postgres
def test_postgres_bodies_are_compressed_with_lz4(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        method = conn.exec_driver_sql(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = 'commlink_message_copies'::regclass AND attname = 'body'"
        ).scalar_one()
    assert method == "l"


# content digests (pure)

_TEXT = st.text(max_size=20)
_RECORD = message("m1", thread="t1", attachments=(Attachment("a.pdf", "application/pdf", 10),))


def _with(record: MessageRecord, **changes: Any) -> MessageRecord:
    return attrs.evolve(record, message=attrs.evolve(record.message, **changes))


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(
        ["subject", "snippet", "body", "date", "participant", "reference", "warning"]
    ),
    text=_TEXT,
)
def test_any_stored_change_changes_the_digest(field: str, text: str) -> None:
    msg = _RECORD.message
    changes: dict[str, Any] = {
        "subject": {"subject": msg.subject + "!" + text},
        "snippet": {"snippet": msg.snippet + "!" + text},
        "body": {"body": (msg.body or "") + "!" + text},
        "date": {"date": msg.date + timedelta(microseconds=1 + len(text))},
        "participant": {
            "participants": (*msg.participants, Participant(addr(f"x{text}@y.example"), Role.CC))
        },
        "reference": {"references": (*msg.references, f"<{text}>")},
        "warning": {"warnings": (*msg.warnings, f"w:{text}")},
    }[field]
    assert content_hash(_with(_RECORD, **changes)) != content_hash(_RECORD)


@settings(max_examples=100, deadline=None)
@given(body=st.one_of(st.none(), _TEXT), subject=_TEXT, folders=st.lists(_TEXT, max_size=3))
def test_the_digest_ignores_what_belongs_to_the_association(
    body: str | None, subject: str, folders: list[str]
) -> None:
    record = _with(_RECORD, body=body, subject=subject)
    moved = attrs.evolve(
        _with(record, provider_id="elsewhere", folders=tuple(folders)),
        direction=Direction.OUTGOING,
    )
    assert content_hash(moved) == content_hash(record)
    # a missing body and an empty one are different contents
    assert content_hash(_with(record, body=None)) != content_hash(_with(record, body=""))


def test_the_digest_does_not_depend_on_the_time_zone() -> None:
    shifted = _RECORD.message.date.astimezone(timezone(timedelta(hours=-5)))
    assert content_hash(_with(_RECORD, date=shifted)) == content_hash(_RECORD)
    # the thread belongs to the logical message, compared on its own
    assert content_hash(attrs.evolve(_RECORD, thread_id="other")) == content_hash(_RECORD)


def test_no_commit_writes_between_an_erasure_and_its_end(store: SqlStore) -> None:
    """A commit waits for an erasure running meanwhile (PostgreSQL: an
    advisory lock; SQLite: one writer at a time), then sees its tombstone."""
    store.save_channel(channel())
    done = threading.Event()
    with store.engine.connect().execution_options(commlink_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ERASURE_LOCK})")
        conn.exec_driver_sql(
            "INSERT INTO commlink_erased (key, erased_at) VALUES ('carol@other.example', "
            + ("now()" if conn.dialect.name == "postgresql" else "0")
            + ")"
        )

        def commit() -> None:
            store.commit(batch(messages=(message("m1", sender=CAROL),)))
            done.set()

        worker = threading.Thread(target=commit)
        worker.start()
        assert not done.wait(0.5)  # the erasure's transaction is still open
    worker.join(10)
    assert done.is_set()
    assert store.known_ids("c1", "INBOX", ["m1"]) == set()
    assert [s.reason.value for s in store.skips("c1", U1)] == ["erased"]
