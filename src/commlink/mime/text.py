"""Text helpers for MIME parsing: charset decoding with repair, HTML to text, snippets.

Pure functions, no IO. Nothing here raises on bad input: undecodable bytes
are repaired (and the repair reported to the caller), broken HTML is read
the way a browser would read it.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache
from html import unescape

from selectolax.lexbor import LexborHTMLParser, LexborNode

from .html_cost import cost_hazard

__all__ = [
    "collapse",
    "collapse_text",
    "decode_8bit",
    "decode_bytes",
    "html_to_text",
    "looks_mojibake",
    "snippet",
    "too_deep",
]

#: Length of ``Message.snippet``.
SNIPPET_LENGTH = 200

# Labels whose bytes are, in practice, Windows-1252 (the WHATWG encoding
# standard makes the same call): 0x80-0x9f are never C1 controls in mail.
_WESTERN = frozenset({"iso8859_1", "iso8859_15", "cp1252"})
_ALIASES = {
    "unknown-8bit": "",
    "x-unknown": "",
    "unknown": "",
    "default": "",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "utf8": "utf-8",
    "x-user-defined": "",
}
_GUESS_MIN = 32
_LABELS = {"utf_8": "utf-8", "ascii": "us-ascii"}

# UTF-8 bytes read as Windows-1252 or Latin-1: a lead byte (U+00C2-U+00F4)
# followed by what a continuation byte (0x80-0xbf) becomes in those charsets.
_MOJIBAKE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030"
    "\u2039\u203a\u20ac\u2122]"
)


@lru_cache(maxsize=512)
def _codec(label: str) -> str | None:
    """Python codec name for a charset label; ``None`` when unknown or empty."""
    label = label.strip().strip("\"'").strip().lower()
    label = label.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    label = _ALIASES.get(label, label)
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError):
        return None
    # Only text codecs: bytes-to-bytes codecs (base64, zlib, ...) are not charsets.
    try:
        b"a".decode(name)
    except Exception:
        return None
    return name.replace("-", "_")


def _label(codec: str) -> str:
    codec = codec.replace("-", "_").lower()
    if codec in _LABELS:
        return _LABELS[codec]
    if codec.startswith("cp125"):
        return "windows-" + codec[2:]
    if codec.startswith("iso8859_"):
        return "iso-8859-" + codec[8:]
    return codec.replace("_", "-")


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` declared as ``charset``; repair when that fails.

    Returns the text and, when the declared charset was unknown, wrong or
    missing for non-ASCII bytes, the label of the charset actually used
    (for a ``charset-repaired:<label>`` warning). Never raises.
    """
    if data.isascii():
        return data.decode("ascii"), None
    codec = _codec(charset) if charset else None
    if codec is not None and codec != "ascii":
        if codec in _WESTERN and _is_utf8(data):
            # Valid multi-byte UTF-8 is next to impossible in real Western
            # single-byte text: the label is wrong.
            return data.decode("utf-8"), "utf-8"
        for candidate in ("cp1252", "latin_1") if codec == "iso8859_1" else (codec,):
            try:
                return data.decode(candidate), None
            except (UnicodeDecodeError, LookupError):
                pass
    if _is_utf8(data) or _mostly_utf8(data):
        return data.decode("utf-8", errors="replace"), "utf-8"
    return _guess(data)


