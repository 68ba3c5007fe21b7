"""Search on SQLite: FTS5 rows numbered in date order.

A copy's ``doc`` (the FTS5 rowid) is its date in milliseconds shifted left
by 20 bits plus a slot, so FTS5 hands matches over newest first and stops
at a page (``ORDER BY rowid DESC``), and a time window is a rowid range.
Copies dated within one millisecond share a bucket; their exact order
(date, then Message-ID) is settled in Python. Dates outside 1970-2100
share the two edge buckets.

The query is driven by the most selective part: the words (one FTS5 scan
per visibility level, each over the channels seen at that level), a
person's mail or a participant's (when they have few messages), or the
date alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
from sqlalchemy.engine import Connection

from ..model import Visibility
from ..records import SearchQuery, Viewer
from .common import StoredMessage
from .search_terms import Field, ParsedQuery, Prepared, fields_for, tagged_document
from .sql_bulk import among_sql, fetch, key_set, run
from .sql_schema import UtcDateTime, channels, participants, search_docs, thread_targets

__all__ = ["Found", "bucket", "found", "fts_match", "write_docs"]

_TEXT = "commlink_search_text"
_SLOT_BITS = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LAST_MS = (datetime(2100, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
#: a driver (person, participant) with more rows than this is a filter instead
_DRIVER_ROWS = 3_000
#: a word in fewer rows than this is collected; in more, each candidate is probed
_COLLECT_ROWS = 60_000
_ATTEMPTS = 16


def bucket(moment: datetime) -> int:
    """The millisecond bucket of a date (clamped to 1970-2100)."""
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    return min(max(ms, 0), _LAST_MS)


def _slot(pk: int, channel_id: str, attempt: int) -> int:
    seed = zlib.crc32(f"{pk}/{channel_id}".encode(errors="surrogatepass"))
    return (seed + attempt * 7_919) % (1 << _SLOT_BITS)


def write_docs(
    conn: Connection,
    channel_id: str,
    copies: Sequence[tuple[int, StoredMessage]],
    fresh: bool = False,
) -> None:
    """(Re)write the index rows of a channel's copies (``fresh``: none has
    one yet). A copy's row is replaced: its doc follows its date."""
    pks = [pk for pk, _ in copies]
    if not fresh:
        run(
            conn,
            f"DELETE FROM {search_docs.name} WHERE channel_id = ? "
            f"AND {among_sql(conn, search_docs.c.message_pk)}",
            channel_id,
            key_set(conn, pks),
        )
    moment = UtcDateTime()
    pending = list(copies)
    for attempt in range(_ATTEMPTS):
        rows = [
            (
                (bucket(stored.date) << _SLOT_BITS) + _slot(pk, channel_id, attempt),
                pk,
                channel_id,
                moment.process_bind_param(stored.date, conn.dialect),
            )
            for pk, stored in pending
        ]
        result = conn.exec_driver_sql(
            f"INSERT INTO {search_docs.name} (doc, message_pk, channel_id, sent_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )
        if result.rowcount == len(rows):
            placed = {pk: doc for doc, pk, _, _ in rows}
        else:  # a slot was taken: find which rows went in
            wanted = {doc: pk for doc, pk, _, _ in rows}
            held = fetch(
                conn,
                f"SELECT doc, message_pk FROM {search_docs.name} "
                f"WHERE {among_sql(conn, search_docs.c.doc)} AND channel_id = ?",
                key_set(conn, list(wanted)),
                channel_id,
            )
            placed = {int(pk): int(doc) for doc, pk in held if wanted.get(int(doc)) == int(pk)}
        texts = [
            (placed[pk], *tagged_document(stored, _TAGS)) for pk, stored in pending if pk in placed
        ]
        # in rowid order: FTS5 flushes its pending terms to a new segment
        # whenever a rowid is lower than the one before (twice the work)
        texts.sort()
        conn.exec_driver_sql(
            f"INSERT INTO {_TEXT} (rowid, people, subject, body) VALUES (?, ?, ?, ?)", texts
        )
        pending = [(pk, stored) for pk, stored in pending if pk not in placed]
        if not pending:
            return
    # a millisecond holding about a million copies: the rest stay unsearchable


_FULL = Visibility.FULL
_ALL_FIELDS = fields_for(_FULL)


#: people's and subject words are indexed with a tag in front, so a word in
#: one field has its own FTS5 doclist: a query limited to the participants
#: never walks the rows that hold the word in their bodies. Body words go
#: in untagged (the folded text as it is, not cut and joined again: a fifth
#: of an import's indexing time). A tag ends in "_", which no word holds
#: (``search_terms.words``) and the tokenizer keeps (``tokenchars``), so a
#: tagged word never equals a body word.
_TAGS = {Field.PEOPLE: "p_", Field.SUBJECT: "s_", Field.BODY: ""}


def _tagged(field: Field, words: Sequence[str]) -> str:
    tag = _TAGS[field]
    return tag + (" " + tag).join(words) if words else ""


def fts_match(parsed: ParsedQuery, fields: Sequence[Field]) -> str:
    """An FTS5 query: each term, a phrase of tagged words (letters and
    digits: no quote can occur), in any of ``fields``; all terms required."""
    terms = []
    for phrase in parsed.phrases:
        options = ['"' + _tagged(field, phrase) + '"' for field in fields]
        terms.append(options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")")
    return " AND ".join(terms)


@attrs.frozen(slots=True)
class Found:
    """A hit before its content is read."""

    message_pk: int
    channel_id: str
    level: Visibility
    doc: int
    sent_at: datetime
    message_id: str


def _levels(conn: Connection, viewer: Viewer) -> dict[Visibility, list[str]]:
    """Channel ids by the visibility ``viewer`` sees their copies at."""
    levels: dict[Visibility, list[str]] = {}
    for channel_id, user_id, visibility in fetch(
        conn, f"SELECT id, user_id, visibility FROM {channels.name}"
    ):
        level = _FULL if user_id == viewer.user_id else Visibility(visibility)
        levels.setdefault(level, []).append(channel_id)
    return levels


def _word_rows(conn: Connection, parsed: ParsedQuery, fields: Sequence[Field]) -> int:
    """The fewest rows holding any one word of the query in ``fields`` (from
    the FTS5 vocabulary; 0 means no row can match)."""
    fewest: int | None = None
    for word in sorted(parsed.words):
        tagged = [_TAGS[field] + word for field in fields]
        rows = fetch(
            conn,
            "SELECT coalesce(sum(doc), 0) FROM commlink_search_vocab "
            "WHERE term IN (SELECT value FROM json_each(?))",
            key_set(conn, tagged),
        )
        count = int(rows[0][0])
        fewest = count if fewest is None else min(fewest, count)
    return fewest or 0


def _driver_rows(conn: Connection, sql: str, *params: Any) -> int:
    return int(fetch(conn, f"SELECT count(*) FROM ({sql} LIMIT {_DRIVER_ROWS + 1})", *params)[0][0])


_TARGET_PKS = (
    f"SELECT m2.pk AS message_pk FROM {thread_targets.name} t "
    "JOIN commlink_messages m2 ON m2.thread_id = t.thread_id "
    "WHERE t.kind = :kind AND t.target_id = :target"
)
_PARTICIPANT_PKS = f"SELECT DISTINCT message_pk FROM {participants.name} WHERE key = :key"
_HAS_PARTICIPANT = (
    f"EXISTS (SELECT 1 FROM {participants.name} p WHERE p.message_pk = d.message_pk "
    "AND p.channel_id = d.channel_id AND p.key = :key)"
)
_COLUMNS = "d.message_pk, d.channel_id, d.doc, d.sent_at, m.message_id"
_JOINS = (
    "CROSS JOIN commlink_channels ch ON ch.id = d.channel_id "
    "CROSS JOIN commlink_messages m ON m.pk = d.message_pk"
)


def found(
    conn: Connection,
    query: SearchQuery,
    prepared: Prepared,
    viewer: Viewer,
    limit: int,
    chosen_sql: str,
) -> list[Found]:
    """Up to ``limit`` hits in order (newest first, then Message-ID descending)."""
    moment = UtcDateTime()
    params: dict[str, Any] = {"viewer": viewer.user_id, "limit": limit}
    where = [chosen_sql]
    if query.window is not None:
        params["lo"] = bucket(query.window.start) << _SLOT_BITS
        params["hi"] = (bucket(query.window.end) + 1) << _SLOT_BITS
        params["start"] = moment.process_bind_param(query.window.start, conn.dialect)
        params["end"] = moment.process_bind_param(query.window.end, conn.dialect)
        where.append("{doc} >= :lo AND {doc} < :hi AND d.sent_at >= :start AND d.sent_at < :end")
    if prepared.after is not None:
        after_at, after_id = prepared.after
        params["after_hi"] = (bucket(after_at) + 1) << _SLOT_BITS
        params["after_at"] = moment.process_bind_param(after_at, conn.dialect)
        params["after_id"] = after_id
        where.append(
            "{doc} < :after_hi AND (d.sent_at < :after_at OR "
            "(d.sent_at = :after_at AND m.message_id < :after_id))"
        )
    driver = ""
    if prepared.participant is not None:
        params["key"] = prepared.participant
        where.append(_HAS_PARTICIPANT)
        if _driver_rows(conn, _PARTICIPANT_PKS.replace(":key", "?"), prepared.participant) <= (
            _DRIVER_ROWS
        ):
            driver = _PARTICIPANT_PKS
        else:
            where.append(f"d.message_pk IN ({_PARTICIPANT_PKS})")
    if query.target is not None:
        params.update(kind=query.target.kind.value, target=query.target.id)
        small = (
            _driver_rows(
                conn,
                _TARGET_PKS.replace(":kind", "?").replace(":target", "?"),
                query.target.kind.value,
                query.target.id,
            )
            <= _DRIVER_ROWS
        )
        if small and not driver:
            driver = _TARGET_PKS
        else:
            where.append(f"d.message_pk IN ({_TARGET_PKS})")
    levels = _levels(conn, viewer)
    parsed = prepared.parsed
    statements: list[tuple[str, dict[str, Any], Visibility | None]] = []
    if parsed.phrases and not driver:
        # one FTS5 scan per level, newest first, over that level's channels
        # (not first asking the vocabulary whether each word is at that level:
        # it counts a word's rows one by one, milliseconds for a common word,
        # while a scan with a word in no row ends at once)
        for level, held in levels.items():
            extra = {"q": fts_match(parsed, fields_for(level)), "held": key_set(conn, held)}
            sql = (
                f"SELECT {_COLUMNS} FROM {_TEXT} f CROSS JOIN {search_docs.name} d "
                f"ON d.doc = f.rowid {_JOINS} WHERE f.{_TEXT} MATCH :q "
                "AND d.channel_id IN (SELECT value FROM json_each(:held)) "
                f"AND {' AND '.join(where)} ORDER BY f.rowid DESC"
            ).replace("{doc}", "f.rowid")
            statements.append((sql, extra, level))
    else:
        source = f"({driver}) x CROSS JOIN {search_docs.name} d ON d.message_pk = x.message_pk"
        if not driver:
            source = f"{search_docs.name} d"
        conditions = list(where)
        extra = {}
        if parsed.phrases:
            probe = _word_rows(conn, parsed, _ALL_FIELDS) > _COLLECT_ROWS
            checks = []
            for level, held in levels.items():
                name = f"q{len(extra)}"
                extra[name] = fts_match(parsed, fields_for(level))
                extra[f"held{name}"] = key_set(conn, held)
                if probe:
                    match = (
                        f"EXISTS (SELECT 1 FROM {_TEXT} WHERE {_TEXT} MATCH :{name} "
                        "AND rowid = d.doc)"
                    )
                else:
                    match = f"d.doc IN (SELECT rowid FROM {_TEXT} WHERE {_TEXT} MATCH :{name})"
                checks.append(
                    f"(d.channel_id IN (SELECT value FROM json_each(:held{name})) AND {match})"
                )
            conditions.append("(" + " OR ".join(checks or ["0"]) + ")")
        sql = (
            f"SELECT {_COLUMNS} FROM {source} {_JOINS} WHERE {' AND '.join(conditions)} "
            "ORDER BY d.doc DESC"
        ).replace("{doc}", "d.doc")
        statements.append((sql, extra, None))
    rows, complete_above = _run(conn, statements, params, limit, None)
    if len(rows) >= limit:
        # rows sharing the last one's millisecond may come in any order: all
        # of them are needed, which a statement cut off inside it did not give
        tie = rows[limit - 1].doc >> _SLOT_BITS << _SLOT_BITS
        if tie <= complete_above:
            rows, _ = _run(conn, statements, params, limit, tie)
    level_of = {ch: level for level, held in levels.items() for ch in held}
    hits = {
        (r.message_pk, r.channel_id): attrs.evolve(r, level=level_of.get(r.channel_id, r.level))
        for r in rows
    }
    ordered = sorted(hits.values(), key=lambda r: (r.sent_at, r.message_id), reverse=True)
    return ordered[:limit]


def _run(
    conn: Connection,
    statements: Sequence[tuple[str, dict[str, Any], Visibility | None]],
    params: dict[str, Any],
    limit: int,
    tie: int | None,
) -> tuple[list[Found], int]:
    """Rows of every statement newest first: ``limit + 1`` of each, or with
    ``tie`` every row from that doc on; and the doc above which every
    matching row was returned."""
    moment = UtcDateTime()
    found_rows: list[Found] = []
    complete_above = -(1 << 62)
    for sql, extra, level in statements:
        before = len(found_rows)
        text = sql + (" LIMIT :limit + 1" if tie is None else "")
        if tie is not None:
            column = "f.rowid" if level is not None else "d.doc"
            text = text.replace(" ORDER BY ", f" AND {column} >= :tie ORDER BY ", 1)
        # the driver takes the named parameters itself: no statement object
        # to build and compile for each search
        for pk, channel_id, doc, sent_at, message_id in conn.exec_driver_sql(
            text, {**params, **extra, "tie": tie}
        ):
            when = moment.process_result_value(sent_at, conn.dialect)
            assert when is not None
            found_rows.append(
                Found(int(pk), str(channel_id), level or _FULL, int(doc), when, str(message_id))
            )
        if tie is None and len(found_rows) - before > limit:
            complete_above = max(complete_above, found_rows[-1].doc)
    found_rows.sort(key=lambda r: r.doc, reverse=True)
    return found_rows, complete_above
