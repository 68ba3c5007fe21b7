"""Safe HTML for mail bodies: kept when a message is parsed, sanitised when it is read.

``sanitize_html`` turns a message's HTML part into a fragment a host can put
in its page: an allow-list of tags and attributes (the ammonia sanitiser,
through nh3), no scripts, event handlers, forms, frames, SVG or MathML, only
``http``, ``https``, ``mailto``, ``tel`` and ``cid`` URLs (relative and
``data:`` URLs dropped), inline styles reduced to a list of layout and text
properties without functions other than colours, links opened in a new tab
with ``rel="noopener noreferrer nofollow"``. Quoted history (Gmail, Outlook,
Apple Mail, Thunderbird, Yahoo, Proton) is marked with a
``data-commlink-quote`` attribute so a host can collapse it.

``render_html`` prepares stored HTML for display: remote images are blocked
unless the host allows them (their address moves to ``data-commlink-src``),
``cid:`` images are pointed at the host's attachment URLs, and the result is
sanitised again, so whatever a store returns is safe to show.

Both are pure and never raise on hostile input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote

import nh3
from selectolax.lexbor import LexborHTMLParser, LexborNode

from .html_cost import cost_hazard
from .storable import clean_text, text_is_clean
from .text import too_deep

__all__ = [
    "QUOTE_ATTRIBUTE",
    "REMOTE_SRC_ATTRIBUTE",
    "capture_html",
    "render_html",
    "safe_html",
    "sanitize_html",
]

#: Attribute set on quoted history (a container, or a wrapper around it).
QUOTE_ATTRIBUTE = "data-commlink-quote"
#: Attribute holding a blocked remote image's address (see ``render_html``).
REMOTE_SRC_ATTRIBUTE = "data-commlink-src"

_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
        "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
        "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li",
        "mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section", "small", "span",
        "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip
# Elements dropped with everything inside them (the rest lose the tag, keep the text).
_DROPPED_WITH_CONTENT = frozenset(
    {
        "script", "style", "title", "template", "noscript", "noembed", "noframes", "xmp",
        "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "select",
        "textarea", "head",
    }
)  # fmt: skip
_ATTRIBUTES = {
    "*": {"dir", "lang", "title", "align", "valign", "style", QUOTE_ATTRIBUTE},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap", "headers", "scope"},
    "th": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap", "headers", "scope"},
    "tr": {"height", "bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
    "hr": {"width", "size", "noshade", "color"},
    "time": {"datetime"},
    "del": {"datetime"},
    "ins": {"datetime"},
    "abbr": {"title"},
}
_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
# What a browser's URL parser drops before it reads a scheme: C0 controls and
# spaces around the URL, tabs and line ends anywhere in it.
_URL_NOISE = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$|[\t\n\r]")
_LINK_REL = "noopener noreferrer nofollow"
_LINK_TARGET = {"a": {"target": "_blank"}}

# Inline styles keep these properties only, with values that hold no function
# but colours, no escapes, comments or at-rules: no way to load a resource
# (``url()``, ``image-set()``), run code (``expression()``) or cover the page.
_STYLE_PROPERTIES = frozenset(
    {
        "color", "background-color", "font", "font-family", "font-size", "font-style",
        "font-weight", "font-variant", "text-align", "text-decoration", "text-transform",
        "text-indent", "letter-spacing", "word-spacing", "line-height", "white-space",
        "word-break", "word-wrap", "overflow-wrap", "vertical-align", "direction", "display",
        "width", "min-width", "max-width", "height", "min-height", "max-height", "margin",
        "margin-top", "margin-right", "margin-bottom", "margin-left", "padding", "padding-top",
        "padding-right", "padding-bottom", "padding-left", "border", "border-top",
        "border-right", "border-bottom", "border-left", "border-color", "border-style",
        "border-width", "border-collapse", "border-spacing", "border-radius", "list-style-type",
        "table-layout", "float", "clear",
    }
)  # fmt: skip
_STYLE_VALUE = re.compile(r"(?:[\w\s#%.,!'\"+/-]|(?:rgba?|hsla?)\([\d\s.,%/]*\))*")
# Longest inline style kept (longer ones are dropped, not cut).
_MAX_STYLE_CHARS = 2000


def _style(value: str) -> str | None:
    """The allowed declarations of an inline style, or ``None`` when none are."""
    if len(value) > _MAX_STYLE_CHARS:
        return None
    kept = []
    for declaration in value.split(";"):
        name, colon, val = declaration.partition(":")
        name = name.strip().lower()
        val = val.strip()
        if colon and val and name in _STYLE_PROPERTIES and _STYLE_VALUE.fullmatch(val):
            kept.append(f"{name}:{val}")
    return ";".join(kept) or None


# Attributes of free text (shown, never interpreted) and of URLs (checked by nh3).
_FREE_TEXT = frozenset({"alt", "title", "summary", "href", "src"})
# Every other attribute is a size, colour, keyword, font name or date.
_PLAIN_VALUE = re.compile(r"[\w\s#%.,'\"+-]*")
_DATE_VALUE = re.compile(r"[\w\s:.+-]*")


def _attribute(tag: str, name: str, value: str) -> str | None:
    # nh3 calls this after its own URL checks and does not check the result
    # again: it only ever narrows a value.
    if name in _FREE_TEXT:
        return value
    if name == "style":
        return _style(value)
    if name == QUOTE_ATTRIBUTE:
        return ""  # a mark, whatever the message put there
    if name == REMOTE_SRC_ATTRIBUTE:
        return value if _is_remote(value) else None
    grammar = _DATE_VALUE if name == "datetime" else _PLAIN_VALUE
    return value if len(value) <= _MAX_STYLE_CHARS and grammar.fullmatch(value) else None


_STORE_CLEANER = nh3.Cleaner(
    tags=set(_TAGS),
    clean_content_tags=set(_DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
    attribute_filter=_attribute,
    link_rel=_LINK_REL,
    set_tag_attribute_values=_LINK_TARGET,
    url_schemes=set(_SCHEMES),
    url_relative="deny",
)

# --- quoted history ----------------------------------------------------------

# Cheap test before building a tree: does any known quote marker appear (in
# the lower-cased markup; substring tests, as a regular expression costs more
# than the sanitiser itself)?
_QUOTE_HINTS = (
    "gmail_quote", "cite", "divrplyfwdmsg", "appendonsend", "yahoo_quoted",
    "protonmail_quote", "reference-message-container", "#e1e1e1", "#b5c4df",
)  # fmt: skip
# Containers that hold quoted history and nothing else ("On ... wrote:"
# included: Thunderbird's moz-cite-prefix).
_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted", "moz-cite-prefix"})
_QUOTE_IDS = frozenset({"mail-editor-reference-message-container"})
# Outlook's reply headers: each, and everything after it, is the quoted message.
_HEADER_IDS = frozenset({"divRplyFwdMsg", "appendonsend"})
# Outlook desktop's reply header: a div with this top border (spaces removed).
_OUTLOOK_HEADER = re.compile(r"border-top:solid#(?:e1e1e1|b5c4df)")


def _mark(node: LexborNode) -> None:
    node.attrs[QUOTE_ATTRIBUTE] = ""


def _element_after(node: LexborNode) -> LexborNode | None:
    sibling = node.next
    while sibling is not None and not sibling.is_element_node:
        if sibling.is_text_node and (sibling.text_content or "").strip():
            return sibling
        sibling = sibling.next
    return sibling


def _wrap_rest(tree: LexborHTMLParser, start: LexborNode) -> None:
    """Wrap ``start`` and every later sibling in one marked ``div``.

    A header alone in its wrappers (Outlook nests it in a ``div``) climbs to
    the outermost wrapper first, so the history after the wrapper is taken.
    """
    while (
        start.parent is not None
        and start.parent.tag == "div"
        and _element_after(start) is None
        and start.parent.parent is not None
        and start.parent.parent.tag not in ("html", None)
    ):
        start = start.parent
    previous = start.prev
    while (
        previous is not None and previous.is_text_node and not (previous.text_content or "").strip()
    ):
        previous = previous.prev
    if previous is not None and previous.tag == "hr":  # Outlook's separator line
        start = previous
    run = []
    node: LexborNode | None = start
    while node is not None:
        run.append(node)
        node = node.next
    wrapper = tree.create_node("div")
    _mark(wrapper)
    start.insert_before(wrapper, move=True)
    for member in run:
        wrapper.insert_child(member, move=True)


def _mark_quotes(html: str) -> str:
    """``html`` with quoted history marked (as is when there is none)."""
    lowered = html.lower()
    if not any(hint in lowered for hint in _QUOTE_HINTS):
        return html
    tree = LexborHTMLParser(html)
    body = tree.body
    if body is None:
        return html
    # one walk (each CSS query would walk the whole tree again)
    marked: list[LexborNode] = []
    headers: list[LexborNode] = []
    for node in body.traverse():
        tag = node.tag
        if tag != "div" and tag != "blockquote":
            continue
        attributes = node.attributes
        if not attributes:
            continue
        classes = (attributes.get("class") or "").split()
        if tag == "blockquote":
            kind = (attributes.get("type") or "").strip().lower()
            if kind == "cite" or "gmail_quote" in classes or "protonmail_quote" in classes:
                marked.append(node)
            continue
        element_id = attributes.get("id") or ""
        if _QUOTE_CLASSES.intersection(classes) or element_id in _QUOTE_IDS:
            marked.append(node)
        elif element_id in _HEADER_IDS:
            headers.append(node)
        else:
            style = attributes.get("style")
            if style and _OUTLOOK_HEADER.search("".join(style.lower().split())):
                headers.append(node)
    for node in marked:
        _mark(node)
    if headers:
        # the first header wins: what follows it is all history
        _wrap_rest(tree, headers[0])
    return body.inner_html or ""


# --- keeping at parse time, sanitising at read time -------------------------

# Deepest block nesting sanitised: the parser's work grows with the square of
# it; real mail nests a few dozen levels, long reply chains a few hundred.
_MAX_DEPTH = 1000


def sanitize_html(html: str, max_chars: int, warnings: list[str]) -> str | None:
    """A safe HTML fragment from a message's HTML part, at most ``max_chars`` long.

    Input over ``max_chars`` is cut before it is sanitised, so the result is
    always well formed (warning ``html-truncated``); the result is cut
    further when escaping makes it longer. Nesting too deep to parse in
    reasonable time gives ``None`` (warning ``html-too-deep``), and so does
    another shape whose tree would cost seconds to build (warning
    ``html-too-costly``, ``html_cost.cost_hazard``); the message's plain text
    still stands. ``None`` too when nothing visible is left.
    """
    if max_chars < 1 or not html:
        return None
    html = _clean_text(html[: max_chars + 1])
    cut = min(len(html), max_chars)
    if cut < len(html):
        warnings.append("html-truncated")
    if too_deep(html[:cut], _MAX_DEPTH):
        warnings.append("html-too-deep")
        return None
    if cost_hazard(html[:cut]):
        warnings.append("html-too-costly")
        return None
    clean = _sanitized(html[:cut])
    while len(clean) > max_chars:  # escaping and link attributes grow the markup
        if "html-truncated" not in warnings:
            warnings.append("html-truncated")
        cut = min(cut - 1, cut * max_chars // len(clean) * 9 // 10)
        clean = _sanitized(html[:cut]) if cut > 0 else ""
    clean = clean.strip()
    return clean or None


def capture_html(html: str, max_chars: int, warnings: list[str]) -> str | None:
    """A message's HTML part as kept at parse time: cut to ``max_chars``
    (warning ``html-truncated``), controls removed, ``None`` when empty or
    nested too deep to sanitise later (warning ``html-too-deep``). Other
    costly shapes are told when it is read (``safe_html``): telling them
    costs about a millisecond per 50 KB, too much for every message synced.

    The result is NOT safe to show: stores sanitise it when they hand it to
    a viewer (``safe_html``), so a sanitiser fix protects mail synced before
    it, and syncing pays nothing for mail nobody opens.
    """
    if max_chars < 1 or not html:
        return None
    html = _clean_text(html[: max_chars + 1])
    if len(html) > max_chars:
        warnings.append("html-truncated")
        html = html[:max_chars]
    if too_deep(html, _MAX_DEPTH):
        warnings.append("html-too-deep")
        return None
    return html.strip() or None


def safe_html(html: str | None) -> str | None:
    """Kept HTML (``capture_html``) as a safe fragment, for a ``FULL`` viewer
    (``MessageView.html``); ``None`` when nothing visible is left, or when
    sanitising it would cost seconds (``html_cost.cost_hazard``)."""
    if not html:
        return None
    html = _clean_text(html)
    if too_deep(html, _MAX_DEPTH) or cost_hazard(html):
        return None
    return _sanitized(html).strip() or None


def _clean_text(html: str) -> str:
    """Text nh3 accepts: no surrogates (it refuses them), NUL or other controls."""
    return html if text_is_clean(html) else clean_text(html)


def _sanitized(html: str) -> str:
    try:
        return _STORE_CLEANER.clean(_mark_quotes(html))
    except Exception:  # the tree pass failed: sanitise without marks
        return _STORE_CLEANER.clean(html)


# --- rendering at read time --------------------------------------------------


def _is_remote(url: str) -> bool:
    """Whether a browser would fetch ``url`` over the network: an ``http`` or
    ``https`` scheme as a browser reads it (tabs and line ends anywhere are
    ignored, and ``https:\\host``, ``https:/host`` or ``https:host`` reach a
    host too), not only the ``https://`` spelling."""
    scheme, colon, _ = _URL_NOISE.sub("", url).partition(":")
    return bool(colon) and scheme.lower() in ("http", "https")


