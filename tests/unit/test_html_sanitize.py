"""Safe HTML at parse time: a hostile corpus, real-looking mail, limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from html_checks import assert_inert
from selectolax.lexbor import LexborHTMLParser

from commlink.mime.html import QUOTE_ATTRIBUTE, render_html, safe_html, sanitize_html
from commlink.mime.parse import parse_message
from commlink.model import Detail, Limits

DATA = Path(__file__).resolve().parents[1] / "data" / "html"
MIB = 2**20


def hostile_cases() -> list[str]:
    text = (DATA / "hostile.txt").read_text(encoding="utf-8")
    blocks = text.split("\n#---\n")[1:]  # the first block is the file's comment
    return [block.strip("\n") for block in blocks if block.strip()]


CASES = hostile_cases()


def test_the_corpus_is_whole() -> None:
    assert len(CASES) >= 70
    assert all("#---" not in case for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_hostile_html_comes_out_inert(case: str) -> None:
    warnings: list[str] = []
    clean = sanitize_html(case, MIB, warnings)
    assert warnings == []
    if clean is None:
        return
    assert_inert(clean)
    assert_inert(render_html(clean, remote_images=True))
    assert_inert(render_html(clean, cid_url=lambda cid: f"/files/{len(cid)}"), ("/files/",))


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_rendering_is_safe_for_html_nothing_sanitised(case: str) -> None:
    """A host store may hand back HTML no sanitiser saw: rendering sanitises."""
    assert_inert(render_html(case, remote_images=True, cid_url=lambda cid: "https://crm/a"))


def test_text_of_hostile_markup_stays_readable() -> None:
    warnings: list[str] = []
    out = sanitize_html("&lt;script&gt;alert(1)&lt;/script&gt; stays text", MIB, warnings)
    assert out == "&lt;script&gt;alert(1)&lt;/script&gt; stays text"
    out = sanitize_html("<script>alert(1)</script>after", MIB, warnings)
    assert out == "after"
    out = sanitize_html('<a href="javascript:alert(1)">click</a>', MIB, warnings)
    assert out is not None
    assert "click" in out
    assert "href" not in out


def _sanitised(name: str) -> str:
    warnings: list[str] = []
    out = sanitize_html((DATA / f"{name}.html").read_text(encoding="utf-8"), MIB, warnings)
    assert out is not None
    assert warnings == []
    return out


@pytest.mark.parametrize(
    "name", ["newsletter", "outlook-reply", "gmail-reply", "thunderbird-reply"]
)
def test_samples_match_their_stored_output(name: str) -> None:
    out = _sanitised(name)
    assert_inert(out)
    expected = (DATA / f"{name}.sanitised.html").read_text(encoding="utf-8")
    assert out == expected.rstrip("\n")


def test_newsletter_keeps_layout_and_loses_tracking_and_code() -> None:
    out = _sanitised("newsletter")
    tree = LexborHTMLParser(out)
    links = tree.css("a")
    assert links
    assert all(a.attributes.get("rel") == "noopener noreferrer nofollow" for a in links)
    assert all(a.attributes.get("target") == "_blank" for a in links)
    assert "Single sign-on for every plan" in out
    assert 'style="width:600px;background-color:#ffffff;border-radius:6px"' in out
    # the pixel is stored, and blocked when shown
    pixel = "https://open.northwind-mail.example/o/ab12cd34.gif"
    assert f'src="{pixel}"' in out
    shown = render_html(out)
    assert f'data-commlink-src="{pixel}"' in shown
    assert ' src="https://' not in shown
    assert f'src="{pixel}"' in render_html(out, remote_images=True)
    for gone in ("<style", "<form", "<input", "header-bg.jpg", "btn.png", "onclick", "track("):
        assert gone not in out


def _quoted_text(html: str) -> tuple[str, str]:
    """The text inside marked quotes, and the text outside them."""
    tree = LexborHTMLParser(html)
    quoted = " ".join(n.text() for n in tree.css(f"[{QUOTE_ATTRIBUTE}]"))
    for node in tree.css(f"[{QUOTE_ATTRIBUTE}]"):
        node.decompose()
    body = tree.body
    assert body is not None
    return quoted, body.text()


def test_outlook_history_is_marked_from_its_header_on() -> None:
    out = _sanitised("outlook-reply")
    quoted, own = _quoted_text(out)
    assert "From:" in quoted
    assert "Please find the revised quote attached" in quoted
    assert "Best regards" in own
    assert "Net-45 payment terms" in own
    assert "From:" not in own


def test_gmail_history_is_one_marked_container() -> None:
    out = _sanitised("gmail-reply")
    quoted, own = _quoted_text(out)
    assert "Sounds good, see you Thursday." in own
    assert "Wednesday works for the review." in quoted
    assert "On Tue, 3 Dec 2024" in quoted
    assert "wrote:" not in own


def test_interleaved_quotes_are_marked_one_by_one() -> None:
    out = _sanitised("thunderbird-reply")
    quoted, own = _quoted_text(out)
    assert "Can you share the pilot numbers?" in quoted
    assert "Who signs on your side?" in quoted
    for answer in ("Answers inline.", "Yes, attached.", "Our CFO."):
        assert answer in own


def test_inline_images_point_at_the_host() -> None:
    out = _sanitised("outlook-reply")
    asked: list[str] = []

    def url(content_id: str) -> str:
        asked.append(content_id)
        return f"/crm/attachments/{len(asked)}"

    shown = render_html(out, cid_url=url)
    assert asked == ["image001.png@01DA4F1C.2B3C4D50"]
    assert 'src="/crm/attachments/1"' in shown
    assert_inert(shown, ("/crm/attachments/1",))
    # without a callback, or when it has nothing, the image shows its alt text
    assert "cid:" not in render_html(out)
    assert "<img" in render_html(out, cid_url=lambda cid: None)
    assert "src=" not in render_html(out, cid_url=lambda cid: None)


def test_host_urls_are_checked_too() -> None:
    out = render_html('<img src="cid:a">', cid_url=lambda cid: "javascript:alert(1)")
    assert out == "<img>"


def test_input_is_cut_before_sanitising_and_output_stays_under_the_limit() -> None:
    warnings: list[str] = []
    html = "<p>" + "word " * 10_000 + "</p>"
    out = sanitize_html(html, 1000, warnings)
    assert out is not None
    assert len(out) <= 1000
    assert out.startswith("<p>word")
    assert out.endswith("</p>")  # sanitised after the cut: well formed
    assert warnings == ["html-truncated"]


def test_escaping_cannot_grow_the_output_past_the_limit() -> None:
    warnings: list[str] = []
    # each short link gains rel and target attributes when sanitised
    html = '<a href="https://x.example/">a</a>' * 2000
    out = sanitize_html(html, 5000, warnings)
    assert out is not None
    assert len(out) <= 5000
    assert out.count("<a ") == out.count("</a>")
    assert warnings == ["html-truncated"]
    assert sanitize_html("&" * 300, 100, []) is not None


def test_deep_nesting_is_refused_quickly() -> None:
    warnings: list[str] = []
    started = time.perf_counter()
    assert sanitize_html("<blockquote>" * 50_000 + "x", MIB, warnings) is None
    assert warnings == ["html-too-deep"]
    # just under the limit, and many times over, stays fast
    html = ("<div>" * 999 + "x" + "</div>" * 999) * 40
    assert sanitize_html(html, MIB, []) is not None
    assert time.perf_counter() - started < 10
    assert render_html("<div>" * 50_000) == ""


def test_text_nh3_refuses_is_repaired_first() -> None:
    out = sanitize_html("<p>a\x00b\ud800c\x01d</p>", MIB, [])
    assert out is not None
    assert "\x00" not in out
    assert "\ud800" not in out
    assert render_html("<p>\ud800</p>") == "<p>\ufffd</p>"


def test_nothing_visible_is_none() -> None:
    assert sanitize_html("<script>x</script>  ", MIB, []) is None
    assert sanitize_html("", MIB, []) is None
    assert sanitize_html("<p>x</p>", 0, []) is None


HEAD = (
    b"From: Ann <ann@northwind.example>\r\nTo: bob@contoso.example\r\n"
    b"Subject: Plan\r\nMessage-ID: <plan-1@northwind.example>\r\n"
    b"Date: Mon, 2 Dec 2024 09:14:00 +0000\r\nMIME-Version: 1.0\r\n"
)
ALTERNATIVE = HEAD + (
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe plan, in plain text.\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p onclick="steal()">The <b>plan</b></p><img src="https://t.example/p.gif">'
    b"<script>steal()</script>\r\n--b--\r\n"
)


def test_parse_keeps_html_next_to_the_plain_text_and_reading_sanitises_it() -> None:
    m = parse_message(ALTERNATIVE, provider_id="1")
    assert m.body == "The plan, in plain text."
    assert m.html is not None
    assert "<script>" in m.html
    assert safe_html(m.html) == '<p>The <b>plan</b></p><img src="https://t.example/p.gif">'
    assert m.warnings == ()


def test_parse_html_follows_detail_and_limits() -> None:
    assert parse_message(ALTERNATIVE, provider_id="1", detail=Detail.METADATA).html is None
    assert parse_message(ALTERNATIVE, provider_id="1", limits=Limits(max_html_chars=0)).html is None
    cut = parse_message(ALTERNATIVE, provider_id="1", limits=Limits(max_html_chars=30))
    assert cut.html == '<p onclick="steal()">The <b>pl'
    assert safe_html(cut.html) == "<p>The <b>pl</b></p>"
    assert "html-truncated" in cut.warnings


def test_parse_of_html_only_mail_keeps_both() -> None:
    raw = HEAD + (
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<ul><li>one</li><li>two</li></ul><blockquote type=cite>older</blockquote>"
    )
    m = parse_message(raw, provider_id="1")
    assert m.body == "- one\n- two\n\n> older"
    assert safe_html(m.html) == (
        f'<ul><li>one</li><li>two</li></ul><blockquote {QUOTE_ATTRIBUTE}="">older</blockquote>'
    )


@pytest.mark.parametrize(
    "src",
    [
        "https://t.example/p.gif",
        "HTTPS://t.example/p.gif",
        " https://t.example/p.gif",
        "https:\\\\t.example/p.gif",  # a browser reads https://t.example/p.gif
        "https:/t.example/p.gif",
        "https:t.example/p.gif",
        "ht\ttps://t.example/p.gif",  # tabs inside a URL are dropped
        "http:\n//t.example/p.gif",
    ],
)
@pytest.mark.parametrize("tag", ["img", "image"])  # HTML parsers read <image> as <img>
def test_blocked_remote_images_cover_every_spelling_of_a_remote_url(src: str, tag: str) -> None:
    shown = render_html(f'<p>x</p><{tag} src="{src}">')
    images = LexborHTMLParser(shown).css("img")
    assert len(images) == 1
    assert "src" not in images[0].attributes
    assert images[0].attributes.get("data-commlink-src")
    assert 'src="' in render_html(f'<p>x</p><{tag} src="{src}">', remote_images=True)


def test_blocked_images_keep_only_the_hosts_own_urls() -> None:
    html = '<img src="cid:logo"><img src="//t.example/p.gif"><img src="/relative.gif">'
    shown = render_html(html, cid_url=lambda cid: "/att/1?part=2&size=s")
    sources = [img.attributes.get("src") for img in LexborHTMLParser(shown).css("img")]
    assert sources == ["/att/1?part=2&size=s", None, None]
