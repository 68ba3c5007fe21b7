"""The PostgreSQL index's tsvector in binary: against a plain literal of
the same words, read back here and as PostgreSQL reads both."""

from __future__ import annotations

import itertools
import struct

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from commlink.stores.search_terms import (
    MAX_BODY_WORDS,
    MAX_PEOPLE_WORDS,
    MAX_SUBJECT_WORDS,
    Field,
)
from commlink.stores.sql_tsvector import (
    MAX_LEXEME_BYTES,
    OFFSETS,
    WEIGHTS,
    register_binary_dumper,
    tsvector_binary,
)


def _literal(doc: dict[Field, list[str]]) -> str:
    """The tsvector literal of a copy's words, written plainly."""
    positions: dict[str, list[str]] = {}
    for field, found in doc.items():
        for n, word in enumerate(found):
            held = positions.setdefault(word, [])
            if len(held) < 256:
                held.append(f"{OFFSETS[field] + n}{WEIGHTS[field]}")
    return " ".join(f"'{word}':{','.join(at)}" for word, at in positions.items())


def _read_literal(literal: str) -> dict[str, list[tuple[int, str]]]:
    """A literal as PostgreSQL reads it: positions in order, by word."""
    found: dict[str, list[tuple[int, str]]] = {}
    for entry in literal.split(" ") if literal else []:
        word, _, at = entry.rpartition(":")
        found[word.strip("'")] = sorted((int(p[:-1]), p[-1]) for p in at.split(","))
    return found


def _read_binary(data: bytes) -> dict[str, list[tuple[int, str]]]:
    """The binary format read back, checking what ``tsvectorrecv`` requires:
    lexemes in strictly ascending byte order, positions strictly ascending."""
    weights = {3: "A", 2: "B", 1: "C", 0: "D"}
    (count,) = struct.unpack_from(">i", data)
    at, found, last = 4, {}, b""
    for _ in range(count):
        end = data.index(b"\0", at)
        lexeme = data[at:end]
        assert not found or lexeme > last
        last = lexeme
        (n,) = struct.unpack_from(">H", data, end + 1)
        raw = struct.unpack_from(f">{n}H", data, end + 3)
        positions = [(p & 0x3FFF, weights[p >> 14]) for p in raw]
        assert all(a[0] < b[0] for a, b in itertools.pairwise(positions))
        found[lexeme.decode()] = positions
        at = end + 3 + 2 * n
    assert at == len(data)
    return found


_WORDS = st.lists(st.sampled_from(["a", "b", "plan", "q3", "é", "ß", "zz", "日本"]), max_size=40)
# one word far past PostgreSQL's 256 positions, after other words
_LONG = st.builds(lambda head, n: [*head, *(["a"] * n)], _WORDS, st.integers(250, 600))
_DOCS = st.builds(
    lambda people, subject, body: {Field.PEOPLE: people, Field.SUBJECT: subject, Field.BODY: body},
    _WORDS | _LONG,
    _WORDS | _LONG,
    _WORDS | _LONG,
)


@given(_DOCS)
def test_binary_holds_what_the_literal_holds(doc: dict[Field, list[str]]) -> None:
    assert _read_binary(tsvector_binary(doc).data) == _read_literal(_literal(doc))


def test_positions_carry_their_field_weight() -> None:
    doc = {Field.PEOPLE: ["ann"], Field.SUBJECT: ["plan"], Field.BODY: ["plan", "ann"]}
    assert _read_binary(tsvector_binary(doc).data) == {
        "ann": [(301, "A"), (1402, "C")],
        "plan": [(1, "B"), (1401, "C")],
    }


def test_positions_stay_in_range_at_the_word_caps() -> None:
    doc = {
        Field.PEOPLE: ["ann"] * MAX_PEOPLE_WORDS,
        Field.SUBJECT: ["deal"] * MAX_SUBJECT_WORDS,
        Field.BODY: ["word"] * MAX_BODY_WORDS,
    }
    found = _read_binary(tsvector_binary(doc).data)
    assert {word: len(at) for word, at in found.items()} == {"ann": 256, "deal": 200, "word": 256}
    assert max(p for at in found.values() for p, _w in at) <= 16_383


def test_distinct_body_words_at_the_cap_keep_their_weight() -> None:
    body = [f"w{n}" for n in range(MAX_BODY_WORDS)]
    found = _read_binary(tsvector_binary({Field.BODY: body}).data)
    assert max(p for at in found.values() for p, _w in at) == OFFSETS[Field.BODY] + len(body) - 1
    assert {w for at in found.values() for _p, w in at} == {"C"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_DOCS)
def test_postgres_reads_both_as_one_value(pg_engine: Engine, doc: dict[Field, list[str]]) -> None:
    with pg_engine.connect() as conn:
        register_binary_dumper(conn.connection.driver_connection)
        binary, literal = conn.exec_driver_sql(
            "SELECT %(b)b::tsvector::text, %(l)s::tsvector::text",
            {"b": tsvector_binary(doc), "l": _literal(doc)},
        ).one()
    assert binary == literal


def _too_many_bytes() -> dict[Field, list[str]]:
    # distinct words of 64 two-byte letters: past the limit with room to spare
    letters = "абвгдежзийклмнопрстуфхцчшщ"
    count = MAX_LEXEME_BYTES // 128 + 200
    words = [
        "".join(letters[(n // len(letters) ** k) % len(letters)] for k in range(64))
        for n in range(count)
    ]
    return {Field.BODY: words}


def test_binary_refuses_more_lexeme_bytes_than_a_tsvector_holds() -> None:
    # PostgreSQL refuses such a literal as a value (54000), but such binary
    # data with an internal error, which would not be taken for a refusal
    with pytest.raises(ValueError, match="more than a tsvector holds"):
        tsvector_binary(_too_many_bytes())


def test_postgres_refuses_the_literal_as_a_value(pg_engine: Engine) -> None:
    from commlink.stores.sql_schema import refuses_value

    with pg_engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as caught:
        conn.exec_driver_sql("SELECT %(l)s::tsvector", {"l": _literal(_too_many_bytes())})
    assert refuses_value(caught.value)
