"""Messages fetched without the content of their file attachments.

An attachment's content is never stored (it is fetched on demand, see
``commlink.attachments``), so downloading it during a sync only costs time,
bandwidth and memory: in ordinary business mail most bytes are files. The
``BODYSTRUCTURE`` of a message of ``LEAN_MIN_BYTES`` or more (by its
``RFC822.SIZE``) tells which parts those are; ``plan`` decides which
parts of a message to fetch, and ``assemble`` puts the fetched pieces back
together as a message whose file parts are empty, with the same structure,
headers and section numbers, so the one MIME parser reads it as it reads
any other.

What is left out: single parts that can never be body text, an invitation
or a forwarded message, i.e. ``image``, ``audio``, ``video``, ``font``,
``model`` and ``application`` parts that are not iCalendar by type or by an
``.ics`` name anywhere in their description. Everything else (text of any
kind, ``message/*``) is fetched. A message is fetched whole when that
saves less than ``LEAN_MIN_BYTES``, when its structure is deeper
or wider than the bounds here, or when the server's description is not
one this module reads without doubt.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import unquote_to_bytes

import attrs

from ...mime.part_kinds import CALENDAR_TYPES, estimate_size
from .fetch_stream import String, Value

__all__ = [
    "LEAN_MAX_DEPTH",
    "LEAN_MAX_PARTS",
    "LEAN_MIN_BYTES",
    "LeanPlan",
    "Part",
    "assemble",
    "plan",
    "read_structure",
]

#: A message is fetched without its file parts only when these hold at least
#: this many bytes (as the server counts them, encoded): below, one
#: ``BODY.PEEK[]`` is as cheap as the sections.
LEAN_MIN_BYTES = 64 * 1024
#: Parts (single and multipart, the message itself not counted) a message
#: fetched in sections may have; one with more is fetched whole.
LEAN_MAX_PARTS = 64
#: How deep its multiparts may nest.
LEAN_MAX_DEPTH = 8
_FILE_TYPES = frozenset({b"image", b"audio", b"video", b"font", b"model", b"application"})
_CALENDAR = frozenset(t.encode() for t in CALENDAR_TYPES)
_ICS = b".ics"


@attrs.frozen(slots=True)
class Part:
    """One part of a message as its ``BODYSTRUCTURE`` describes it.

    ``path``: its section ("" for the message itself); ``boundary``: a
    multipart's delimiter; ``size``: a single part's encoded size;
    ``file``: a single part whose content is left out."""

    path: str
    children: tuple[Part, ...] = ()
    boundary: bytes = b""
    size: int = 0
    encoding: bytes = b""
    file: bool = False

    @property
    def multipart(self) -> bool:
        return bool(self.children)


@attrs.frozen(slots=True)
class LeanPlan:
    """How to fetch one message in sections.

    ``sections``: the ``BODY.PEEK`` sections to ask for, in order;
    ``left_out``: section and decoded size of each file part not fetched;
    ``size``: the whole message's (``RFC822.SIZE``); ``fetch_bytes``: about
    how many bytes the sections hold."""

    root: Part
    sections: tuple[str, ...]
    left_out: tuple[tuple[str, int], ...]
    size: int
    fetch_bytes: int


def _text(value: Value) -> bytes | None:
    if isinstance(value, String):
        return value.data
    return value if isinstance(value, bytes) else None


def _params(value: Value) -> dict[bytes, bytes]:
    """A parameter list ``("name" "value" ...)``, names lower-cased."""
    if not isinstance(value, list) or len(value) % 2:
        return {}
    found: dict[bytes, bytes] = {}
    for n in range(0, len(value), 2):
        name, text = _text(value[n]), _text(value[n + 1])
        if name is not None and text is not None:
            found.setdefault(name.lower(), text)
    return found


def _mentions_ics(value: Value, budget: int = 200) -> bool:
    """Whether any string in ``value`` (a part's description) may name an
    ``.ics`` file, as it is, %-escaped (RFC 2231) or in encoded words (RFC
    2047); past ``budget`` values looked at, assume it does."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return True
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        text = _text(item)
        if text is not None and _names_ics(text):
            return True
    return False


def _names_ics(text: bytes) -> bool:
    low = text.lower()
    if _ICS in low or (b"%" in low and _ICS in unquote_to_bytes(low).lower()):
        return True
    if b"=?" not in text:
        return False
    from ...mime.words import decode_words  # only for such names: the parsers load late

    return ".ics" in decode_words(text.decode("latin-1"))[0].lower()


class _Unreadable(Exception):
    """The description is not one to fetch in sections."""


def read_structure(value: Value) -> Part | None:
    """The parts of a message from its ``BODYSTRUCTURE`` value, or ``None``
    when it is unreadable, deeper than ``LEAN_MAX_DEPTH`` or has more than
    ``LEAN_MAX_PARTS`` parts."""
    count = [0]
    try:
        return _part(value, "", 0, count)
    except (_Unreadable, ValueError):
        return None


def _part(value: Value, path: str, depth: int, count: list[int]) -> Part:
    if path:
        count[0] += 1
        if count[0] > LEAN_MAX_PARTS:
            raise _Unreadable
    if not isinstance(value, list) or not value:
        raise _Unreadable
    if isinstance(value[0], list):  # a multipart: its parts, then its subtype
        if depth >= LEAN_MAX_DEPTH:
            raise _Unreadable
        first = 0
        while first < len(value) and isinstance(value[first], list):
            first += 1
        bodies, rest = value[:first], value[first:]
        if not rest:
            raise _Unreadable
        boundary = _params(rest[1]).get(b"boundary", b"") if len(rest) > 1 else b""
        if not boundary or not _plain_boundary(boundary):
            raise _Unreadable
        children = tuple(
            _part(child, f"{path}.{n}" if path else str(n), depth + 1, count)
            for n, child in enumerate(bodies, 1)
        )
        return Part(path, children, boundary=boundary)
    if len(value) < 7:
        raise _Unreadable
    kind, subtype = _text(value[0]), _text(value[1])
    encoding, size = _text(value[5]), _text(value[6])
    if kind is None or subtype is None or size is None or not size.isdigit():
        raise _Unreadable
    kind, subtype = kind.lower(), subtype.lower()
    file = (
        kind in _FILE_TYPES and kind + b"/" + subtype not in _CALENDAR and not _mentions_ics(value)
    )
    return Part(path or "1", size=int(size), encoding=(encoding or b"").lower(), file=file)


def _plain_boundary(boundary: bytes) -> bool:
    """1-70 printable ASCII characters (RFC 2046's length): nothing that could
    end a line or a header when written back."""
    return 0 < len(boundary) <= 70 and all(32 <= b < 127 for b in boundary)


def _descendants(root: Part) -> Iterator[Part]:
    """The parts inside a multipart, in section order (each before its own)."""
    stack = list(reversed(root.children))
    while stack:
        part = stack.pop()
        yield part
        stack.extend(reversed(part.children))


def plan(root: Part, size: int) -> LeanPlan | None:
    """Sections to fetch for a message of ``size`` bytes described by
    ``root``, or ``None`` when it is better fetched whole."""
    parts = list(_descendants(root)) if root.multipart else [root]
    files = [p for p in parts if p.file]
    skipped = sum(p.size for p in files)
    if skipped < LEAN_MIN_BYTES:
        return None
    sections = ["HEADER"]  # a message that is one file: its header is all
    if root.multipart:
        for part in parts:
            sections.append(f"{part.path}.MIME")
            if not part.multipart and not part.file:
                sections.append(part.path)
    left_out = tuple((p.path, _decoded(p)) for p in files)
    return LeanPlan(root, tuple(sections), left_out, size, max(0, size - skipped))


def _decoded(part: Part) -> int:
    """A file part's size once decoded (as the MIME parser estimates it)."""
    return estimate_size(part.size) if part.encoding == b"base64" else part.size


def assemble(lean: LeanPlan, pieces: Mapping[str, bytes]) -> bytes | None:
    """The message from its fetched ``sections`` (``pieces``: section ->
    bytes), its file parts empty; ``None`` when a piece is missing or a
    boundary would not read back as the server read it."""
    header = pieces.get("HEADER")
    if header is None or not lean.root.multipart:
        return header
    out = [header]
    if lean.root.boundary not in header or not _body(lean.root, pieces, out):
        return None
    return b"".join(out)


def _body(root: Part, pieces: Mapping[str, bytes], out: list[bytes]) -> bool:
    """Append a multipart's body to ``out``, without recursion."""
    # a work list of what to write: bytes as they are, parts to expand
    todo: list[bytes | Part] = [*_framed(root)]
    todo.reverse()
    while todo:
        item = todo.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        header = pieces.get(f"{item.path}.MIME")
        if header is None:
            return False
        if item.multipart:
            if item.boundary not in header:
                return False
            out.append(header)
            todo.extend(reversed(_framed(item)))
            continue
        content = b"" if item.file else pieces.get(item.path)
        if content is None or _breaks(content, _boundaries(root, item.path)):
            return False
        out.append(header)
        out.append(content)
    return True


def _framed(part: Part) -> Sequence[bytes | Part]:
    """A multipart's children between its delimiter lines."""
    line = b"--" + part.boundary
    framed: list[bytes | Part] = []
    for child in part.children:
        framed.append(line + b"\r\n")
        framed.append(child)
        framed.append(b"\r\n")
    framed.append(line + b"--\r\n")
    return framed


def _boundaries(root: Part, path: str) -> list[bytes]:
    """The delimiters of the multiparts that enclose section ``path``."""
    found = [root.boundary]
    part = root
    for step in path.split(".")[:-1]:
        part = part.children[int(step) - 1]
        found.append(part.boundary)
    return found


def _breaks(content: bytes, boundaries: Sequence[bytes]) -> bool:
    """Whether ``content`` holds a line that a parser could take for one of
    the enclosing delimiters (the server did not, so the message is odd)."""
    return any(b"--" + b in content for b in boundaries)
