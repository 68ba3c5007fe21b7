"""Migrations of the SQL schema, from databases as older versions wrote them.

``V3`` freezes the tables schema 4 changed as schema 3 defined them (the
others are unchanged, and the tables schema 5 added are left out); versions
1 and 2 are derived from it the way their migrations undo. A schema 4
database is a fresh one without schema 5's tables and copy warnings. Each test writes an old
database through plain inserts, opens it with ``SqlStore`` and checks what
the read API shows, on SQLite and (when reachable) PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commlink.model import Direction, Visibility
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import SCHEMA_VERSION, UtcDateTime, metadata
from commlink.testing.conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
    all_events,
    batch,
    channel,
    event,
    links,
    message,
)

CHANGED = (
    "commlink_messages",
    "commlink_message_copies",
    "commlink_participants",
    "commlink_message_refs",
    "commlink_events",
    "commlink_attendees",
    "commlink_event_assocs",
)
#: tables later versions added
NEWER = ("commlink_erased", "commlink_deleted_addresses", "commlink_search_docs")
V3 = sa.MetaData()
for _table in metadata.sorted_tables:
    if _table.name not in CHANGED + NEWER:
        _table.to_metadata(V3)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


def _without_rowid(table: sa.Table) -> sa.Table:
    table.dialect_options["sqlite"]["with_rowid"] = False
    return table


sa.Table(
    "commlink_messages",
    V3,
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("thread_id", sa.String, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    _text("subject"),
    _text("snippet"),
    sa.Column("body", sa.Text),
    _text("attachments"),
    _text("content_hash"),
    sa.Index("commlink_messages_thread", "thread_id", "sent_at"),
)
_MESSAGE_FK = "commlink_messages.pk"
_without_rowid(
    sa.Table(
        "commlink_participants",
        V3,
        sa.Column("message_pk", sa.BigInteger, sa.ForeignKey(_MESSAGE_FK), primary_key=True),
        sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("role", sa.String, nullable=False),
        _text("key"),
        _text("domain"),
        _text("email"),
        _text("name"),
        sa.Column("valid", sa.Boolean, nullable=False),
        _text("raw"),
        sa.Index("commlink_participants_key", "key"),
        sa.Index("commlink_participants_domain", "domain"),
    )
)
_without_rowid(
    sa.Table(
        "commlink_message_refs",
        V3,
        sa.Column("message_pk", sa.BigInteger, sa.ForeignKey(_MESSAGE_FK), primary_key=True),
        sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ref_id", sa.String, nullable=False),
        sa.Index("commlink_message_refs_ref", "ref_id"),
    )
)
sa.Table(
    "commlink_events",
    V3,
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("uid", sa.String, nullable=False),
    sa.Column("rid_key", sa.String, nullable=False),
    sa.Column("recurrence_id", UtcDateTime),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    _text("title"),
    _text("description"),
    _text("location"),
    sa.Column("all_day", sa.Boolean, nullable=False),
    _text("timezone"),
    _text("recurrence"),
    sa.Column("status", sa.String, nullable=False),
    _text("conference_url"),
    _text("calendar_id"),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("updated", UtcDateTime),
    sa.UniqueConstraint("uid", "rid_key", name="commlink_events_uid_rid"),
)
_EVENT_FK = "commlink_events.pk"
_without_rowid(
    sa.Table(
        "commlink_attendees",
        V3,
        sa.Column("event_pk", sa.BigInteger, sa.ForeignKey(_EVENT_FK), primary_key=True),
        sa.Column("pos", sa.Integer, primary_key=True, autoincrement=False),
        _text("key"),
        _text("domain"),
        _text("email"),
        _text("name"),
        sa.Column("valid", sa.Boolean, nullable=False),
        _text("raw"),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("organizer", sa.Boolean, nullable=False),
        sa.Column("optional", sa.Boolean, nullable=False),
        sa.Index("commlink_attendees_key", "key"),
        sa.Index("commlink_attendees_domain", "domain"),
    )
)
_without_rowid(
    sa.Table(
        "commlink_event_assocs",
        V3,
        sa.Column("channel_id", sa.String, primary_key=True),
        sa.Column("scope_id", sa.String, primary_key=True),
        sa.Column("provider_id", sa.String, primary_key=True),
        sa.Column("event_pk", sa.BigInteger, sa.ForeignKey(_EVENT_FK), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Index("commlink_event_assocs_event", "event_pk"),
    )
)

ACME = Target(TargetKind.COMPANY, "acme")
U1, U2, U3 = Viewer("u1"), Viewer("u2"), Viewer("u3")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database."""
    if request.param == "sqlite":
        found = sa.create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
        yield found
        found.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    with pg.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    pg.dispose()  # no pooled connection keeps statements prepared on the old tables
    yield pg
    pg.dispose()


