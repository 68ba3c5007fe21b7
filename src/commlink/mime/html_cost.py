"""Whether an HTML document is too costly to parse, told before parsing it.

HTML tree builders (lexbor, which turns HTML into text, and html5ever inside
nh3, which sanitises it) spend time that grows with the square of a few
shapes, and a message's HTML can be megabytes:

- open elements: many start and end tags look down the stack of open
  elements, so a stack thousands deep costs thousands of steps per tag
  (``<div>`` nested 32,000 deep: 1.4 s in lexbor; ``<span>`` nested 16,000
  deep, then as many unknown end tags: 0.9 s in lexbor, 1.4 s in nh3);
- open formatting elements (``<b>``, ``<font>``, ...) with differing
  attributes, each compared with those before it (16,000: 6 s in nh3);
- attributes of one element, each new name compared with those before it,
  and those of ``<html>`` and ``<body>``, which every later such tag adds to;
- options of a ``<select>`` (32,000: 3.4 s in lexbor);
- and, in time and memory, formatting elements closed by another element's
  end tag, which reopen at the next text: 100 open ones and 50,000 short
  blocks (600 KB) make a tree of 5 million elements (6 s and 1.25 GB in nh3).

``cost_hazard`` reads the document's tokens with one regular expression that
follows the HTML tokenizer (tags, quoted and bare attribute values,
comments, raw text), then follows the tree builder's stack of open elements
and list of formatting elements from them, never short (``_Walk``; a
property test and a fuzz target hold it to lexbor's tree). It sums the
stack's depth over every token, which bounds the steps those searches take.
A refused document is read without a tree (``text.html_to_text``) or not
shown (``html.safe_html``). Ordinary mail, long reply chains included, is
far from every limit.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_DOCUMENT_TAGS",
    "MAX_OPEN",
    "MAX_OPTIONS",
    "MAX_REOPENED",
    "MAX_TAGS",
    "MAX_WORK",
    "SMALL",
    "SMALL_TAGS",
    "cost_hazard",
]

#: Documents of at most this many characters and ``SMALL_TAGS`` "<" are
#: parsed unread: the costliest of them takes about 30 ms.
SMALL = 8 * 1024
SMALL_TAGS = 250
#: Deepest stack of open elements accepted (an active formatting element
#: counts ``FORMATTING_WEIGHT`` times).
MAX_OPEN = 1000
#: Most steps accepted: the stack's depth summed over every token.
MAX_WORK = 48_000_000
#: Most formatting elements the tree builder may open again over a document
#: (it reopens those another element's end tag closed): each is a new node.
MAX_REOPENED = 100_000
#: Most attributes accepted on one element.
MAX_ATTRIBUTES = 64
#: Most ``<html>`` and ``<body>`` start tags accepted (each adds its
#: attributes to the one element).
MAX_DOCUMENT_TAGS = 16
#: Most ``<option>`` start tags accepted.
MAX_OPTIONS = 256
#: Most "<" read: past it the document is refused unread, which bounds this
#: module's own time and memory (about 0.3 s and 10 MB); a 1 MB newsletter
#: has about 15,000 tags.
MAX_TAGS = 100_000
#: How many open elements one active formatting element counts as: comparing
#: it with the others costs about four times a step down the stack.
FORMATTING_WEIGHT = 4

_SPACE = r"\t\n\f\r "
_END = rf"(?=[{_SPACE}/>])"
# One attribute as the tokenizer reads it: separators, a name (which may
# start with "=" and hold quotes), then, when "=" follows, a value: quoted
# (">" included) or bare (up to a space or ">"). Each part can match only
# one way (a name and a bare value run to their end, a value is taken when
# "=" follows), so a tag that fails to close costs no backtracking.
_ATTRIBUTE = (
    rf"[{_SPACE}/]*(?:[^{_SPACE}/>=][^{_SPACE}/>=]*|=[^{_SPACE}/>=]*)(?![^{_SPACE}/>=])"
    rf"""(?:[{_SPACE}]*=[{_SPACE}]*(?:"[^"]*"|'[^']*'|[^{_SPACE}>"'][^{_SPACE}>]*(?![^{_SPACE}>]))"""
    rf"|(?![{_SPACE}]*=))"
)


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: Elements whose content is text up to their end tag (in HTML content).
_RAW = ("script", "style", "xmp", "iframe", "noembed", "noframes", "textarea", "title")
#: Elements never left open, or at the bottom of the stack.
_VOID = _names(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta"
    " param source track wbr html head body plaintext"
) | frozenset(_RAW)
_FORMATTING = _names("a b big code em font i nobr s small strike strong tt u")
#: Elements that end an end tag's search for another element (the spec's
#: "special" ones), and those of them that bound an element's "scope" (and
#: select, inside which end tags close nothing else). MathML's and SVG's
#: special elements are special only inside math or svg, which the walk
#: does not follow.
_BOUNDARIES = _names("applet caption html table td th marquee object template select")
_SPECIAL = _BOUNDARIES | _names(
    "address article aside blockquote button center details dialog dir div dl dt dd"
    " fieldset figcaption figure footer form frameset h1 h2 h3 h4 h5 h6 header hgroup"
    " li listing main menu nav ol p pre search section select summary ul"
    " tr tbody thead tfoot colgroup"
)
#: Special elements the walk keeps without counting them (their start tags
#: close others of their kind; they hold the searches of end tags).
_UNCOUNTED = _names("p li dd dt td th caption tr tbody thead tfoot colgroup")
#: Start tags that close an open ``<p>`` (``<table>`` too, outside quirks
#: mode: not counted on).
_CLOSES_P = _names(
    "address article aside blockquote center details dialog dir div dl fieldset"
    " figcaption figure footer header hgroup main menu nav ol p search section summary ul"
    " h1 h2 h3 h4 h5 h6 pre listing form li dd dt"
)
#: Elements whose start puts a marker in the list of active formatting
#: elements, and those of them whose end tag clears the list back to it.
_MARKERS = _names("td th caption applet marquee object template")
_ELEMENT_MARKERS = _names("applet marquee object template")
#: Start tags that close the open cell or caption of their table (or, once
#: it is closed, whatever opened above the table): always, so the walk may.
#: End tags of cells, rows and sections are ignored when their element is
#: gone, which a walk cannot tell: the walk keeps what they would close.
_CLOSING_TAGS = _names("caption col colgroup tbody td tfoot th thead tr")
#: Elements inside which those tags are not the table's.
_NOT_THE_TABLES = ("table", "template", "svg", "math")
#: Where raw text is read differently (see ``_ambiguous``).
_FOREIGN = ("svg", "math", "select", "frameset")

