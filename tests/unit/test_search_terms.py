"""Words, queries and the full-text expressions built from them.

User text never reaches a full-text parser: the FTS5 and ``tsquery``
expressions are built from parsed words only, which hypothesis checks over
arbitrary text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.errors import InvalidInput
from commlink.model import Visibility
from commlink.records import SearchQuery
from commlink.stores.search_terms import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    MAX_WORD_CHARS,
    Field,
    ParsedQuery,
    fields_for,
    highlights,
    matches,
    parse_query,
    snippet,
    tagged_words,
    words,
)
from commlink.stores.sql_search import _tsquery
from commlink.stores.sql_search_sqlite import fts_match

_TEXT = st.text(max_size=300)
_QUERY_TEXT = st.text(
    alphabet=st.sampled_from(list("ab \"'*:^(){}-+&|!<>\\\x00é")) | st.characters(),
    max_size=60,
)


def test_words_are_folded_runs_of_letters_and_digits() -> None:
    assert words("Hello, WORLD! Q3-plan_x straße É") == [
        "hello",
        "world",
        "q3",
        "plan",
        "x",
        "strasse",
        "é",
    ]
    assert words("a " + "b" * (MAX_WORD_CHARS + 1) + " c") == ["a", "c"]
    assert words("one two three", limit=2) == ["one", "two"]


_ASCII_TEXT = st.text(
    alphabet=st.sampled_from(list("aZ09 \t\r\n.,-_@<>\x00\x7f")), max_size=400
) | st.builds(lambda a, b: a + "x" * b, st.text(alphabet="ab ", max_size=20), st.integers(60, 70))


@given(_TEXT | _ASCII_TEXT, st.sampled_from(["b", "p_", "xy"]), st.none() | st.integers(0, 40))
def test_tagged_words_are_the_words_tagged(text: str, tag: str, limit: int | None) -> None:
    found = words(text, limit)
    assert tagged_words(text, tag, limit) == " ".join(tag + word for word in found)


@given(_TEXT | _ASCII_TEXT, st.none() | st.integers(0, 40))
def test_untagged_words_are_the_words_between_spaces(text: str, limit: int | None) -> None:
    # untagged ASCII text may keep runs of spaces: FTS5 reads the same words
    found = tagged_words(text, "", limit)
    assert found.split() == words(text, limit)
    assert set(found) <= set(" ") | set().union(*map(set, words(text)))


@given(
    _ASCII_TEXT
    | st.builds(
        lambda a, n, b: a + "Q" * n + b,
        st.text(alphabet="aZ9 .", max_size=20),
        st.integers(62, 67),
        st.text(alphabet="aZ9 .", max_size=20),
    )
)
def test_ascii_words_are_those_of_the_pattern(text: str) -> None:
    # the ASCII path works on bytes; the pattern is the meaning
    expected = [w for w in re.findall(r"[^\W_]+", text.lower()) if len(w) <= MAX_WORD_CHARS]
    assert words(text) == expected
    assert tagged_words(text, "b") == " ".join("b" + w for w in expected)
    assert tagged_words(text, "").split() == expected


@given(_TEXT)
def test_words_survive_being_indexed_again(text: str) -> None:
    found = words(text)
    for word in found:
        assert word
        assert word.isalnum()
        assert len(word) <= MAX_WORD_CHARS
    # the SQL stores index the words joined by spaces: reading them again
    # must give the same words
    assert words(" ".join(found)) == found


def test_queries_have_words_and_phrases() -> None:
    parsed = parse_query(SearchQuery('Discount "new PLAN" discount "" "open'))
    assert parsed.phrases == (("discount",), ("new", "plan"), ("open",))
    assert parse_query(SearchQuery("")).phrases == ()
    assert parse_query(SearchQuery("*** ::")).phrases == ()


def test_query_limits() -> None:
    with pytest.raises(InvalidInput):
        parse_query(SearchQuery("a" * (MAX_QUERY_CHARS + 1)))
    with pytest.raises(InvalidInput):
        parse_query(SearchQuery(" ".join(["w"] * (MAX_QUERY_WORDS + 1))))
    assert len(parse_query(SearchQuery(" ".join(["w"] * MAX_QUERY_WORDS))).phrases) == 1


_FTS_WORD = r"([ps]_)?[^\W_]+"  # tagged people and subject words, untagged body words
_FTS_TERM = rf'"{_FTS_WORD}( {_FTS_WORD})*"'
_FTS_ANY = rf"({_FTS_TERM}|\({_FTS_TERM}( OR {_FTS_TERM})+\))"
_FTS = re.compile(rf"{_FTS_ANY}( AND {_FTS_ANY})*")
_LEXEME = r"'[^\W_]+'(:[ABC]+)?"
_TSQUERY = re.compile(rf"(\(?{_LEXEME}( <-> {_LEXEME})*\)?)( & \(?{_LEXEME}( <-> {_LEXEME})*\)?)*")


@given(_QUERY_TEXT)
def test_user_text_cannot_inject_query_syntax(text: str) -> None:
    try:
        parsed = parse_query(SearchQuery(text))
    except InvalidInput:
        return
    if not parsed.phrases:
        return
    for visibility in Visibility:
        fields = fields_for(visibility)
        assert _FTS.fullmatch(fts_match(parsed, fields)), text
        assert _TSQUERY.fullmatch(_tsquery(parsed, fields)), text


def test_fields_by_visibility() -> None:
    doc = {Field.PEOPLE: ["ann"], Field.SUBJECT: ["deal"], Field.BODY: ["secret", "plan"]}
    query = parse_query(SearchQuery('"secret plan"'))
    assert matches(query, doc, Visibility.FULL)
    assert not matches(query, doc, Visibility.SUBJECT)
    assert matches(parse_query(SearchQuery("deal ann")), doc, Visibility.SUBJECT)
    assert not matches(parse_query(SearchQuery("deal")), doc, Visibility.METADATA)
    assert matches(parse_query(SearchQuery("ann")), doc, Visibility.METADATA)
    # a phrase never spans two fields
    assert not matches(parse_query(SearchQuery('"deal secret"')), doc, Visibility.FULL)


def test_snippets_mark_query_words() -> None:
    body = "x " * 200 + "We agreed on the Discount plan for Q3. " + "y " * 200
    text, spans = snippet(body, ParsedQuery((("discount",), ("q3",))))
    assert len(text) <= 260
    assert [text[s:e] for s, e in spans] == ["Discount", "Q3"]
    short, none = snippet("no match here", ParsedQuery((("zzz",),)))
    assert short == "no match here"
    assert none == ()


def _highlights_by_pattern(text: str, wanted: frozenset[str]) -> tuple[tuple[int, int], ...]:
    """The reference: every word of the pattern, folded, looked up."""
    return tuple(
        (m.start(), m.end())
        for m in re.finditer(r"[^\W_]+", text)
        if len(m.group()) <= MAX_WORD_CHARS and m.group().lower() in wanted
    )


_ASCII_TEXT = st.text(st.sampled_from("abAB01 _-.,'\n\té"), max_size=120)


@given(_ASCII_TEXT, st.frozensets(st.text(st.sampled_from("ab01"), min_size=1, max_size=4)))
def test_highlights_of_ascii_text_are_the_words_found_by_the_pattern(
    text: str, wanted: frozenset[str]
) -> None:
    assert highlights(text, wanted) == _highlights_by_pattern(text, wanted)


def test_highlights_skip_parts_of_longer_words_and_overlong_words() -> None:
    long = "a" * (MAX_WORD_CHARS + 1)
    text = f"Deal deals re-deal deal_2 DEAL {long}"
    assert [text[s:e] for s, e in highlights(text, frozenset({"deal", long}))] == [
        "Deal",
        "deal",
        "deal",
        "DEAL",
    ]
