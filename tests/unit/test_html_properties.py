"""Property: no tag soup, however hostile, comes out of the sanitiser executable."""

from __future__ import annotations

from html_checks import assert_inert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from commlink.mime.html import render_html, sanitize_html
from commlink.mime.text import html_to_text

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAGS = (
    "script", "style", "svg", "math", "mtext", "mglyph", "mi", "malignmark", "foreignObject",
    "annotation-xml", "desc", "title", "iframe", "noscript", "noembed", "noframes", "textarea",
    "xmp", "template", "plaintext", "form", "input", "button", "select", "option", "object",
    "embed", "base", "meta", "link", "image", "isindex", "frameset", "body", "html", "head",
    "table", "tr", "td", "a", "img", "div", "p", "span", "blockquote", "ul", "li", "font",
    "details", "summary", "video", "source", "Svg", "SCRIPT", "animate", "set", "use",
)  # fmt: skip
ATTRIBUTES = (
    "onload", "onerror", "OnClick", "onmouseover", "ontoggle", "onfocus", "href", "HREF", "src",
    "style", "xlink:href", "formaction", "action", "srcdoc", "background", "poster", "srcset",
    "type", "class", "id", "name", "data", "dynsrc", "encoding", "attributeName", "to", "values",
    "http-equiv", "content", "ping", "cite", "data-commlink-src", "data-commlink-quote",
)  # fmt: skip
URLS = (
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:x", "java\tscript:x",
    "jav&#x09;ascript:x", "&#106;avascript:x", "&#x6A;avascript:x", "javascript&colon;x",
    "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2Zz4=", "https://ok.example/a", "http://ok.example/b.gif",
    "cid:part@x", "//evil.example/x", "/relative", "#frag", "mailto:a@b.example", "x:y",
    "\x01javascript:x", "&#0000106avascript:x", "javascript\u2028:x",
    "https:\\\\t.example/p.gif", "https:/t.example/p.gif", "https:t.example/p.gif",
    "ht\ttps://t.example/p.gif", "HTTP://t.example/p.gif", "h&#x74;tps://t.example/p.gif",
)  # fmt: skip
STYLES = (
    "color:red", "color: expression(alert(1))", "width:e&#120;pression(x)",
    "width:\\65 xpression(x)", "background:url(javascript:alert(1))",
    "background-image:url(https://t.example/p.gif)", "behavior:url(x.htc)",
    "-moz-binding:url(x.xml#y)", "color:red;/**/background:url(//x)", "@import 'x.css'",
    "font-family:\"Arial\";color:rgb(1,2,3)", "list-style-image:url(x)", "position:fixed",
)  # fmt: skip
TEXT = (
    "hello", "&lt;script&gt;alert(1)&lt;/script&gt;", "&#60;img src=x onerror=alert(1)&#62;",
    "<!--", "-->", "<![CDATA[", "]]>", '"', "'", ">", "<", "</", "&", "\x00", "\u2028",
    "<!doctype html>", "<?xml x?>", "`", "=",
)  # fmt: skip

values = st.one_of(st.sampled_from(URLS), st.sampled_from(STYLES), st.text(max_size=12))


@st.composite
def start_tags(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(TAGS))
    parts = [tag]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(ATTRIBUTES))
        value = draw(values)
        quote = draw(st.sampled_from(['"', "'", ""]))
        if not quote:
            value = value.replace(" ", "").replace(">", "") or "x"
        parts.append(f"{name}={quote}{value.replace(quote, '') if quote else value}{quote}")
    closing = draw(st.sampled_from([">", "/>", " >"]))
    return "<" + " ".join(parts) + closing


tokens = st.one_of(
    start_tags(),
    st.sampled_from(TAGS).map(lambda tag: f"</{tag}>"),
    st.sampled_from(TEXT),
    st.text(max_size=8),
)
soups = st.lists(tokens, max_size=40).map("".join)


@SETTINGS
@given(soups)
def test_sanitised_soup_is_inert(soup: str) -> None:
    warnings: list[str] = []
    clean = sanitize_html(soup, 2**20, warnings)
    if clean is None:
        return
    assert_inert(clean)
    assert_inert(render_html(clean, remote_images=True))
    assert_inert(render_html(clean, cid_url=lambda cid: "/att/1"), ("/att/1",))


@SETTINGS
@given(soups)
def test_rendered_soup_is_inert(soup: str) -> None:
    assert_inert(render_html(soup, remote_images=True, cid_url=lambda cid: "https://crm/x"))


images = st.builds(
    lambda tag, quote, url: f"<{tag} src={quote}{url}{quote}>",
    st.sampled_from(["img", "IMG", "image"]),
    st.sampled_from(['"', "'"]),
    st.sampled_from(URLS),
)
image_soups = st.lists(st.one_of(tokens, images), max_size=20).map("".join)


@SETTINGS
@given(image_soups)
def test_blocked_images_load_only_the_hosts_urls(soup: str) -> None:
    """With remote images blocked, no image keeps an address but the host's own."""
    for html in (soup, sanitize_html(soup, 2**20, []) or ""):
        shown = render_html(html, cid_url=lambda cid: "/att/1")
        sources = {img.attributes.get("src") for img in LexborHTMLParser(shown).css("img")}
        assert sources <= {None, "/att/1"}, shown


@SETTINGS
@given(soups, st.integers(1, 400))
def test_any_cut_stays_inert_and_within_the_limit(soup: str, limit: int) -> None:
    clean = sanitize_html(soup, limit, [])
    if clean is not None:
        assert len(clean) <= limit
        assert_inert(clean)


@SETTINGS
@given(soups)
def test_plain_text_of_soup_never_raises(soup: str) -> None:
    text = html_to_text(soup)
    assert "<script" not in text.lower() or "<script" in soup.lower() or "&lt;" in soup
