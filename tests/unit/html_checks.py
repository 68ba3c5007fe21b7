"""What "no executable content" means for sanitised HTML, checked the way a
browser would read the markup (an HTML5 parser), not by searching text."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from selectolax.lexbor import LexborHTMLParser, LexborNode

from commlink.mime import html_cost

#: Elements that run code, load documents, submit data or parse their content
#: in another mode; none may come out of the sanitiser.
FORBIDDEN_TAGS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
        "input", "button", "select", "option", "textarea", "svg", "math", "base", "meta", "link",
        "template", "noscript", "xmp", "noembed", "noframes", "plaintext", "video", "audio",
        "source", "isindex", "marquee", "title", "image", "portal", "dialog",
    }
)  # fmt: skip
#: Attributes that load or navigate somewhere other than a checked href/src.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "srcdoc", "formaction", "action", "background", "poster", "srcset", "ping", "xlink:href",
        "dynsrc", "lowsrc", "data", "codebase", "id", "name", "http-equiv", "content",
    }
)  # fmt: skip
#: Attributes a browser shows as text and never reads as a URL.
FREE_TEXT = frozenset({"alt", "title", "summary"})
SAFE_SCHEMES = ("http:", "https:", "mailto:", "tel:", "cid:")
# Words that load or run something in CSS (whole words: "importer" is text;
# "@import" is caught by the "@").
_STYLE_WORDS = re.compile(r"\b(?:url|expression|javascript|behavior|binding|image-set)\b|\\|@")
_STYLE_CALLS = re.compile(r"(?:rgba?|hsla?)\([\d\s.,%/]*\)")
_URL_ATTRIBUTES = frozenset({"href", "src", "data-commlink-src"})
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
_START_TAG = re.compile(r"<([a-zA-Z][^\s/>]*)")


def url_is_safe(value: str, relative: Collection[str]) -> bool:
    squeezed = _INVISIBLE.sub("", value).lower()
    scheme, colon, _ = squeezed.partition(":")  # as a browser reads it: https:/x is https
    return (bool(colon) and f"{scheme}:" in SAFE_SCHEMES) or value.startswith(tuple(relative))


def assert_inert(html: str, relative: Collection[str] = ()) -> None:
    """Fail when ``html`` holds anything a browser could run or load
    unasked; ``relative`` lists prefixes of relative URLs a host put there
    itself."""
    for tag in _START_TAG.findall(html):
        assert tag.lower() not in FORBIDDEN_TAGS, html
    tree = LexborHTMLParser(html)
    root = tree.root
    assert root is not None
    for node in root.traverse():
        tag = (node.tag or "").lower()
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in node.attributes.items():
            name = name.lower()
            text = value or ""
            assert not name.startswith("on"), html
            assert name not in FORBIDDEN_ATTRIBUTES, html
            squeezed = _INVISIBLE.sub("", text).lower()
            # A URL's scheme is what runs; "javascript:" later in an https URL is its path.
            if name not in FREE_TEXT and name not in _URL_ATTRIBUTES:
                for scheme in ("javascript:", "vbscript:", "data:"):
                    assert scheme not in squeezed, html
            if name in ("href", "src"):
                assert url_is_safe(text, relative), html
            if name == "data-commlink-src":  # an http(s) URL as a browser reads it
                scheme, colon, _ = squeezed.partition(":")
                assert colon, html
                assert scheme in ("http", "https"), html
            if name == "style":
                calls = _STYLE_CALLS.sub("", squeezed)
                assert "(" not in calls, html
                assert _STYLE_WORDS.search(calls) is None, html


def tree_depth(html: str) -> int:
    """The most elements ``html_cost`` counts (neither void nor uncounted)
    along any path of lexbor's tree of ``html``: its stack was that deep."""
    tree = LexborHTMLParser(html)
    deepest = 0
    todo: list[tuple[LexborNode, int]] = [(tree.root, 0)] if tree.root is not None else []
    while todo:
        node, depth = todo.pop()
        tag = (node.tag or "").lower()
        counted = tag and tag[0] not in "-_#"
        counted = counted and tag not in html_cost._VOID and tag not in html_cost._UNCOUNTED
        depth += 1 if counted else 0
        deepest = max(deepest, depth)
        child = node.child
        while child is not None:
            if child.is_element_node:
                todo.append((child, depth))
            child = child.next
    return deepest


@contextmanager
def deepest_allowed(depth: int) -> Iterator[None]:
    """``html_cost`` reading every document, refusing a stack deeper than
    ``depth``, each formatting element counted once."""
    saved = {
        name: getattr(html_cost, name)
        for name in ("SMALL", "SMALL_TAGS", "MAX_OPEN", "FORMATTING_WEIGHT")
    }
    html_cost.SMALL = html_cost.SMALL_TAGS = 0
    html_cost.MAX_OPEN = depth
    html_cost.FORMATTING_WEIGHT = 1
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(html_cost, name, value)