# One token per match, each starting with "<" (found by a fast search). The
# groups hold a raw-text element's name, a tag's slash and name, and a tag's
# attribute past MAX_ATTRIBUTES. Every attempt reads at most MAX_ATTRIBUTES
# attributes or one comment or raw text to its end, and the tag that follows
# a failed one reads them again at most once: one pass, whatever the input.
_TOKEN_PATTERN = (
    "<(?:"
    + "|".join(
        [
            r"!--(?:-?>|.*?(?:--!?>|\Z))",  # a comment
            r"[!?][^>]*>?",  # a doctype or bogus comment (CDATA too, in HTML)
            r"/(?![A-Za-z])[^>]*>?",  # a bogus comment
            rf"(?=({'|'.join(_RAW)}|plaintext){_END})(?:"
            + "|".join(
                rf"{name}{_END}(?:{_ATTRIBUTE}){{0,{MAX_ATTRIBUTES}}}[{_SPACE}/]*>"
                rf".*?(?:</{name}{_END}|\Z)"
                for name in _RAW
            )
            + rf"|plaintext{_END}.*)",
            rf"(/?[A-Za-z][^{_SPACE}/>]*)(?:{_ATTRIBUTE}){{0,{MAX_ATTRIBUTES}}}({_ATTRIBUTE})?",
        ]
    )
    + ")"
)