def render_html(
    html: str,
    *,
    remote_images: bool = False,
    cid_url: Callable[[str], str | None] | None = None,
) -> str:
    """Stored HTML (``MessageView.html``) made ready to show in a page.

    Remote images load only with ``remote_images``; otherwise each keeps its
    address in ``data-commlink-src`` (and no ``src``), so a host can offer
    "show images". ``cid_url`` maps an inline image's Content-ID to a URL the
    host serves it from (its attachment endpoint), or ``None`` to leave it
    out; without it ``cid:`` images show their alt text. The result is
    sanitised again: it is safe even for HTML no sanitiser has seen (HTML
    nested too deep, or otherwise too costly, to sanitise gives ``""``).
    """
    if not html:
        return ""
    html = _clean_text(html)
    if too_deep(html, _MAX_DEPTH) or cost_hazard(html):
        return ""
    served: set[str] = set()
    if "<im" in html.lower():  # <img>, and <image>, which HTML parsers read as <img>
        html = _rewrite_images(html, remote_images, cid_url, served)
    cleaner = nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={**_ATTRIBUTES, "img": _ATTRIBUTES["img"] | {REMOTE_SRC_ATTRIBUTE}},
        attribute_filter=_attribute if remote_images else _served_images_only(served),
        link_rel=_LINK_REL,
        set_tag_attribute_values=_LINK_TARGET,
        url_schemes=set(_SCHEMES - {"cid"}),
        # only the host's own attachment URLs may be relative
        url_relative=lambda url: url if url in served else None,
    )
    return cleaner.clean(html)