def decode_8bit(data: bytes) -> tuple[str, bool]:
    """Decode raw header bytes: UTF-8 (RFC 6532), else Windows-1252, else Latin-1.

    The flag says whether the bytes were not UTF-8.
    """
    if data.isascii():
        return data.decode("ascii"), False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), True
    except UnicodeDecodeError:
        return data.decode("latin-1"), True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mostly_utf8(data: bytes) -> bool:
    """UTF-8 with a few bad bytes (truncated or spliced), as opposed to another charset."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    good = non_ascii - bad
    return good > 0 and good >= bad


def _guess(data: bytes) -> tuple[str, str]:
    """Best-effort decoding of bytes whose charset is unknown: never raises."""
    if len(data) >= _GUESS_MIN:  # too little text to tell charsets apart
        guessed = _normalizer_guess(data)
        if guessed is not None:
            codec = _codec(guessed)
            if codec is not None:
                return data.decode(codec, errors="replace"), _label(codec)
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "iso-8859-1"


def _normalizer_guess(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - an optional helper at runtime
        return None
    try:
        best = from_bytes(data[:65536]).best()
    except Exception:
        return None
    return best.encoding if best is not None else None


def looks_mojibake(text: str) -> bool:
    """Whether text shows signs of a wrong charset (UTF-8 read as Latin-1, or U+FFFD)."""
    if text.isascii():
        return False
    return "\ufffd" in text or _MOJIBAKE.search(text) is not None


def collapse(text: str) -> str:
    """All runs of whitespace as one space, stripped."""
    return " ".join(text.split())


# ASCII whitespace other than space, tab and line feed (str.split splits on these too).
_ODD_SPACE = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def collapse_text(text: str) -> str:
    """``collapse`` for a text of many words, without splitting ordinary ASCII into words.

    Splitting allocates a string per word, which made snippets cost as much
    as the rest of a message's body handling. The result is ``collapse``'s.
    """
    if not text.isascii():
        return " ".join(text.split())
    for odd in _ODD_SPACE:
        if odd in text:
            return " ".join(text.split())
    text = text.replace("\n", " ").replace("\t", " ")
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip(" ")


def snippet(body: str, length: int = SNIPPET_LENGTH) -> str:
    """The first ``length`` characters of ``body``, whitespace collapsed."""
    head = body[: length + 64]
    text = collapse_text(head)
    if len(text) < length and len(body) > len(head):  # much whitespace: look further
        text = " ".join(body[: length * 8].split())
        if len(text) < length and len(body) > length * 8:
            text = " ".join(body.split())
    return text[:length].rstrip()


# Elements whose content is never readable text.
_SKIP = ["head", "script", "style", "noscript", "template", "title", "svg", "object"]
# Block elements: paragraph-like ones are set apart by a blank line, the
# others by a line break; table cells by a space.
_PARAGRAPH = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "dl",
        "table", "hr", "address", "figure", "section", "article", "header", "footer",
        "aside", "nav", "main", "form", "fieldset",
    }
)  # fmt: skip
_LINE = frozenset(
    {"div", "li", "tr", "dd", "dt", "caption", "center", "figcaption", "details", "summary"}
)
_CELL = frozenset({"td", "th"})
_LISTS = frozenset({"ul", "ol", "menu", "dir"})
_BREAK_TAGS = frozenset(_PARAGRAPH | _LINE | _CELL | _LISTS | {"br"})
_CONTROL_SPACES = dict.fromkeys([*range(0x20), 0x7F], " ")


class _TextWriter:
    """Lines of plain text from the events of a walk over an HTML tree.

    Breaks asked for between two runs of text merge (a paragraph wins over a
    line break); only ``<br>`` adds up, to one blank line at most. Each line
    starts with ``> `` per enclosing blockquote, and a list item's first line
    with its bullet (``- `` or ``1. ``), indented by the list's depth.
    """

    __slots__ = ("block", "brs", "bullet", "lists", "out", "quote", "shown_quote", "space")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.block = 0  # line breaks asked for by blocks: 0, 1 or 2
        self.brs = 0
        self.space = False
        self.quote = 0
        self.shown_quote = 0  # the quote depth of the line being written
        self.bullet = ""
        self.lists: list[list[int]] = []  # per open list: [ordered, next number]

    def ask(self, breaks: int) -> None:
        if breaks > self.block:
            self.block = breaks

    def open_list(self, node: LexborNode) -> None:
        self.ask(1 if self.lists else 2)
        start = _number(node.attributes.get("start")) if node.tag == "ol" else None
        self.lists.append([int(node.tag == "ol"), 1 if start is None else start])

    def item(self, node: LexborNode) -> None:
        self.ask(1)
        if not self.lists:
            self.bullet = "- "
            return
        current = self.lists[-1]
        if current[0]:
            value = _number(node.attributes.get("value"))
            if value is not None:
                current[1] = value
            self.bullet = f"{current[1]}. "
            current[1] += 1
        else:
            self.bullet = "- "

    def text(self, text: str) -> None:
        words = " ".join(text.split())
        if not words.isprintable():  # stray controls in the HTML: spaces
            words = " ".join(words.translate(_CONTROL_SPACES).split())
        if not words:
            self.space = self.space or bool(text)
            return
        out = self.out
        breaks = 2 if self.block == 2 else min(2, self.brs) or self.block
        if self.bullet and not breaks and out:
            breaks = 1
        if breaks and out:
            blank = ("> " * min(self.shown_quote, self.quote)).rstrip()
            out.append("\n" + (blank + "\n") * (breaks - 1))
        if breaks or not out:
            indent = "  " * (len(self.lists) - 1) if self.lists else ""
            out.append("> " * self.quote + indent + self.bullet)
            self.shown_quote = self.quote
            self.bullet = ""
        elif self.space or text[0].isspace():
            out.append(" ")
        out.append(words)
        self.block = self.brs = 0
        self.space = text[-1].isspace()


def _number(value: str | None) -> int | None:
    try:
        return int((value or "").strip()[:9])
    except ValueError:
        return None


def _enter(writer: _TextWriter, node: LexborNode, tag: str) -> None:
    if tag == "br":
        writer.brs += 1
    elif tag in _LISTS:
        writer.open_list(node)
    elif tag == "li":
        writer.item(node)
    elif tag in _PARAGRAPH:
        writer.ask(2)
        if tag == "blockquote":
            writer.quote += 1
    elif tag in _LINE:
        writer.ask(1)
    else:  # a table cell
        writer.space = True


def _leave(writer: _TextWriter, tag: str) -> None:
    if tag in _LISTS:
        if writer.lists:
            writer.lists.pop()
        writer.ask(1 if writer.lists else 2)
    elif tag in _PARAGRAPH:
        writer.ask(2)
        if tag == "blockquote" and writer.quote:
            writer.quote -= 1
    elif tag in _LINE:
        writer.ask(1)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML document or fragment.

    Drops head, scripts and styles; block elements and ``<br>`` become line
    breaks (paragraph-like blocks a blank line); list items start with
    ``- `` or their number (``1. ``), nested lists indented; quoted text
    (``<blockquote>``) starts each line with ``> `` per level; entities are
    unescaped and runs of whitespace collapsed. HTML whose tree would cost
    seconds to build (``html_cost.cost_hazard``) is read without one: tags
    dropped, breaks kept. Never raises.
    """
    if not html:
        return ""
    if too_deep(html) or cost_hazard(html):
        return _strip_tags(html)
    try:
        tree = LexborHTMLParser(html)
        tree.strip_tags(_SKIP, recursive=True)
        root = tree.root
        if root is None:
            return ""
        writer = _TextWriter()
        # Depth-first, with an event on entering and on leaving each element.
        node: LexborNode | None = root.child
        depth = 1
        while node is not None:
            tag = node.tag or ""
            if tag == "-text":
                writer.text(node.text_content or "")
            elif tag in _BREAK_TAGS:
                _enter(writer, node, tag)
            child = node.child if tag != "-text" else None
            if child is not None:
                node = child
                depth += 1
                continue
            if tag in _BREAK_TAGS:
                _leave(writer, tag)
            while node is not None and node.next is None:
                node = node.parent
                depth -= 1
                if node is None or depth <= 0:
                    node = None
                    break
                _leave(writer, node.tag or "")
            if node is not None:
                node = node.next
    except Exception:
        return collapse(html)
    return "".join(writer.out).rstrip()