@functools.cache
def _tokens() -> re.Pattern[str]:
    """The token pattern, compiled on first use (about 13 ms: not at import)."""
    return re.compile(_TOKEN_PATTERN, re.IGNORECASE | re.DOTALL)


_Token = tuple[str, str, str]
_PLAIN, _SPECIAL_KIND, _BOUNDARY, _UNCOUNTED_KIND, _FORMATTING_KIND = range(5)


class _Walk:
    """The tree builder's stack of open elements and list of active
    formatting elements, followed from the tokens alone and never counted
    short.

    Where the tree builder's rules depend on more than a token tells (quirks
    mode, the adoption agency, whether a table or a form is still open), the
    walk keeps the elements it may have closed, as doubtful: counted, and in
    the way of end tags' searches, but never what an end tag closes (which
    would close what is above it too). An element the tree builder may not
    have opened at all is doubtful from its start."""

    __slots__ = (
        "at", "boundaries", "closed", "doubt", "entries", "maybe", "plain", "reopened",
        "segments", "specials", "stack",
    )  # fmt: skip

    def __init__(self) -> None:
        self.stack: list[tuple[str, int]] = []  # (name, kind)
        # per place: -1, or (doubtful) the lowest place of the run marked with it
        self.doubt: list[int] = []
        self.at: dict[str, list[int]] = {}  # each name's places in the stack
        self.specials: list[int] = []  # special elements' places
        self.boundaries: list[int] = []  # scope boundaries' places
        self.plain = 0  # counted open elements other than formatting ones
        # the active formatting elements: after each marker (its element, the
        # stack's height then, whether it surely opened), a count by name
        self.segments: list[tuple[str, int, bool, dict[str, int]]] = [("", 0, True, {})]
        self.entries = 0
        self.closed: list[str] = []  # active ones another element's end tag closed
        self.maybe: list[str] = []  # active ones the tree builder may have closed
        self.reopened = 0

    def reopen(self) -> None:
        """Formatting elements closed by another's end tag reopen at the next
        text or tag; the walk reopens them on top of the stack, where the
        next end tag may close them again."""
        self.reopened += len(self.closed) + len(self.maybe)
        for name in self.closed:
            self._push(name, _FORMATTING_KIND, False)
        for name in self.maybe:
            self._push(name, _FORMATTING_KIND, True)
        self.closed.clear()
        self.maybe.clear()

    def start(self, name: str) -> None:
        if name in _CLOSING_TAGS:
            table = self._surely("table")
            if self._in_cell():
                self._close_cell()
            elif table >= 0:
                self._mark(table + 1)  # cleared back to the table, maybe
        if not self.at.get("svg") and not self.at.get("math"):
            self._close_implied(name)
        doubtful = self._may_ignore(name)
        if name in _MARKERS:
            self.segments.append((name, len(self.stack), not doubtful, {}))
        if name in _FORMATTING:
            current = self.segments[-1][3]
            current[name] = current.get(name, 0) + 1
            self.entries += 1
            self._push(name, _FORMATTING_KIND, doubtful)
        elif name in _UNCOUNTED:
            self._push(name, _UNCOUNTED_KIND, doubtful)
        elif name not in _VOID:
            kind = _PLAIN
            if name in _BOUNDARIES:
                kind = _BOUNDARY
            elif name in _SPECIAL:
                kind = _SPECIAL_KIND
            self._push(name, kind, doubtful)
        if self.closed or self.maybe:
            self.reopen()

    def _may_ignore(self, name: str) -> bool:
        """Whether the tree builder may ignore this start tag: a table's part
        with no table surely open, a form inside a form, anything in a
        select."""
        if name in _CLOSING_TAGS:
            return self._surely("table") < 0
        if name == "form" and self._surely("form") >= 0:
            return True
        return self._top("select") >= 0

    def end(self, name: str) -> None:
        if self.closed or self.maybe:
            self.reopen()
        stack = self.stack
        if (
            stack
            and stack[-1][0] == name
            and stack[-1][1] not in (_FORMATTING_KIND, _UNCOUNTED_KIND)
            and self.doubt[-1] < 0
            and name not in _KEPT_BY_END_TAG
            and name not in _ELEMENT_MARKERS
        ):
            self._pop_to(len(stack) - 1, keep=False)  # the usual case: the current element
            return
        if name == "table" and self._in_cell():
            self._close_cell()
        if name in _FORMATTING:
            self._adopt(name)
        elif name in _HEADINGS:  # closes the nearest heading, whatever its level
            self._close_to(max(self._top(heading) for heading in _HEADINGS), self.boundaries)
        elif name in _KEPT_BY_END_TAG:
            # a form's end tag takes the form alone off the stack (and what
            # closes without an end tag above it); a cell's may close it
            self._mark(self._top(name))
        elif name in _UNCOUNTED:
            # may close everything above it: closed here only when on top
            place = self._top(name)
            if place >= 0 and place == len(self.stack) - 1 and self.doubt[place] < 0:
                self._pop_to(place, keep=False)
            else:
                self._mark(place)
        elif name in _ELEMENT_MARKERS:
            # closes everything above it, and the formatting elements opened
            # since its marker are no longer active
            marked = self.segments[-1][0] == name
            if self._close_to(self._top(name), self.boundaries, reopen=not marked) and marked:
                self.entries -= sum(self.segments.pop()[3].values())
        elif name in _SPECIAL:
            # closes everything above it, unless a scope boundary is above
            self._close_to(self._top(name), self.boundaries)
        else:
            self._close_to(self._top(name), self.specials)

    def _close_to(
        self, place: int, blockers: list[int], keep: bool = False, reopen: bool = True
    ) -> bool:
        """Close the elements from ``place`` up, when nothing in ``blockers``
        is above it; whether they closed. When the tree builder may have closed
        them where the walk does not, they turn doubtful."""
        if place < 0:
            return False
        above = blockers[-1] if blockers and blockers[-1] > place else -1
        if self.doubt[place] < 0 and above < 0:
            self._pop_to(place, keep=keep, reopen=reopen)
            return True
        if self.doubt[place] >= 0 or self.doubt[above] >= 0:
            self._mark(place)
        return False

    def _adopt(self, name: str) -> None:
        """The adoption agency for the formatting element ``name``: with no
        special element above it, it closes like any element (its entry
        dropped); with one, it moves things about (kept open, doubtful)."""
        place = self._top(name)
        current = self.segments[-1][3]
        if not current.get(name):
            self._close_to(place, self.specials, keep=True)
        elif place < 0 or self._close_to(place, self.specials):
            current[name] -= 1
            self.entries -= 1
            if name in self.closed:
                self.closed.remove(name)
        else:
            self._mark(place)
            # the agency moves what the special element holds into a new
            # copy of the formatting element: the tree grows a level deeper
            # than the stack, counted for good
            self.plain += 1

    def _close_implied(self, name: str) -> None:
        """Close what the start tag ``name`` closes: on top of the stack the
        walk closes it; deeper, the tree builder may, so what is above it
        turns doubtful (not inside SVG or MathML, where these may be foreign
        elements)."""
        if name in _CLOSES_P:
            self._close_top(("p",), ("p",))
        if name == "li":
            self._close_top(("li", "p"), ("li",))
        elif name in ("dd", "dt"):
            self._close_top(("dd", "dt", "p"), ("dd", "dt"))
        elif name in _HEADINGS:
            self._close_top(_HEADINGS)
        elif name in ("option", "optgroup"):
            self._close_top(("option",))
        elif name in ("rb", "rtc", "rp", "rt") and self._top("ruby") >= 0:
            self._close_top(_IMPLIED if name in ("rb", "rtc") else _IMPLIED - {"rtc"})
        elif name == "a" and self.segments[-1][3].get("a"):
            self._adopt("a")  # an open link closes before another opens
        elif name == "nobr" and self._top(name) >= 0:
            self._adopt(name)
        elif name in ("button", "table"):  # one open in scope closes first
            self._close_to(self._top(name), self.boundaries)

    def _top(self, name: str) -> int:
        places = self.at.get(name)
        return places[-1] if places else -1

    def _surely(self, name: str) -> int:
        """The topmost place of ``name`` when it is not doubtful, else -1."""
        place = self._top(name)
        return place if place >= 0 and self.doubt[place] < 0 else -1

    def _close_top(self, names: Collection[str], until: Collection[str] = ()) -> None:
        """Close the elements on top of the stack named in ``names``, down to
        (and including) the first named in ``until`` when ``until`` is given;
        the topmost of ``until`` deeper down, the tree builder may close
        with what is above it: they turn doubtful."""
        stack = self.stack
        if not until:
            while stack and stack[-1][0] in names:
                self._pop_to(len(stack) - 1, keep=False)
            return
        place = len(stack) - 1
        while place >= 0 and stack[place][0] in names and stack[place][0] not in until:
            place -= 1
        if place >= 0 and stack[place][0] in until:
            self._pop_to(place, keep=False)
        else:
            self._mark(max(self._top(name) for name in until))

    def _mark(self, place: int) -> None:
        """Make the elements from ``place`` up doubtful (each once: a run
        already doubtful is passed at a step)."""
        if place < 0:
            return
        doubt, stack = self.doubt, self.stack
        index = len(doubt) - 1
        while index >= place:
            if doubt[index] >= 0:
                index = doubt[index] - 1
            else:
                doubt[index] = place
                if stack[index][1] == _FORMATTING_KIND:
                    self.maybe.append(stack[index][0])  # (would reopen: on top too)
                index -= 1

    def _in_cell(self) -> bool:
        """Whether the innermost marker is a cell's or caption's that surely
        opened, of a table open below it, with no table, template, SVG or
        MathML opened since (whose tags would be that one's own)."""
        marker, height, opened, _entries = self.segments[-1]
        if marker not in ("td", "th", "caption") or not opened:
            return False
        at = self.at
        tables = at.get("table")
        if not tables or tables[0] >= height:  # (places ascend)
            return False
        return not any((at.get(name) or (-1,))[-1] >= height for name in _NOT_THE_TABLES)

    def _close_cell(self) -> None:
        """What opened in the cell closes; its formatting elements are no
        longer active."""
        _marker, height, _opened, dropped = self.segments.pop()
        self.entries -= sum(dropped.values())
        self._pop_to(height, keep=False, reopen=False)

    def _push(self, name: str, kind: int, doubtful: bool) -> None:
        place = len(self.stack)
        self.at.setdefault(name, []).append(place)
        if kind in (_SPECIAL_KIND, _BOUNDARY, _UNCOUNTED_KIND):
            self.specials.append(place)
            if kind == _BOUNDARY or name in ("td", "th", "caption"):
                self.boundaries.append(place)
        self.stack.append((name, kind))
        self.doubt.append(place if doubtful else -1)
        if kind in (_PLAIN, _SPECIAL_KIND, _BOUNDARY):
            self.plain += 1

    def _pop_to(self, place: int, keep: bool, reopen: bool = True) -> None:
        """Close the elements from ``place`` up; formatting ones stay active
        (the one at ``place`` only when ``keep``) unless not ``reopen``."""
        while len(self.stack) > place:
            name, kind = self.stack.pop()
            self.doubt.pop()
            self.at[name].pop()
            if kind == _FORMATTING_KIND:
                if reopen and (keep or len(self.stack) > place):
                    self.closed.append(name)
                continue
            if kind != _PLAIN:
                self.specials.pop()
                if self.boundaries and self.boundaries[-1] == len(self.stack):
                    self.boundaries.pop()
            if kind != _UNCOUNTED_KIND:
                self.plain -= 1