def _served_images_only(served: set[str]) -> Callable[[str, str, str], str | None]:
    """The attribute filter for blocked remote images: an image keeps a
    ``src`` only when it is one of the host's own URLs (``cid_url``), so an
    address the rewrite did not recognise as remote is not loaded either."""

    def check(tag: str, name: str, value: str) -> str | None:
        if tag == "img" and name == "src" and value not in served:
            return None
        return _attribute(tag, name, value)

    return check


def _rewrite_images(
    html: str,
    remote_images: bool,
    cid_url: Callable[[str], str | None] | None,
    served: set[str],
) -> str:
    tree = LexborHTMLParser(html)
    body = tree.body
    if body is None:
        return html
    for img in tree.css("img"):
        attrs = img.attrs
        if REMOTE_SRC_ATTRIBUTE in attrs:
            del attrs[REMOTE_SRC_ATTRIBUTE]  # only ever set here, from src
        src = (attrs.get("src") or "").strip()
        if not src:
            continue
        if src.lower().startswith("cid:"):
            url = cid_url(unquote(src[4:]).strip().strip("<>")) if cid_url else None
            if url:
                attrs["src"] = url
                served.add(url)
            else:
                del attrs["src"]
        elif _is_remote(src) and not remote_images:
            del attrs["src"]
            attrs[REMOTE_SRC_ATTRIBUTE] = src
    return body.inner_html or ""
