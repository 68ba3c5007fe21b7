"""Search in ``SqlStore``: the index kept with each copy, and the query.

Every copy of a message has a ``search_docs`` row. Its words (cut by
``search_terms``, the same for every store) live in an FTS5 table on SQLite
and in a GIN-indexed ``tsvector`` on PostgreSQL, built here from those
words: no database parser ever sees user text, and queries are assembled
from the parsed words only (quoted FTS5 phrases; ``tsquery`` lexemes).

Fields are tagged words on SQLite (see ``sql_search_sqlite``) and
``tsvector`` weights on PostgreSQL (people ``A``, subject ``B``, body
``C``, each at its own position range so a phrase never spans two fields).
A query is matched at the level the viewer sees each copy at (owner or
``FULL``: every field; ``SUBJECT``: people and subject; ``METADATA``:
people), and only the copy the viewer sees of each message
(``stores.copies.choose``, in SQL) can be a hit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import StoreError
from ..model import Message, Visibility
from ..records import Page, PageRequest, SearchHit, SearchQuery, Viewer
from .common import StoredMessage, thread_token
from .search_terms import Field, ParsedQuery, Prepared, document, fields_for, hit_of, prepare
from .sql_bulk import among_sql, fetch, is_postgres, key_set, mark, run, write_rows
from .sql_read import participants_of
from .sql_rows import stored_message
from .sql_schema import (
    CONTENTLESS_SQLITE,
    UtcDateTime,
    channels,
    chunks,
    message_copies,
    messages,
    participants,
    schema_table,
    search_docs,
    search_text_contentless,
    search_text_ddl,
    sqlite_version,
    thread_targets,
)
from .sql_search_sqlite import found as sqlite_found
from .sql_search_sqlite import write_docs
from .sql_tsvector import WEIGHTS, register_binary_dumper, tsvector_binary

__all__ = [
    "backfill",
    "drop_bodies",
    "IndexSetting",
    "index_kept",
    "index_setting",
    "index_written",
    "keep_index",
    "merge_away_deleted",
    "rebuild_sqlite_index",
    "search",
]

_TEXT = "commlink_search_text"
FULL = Visibility.FULL
_ALL_FIELDS = fields_for(FULL)


def _write_docs(
    conn: Connection,
    channel_id: str,
    copies: Sequence[tuple[int, StoredMessage]],
    fresh: bool = False,
    bodies: bool = True,
) -> None:
    """(Re)write the index rows of a channel's copies (``fresh``: none has
    one yet; ``bodies``: with the words of their bodies)."""
    if not copies:
        return
    if not bodies:
        copies = [
            (pk, stored if stored.body is None else attrs.evolve(stored, body=None))
            for pk, stored in copies
        ]
    if is_postgres(conn):
        register_binary_dumper(conn.connection.driver_connection)
        rows = [
            (pk, channel_id, stored.date, tsvector_binary(document(stored)))
            for pk, stored in copies
        ]
        write_rows(
            conn,
            search_docs,
            ("message_pk", "channel_id", "sent_at", "terms"),
            rows,
            conflict=("message_pk", "channel_id"),
            update=("sent_at", "terms"),
        )
        return
    write_docs(conn, channel_id, copies, fresh)


@attrs.frozen(slots=True)
class IndexSetting:
    """What commits write to the search index: nothing (``kept`` false), or
    every copy's people and subject, and its body's words if ``bodies``."""

    kept: bool = True
    bodies: bool = True


def index_setting(conn: Connection) -> IndexSetting:
    """The database's search index setting (``SqlStore.set_search_index``)."""
    row = conn.execute(sa.select(schema_table.c.search_index, schema_table.c.search_bodies)).first()
    if row is None:
        return IndexSetting()
    kept, bodies = row
    return IndexSetting(bool(kept), bool(kept) and bool(bodies))


def index_kept(conn: Connection) -> bool:
    """Whether commits keep the search index (on unless switched off)."""
    return index_setting(conn).kept


def keep_index(conn: Connection, on: bool, bodies: bool = True) -> None:
    """Switch the search index on (built from every stored copy, with the
    words of their bodies or without) or off (emptied: its rows and, on
    SQLite, the pages of its words are overwritten), in the caller's write
    transaction."""
    wanted = IndexSetting(on, on and bodies)
    if wanted == index_setting(conn):
        return
    if conn.dialect.name == "sqlite":
        # dropped and made again, in the form it had
        rebuild_sqlite_index(conn, search_text_contentless(conn), fill=on, bodies=wanted.bodies)
    else:
        conn.execute(sa.delete(search_docs))
        if on:
            backfill(conn, wanted.bodies)
    conn.execute(sa.update(schema_table).values(search_index=on, search_bodies=wanted.bodies))