_HEADINGS = _names("h1 h2 h3 h4 h5 h6")
#: Elements the tree builder closes without their end tag ("implied").
_IMPLIED = _names("dd dt li optgroup option p rb rp rt rtc")
#: Elements the walk keeps open at their end tag: a form's takes the form
#: alone off the stack, and a cell's (or caption's) is ignored when its
#: table's rows or sections have closed it, which a walk cannot tell.
_KEPT_BY_END_TAG = frozenset({"form", "td", "th", "caption"})


def _walk(tokens: list[_Token]) -> str | None:
    """Why following the tokens goes too deep or too far, or ``None``.

    The usual tokens take a short way here (the walk's methods give the same
    result): a plain element's or formatting element's start tag when no
    select is open, and an end tag of the element on top of the stack."""
    walk = _Walk()
    stack, doubt, at = walk.stack, walk.doubt, walk.at
    work = 0
    kinds = _KINDS
    weight = FORMATTING_WEIGHT
    for token in tokens:
        kind = kinds.get(token) or _kind(token)
        if kind is _NOTHING:
            if walk.closed or walk.maybe:  # text may follow
                walk.reopen()
            work += walk.plain + weight * walk.entries
            continue
        name, end, way = kind
        if walk.closed or walk.maybe or at.get("select"):
            way = _SLOW
        if end:
            if (
                way != _SLOW
                and stack
                and stack[-1][0] == name
                and doubt[-1] < 0
                and (way != _FORMATTING_WAY or walk.segments[-1][3].get(name))
            ):
                stack.pop()
                doubt.pop()
                at[name].pop()
                if way == _FORMATTING_WAY:
                    walk.segments[-1][3][name] -= 1
                    walk.entries -= 1
                else:
                    if way != _PLAIN_WAY:
                        walk.specials.pop()
                    if way != _P_WAY:
                        walk.plain -= 1
            else:
                walk.end(name)
        else:
            if (
                way == _SLOW
                or (way >= _BLOCK_WAY and at.get("p"))  # a block's start closes it
                or (name == "a" and walk.segments[-1][3].get("a"))  # and a link's a link
                or (name == "nobr" and at.get("nobr"))
            ):
                walk.start(name)
            else:
                place = len(stack)
                places = at.get(name)
                if places is None:
                    at[name] = [place]
                else:
                    places.append(place)
                doubt.append(-1)
                if way == _FORMATTING_WAY:
                    current = walk.segments[-1][3]
                    current[name] = current.get(name, 0) + 1
                    walk.entries += 1
                    stack.append((name, _FORMATTING_KIND))
                elif way == _PLAIN_WAY:
                    stack.append((name, _PLAIN))
                    walk.plain += 1
                else:
                    walk.specials.append(place)
                    if way == _P_WAY:
                        stack.append((name, _UNCOUNTED_KIND))
                    else:
                        stack.append((name, _SPECIAL_KIND))
                        walk.plain += 1
            if walk.plain + weight * walk.entries > MAX_OPEN:
                return "open-elements"
            if walk.reopened > MAX_REOPENED:
                return "reopened"
        work += walk.plain + weight * walk.entries
    if walk.reopened > MAX_REOPENED:
        return "reopened"
    return "work" if work > MAX_WORK else None


