"""Read IMAP command responses straight off the connection, one at a time.

``ResponseReader`` reads one response (a line, and the literals it
announces with ``{n}``) from a buffered byte stream: a literal is read in
one piece into the bytes object that later becomes the message, so nothing
is copied or accumulated. ``command_responses`` walks the responses of one
tagged command and hands out what a FETCH caller needs (``Fetch``,
``Vanished``); the rest of what a server may interleave (EXISTS, EXPUNGE,
RECENT, FLAGS, ``OK`` notes) is passed over.

Everything is bounded: a line, the bytes kept per response, the literals a
response may announce. A literal above the bound is read and thrown away
(``Discarded``), so the stream stays in step and memory stays flat; a
stream that ends early raises ``ConnectionLost``, an unreadable one
``ProviderError``. No socket here: the tests feed it bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

import attrs

from ...errors import ProviderError, TransientError

__all__ = [
    "CommandRefused",
    "ConnectionLost",
    "Discarded",
    "Fetch",
    "ResponseReader",
    "String",
    "Value",
    "Vanished",
    "command_responses",
]

#: Longest response line (text between literals), as imaplib allows.
MAX_LINE = 1_000_000
#: A literal announced larger than this is not read at all: the server is broken.
MAX_ANNOUNCED = 2**31
#: Literals one response may announce.
MAX_LITERALS = 10_000
_CHUNK = 1 << 16


class ConnectionLost(TransientError):
    """The stream ended in the middle of a response (or the server said BYE)."""


class CommandRefused(ProviderError):
    """The server answered the command with NO or BAD."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(f"IMAP command refused: {status} {text}")
        self.status = status
        self.text = text


class Stream(Protocol):
    """The buffered binary reader of a connection (``socket.makefile("rb")``)."""

    def readline(self, size: int = -1, /) -> bytes: ...
    def read(self, size: int = -1, /) -> bytes: ...