def index_written(
    conn: Connection,
    channel_id: str,
    written: Sequence[tuple[int, Message]],
    fresh: Collection[int] = (),
) -> None:
    """Index copies just written from these messages; a message without a
    body kept the body stored before (see ``sql_write``), read back here.
    ``fresh``: pks of copies that are new (SQLite: they have no index row)."""
    if not written:
        return
    setting = index_setting(conn)
    if not setting.kept:
        return
    kept: dict[int, str | None] = {}
    missing = [pk for pk, msg in written if msg.body is None] if setting.bodies else []
    m = mark(conn)
    for part in chunks(missing):
        found = fetch(
            conn,
            f"SELECT message_pk, body FROM {message_copies.name} WHERE channel_id = {m} "
            f"AND {among_sql(conn, message_copies.c.message_pk)}",
            channel_id,
            key_set(conn, part),
        )
        kept.update((int(pk), body) for pk, body in found)

    def _body(pk: int, msg: Message) -> str | None:
        return msg.body if msg.body is not None else kept.get(pk)

    copies = [
        (
            pk,
            StoredMessage(
                message_id=msg.message_id,
                thread_id="",
                date=msg.date,
                subject=msg.subject,
                body=_body(pk, msg) if setting.bodies else None,
                participants=msg.participants,
            ),
        )
        for pk, msg in written
    ]
    new = [c for c in copies if c[0] in fresh]
    _write_docs(conn, channel_id, new, fresh=True, bodies=setting.bodies)
    _write_docs(conn, channel_id, [c for c in copies if c[0] not in fresh], bodies=setting.bodies)


def drop_bodies(conn: Connection, channel_id: str) -> None:
    """Forget the body words of a channel's copies (minimised to ``METADATA``)."""
    if not index_setting(conn).bodies:
        return
    m = mark(conn)
    if is_postgres(conn):
        run(
            conn,
            f"UPDATE {search_docs.name} SET terms = ts_filter(terms, '{{A,B}}') "
            f"WHERE channel_id = {m}",
            channel_id,
        )
        return
    if search_text_contentless(conn):
        # no text to update in place: index the minimised copies again
        for pks in _copy_pks(conn, channel_id):
            _write_docs(conn, channel_id, _load(conn, channel_id, pks))
        return
    run(
        conn,
        f"UPDATE {_TEXT} SET body = '' WHERE rowid IN "
        f"(SELECT doc FROM {search_docs.name} WHERE channel_id = {m}) AND body <> ''",
        channel_id,
    )


def merge_away_deleted(conn: Connection) -> None:
    """On SQLite, merge the search index into one segment (FTS5 ``optimize``):
    a removed row's words otherwise stay in older segments, behind a delete
    marker, until merges reach them. Reads and writes the whole index (0.7 s
    for 45,000 messages); run after removals for privacy, not after syncs."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"INSERT INTO {_TEXT} ({_TEXT}) VALUES ('optimize')")


def rebuild_sqlite_index(
    conn: Connection, contentless: bool | None = None, *, fill: bool = True, bodies: bool = True
) -> bool:
    """Build a SQLite store's search index again from its stored copies, in
    one transaction: without a copy of the indexed text (``contentless``;
    ``None``: where SQLite is 3.43 or newer, see ``sql_tables.search_text_ddl``)
    or in the portable form; ``fill=False`` leaves it empty, ``bodies=False``
    leaves out the words of bodies. Returns whether the new index is
    contentless."""
    if contentless is None:
        contentless = sqlite_version(conn) >= CONTENTLESS_SQLITE
    elif contentless and sqlite_version(conn) < CONTENTLESS_SQLITE:
        raise StoreError("an index without a text copy needs SQLite 3.43 or newer")
    conn.exec_driver_sql("DROP TRIGGER IF EXISTS commlink_search_docs_gone")
    conn.exec_driver_sql("DROP TABLE IF EXISTS commlink_search_vocab")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_TEXT}")
    conn.exec_driver_sql(f"DELETE FROM {search_docs.name}")
    for statement in search_text_ddl(contentless):
        conn.exec_driver_sql(statement)
    if fill:
        backfill(conn, bodies)
    return contentless


def backfill(conn: Connection, bodies: bool = True) -> None:
    """Index every stored copy (``bodies``: with the words of their bodies;
    a schema without the index, see ``sql_migrations``)."""
    for pks in _copy_pks(conn):
        holders = fetch(
            conn,
            f"SELECT DISTINCT channel_id FROM {message_copies.name} "
            f"WHERE {among_sql(conn, message_copies.c.message_pk)}",
            key_set(conn, pks),
        )
        for (channel_id,) in holders:
            _write_docs(conn, channel_id, _load(conn, channel_id, pks), bodies=bodies)


def _copy_pks(conn: Connection, channel_id: str | None = None) -> Iterator[list[int]]:
    """The message pks of the stored copies (of one channel, if given), 2,000
    at a time in order."""
    m = mark(conn)
    where = f"channel_id = {m} AND " if channel_id is not None else ""
    sql = (
        f"SELECT DISTINCT message_pk FROM {message_copies.name} WHERE {where}message_pk > {m} "
        "ORDER BY message_pk LIMIT 2000"
    )
    last = -1
    while True:
        params = (channel_id, last) if channel_id is not None else (last,)
        found = fetch(conn, sql, *params)
        if not found:
            return
        pks = [int(pk) for (pk,) in found]
        last = pks[-1]
        yield pks


def _load(conn: Connection, channel_id: str, pks: Sequence[int]) -> list[tuple[int, StoredMessage]]:
    """A channel's stored copies of these messages (those it holds)."""
    found = _load_copies(conn, [(pk, channel_id) for pk in pks])
    return [(pk, stored) for (pk, _), stored in found.items()]


