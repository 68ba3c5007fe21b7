"""A copy's words as a PostgreSQL ``tsvector``, in binary.

Each field's words take positions in a range of their own, with the
field's weight: subject from 1 (``B``), people from 301 (``A``), body from
1401 (``C``); a word keeps at most 256 positions, the first in the order
people, subject, body (what PostgreSQL keeps of a literal listing them in
that order).

psycopg sends ``TsvectorBinary`` in PostgreSQL's binary format: lexemes
in order and positions as integers, so the server has nothing to tokenise
or sort. Reading a literal was half of the server's work per message.
"""

from __future__ import annotations

import functools
import struct
import sys
from array import array
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .search_terms import Field

__all__ = [
    "MAX_LEXEME_BYTES",
    "OFFSETS",
    "WEIGHTS",
    "TsvectorBinary",
    "register_binary_dumper",
    "tsvector_binary",
]

#: each field's weight and first position (positions end at 16,383)
WEIGHTS = {Field.PEOPLE: "A", Field.SUBJECT: "B", Field.BODY: "C"}
OFFSETS = {Field.SUBJECT: 1, Field.PEOPLE: 301, Field.BODY: 1401}
#: PostgreSQL keeps at most 256 positions of a word per row
_MAX_POSITIONS = 256
#: the lexemes of a tsvector take at most this many bytes together
MAX_LEXEME_BYTES = (1 << 20) - 1
#: a binary position is its number (the low 14 bits: positions run to
#: 16,383, past the body's last word) with the weight in the top two (A = 3)
_WEIGHT_BITS = {Field.PEOPLE: 3 << 14, Field.SUBJECT: 2 << 14, Field.BODY: 1 << 14}
_FIELD_OF_WEIGHT = {bits >> 14: field for field, bits in _WEIGHT_BITS.items()}
_POSITION_BITS = (1 << 14) - 1
#: the fields in position order: each word's positions come out ascending
_BY_POSITION = sorted(OFFSETS, key=OFFSETS.__getitem__)
_TSVECTOR_OID = 3614


@attrs.frozen(slots=True)
class TsvectorBinary:
    """A ``tsvector`` in PostgreSQL's binary format (``tsvectorsend``)."""

    data: bytes


_ENTRIES = struct.Struct(">i")
#: a NUL ending the lexeme, then the position count (and for one position, it)
_COUNT = struct.Struct(">xH")
_ONE = struct.Struct(">xHH")


def tsvector_binary(doc: Mapping[Field, Sequence[str]]) -> TsvectorBinary:
    """The ``tsvector`` of a copy's words (lexemes are letters and digits).

    The format: the number of lexemes; then each lexeme in byte order
    (UTF-8 keeps code point order, so ``str`` order), NUL-terminated, with
    its position count and its positions in ascending order, all integers
    big-endian."""
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for field in _BY_POSITION:
        found = doc.get(field)
        if found:
            for n, word in enumerate(found, OFFSETS[field] + _WEIGHT_BITS[field]):
                positions[word].append(n)
    parts = [_ENTRIES.pack(len(positions))]
    add = parts.append
    size = 0
    for word in sorted(positions):
        at = positions[word]
        lexeme = word.encode()
        size += len(lexeme)
        add(lexeme)
        if len(at) == 1:  # most words
            add(_ONE.pack(1, at[0]))
            continue
        if len(at) > _MAX_POSITIONS:
            at = _first_positions(at)
        add(_COUNT.pack(len(at)))
        packed = array("H", at)
        if sys.byteorder == "little":
            packed.byteswap()
        add(packed.tobytes())
    if size > MAX_LEXEME_BYTES:
        # PostgreSQL's refusal of a literal (54000) is a refused value; of
        # binary data it is an internal error: refuse it here the same way
        raise ValueError(f"the words of this copy take {size} bytes, more than a tsvector holds")
    return TsvectorBinary(b"".join(parts))


def _first_positions(at: list[int]) -> list[int]:
    """The positions kept of a word with too many: the first in field order
    people, subject, body, then in position order."""
    by_field: dict[Field, list[int]] = {field: [] for field in OFFSETS}
    for n in at:
        by_field[_FIELD_OF_WEIGHT[n >> 14]].append(n)
    kept = [*by_field[Field.PEOPLE], *by_field[Field.SUBJECT], *by_field[Field.BODY]]
    return sorted(kept[:_MAX_POSITIONS], key=_POSITION_BITS.__and__)


def register_binary_dumper(connection: Any) -> None:
    """Teach a psycopg connection to send ``TsvectorBinary`` as a binary
    ``tsvector`` (it concerns that class alone; repeating it is cheap)."""
    connection.adapters.register_dumper(TsvectorBinary, _dumper())


@functools.cache
def _dumper() -> type:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class TsvectorDumper(Dumper):
        format = Format.BINARY
        oid = _TSVECTOR_OID

        def dump(self, obj: Any) -> bytes:
            return bytes(obj.data)

    return TsvectorDumper