class String:
    """A quoted string or a literal (as opposed to an atom)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, String) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"String({self.data[:40]!r}{'...' if len(self.data) > 40 else ''})"


@attrs.frozen(slots=True)
class Discarded:
    """A literal that was too large to keep: its bytes were read and dropped."""

    size: int


#: A parsed value: an atom (bytes; ``NIL`` is ``None``), a string, a list.
Value = bytes | String | Discarded | None | list["Value"]


class Fetch:
    """One ``* n FETCH (...)`` response: data item names upper-cased."""

    __slots__ = ("items", "seq")

    def __init__(self, seq: int, items: dict[str, Value]) -> None:
        self.seq = seq
        self.items = items

    @property
    def uid(self) -> int | None:
        value = self.items.get("UID")
        return int(value) if isinstance(value, bytes) and value.isdigit() else None

    def __repr__(self) -> str:
        return f"Fetch({self.seq}, {sorted(self.items)})"


@attrs.frozen(slots=True)
class Vanished:
    """The text after ``* VANISHED`` (RFC 7162), e.g. ``b"(EARLIER) 4:7"``."""

    text: bytes


@attrs.define
class Response:
    """One response: text pieces, each but the last followed by a literal."""

    pieces: list[bytes]
    literals: list[bytes | Discarded]


class ResponseReader:
    """Reads whole responses from ``stream`` within bounds.

    ``max_literal``: the largest literal kept (a message body); bigger ones
    are read and dropped. A response keeps at most ``max_literal +
    max_line`` bytes in all."""

    def __init__(self, stream: Stream, *, max_literal: int, max_line: int = MAX_LINE) -> None:
        self._stream = stream
        self.max_literal = max_literal
        self.max_line = max_line
        #: bytes of literals kept so far (a caller's measure of what came in)
        self.literal_bytes = 0

    def read_response(self) -> Response:
        budget = self.max_literal + self.max_line
        pieces: list[bytes] = []
        literals: list[bytes | Discarded] = []
        line = self._line()
        while True:
            budget -= len(line)
            if budget < 0:
                raise ProviderError("IMAP response too large")
            announced = _LITERAL.search(line)
            if announced is None:
                pieces.append(line[:-2])
                return Response(pieces, literals)
            if len(literals) >= MAX_LITERALS:
                raise ProviderError("IMAP response announces too many literals")
            pieces.append(line[: announced.start()])
            size = int(announced.group(1))
            if size <= min(self.max_literal, budget):
                data = self._stream.read(size)
                if len(data) != size:
                    raise ConnectionLost("connection closed in the middle of a literal")
                budget -= size
                self.literal_bytes += size
                literals.append(data)
            else:
                literals.append(self._discard(size))
            line = self._line()

    def _line(self) -> bytes:
        line = self._stream.readline(self.max_line + 2)
        if line.endswith(b"\r\n"):
            return line
        if len(line) > self.max_line:
            raise ProviderError(f"IMAP response line longer than {self.max_line} bytes")
        raise ConnectionLost("connection closed in the middle of a response")

    def _discard(self, size: int) -> Discarded:
        if size > MAX_ANNOUNCED:
            raise ProviderError(f"IMAP literal of {size} bytes announced")
        left = size
        while left:
            chunk = self._stream.read(min(left, _CHUNK))
            if not chunk:
                raise ConnectionLost("connection closed in the middle of a literal")
            left -= len(chunk)
        return Discarded(size)


_LITERAL = re.compile(rb"~?\{([0-9]{1,12})\}\r\n\Z")
_UNTAGGED = re.compile(rb"\* (?:([0-9]{1,10}) )?([A-Za-z-]+)(?: |\Z)")
_COMPLETION = re.compile(rb"([A-Za-z]+)(?: (.*))?\Z", re.DOTALL)
#: One token: ( ) "quoted" atom (``BODY[section]<origin>`` included), or
#: anything else, which is an error.
_TOKENS = re.compile(
    rb' *(?:(\()|(\))|"((?:[^"\\\r\n]|\\.)*)"'
    rb'|([^ ()"{}\[\]\r\n]+(?:\[[^\]\r\n]*\](?:<[0-9]+>)?)?)|(.))',
    re.DOTALL,
)
_ESCAPE = re.compile(rb"\\(.)")


def command_responses(reader: ResponseReader, tag: bytes) -> Iterator[Fetch | Vanished]:
    """The FETCH and VANISHED responses to the command tagged ``tag``, as
    they arrive; returns at its completion. A ``NO [EXPUNGEISSUED]`` is a
    completion (the messages gone are simply left out); another NO or a BAD
    raises ``CommandRefused``."""
    prefix = tag + b" "
    while True:
        response = reader.read_response()
        head = response.pieces[0]
        if head.startswith(b"* "):
            found = _UNTAGGED.match(head)
            kind = found.group(2).upper() if found is not None else b""
            if kind == b"FETCH" and found is not None and found.group(1) is not None:
                yield _fetch(int(found.group(1)), response, found.end())
            elif kind == b"VANISHED" and found is not None and found.group(1) is None:
                if response.literals:
                    raise ProviderError("unreadable VANISHED response")
                yield Vanished(head[found.end() :])
            elif kind == b"BYE":
                raise ConnectionLost(f"the server closed the session: {_text(head)}")
            continue
        if head.startswith(prefix):
            done = _COMPLETION.match(head, len(prefix))
            status = done.group(1).upper() if done is not None else b""
            text = _text(done.group(2) or b"") if done is not None else ""
            if status == b"OK" or (status == b"NO" and "[EXPUNGEISSUED]" in text.upper()):
                return
            raise CommandRefused(status.decode("ascii", "replace") or "?", text)
        raise ProviderError(f"unexpected IMAP response: {_text(head)[:80]!r}")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _fetch(seq: int, response: Response, start: int) -> Fetch:
    """``* n FETCH (name value ...)`` into names and values."""
    values = _parse(response, start)
    if len(values) != 1 or not isinstance(values[0], list):
        raise ProviderError("unreadable FETCH response")
    pairs = values[0]
    if len(pairs) % 2:
        raise ProviderError("unreadable FETCH response: a data item without a value")
    items: dict[str, Value] = {}
    for n in range(0, len(pairs), 2):
        name = pairs[n]
        if not isinstance(name, bytes):
            raise ProviderError("unreadable FETCH response: a data item without a name")
        items[name.decode("ascii", "replace").upper()] = pairs[n + 1]
    return Fetch(seq, items)


def _parse(response: Response, start: int) -> list[Value]:
    """The values of a response from offset ``start`` of its first piece;
    parentheses make nested lists (no recursion, so no depth limit to hit)."""
    stack: list[list[Value]] = [[]]
    top = stack[0]
    literals = response.literals
    for n, piece in enumerate(response.pieces):
        text = (piece[start:] if n == 0 else piece).rstrip(b" ")
        for opening, closing, quoted, atom, junk in _TOKENS.findall(text):
            if atom:
                top.append(None if len(atom) == 3 and atom.upper() == b"NIL" else atom)
            elif opening:
                inner: list[Value] = []
                top.append(inner)
                stack.append(inner)
                top = inner
            elif closing:
                if len(stack) == 1:
                    raise ProviderError("unreadable IMAP response: unbalanced parentheses")
                stack.pop()
                top = stack[-1]
            elif junk:
                raise ProviderError(f"unreadable IMAP response: {text[:80]!r}")
            else:
                top.append(String(_ESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted))
        if n < len(literals):
            literal = literals[n]
            top.append(String(literal) if isinstance(literal, bytes) else literal)
    if len(stack) != 1:
        raise ProviderError("unreadable IMAP response: unbalanced parentheses")
    return stack[0]