def _load_copies(
    conn: Connection, copies: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], StoredMessage]:
    """These stored copies (by message pk and channel id), in two reads
    through the driver (a page of hits: SQLAlchemy's statement building and
    result rows were a third of a search)."""
    wanted = set(copies)
    if not wanted:
        return {}
    rows = fetch(
        conn,
        f"SELECT c.message_pk, c.channel_id, {', '.join(_COPY_COLUMNS)} "
        f"FROM {message_copies.name} c JOIN {messages.name} m ON m.pk = c.message_pk "
        f"WHERE {among_sql(conn, message_copies.c.message_pk, 'c')}",
        key_set(conn, sorted({pk for pk, _ in wanted})),
    )
    held = [r for r in rows if (int(r[0]), r[1]) in wanted]
    people = participants_of(conn, {int(r[0]) for r in held})
    moment = UtcDateTime()
    found: dict[tuple[int, str], StoredMessage] = {}
    for pk, channel_id, *values in held:
        row = dict(zip(_COPY_NAMES, values, strict=True))
        row["sent_at"] = moment.process_result_value(row["sent_at"], conn.dialect)
        key = (int(pk), channel_id)
        found[key] = stored_message(row, people.get(key, ()))
    return found


#: the columns of a copy a search hit shows, and their names in a row
_COPY_COLUMNS = (
    "c.sent_at",
    "c.subject",
    "c.snippet",
    "c.body",
    "c.attachments",
    "m.message_id",
    "m.thread_id",
)
_COPY_NAMES = tuple(column.partition(".")[2] for column in _COPY_COLUMNS)


# the query


def _tsquery(parsed: ParsedQuery, fields: Sequence[Field]) -> str:
    """A ``tsquery`` literal: quoted lexemes restricted to the fields' weights."""
    weights = "" if tuple(fields) == _ALL_FIELDS else ":" + "".join(WEIGHTS[f] for f in fields)
    terms = []
    for phrase in parsed.phrases:
        lexemes = [f"'{word}'{weights}" for word in phrase]
        terms.append(lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")")
    return " & ".join(terms)


_RANK = "CASE {ch}.visibility WHEN 'full' THEN 2 WHEN 'subject' THEN 1 ELSE 0 END"


def _level(ch: str) -> str:
    """SQL for the level a viewer sees a copy of channel ``ch`` at (2: FULL)."""
    return f"(CASE WHEN {ch}.user_id = :viewer THEN 2 ELSE {_RANK.format(ch=ch)} END)"


def _chosen(collate: str) -> str:
    """SQL: no other copy of the message is the one the viewer sees
    (``copies.choose``: own channel first, then the most open visibility,
    then the lowest channel id)."""
    lower = f"c2.channel_id{collate} < d.channel_id{collate}"
    r2, r1 = _RANK.format(ch="ch2"), _RANK.format(ch="ch")
    return (
        f"NOT EXISTS (SELECT 1 FROM {message_copies.name} c2 "
        f"JOIN {channels.name} ch2 ON ch2.id = c2.channel_id "
        "WHERE c2.message_pk = d.message_pk AND c2.channel_id <> d.channel_id AND ("
        f"(ch2.user_id = :viewer AND (ch.user_id <> :viewer OR {lower})) OR "
        f"(ch2.user_id <> :viewer AND ch.user_id <> :viewer AND "
        f"({r2} > {r1} OR ({r2} = {r1} AND {lower})))))"
    )


