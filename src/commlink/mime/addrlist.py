"""Address-list header values (From, To, Cc, ...) as real mail writes them.

RFC 5322 with its obsolete forms and the common mistakes: quoted strings,
comments anywhere (``Pete(A nice \\) chap) <pete(his account)@silly.test>``),
angle addresses with source routes, groups (``Team: a@x, b@y;``, whose name
is dropped), whitespace around the dots and the ``@`` of an address
(``jdoe@test . example``), semicolons outside a group as separators, and two
mailboxes with no comma between them (``a@x b@y``, ``Ann <a@x> Bob <b@y>``),
which are both kept and reported. Never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from .storable import MAX_NAME_CHARS, clean_text, repair_codes, text_is_clean
from .text import collapse
from .words import decode_words

__all__ = ["AddressList", "split_address_list", "split_addresses"]

# Longest value whose result is cached (the same headers recur; huge ones must
# not be kept alive by the cache).
_CACHED = 2048


class _Tok(NamedTuple):
    kind: str  # "w" atom, "q" quoted string, "c" comment, "a" angle address, or , ; :
    text: str  # the unquoted text (the content of a comment or angle address)
    spaced: bool  # whitespace or a comment came before it
    start: int
    end: int


_WS = re.compile(r"[ \t\r\n]+")
# What only the tokenizer reads: comments, groups, routes, escapes.
_HARD = re.compile(r"[(:;\\]")
# One entry of the common forms and the comma after it: "Quoted, Name" <a@x>,
# Name <a@x> (no "@" in the name: a missing comma) or a@x.
_SIMPLE_ENTRY = re.compile(
    r"""[ \t\r\n]*
    (?:
        "([^"\\]*)"[ \t\r\n]*<([^<> \t\r\n]*)>
      | ([^<>@",]*?)[ \t\r\n]*<([^<> \t\r\n]*)>
      | ([^<>", \t\r\n]+)
    )?
    [ \t\r\n]*(?:,|\Z)""",
    re.VERBOSE,
)
_ATOM = re.compile(r'[^ \t\r\n"(<,;:]+')
_GLUE = re.compile(r"[ \t\r\n]*([.@:,])[ \t\r\n]*")


class AddressList(NamedTuple):
    """The mailboxes of an address-list value, and what was recovered or repaired.

    ``entries`` are ``(address, display name)`` pairs. ``missing_comma``:
    two mailboxes had no comma between them (both are kept). ``repairs``:
    warning codes for names and address text made storable (``nul-removed``,
    ``control-removed``, ``surrogate-replaced``, ``name-truncated``).
    """

    entries: tuple[tuple[str, str], ...]
    missing_comma: bool
    repairs: tuple[str, ...]


def split_addresses(value: str) -> tuple[tuple[str, str], ...]:
    """Split an address-list header value into ``(address, display name)`` pairs.

    An entry without a recognisable address comes back with its text as the
    address, so that validation marks it invalid rather than losing it;
    empty entries and entries that are only a comment are skipped. Encoded
    words in names are decoded; a comment names an address that has no
    display name (``bob@y.example (Bob)``). Names and address text are
    storable: no NUL or other controls, names at most ``MAX_NAME_CHARS``.
    Never raises.
    """
    return split_address_list(value).entries


def split_address_list(value: str, *, tokenize: bool = True) -> AddressList:
    """``split_addresses``, with what was recovered or repaired on the way.

    ``tokenize=False``: a value over 2 KiB that is not in the common forms
    gives only the addresses a plain scan finds, without names (``repairs``
    holds ``addresses-scanned``): the tokenizer takes up to about 3 µs a
    character (``g:g:g:...``, each a group).
    """
    if len(value) <= _CACHED:
        return _split_cached(value)
    return _split(value, tokenize)


@lru_cache(maxsize=4096)
def _split_cached(value: str) -> AddressList:
    return _split(value)


def _split(value: str, tokenize: bool = True) -> AddressList:
    simple = _simple(value)
    repairs: dict[str, None] = {}
    if simple is not None:
        entries, missing = simple, False
    elif tokenize:
        entries, missing = _parsed(value)
    else:
        entries, missing = _scanned(value), False
        repairs["addresses-scanned"] = None
    for i, (address, name) in enumerate(entries):
        if len(name) > MAX_NAME_CHARS:
            name = name[:MAX_NAME_CHARS].rstrip()
            repairs["name-truncated"] = None
        if not (text_is_clean(address) and text_is_clean(name)):
            repairs.update(dict.fromkeys(repair_codes(address + name)))
            address, name = clean_text(address), collapse(clean_text(name))
        entries[i] = (address, name)
    return AddressList(tuple(entries), missing, tuple(repairs))


def _simple(value: str) -> list[tuple[str, str]] | None:
    """The common forms (``a@x``, ``Name <a@x>``, ``"Doe, Jane" <a@x>``) read quickly.

    ``None`` for anything else (escapes, comments, groups, routes, quoted
    local parts, missing commas, empty angle addresses), which the tokenizer
    reads. The result is what the tokenizer would give.
    """
    if _HARD.search(value) is not None:
        return None
    entries: list[tuple[str, str]] = []
    pos, end = 0, len(value)
    while pos < end:
        match = _SIMPLE_ENTRY.match(value, pos)
        if match is None or match.end() == pos:
            return None
        quoted, quoted_address, name, address, bare = match.groups()
        if bare is not None:
            entries.append((bare, ""))
        elif quoted_address is not None or address is not None:
            address = quoted_address if quoted_address is not None else address
            if not address:
                return None
            phrase = quoted if quoted is not None else name
            entries.append((address, collapse(decode_words(phrase)[0]) if phrase else ""))
        pos = match.end()
    return entries


# Runs of characters an address can hold (each read once: no run overlaps
# another, so the scan is linear whatever the text).
_RUN = re.compile(r'[^ \t\r\n<>()\[\],;:"\\]+')


def _scanned(value: str) -> list[tuple[str, str]]:
    """The addresses in a value, found without reading its structure."""
    return [
        (run, "")
        for run in _RUN.findall(value)
        if "@" in run and not run.startswith("@") and not run.endswith("@")
    ]


def _parsed(value: str) -> tuple[list[tuple[str, str]], bool]:
    """The tokenizer: every form ``split_addresses`` knows."""
    entries: list[tuple[str, str]] = []
    missing = False
    current: list[_Tok] = []
    in_group = False
    for tok in _tokens(value):
        kind = tok.kind
        if kind == "," or kind == ";":
            missing = _entry(value, current, entries) or missing
            current = []
            if kind == ";":
                in_group = False
        elif kind == ":":
            if not in_group and _group_name(current):
                current = []  # the phrase so far named a group
                in_group = True
            else:
                current.append(tok._replace(kind="w"))
        else:
            current.append(tok)
    missing = _entry(value, current, entries) or missing
    return entries, missing


def _group_name(toks: Sequence[_Tok]) -> bool:
    return any(t.kind in "wq" for t in toks) and not any(t.kind == "a" for t in toks)


def _tokens(value: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(value)
    spaced = False
    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i = _WS.match(value, i).end()  # type: ignore[union-attr]
            spaced = True
            continue
        if ch == '"':
            j, text = _quoted(value, i)
            out.append(_Tok("q", text, spaced, i, j))
        elif ch == "(":
            j, text = _comment(value, i)
            out.append(_Tok("c", text, spaced, i, j))
            i = j
            spaced = True
            continue
        elif ch == "<":
            close = _angle_end(value, i + 1)
            j = n if close < 0 else close + 1
            out.append(_Tok("a", value[i + 1 : n if close < 0 else close], spaced, i, j))
        elif ch in ",;:":
            j = i + 1
            out.append(_Tok(ch, ch, spaced, i, j))
        else:
            j = _ATOM.match(value, i).end()  # type: ignore[union-attr]
            out.append(_Tok("w", value[i:j], spaced, i, j))
        i = j
        spaced = False
    return out


def _angle_end(value: str, start: int) -> int:
    """The index of the ``>`` closing an angle address (not one in a comment or quotes)."""
    close = value.find(">", start)
    if close < 0 or ("(" not in value[start:close] and '"' not in value[start:close]):
        return close
    i, n = start, len(value)
    while i < n:
        ch = value[i]
        if ch == ">":
            return i
        if ch == '"':
            i = _quoted(value, i)[0]
        elif ch == "(":
            i = _comment(value, i)[0]
        else:
            i += 1
    return -1


class _Word(NamedTuple):
    """Pieces of an entry glued into one word (an address, or one word of a name)."""

    address: str  # the pieces as address text (quoted strings re-quoted)
    pieces: tuple[_Tok, ...]
    start: int
    end: int

    @property
    def has_at(self) -> bool:
        return any(p.kind == "w" and "@" in p.text for p in self.pieces)


def _words(pieces: Sequence[_Tok]) -> list[_Word]:
    """Glue pieces not separated by whitespace, or separated only around ``.`` and ``@``."""
    words: list[list[_Tok]] = []
    for piece in pieces:
        if words:
            prev = words[-1][-1]
            glued = not piece.spaced
            if not glued and prev.kind == "w" and piece.kind == "w":
                glued = prev.text[-1] in ".@" or piece.text[0] in ".@"
            if glued:
                words[-1].append(piece)
                continue
        words.append([piece])
    return [
        _Word("".join(_address_text(p) for p in w), tuple(w), w[0].start, w[-1].end) for w in words
    ]


def _address_text(piece: _Tok) -> str:
    if piece.kind == "q":
        return '"' + piece.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return piece.text


def _entry(value: str, toks: Sequence[_Tok], entries: list[tuple[str, str]]) -> bool:
    """Append the mailboxes of one comma-separated entry; whether it held several."""
    before = len(entries)
    pieces: list[_Tok] = []
    comments: list[_Tok] = []
    last = -1  # index in entries of the last angle address
    for tok in toks:
        if tok.kind == "c":
            comments.append(tok)
        elif tok.kind != "a":
            pieces.append(tok)
        else:
            address = _angle_address(tok.text) or tok.text.strip()
            name_words = _bare(value, _words(pieces), address, entries)
            name = _phrase(p for w in name_words for p in w.pieces) or _phrase(comments)
            entries.append((address, name))
            last = len(entries) - 1
            pieces = []
            comments = []
    words = _words(pieces)
    if last >= 0 and not any(w.has_at for w in words):
        # After an angle address: more of its name ("<a@x.example> Ann"), or comments.
        address, name = entries[last]
        more = _phrase(pieces) or ("" if name else _phrase(comments))
        entries[last] = (address, f"{name} {more}".strip())
    elif len(words) == 1:
        entries.append((words[0].address, _phrase(comments)))
    elif words and all(w.has_at for w in words):
        _named_by_comments(words, comments, entries)
    elif words:
        entries.append((value[words[0].start : words[-1].end].strip(), ""))
    return len(entries) - before > 1


def _bare(
    value: str, words: Sequence[_Word], address: str, entries: list[tuple[str, str]]
) -> Sequence[_Word]:
    """Split bare addresses off the phrase before an angle address; the name's words remain.

    ``ann@x.example Bob <bob@y.example>``: a comma is missing after the
    first address. That is assumed only when every word up to the last one
    holding an unquoted ``@`` holds one and none is the angle address itself
    (``ann@x.example <ann@x.example>`` names the address with itself).
    """
    last = -1
    for i, word in enumerate(words):
        if word.has_at:
            last = i
    if last < 0:
        return words
    lead = words[: last + 1]
    key = address.lower()
    if any(not w.has_at or w.address.strip("'\"").lower() == key for w in lead):
        return words
    entries.extend((w.address, "") for w in lead)
    return words[last + 1 :]


def _named_by_comments(
    words: Sequence[_Word], comments: Sequence[_Tok], entries: list[tuple[str, str]]
) -> None:
    """Bare addresses with no comma between them, each named by the comments after it."""
    for i, word in enumerate(words):
        limit = words[i + 1].start if i + 1 < len(words) else None
        own = [c for c in comments if c.start >= word.end and (limit is None or c.end <= limit)]
        entries.append((word.address, _phrase(own)))


def _angle_address(content: str) -> str:
    """The address in an angle address: comments, route and obsolete whitespace dropped."""
    if "(" in content:
        content = _uncommented(content)
    content = content.strip()
    if '"' not in content and any(c in content for c in " \t\r\n"):
        content = _GLUE.sub(r"\1", content)
    return _strip_route(content)


def _uncommented(text: str) -> str:
    """``text`` with its comments replaced by a space (quoted strings kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j, _ = _quoted(text, i)
            out.append(text[i:j])
            i = j
        elif ch == "(":
            i, _ = _comment(text, i)
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _quoted(value: str, start: int) -> tuple[int, str]:
    """The unescaped text of the quoted string at ``start`` and the index after it."""
    out: list[str] = []
    i = start + 1
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == '"':
            return i + 1, "".join(out)
        out.append(ch)
        i += 1
    return n, "".join(out)


def _comment(value: str, start: int) -> tuple[int, str]:
    """The text of the (possibly nested) comment at ``start`` and the index after it."""
    depth = 0
    out: list[str] = []
    i = start
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if ch == "(":
            depth += 1
            if depth > 1:
                out.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1, "".join(out)
            out.append(ch)
        else:
            out.append(ch)
        i += 1
    return n, "".join(out)


def _phrase(toks: Iterable[_Tok]) -> str:
    text = " ".join(t.text.strip() for t in toks if t.text.strip())
    return collapse(decode_words(text)[0]) if text else ""


def _strip_route(addr: str) -> str:
    """Drop an obsolete source route: ``@a,@b:user@host`` -> ``user@host``."""
    if addr.startswith("@") and ":" in addr:
        return addr.rpartition(":")[2].strip()
    return addr
