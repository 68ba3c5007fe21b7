"""The PostgreSQL index's tsvector literal, against a plain reference."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from commlink.stores.search_terms import Field
from commlink.stores.sql_search import _tsvector

_WEIGHTS = {Field.PEOPLE: "A", Field.SUBJECT: "B", Field.BODY: "C"}
_OFFSETS = {Field.SUBJECT: 1, Field.PEOPLE: 301, Field.BODY: 1401}


def _reference(doc: dict[Field, list[str]]) -> str:
    positions: dict[str, list[str]] = {}
    for field, found in doc.items():
        for n, word in enumerate(found):
            held = positions.setdefault(word, [])
            if len(held) < 256:
                held.append(f"{_OFFSETS[field] + n}{_WEIGHTS[field]}")
    return " ".join(f"'{word}':{','.join(at)}" for word, at in positions.items())


_WORDS = st.lists(st.sampled_from(["a", "b", "plan", "q3", "é"]), max_size=40)
# one word far past PostgreSQL's 256 positions, in the body after other words
_LONG_BODY = st.builds(lambda head, n: [*head, *(["x"] * n)], _WORDS, st.integers(250, 600))


@given(_WORDS, _WORDS, _WORDS | _LONG_BODY)
def test_tsvector_matches_the_reference(
    people: list[str], subject: list[str], body: list[str]
) -> None:
    doc = {Field.PEOPLE: people, Field.SUBJECT: subject, Field.BODY: body}
    assert _tsvector(doc) == _reference(doc)


def test_positions_carry_their_field_weight() -> None:
    doc = {Field.PEOPLE: ["ann"], Field.SUBJECT: ["plan"], Field.BODY: ["plan", "ann"]}
    assert _tsvector(doc) == "'ann':301A,1402C 'plan':1B,1401C"