def _text_condition(parsed: ParsedQuery, params: dict[str, Any]) -> str:
    """PostgreSQL: the words, matched at the level each copy is seen at."""
    level = _level("ch")
    for name, visibility in (("q2", FULL), ("q1", Visibility.SUBJECT), ("q0", Visibility.METADATA)):
        params[name] = _tsquery(parsed, fields_for(visibility))
    return (
        "d.terms @@ CAST(:q2 AS tsquery) AND "
        f"({level} = 2 OR ({level} = 1 AND d.terms @@ CAST(:q1 AS tsquery)) "
        f"OR ({level} = 0 AND d.terms @@ CAST(:q0 AS tsquery)))"
    )


#: PostgreSQL: message ids compare byte by byte, as SQLite's do
_COLLATE = ' COLLATE "C"'
#: PostgreSQL: fewer matching rows than this are collected and sorted
_FEW_ROWS = 2_000
#: PostgreSQL: a query with a phrase whose words are in fewer rows than this
#: reads those rows once to find the phrase (``_phrase_docs``); in more, the
#: date index is walked
_PHRASE_ROWS = 20_000


def _few(
    conn: Connection,
    query: SearchQuery,
    prepared: Prepared,
    params: dict[str, Any],
    words: bool = True,
) -> bool:
    """Whether the record, the participant or the words (unless ``words`` is
    false) select few rows (each counted up to ``_FEW_ROWS`` through its
    index, in that order: the words' count reads rows, the others' an index)."""
    probes: list[str] = []
    if query.target is not None:
        probes.append(
            f"SELECT 1 FROM {thread_targets.name} WHERE kind = :kind AND target_id = :target"
        )
    if prepared.participant is not None:
        probes.append(f"SELECT 1 FROM {participants.name} WHERE key = :key")
    if words and prepared.parsed.phrases:
        params["words"] = _all_words(prepared.parsed)
        probes.append(f"SELECT 1 FROM {search_docs.name} WHERE terms @@ CAST(:words AS tsquery)")
    for probe in probes:
        counted = conn.execute(
            sa.text(f"SELECT count(*) FROM ({probe} LIMIT {_FEW_ROWS}) x"), params
        ).scalar_one()
        if int(counted) < _FEW_ROWS:
            return True
    return False


def _all_words(parsed: ParsedQuery) -> str:
    """The query's words without positions or weights: a ``tsquery`` that
    the GIN index answers exactly."""
    return " & ".join(f"'{word}'" for word in sorted(parsed.words))


def _phrase_docs(conn: Connection, parsed: ParsedQuery, params: dict[str, Any]) -> list[int] | None:
    """The rows matching a query with a phrase at the ``FULL`` level
    (``:q2``), or ``None`` when its words are in ``_PHRASE_ROWS`` rows or
    more (by the planner's estimate, then by count) or ``_FEW_ROWS`` rows
    or more match: a walk down the date index then finds a page sooner.

    A phrase of common words may still be rare: the GIN index finds the
    rows holding its words, and only each row's positions tell whether they
    stand together. Counting those rows and checking the phrase is one pass
    over them; the estimate comes first, so that words in most rows are not
    read to learn it."""
    params["words"] = _all_words(parsed)
    holding = f"FROM {search_docs.name} WHERE terms @@ CAST(:words AS tsquery)"
    plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) SELECT 1 {holding}"), params).scalar_one()
    if isinstance(plan, str):  # a driver that does not read JSON
        plan = json.loads(plan)
    if int(plan[0]["Plan"]["Plan Rows"]) >= _PHRASE_ROWS:
        return None
    held, docs = conn.execute(
        sa.text(
            "SELECT count(*), coalesce(array_agg(doc) FILTER (WHERE hit), '{}') FROM "
            f"(SELECT doc, terms @@ CAST(:q2 AS tsquery) AS hit {holding} LIMIT {_PHRASE_ROWS}) x"
        ),
        params,
    ).one()
    if int(held) >= _PHRASE_ROWS or len(docs) >= _FEW_ROWS:
        return None
    return [int(doc) for doc in docs]


