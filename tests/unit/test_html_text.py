"""Plain text from HTML keeps list bullets, numbers and quote levels."""

from __future__ import annotations

from pathlib import Path

from commlink.mime.text import html_to_text

DATA = Path(__file__).resolve().parents[1] / "data" / "html"


def test_lists_get_bullets_and_numbers() -> None:
    html = (
        "<p>Agenda:</p><ul><li>pricing</li><li>timeline<ol><li>pilot</li><li>rollout</li>"
        "</ol></li><li>next steps</li></ul><p>Thanks</p>"
    )
    assert html_to_text(html) == (
        "Agenda:\n\n- pricing\n- timeline\n  1. pilot\n  2. rollout\n- next steps\n\nThanks"
    )


def test_numbering_follows_start_and_value() -> None:
    html = '<ol start="4"><li>d</li><li value="9">i</li><li>j</li></ol>'
    assert html_to_text(html) == "4. d\n9. i\n10. j"
    # nonsense numbers are ignored; huge ones are bounded
    assert html_to_text('<ol start="x"><li>a</li></ol>') == "1. a"
    assert html_to_text('<ol start="99999999999999"><li>a</li></ol>') == "999999999. a"


def test_items_outside_a_list_still_get_a_bullet() -> None:
    assert html_to_text("<li>loose</li><li>items</li>") == "- loose\n- items"


def test_quote_levels_prefix_every_line() -> None:
    html = (
        "<p>Yes.</p><blockquote><p>Can we?<br>Soon?</p><blockquote>First ask"
        "</blockquote><p>back</p></blockquote><p>Bye</p>"
    )
    assert html_to_text(html) == ("Yes.\n\n> Can we?\n> Soon?\n>\n> > First ask\n>\n> back\n\nBye")


def test_lists_inside_quotes() -> None:
    html = "<blockquote><ul><li>one</li><li>two</li></ul></blockquote>"
    assert html_to_text(html) == "> - one\n> - two"


def test_replies_read_like_mail() -> None:
    gmail = html_to_text((DATA / "gmail-reply.html").read_text(encoding="utf-8"))
    assert "> Could we move the review to Thursday 14:00?" in gmail
    assert "> > Wednesday works for the review." in gmail
    outlook = html_to_text((DATA / "outlook-reply.html").read_text(encoding="utf-8"))
    assert "1. Delivery by 15 January\n2. Net-45 payment terms" in outlook
    thunderbird = html_to_text((DATA / "thunderbird-reply.html").read_text(encoding="utf-8"))
    assert thunderbird.startswith(
        "Answers inline.\n\nOn 04/12/2024 08:30, Dev Meyer wrote:\n\n"
        "> 1. Can you share the pilot numbers?\n\nYes, attached."
    )


def test_breaks_merge_and_whitespace_collapses() -> None:
    assert html_to_text("<div>a<p>b</p>c</div>x<br><br>y") == "a\n\nb\n\nc\nx\n\ny"
    assert html_to_text("<p>a</p>\n\n  <div>b</div>") == "a\n\nb"
    assert html_to_text("a<br><br><br><br>b") == "a\n\nb"
    assert html_to_text("<b>bold</b>text and <i> spaced </i> words") == (
        "boldtext and spaced words"
    )
    assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>") == (
        "a b\nc"
    )


def test_unclosed_and_deep_markup() -> None:
    closed = "<ul><li>a</li><li>b<blockquote>c</blockquote></li></ul>"
    assert html_to_text("<ul><li>a<li>b<blockquote>c") == html_to_text(closed)
    assert html_to_text(closed) == "- a\n- b\n\n> c"
    deep = "<blockquote>" * 3000 + "deep"
    assert html_to_text(deep) == "deep"  # read without a tree: no prefixes