# HTML tree building is quadratic in the nesting depth of block elements (each
# start tag looks up the stack of open elements), so absurdly deep documents
# are read with a plain tag stripper instead.
_MAX_DEPTH = 2000
_BLOCKS = (
    "div|section|article|aside|blockquote|center|details|dialog|dir|dl|fieldset|figcaption"
    "|figure|footer|header|hgroup|main|menu|nav|ol|ul|summary|address|form|h[1-6]|pre|listing"
)
_BLOCK_OPEN = re.compile(rf"<(?:{_BLOCKS})[\s/>]", re.IGNORECASE)
_BLOCK_CLOSE = re.compile(rf"</(?:{_BLOCKS})[\s>]", re.IGNORECASE)
_HIDDEN = re.compile(r"<(script|style|head|title)\b[^>]*>[^<]*", re.IGNORECASE)
_BREAK_TAG = re.compile(rf"<(?:br|/?(?:p|li|tr|table|{_BLOCKS}))\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
#: the fewest characters a block's start tag takes (``<ol>``)
_SHORTEST_OPEN = 4


def too_deep(html: str, limit: int = _MAX_DEPTH) -> bool:
    """Whether ``html`` nests blocks deeper than ``limit`` (too deep to build a
    tree in reasonable time)."""
    if len(html) <= _SHORTEST_OPEN * limit or html.count("<") - 2 * html.count("</") <= limit:
        return False  # cheap: too short to open that many blocks, or most tags are closed
    opened = len(_BLOCK_OPEN.findall(html))
    return opened - len(_BLOCK_CLOSE.findall(html)) > limit


def _strip_tags(html: str) -> str:
    """Text of an HTML document without a tree: tags dropped, breaks kept."""
    text = _HIDDEN.sub(" ", html)
    text = _BREAK_TAG.sub("\n", text)
    text = unescape(_TAG.sub(" ", text))
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
