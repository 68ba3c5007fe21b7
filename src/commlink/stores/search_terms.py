"""Search text, the same in every store: words, queries, matching, snippets.

Text is cut into words here, in Python, for every store: a word is a run
of letters and digits (``str.isalnum``), NFKC-normalised and case-folded.
The SQL stores index these words (SQLite FTS5 re-reads them as they are;
PostgreSQL gets a ``tsvector`` built from them), so a query finds the same
messages in the memory store, on SQLite and on PostgreSQL, and user text
never reaches a full-text query parser.

A message is indexed per copy in three fields: ``PEOPLE`` (participants'
names and addresses), ``SUBJECT`` and ``BODY``. A viewer's query counts a
field only where the visibility it sees that copy at shows it.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from ..addresses import address_key
from ..errors import InvalidInput
from ..model import Participant, Visibility
from ..records import PageRequest, SearchHit, SearchQuery
from .common import StoredMessage, require_aware, thread_after, validate_page

__all__ = [
    "MAX_BODY_WORDS",
    "MAX_PEOPLE_WORDS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
    "MAX_SUBJECT_WORDS",
    "MAX_WORD_CHARS",
    "SNIPPET_CHARS",
    "Field",
    "ParsedQuery",
    "Prepared",
    "document",
    "fields_for",
    "highlights",
    "hit_of",
    "matches",
    "parse_query",
    "prepare",
    "snippet",
    "tagged_document",
    "tagged_words",
    "words",
]

#: A query longer than this many characters is refused (``InvalidInput``) ...
MAX_QUERY_CHARS = 500
#: ... and so is one with more words than this (phrases count each word).
MAX_QUERY_WORDS = 16
#: Longer words (base64, long tokens) are not indexed and match nothing.
MAX_WORD_CHARS = 64
#: Words indexed per copy and field; later ones are not searchable.
MAX_SUBJECT_WORDS = 200
MAX_PEOPLE_WORDS = 1_000
MAX_BODY_WORDS = 12_000
#: Characters of a hit's snippet (about; it is cut at word edges).
SNIPPET_CHARS = 200

_WORD = re.compile(r"[^\W_]+")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
#: ASCII bytes other than lower-case letters and digits, as spaces: the
#: words of lower-cased ASCII text are what ``split()`` leaves then
_ASCII_SPACES = bytes(c if chr(c) in _LOWER_ALNUM else 32 for c in range(256))
#: the same with upper-case letters lower-cased, in one pass
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else _ASCII_SPACES[c] for c in range(256))
#: each letter and digit of such text as "a": a word too long to index shows
#: as a run of them, found by a substring search instead of a look at every word
_ASCII_RUNS = bytes(97 if c != 32 else 32 for c in _ASCII_SPACES)
_TOO_LONG = b"a" * (MAX_WORD_CHARS + 1)


class Field(enum.Enum):
    """The parts of a message a search looks in."""

    PEOPLE = "people"
    SUBJECT = "subject"
    BODY = "body"


_LIMITS = {
    Field.PEOPLE: MAX_PEOPLE_WORDS,
    Field.SUBJECT: MAX_SUBJECT_WORDS,
    Field.BODY: MAX_BODY_WORDS,
}

_VISIBLE = {
    Visibility.METADATA: (Field.PEOPLE,),
    Visibility.SUBJECT: (Field.PEOPLE, Field.SUBJECT),
    Visibility.FULL: (Field.PEOPLE, Field.SUBJECT, Field.BODY),
}


def fields_for(visibility: Visibility) -> tuple[Field, ...]:
    """The fields a viewer may search in a copy shown at ``visibility``."""
    return _VISIBLE[visibility]


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str, limit: int | None = None) -> list[str]:
    """The words of ``text``, in order (overlong ones left out), at most ``limit``."""
    if text.isascii():  # the same words, three times faster than the pattern
        folded = text.encode().translate(_ASCII_FOLD)
        found: list[str] = folded.decode().split()
        long = _TOO_LONG in folded.translate(_ASCII_RUNS)
    else:
        found = _WORD.findall(_fold(text))
        long = bool(found) and len(max(found, key=len)) > MAX_WORD_CHARS
    if long:
        found = [word for word in found if len(word) <= MAX_WORD_CHARS]
    return found if limit is None else found[:limit]


def tagged_words(text: str, tag: str, limit: int | None = None) -> str:
    """``words(text, limit)``, each with ``tag`` in front, separated by
    whitespace (``split()`` gives them back; with no tag, runs of spaces may
    stand between them).

    ASCII text is cut as bytes and joined as bytes: no string per word
    (a body holds hundreds of them). Untagged ASCII text is not cut at all
    unless a word is too long or there may be more than ``limit`` words:
    its folded bytes, other characters turned to spaces, are the answer."""
    if not text.isascii():
        found = words(text, limit)
        return tag + (" " + tag).join(found) if found else ""
    folded = text.encode().translate(_ASCII_FOLD)
    long = _TOO_LONG in folded.translate(_ASCII_RUNS)
    if not tag and not long and (limit is None or len(folded) < 2 * limit):
        return folded.decode()  # at most limit words: each takes a letter and a space
    parts = folded.split()
    if long:
        parts = [part for part in parts if len(part) <= MAX_WORD_CHARS]
    if limit is not None:
        del parts[limit:]
    if not parts:
        return ""
    mark = tag.encode()
    return (mark + (b" " + mark).join(parts)).decode()


def _people_text(participants: Iterable[Participant]) -> str:
    return " ".join(f"{p.address.name} {p.address.email or p.address.raw}" for p in participants)


#: the fields in index order, each with its cap on words
_FIELD_LIMITS = (
    (Field.PEOPLE, MAX_PEOPLE_WORDS),
    (Field.SUBJECT, MAX_SUBJECT_WORDS),
    (Field.BODY, MAX_BODY_WORDS),
)


def _field_texts(message: StoredMessage) -> tuple[str, str, str]:
    return (_people_text(message.participants), message.subject, message.body or "")


def document(message: StoredMessage) -> dict[Field, list[str]]:
    """The indexed words of a stored copy, by field (each capped)."""
    texts = _field_texts(message)
    return {f: words(t, cap) for (f, cap), t in zip(_FIELD_LIMITS, texts, strict=True)}


def tagged_document(message: StoredMessage, tags: Mapping[Field, str]) -> tuple[str, ...]:
    """``document(message)`` as ``tagged_words`` texts, in the order people,
    subject, body, each field's words tagged with ``tags[field]``."""
    texts = _field_texts(message)
    return tuple(
        tagged_words(t, tags[f], cap) for (f, cap), t in zip(_FIELD_LIMITS, texts, strict=True)
    )