def _t(name: str) -> sa.Table:
    return V3.tables[f"commlink_{name}"]


def _person(key: str, role: str = "from") -> dict[str, Any]:
    return {"role": role, "key": key, "domain": key.split("@")[1], "email": key, "name": ""}


def write_v3(engine: Engine, version: int = 3) -> None:
    """Two channels sharing a message and a meeting, as schema ``version`` stored them."""
    V3.create_all(engine)
    with engine.begin() as conn:
        for name, user, vis in (("c1", "u1", Visibility.FULL), ("c2", "u2", Visibility.SUBJECT)):
            row = {
                "id": name,
                "user_id": user,
                "kind": "mail",
                "provider": "imap",
                "visibility": vis.value,
                "settings": '{"owner": "'
                + user
                + '@org.example", "visibility": "'
                + vis.value
                + '"}',
            }
            conn.execute(_t("channels").insert().values(**row))
        conn.execute(sa.insert(_t("schema")).values(id=1, version=3))
        messages = [
            {"pk": 1, "message_id": "shared@x", "subject": "Shared", "body": "shared body"},
            {"pk": 2, "message_id": "own@x", "subject": "Own", "body": None},
        ]
        for i, row in enumerate(messages):
            conn.execute(
                _t("messages")
                .insert()
                .values(
                    **row,
                    thread_id="t1",
                    sent_at=T0 + timedelta(hours=i),
                    snippet=row["subject"].lower(),
                    attachments="[]",
                    content_hash="x",
                )
            )
        people = [
            {"message_pk": 1, "pos": 0, **_person(ALICE)},
            {"message_pk": 1, "pos": 1, **_person("u1@org.example", "to")},
            {"message_pk": 2, "pos": 0, **_person(BOB)},
        ]
        conn.execute(_t("participants").insert(), [{**p, "valid": True, "raw": ""} for p in people])
        conn.execute(
            _t("message_refs").insert(), [{"message_pk": 2, "pos": 0, "ref_id": "shared@x"}]
        )
        assocs = [
            ("c1", "m1", 1, "incoming"),
            ("c2", "x1", 1, "outgoing"),
            ("c1", "m2", 2, "incoming"),
        ]
        conn.execute(
            _t("message_assocs").insert(),
            [
                {
                    "channel_id": c,
                    "scope_id": "INBOX",
                    "provider_id": p,
                    "message_pk": pk,
                    "generation": 1,
                    "folders": '["INBOX"]',
                    "direction": d,
                }
                for c, p, pk, d in assocs
            ],
        )
        conn.execute(
            _t("events")
            .insert()
            .values(
                pk=7,
                uid="meet",
                rid_key="",
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                title="Meeting",
                location="Room 4",
                all_day=False,
                recurrence="[]",
                status="confirmed",
                sequence=2,
            )
        )
        conn.execute(
            _t("attendees").insert(),
            [
                {
                    "event_pk": 7,
                    "pos": pos,
                    **{k: v for k, v in _person(key).items() if k != "role"},
                    "valid": True,
                    "raw": "",
                    "status": "needs_action",
                    "organizer": pos < 0,
                    "optional": False,
                }
                for pos, key in ((-1, "u1@org.example"), (0, CAROL))
            ],
        )
        conn.execute(
            _t("event_assocs").insert(),
            [
                {
                    "channel_id": c,
                    "scope_id": "Cal",
                    "provider_id": p,
                    "event_pk": 7,
                    "generation": 1,
                }
                for c, p in (("c1", "e1"), ("c2", "g1"))
            ],
        )
        conn.execute(
            _t("address_links").insert(),
            [{"key": key, "kind": "company", "target_id": "acme"} for key in (ALICE, BOB, CAROL)],
        )
        conn.exec_driver_sql(
            "INSERT INTO commlink_thread_targets (kind, target_id, thread_id, last_at) "
            "SELECT 'company', 'acme', 't1', sent_at FROM commlink_messages WHERE pk = 2"
        )
        if version <= 2:
            conn.exec_driver_sql("DROP TABLE commlink_thread_targets")
        if version <= 1:
            conn.exec_driver_sql("DROP INDEX commlink_messages_thread")
            conn.exec_driver_sql("ALTER TABLE commlink_messages DROP COLUMN content_hash")
            conn.exec_driver_sql(
                "CREATE INDEX commlink_messages_thread ON commlink_messages (thread_id, sent_at)"
            )
        conn.execute(sa.update(_t("schema")).values(version=version))