_NOTHING = ("", False, 0)
#: The ways ``_walk`` takes with an element's tags: the walk's methods, or
#: a short way for a plain element, a formatting element, a block (which
#: closes an open p and is special) or a p.
_SLOW, _PLAIN_WAY, _FORMATTING_WAY, _BLOCK_WAY, _P_WAY = range(5)
#: Blocks: their start closes an open p, and no other rule treats them apart.
_BLOCKS = _names(
    "address article aside blockquote center details dialog dir div dl fieldset"
    " figcaption figure footer header hgroup main menu nav ol search section summary ul"
    " pre listing"
)
#: Elements some rule of the tree builder treats apart from the plain ones.
_RULED = (
    _VOID
    | _SPECIAL
    | _UNCOUNTED
    | _MARKERS
    | _CLOSING_TAGS
    | _HEADINGS
    | _IMPLIED
    | _names("button table form ruby svg math")
)
#: Tokens' kinds, remembered up to this many (a document may use millions
#: of names).
_REMEMBERED = 4096
_KINDS: dict[_Token, tuple[str, bool, int]] = {}


def _kind(token: _Token) -> tuple[str, bool, int]:
    """A token's element name, whether it is an end tag, and which way
    ``_walk`` may take; ``_NOTHING`` for a comment, raw text, or a void
    element's start tag."""
    raw, tag, _extra = token
    end = tag[:1] == "/"
    name = (raw or tag[end:]).lower()
    if not name or (name in _VOID and not end and name not in _CLOSING_TAGS):
        kind = _NOTHING
    elif name in _BLOCKS:
        kind = (name, end, _BLOCK_WAY)
    elif name == "p":
        kind = (name, end, _P_WAY)
    elif name in _RULED:
        kind = (name, end, _SLOW)
    elif name in _FORMATTING:
        kind = (name, end, _FORMATTING_WAY)
    else:
        kind = (name, end, _PLAIN_WAY)
    if len(_KINDS) < _REMEMBERED:
        _KINDS[token] = kind
    return kind