@attrs.frozen(slots=True)
class ParsedQuery:
    """A query's terms: each a phrase of one or more words, all required."""

    phrases: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> frozenset[str]:
        return frozenset(w for phrase in self.phrases for w in phrase)


def parse_query(query: SearchQuery) -> ParsedQuery:
    """Words and ``"quoted phrases"`` of ``query.text``; an unclosed quote
    runs to the end. Raises ``InvalidInput`` past the documented limits."""
    text = query.text
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"search text longer than {MAX_QUERY_CHARS} characters")
    phrases: list[tuple[str, ...]] = []
    for n, part in enumerate(text.split('"')):
        found = _WORD.findall(_fold(part))
        if n % 2:  # inside quotes
            if found:
                phrases.append(tuple(found))
        else:
            phrases.extend((w,) for w in found)
    if sum(len(p) for p in phrases) > MAX_QUERY_WORDS:
        raise InvalidInput(f"search text has more than {MAX_QUERY_WORDS} words")
    return ParsedQuery(tuple(dict.fromkeys(phrases)))


def _has_phrase(field: Sequence[str], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    first = phrase[0]
    return any(
        word == first and tuple(field[i : i + size]) == phrase for i, word in enumerate(field)
    )


def matches(
    parsed: ParsedQuery, doc: Mapping[Field, Sequence[str]], visibility: Visibility
) -> bool:
    """Whether every phrase occurs in a field shown at ``visibility``."""
    shown = [doc[f] for f in fields_for(visibility)]
    return all(any(_has_phrase(field, phrase) for field in shown) for phrase in parsed.phrases)


def _boundary(text: str, at: int) -> bool:
    return at < 0 or at >= len(text) or not text[at].isalnum()


def _first_word(body: str, wanted: frozenset[str]) -> int | None:
    """Where the first query word occurs in ``body`` (a character offset)."""
    if body.isascii():  # lower() keeps offsets: search in C, check the word's edges
        lowered = body.lower()
        first: int | None = None
        for word in wanted:
            at = lowered.find(word)
            while at >= 0 and (first is None or at < first):
                if _boundary(lowered, at - 1) and _boundary(lowered, at + len(word)):
                    first = at
                    break
                at = lowered.find(word, at + 1)
        return first
    for match in _WORD.finditer(body, 0, _SCAN_CHARS):
        if _fold(match.group()) in wanted:
            return match.start()
    return None


#: a non-ASCII body is scanned this far for a snippet's first word
_SCAN_CHARS = 100_000


def snippet(body: str, parsed: ParsedQuery) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A short excerpt of ``body`` around the first query word found, with
    the character spans of query words in it."""
    wanted = parsed.words
    first = _first_word(body, wanted) if wanted else None
    start = 0
    if first is not None:
        start = max(0, first - SNIPPET_CHARS // 4)
        while start > 0 and not body[start - 1].isspace():
            start -= 1
    end = min(len(body), start + SNIPPET_CHARS)
    while end < len(body) and end - start < SNIPPET_CHARS + 40 and not body[end].isspace():
        end += 1
    excerpt = body[start:end].strip()
    return excerpt, highlights(excerpt, wanted)


def highlights(text: str, wanted: frozenset[str]) -> tuple[tuple[int, int], ...]:
    """The character spans of ``text``'s words (``words``) that are in
    ``wanted``, in order."""
    if text.isascii():  # each wanted word looked for in C, its edges checked
        lowered = text.lower()
        spans = []
        for word in wanted:
            if len(word) > MAX_WORD_CHARS:
                continue
            at = lowered.find(word)
            while at >= 0:
                end = at + len(word)
                if _boundary(lowered, at - 1) and _boundary(lowered, end):
                    spans.append((at, end))
                at = lowered.find(word, at + 1)
        return tuple(sorted(spans))
    found = []
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) <= MAX_WORD_CHARS and _fold(word) in wanted:
            found.append((match.start(), match.end()))
    return tuple(found)


@attrs.frozen(slots=True)
class Prepared:
    """A validated search: its parsed text, the participant filter as an
    address key and the page position to continue after."""

    parsed: ParsedQuery
    participant: str | None
    after: tuple[datetime, str] | None


def prepare(query: SearchQuery, page: PageRequest) -> Prepared:
    """Validate a search and its page; raises ``InvalidInput``."""
    validate_page(page)
    parsed = parse_query(query)
    if query.window is not None:
        require_aware(query.window.start, "window start")
        require_aware(query.window.end, "window end")
    participant = None
    if query.participant is not None:
        participant = address_key(query.participant)
        if not participant:
            raise InvalidInput(f"not an address: {query.participant!r}"[:300])
    after = thread_after(page.after) if page.after is not None else None
    return Prepared(parsed, participant, after)


def hit_of(message: StoredMessage, visibility: Visibility, parsed: ParsedQuery) -> SearchHit:
    """A found copy as a viewer sees it at ``visibility``."""
    excerpt: str | None = None
    spans: tuple[tuple[int, int], ...] = ()
    if visibility is Visibility.FULL:
        if message.body:
            excerpt, spans = snippet(message.body, parsed)
        else:
            excerpt = message.snippet
    return SearchHit(
        message_id=message.message_id,
        thread_id=message.thread_id,
        date=message.date,
        participants=message.participants,
        visibility=visibility,
        subject=message.subject if visibility.rank >= Visibility.SUBJECT.rank else None,
        snippet=excerpt,
        highlights=spans,
    )