def _quoted_phrase(parsed: ParsedQuery) -> bool:
    """Whether the query holds a phrase of more than one word."""
    return any(len(phrase) > 1 for phrase in parsed.phrases)


def _found(
    conn: Connection, query: SearchQuery, prepared: Prepared, viewer: Viewer, limit: int
) -> list[tuple[int, str, int]]:
    """``(message pk, channel id, level)`` of the page's hits, in order."""
    if not is_postgres(conn):
        hits = sqlite_found(conn, query, prepared, viewer, limit, _chosen(""))
        return [(r.message_pk, r.channel_id, _RANKS[r.level]) for r in hits]
    params: dict[str, Any] = {"viewer": viewer.user_id, "limit": limit}
    where = [_chosen(_COLLATE)]
    moment = UtcDateTime()
    if prepared.parsed.phrases:
        where.append(_text_condition(prepared.parsed, params))
    if query.target is not None:
        where.append(
            f"m.thread_id IN (SELECT thread_id FROM {thread_targets.name} "
            "WHERE kind = :kind AND target_id = :target)"
        )
        params.update(kind=query.target.kind.value, target=query.target.id)
    if query.window is not None:
        where.append("d.sent_at >= :start AND d.sent_at < :end")
        params["start"] = moment.process_bind_param(query.window.start, conn.dialect)
        params["end"] = moment.process_bind_param(query.window.end, conn.dialect)
    if prepared.participant is not None:
        # the first condition can drive the query from the participants' key index
        where.append(
            f"d.message_pk IN (SELECT message_pk FROM {participants.name} WHERE key = :key) "
            f"AND EXISTS (SELECT 1 FROM {participants.name} p WHERE p.message_pk = d.message_pk "
            "AND p.channel_id = d.channel_id AND p.key = :key)"
        )
        params["key"] = prepared.participant
    if prepared.after is not None:
        where.append(
            "(d.sent_at < :after_at OR (d.sent_at = :after_at "
            f"AND m.message_id{_COLLATE} < :after_id{_COLLATE}))"
        )
        params["after_at"] = moment.process_bind_param(prepared.after[0], conn.dialect)
        params["after_id"] = prepared.after[1]
    # ordering by an expression keeps the planner off the date index, which
    # it would walk hoping for early matches that a few matches never give
    collect, walk = "d.sent_at + interval '0 s'", "d.sent_at"
    if _quoted_phrase(prepared.parsed):
        if _few(conn, query, prepared, params, words=False):
            return _page(conn, where, params, collect)
        docs = _phrase_docs(conn, prepared.parsed, params)
        if docs is None:
            return _page(conn, where, params, walk)
        if not docs:
            return []
        params["docs"] = docs
        return _page(conn, [*where, "d.doc = ANY(:docs)"], params, collect)
    return _page(conn, where, params, collect if _few(conn, query, prepared, params) else walk)


def _page(
    conn: Connection, where: Sequence[str], params: dict[str, Any], order: str
) -> list[tuple[int, str, int]]:
    """PostgreSQL: the page's hits, ``where`` all holds, newest first by ``order``."""
    sql = (
        f"SELECT d.message_pk, d.channel_id, {_level('ch')} AS level "
        f"FROM {search_docs.name} d JOIN {channels.name} ch ON ch.id = d.channel_id "
        f"JOIN {messages.name} m ON m.pk = d.message_pk WHERE {' AND '.join(where)} "
        f"ORDER BY {order} DESC, m.message_id{_COLLATE} DESC LIMIT :limit"
    )
    rows = conn.execute(sa.text(sql), params).all()
    return [(int(pk), str(channel_id), int(level)) for pk, channel_id, level in rows]


_LEVELS = {2: Visibility.FULL, 1: Visibility.SUBJECT, 0: Visibility.METADATA}
_RANKS = {level: rank for rank, level in _LEVELS.items()}


def search(
    conn: Connection, query: SearchQuery, viewer: Viewer, page: PageRequest
) -> Page[SearchHit]:
    prepared = prepare(query, page)
    found = _found(conn, query, prepared, viewer, page.limit + 1)
    chosen = found[: page.limit]
    stored = _load_copies(conn, [(pk, ch) for pk, ch, _ in chosen])
    hits = [
        hit_of(stored[(pk, ch)], _LEVELS[level], prepared.parsed)
        for pk, ch, level in chosen
        if (pk, ch) in stored
    ]
    token = None
    if len(found) > page.limit and hits:
        token = thread_token(hits[-1].date, hits[-1].message_id)
    return Page(items=tuple(hits), next=token)