def _start_tags(found: Counter[_Token]) -> Counter[str]:
    """Start tags (raw-text elements' too) by lower-cased name."""
    names: Counter[str] = Counter()
    for (raw, tag, _extra), count in found.items():
        name = raw or tag
        if name and name[0] != "/":
            names[name.lower()] += count
    return names


def _ambiguous(html: str, tokens: list[_Token], names: Counter[str]) -> bool:
    """Whether the tokens may read raw text where the tree builder does not,
    or the other way round: raw-text elements are plain ones inside SVG or
    MathML and ignored inside a select, noscript holds raw text only when
    scripting is on, a script whose content holds "<!--" may run past its
    first end tag, and so may CDATA past its first ">" in SVG or MathML."""
    if names["noscript"] or (names["script"] and "<!--" in html):
        return True
    if not any(names[name] for name in _FOREIGN):
        return False
    if (names["svg"] or names["math"]) and "<![CDATA[" in html:
        return True  # in SVG or MathML a CDATA section runs past its first ">"
    foreign = False
    for raw, tag, _extra in tokens:
        if raw and foreign:
            return True
        foreign = foreign or tag.lower() in _FOREIGN
    return False


def cost_hazard(html: str) -> str | None:
    """Why building a tree of ``html`` would cost too much: ``"tags"``,
    ``"attributes"``, ``"document-tags"``, ``"options"``, ``"ambiguous"`` (a construct whose
    cost cannot be told without a tree: SVG or MathML in a document with
    many tags, among others), ``"open-elements"``, ``"reopened"`` or
    ``"work"``; ``None`` when it is safe to parse."""
    tags = html.count("<")
    if len(html) <= SMALL and tags <= SMALL_TAGS:
        return None
    if tags > MAX_TAGS:
        return "tags"
    tokens = _tokens().findall(html)
    found = Counter(tokens)
    if any(extra for _raw, _tag, extra in found):
        return "attributes"
    names = _start_tags(found)
    if names["html"] + names["body"] > MAX_DOCUMENT_TAGS:
        return "document-tags"
    if names["option"] > MAX_OPTIONS:
        return "options"
    if _ambiguous(html, tokens, names):
        return "ambiguous"
    # every element the walk keeps open started with a tag, and each reopens
    # at most once a token: few enough start tags settle it without a walk
    opened = formatting = 0
    for name, count in names.items():
        if name in _FORMATTING:
            formatting += count
        elif name not in _VOID and name not in _UNCOUNTED:
            opened += count
    opened += FORMATTING_WEIGHT * formatting
    if (
        opened <= MAX_OPEN
        and opened * len(tokens) <= MAX_WORK
        and formatting * len(tokens) <= MAX_REOPENED
    ):
        return None
    if names["svg"] or names["math"]:
        return "ambiguous"  # the walk does not follow the rules of SVG and MathML
    return _walk(tokens)