def _shape(engine: Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        name: (
            sorted(c["name"] for c in inspector.get_columns(name)),
            sorted((i["name"], *i["column_names"]) for i in inspector.get_indexes(name)),
            inspector.get_pk_constraint(name)["constrained_columns"],
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)),
            sorted(
                (*f["constrained_columns"], f["referred_table"], *f["referred_columns"])
                for f in inspector.get_foreign_keys(name)
            ),
        )
        for name in sorted(inspector.get_table_names())
    }


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_old_database_is_migrated_with_a_copy_per_channel(engine: Engine, version: int) -> None:
    write_v3(engine, version)
    store = SqlStore(engine)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT version FROM commlink_schema").scalar() == SCHEMA_VERSION
        )
    # every channel associated with a message or an event got its copy
    for viewer in (U1, U2):
        view = store.thread("t1", viewer)
        assert view is not None
        shared, own = view.messages
        assert (shared.message_id, shared.subject, shared.body) == (
            "shared@x",
            "Shared",
            "shared body",
        )
        assert [p.address.key for p in shared.participants] == [ALICE, "u1@org.example"]
        assert own.participants[0].address.key == BOB
        (meeting,) = all_events(store, ACME, viewer)
        assert (meeting.title, meeting.location, meeting.visibility) == (
            "Meeting",
            "Room 4",
            Visibility.FULL,
        )
    view = store.thread("t1", U2)
    assert view is not None
    assert view.messages[0].direction is Direction.OUTGOING
    view = store.thread("t1", U3)
    assert view is not None
    assert [m.visibility for m in view.messages] == [Visibility.FULL, Visibility.FULL]
    assert store.threads_by_message_ids(["shared@x", "own@x"]) == {
        "shared@x": "t1",
        "own@x": "t1",
    }
    (summary,) = store.timeline(ACME, U3, PageRequest()).items
    assert (summary.thread_id, summary.message_count, summary.last_at) == (
        "t1",
        2,
        T0 + timedelta(hours=1),
    )
    assert store.known_ids("c2", "Cal", ["g1", "e1"]) == {"g1"}
    assert store.stored_addresses() == {ALICE, BOB, CAROL, "u1@org.example"}
    # the migrated schema is the one a fresh database gets
    assert _shape(engine) == _fresh_shape(engine)
    # and it keeps working: a copy arriving through c2 is c2's alone
    store.commit(batch("c2", messages=(message("x1", "shared@x", thread="t1", subject="Forged"),)))
    view = store.thread("t1", U1)
    assert view is not None
    assert view.messages[0].subject == "Shared"
    store.remove_channel("c1")
    view = store.thread("t1", U1)
    assert view is not None
    assert [m.message_id for m in view.messages] == ["shared@x"]
    assert view.messages[0].subject == "Forged"
    store.remove_channel("c2")
    assert store.thread("t1", U1) is None
    assert store.stored_addresses() == set()
    store.close()


def _fresh_shape(engine: Engine) -> dict[str, Any]:
    if engine.dialect.name == "sqlite":
        fresh = sa.create_engine(f"sqlite:///{engine.url.database}.fresh")
        try:
            SqlStore(fresh).close()
            return _shape(fresh)
        finally:
            fresh.dispose()
    from commlink.testing.postgres import temporary_database

    with temporary_database() as fresh:
        return _shape(fresh)


def test_old_links_and_timelines_survive(engine: Engine) -> None:
    write_v3(engine, 2)
    store = SqlStore(engine)
    store.relink([links(CAROL), links(BOB)])  # only alice links the thread now
    (summary,) = store.timeline(ACME, U1, PageRequest()).items
    assert summary.thread_id == "t1"
    store.relink([links(ALICE)])
    assert store.timeline(ACME, U1, PageRequest()).items == ()
    store.save_channel(channel("c3", "u3"))
    store.commit(batch("c3", messages=(message("z1", "own@x", thread="t1", sender=CAROL),)))
    store.relink([links(CAROL, "acme", kind=TargetKind.COMPANY)])
    (summary,) = store.timeline(ACME, U3, PageRequest()).items
    assert summary.participants[0].address.key == CAROL  # u3 sees c3's copy
    store.close()


def write_v4(engine: Engine) -> None:
    """Channels c1 (FULL) and c2 (METADATA), each with a message and a
    meeting, and skip records, as schema 4 kept them: c2's copies hold what
    a METADATA channel no longer keeps, and skips of internal and blocked
    mail their subject and sender."""
    store = SqlStore(engine)
    store.save_channel(channel("c1", "u1"))
    store.save_channel(channel("c2", "u2"))
    for name in ("c1", "c2"):
        store.commit(
            batch(
                name,
                messages=(message(f"{name}-m", thread=f"t-{name}", body=f"{name} body"),),
                events=(event(f"{name}-e", f"{name}-uid"),),
                links=(links(ALICE, "acme", kind=TargetKind.COMPANY),),
            )
        )
    store.close()
    skip_rows = [
        ("internal", "every participant is inside the organisation", "layoff@org.example"),
        ("blocked", "dr@doctor.example matches blocklist entry", "r@doctor.example"),
        ("group", "List-Id header", "news@lists.example"),
    ]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE commlink_channels SET visibility = 'metadata', "
            'settings = \'{"owner": "u2@org.example", "visibility": "metadata"}\' '
            "WHERE id = 'c2'"
        )
        conn.execute(
            sa.text(
                "INSERT INTO commlink_skips (channel_id, provider_id, reason, detail, "
                "message_id, subject, sender) VALUES ('c1', :pid, :reason, :detail, :mid, "
                ":subject, 'dr@doctor.example')"
            ),
            [
                {"pid": f"s{i}", "reason": r, "detail": d, "mid": m, "subject": f"Secret {i}"}
                for i, (r, d, m) in enumerate(skip_rows)
            ],
        )
        for table in NEWER:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("ALTER TABLE commlink_message_copies DROP COLUMN warnings")
        conn.exec_driver_sql("UPDATE commlink_schema SET version = 4")


def test_schema_4_is_migrated_to_keep_less(engine: Engine) -> None:
    write_v4(engine)
    store = SqlStore(engine)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT version FROM commlink_schema").scalar() == SCHEMA_VERSION
        )
        skips = conn.exec_driver_sql(
            "SELECT provider_id, reason, detail, message_id, subject, sender "
            "FROM commlink_skips ORDER BY provider_id"
        ).all()
        copies = conn.exec_driver_sql(
            "SELECT channel_id, body, snippet FROM commlink_message_copies ORDER BY channel_id"
        ).all()
        meetings = conn.exec_driver_sql(
            "SELECT channel_id, title, description, location, conference_url "
            "FROM commlink_events ORDER BY channel_id"
        ).all()
    private = [tuple(row) for row in skips[:2]]
    assert [row[:2] for row in private] == [("s0", "internal"), ("s1", "blocked")]
    for _pid, _reason, detail, message_id, subject, sender in private:
        assert (subject, sender) == ("", "")
        assert message_id.startswith("sha256:")
        assert "doctor" not in detail
    assert tuple(skips[2]) == (
        "s2",
        "group",
        "List-Id header",
        "news@lists.example",
        "Secret 2",
        "dr@doctor.example",
    )
    assert [tuple(row) for row in copies] == [("c1", "c1 body", "The snippet"), ("c2", None, "")]
    assert [tuple(row) for row in meetings] == [
        ("c1", "Pricing call", "Agenda: discount", "Room 4", "https://meet.example/abc"),
        ("c2", "Pricing call", "", "", ""),
    ]
    # still found by Message-ID; the tombstone tables work
    (found,) = store.skips("c1", U1, "r@doctor.example")
    assert found.provider_id == "s1"
    assert store.erase_address(ALICE).messages == 2
    assert store.erased([ALICE]) == {ALICE}
    assert _shape(engine) == _fresh_shape(engine)
    store.close()


def test_schema_4_copies_get_warnings(engine: Engine) -> None:
    write_v4(engine)
    store = SqlStore(engine)
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT channel_id, warnings FROM commlink_message_copies ORDER BY channel_id"
        ).all()
    assert [tuple(row) for row in found] == [("c1", "[]"), ("c2", "[]")]
    view = store.thread("t-c1", U1)
    assert view is not None
    assert view.messages[0].warnings == ()
    # a re-fetch with warnings rewrites the copy
    cut = ("text-truncated", "too-large:123")
    again = message("c1-m", thread="t-c1", body="c1 body", warnings=cut)
    store.commit(batch("c1", messages=(again,)))
    view = store.thread("t-c1", U1)
    assert view is not None
    assert (view.messages[0].body, view.messages[0].warnings) == ("c1 body", cut)
    assert _shape(engine) == _fresh_shape(engine)
    store.close()
