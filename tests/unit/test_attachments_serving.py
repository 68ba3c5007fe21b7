"""Serving headers for attachments: whatever name and type a sender writes,
the browser downloads anything it could run and shows only plain pictures."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.attachments import INLINE_TYPES, response_headers, safe_filename, served_type
from commlink.attachments.access import AttachmentContent
from commlink.attachments.serving import (
    FALLBACK_TYPE,
    MAX_FILENAME_BYTES,
    content_disposition,
)
from commlink.model import Attachment

DEVICES = {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9", "CONIN$"}


def headers(filename: str, content_type: str, *, inline: bool = False) -> dict[str, str]:
    return dict(response_headers(Attachment(filename, content_type, 10), inline=inline))


@pytest.mark.parametrize(
    "declared",
    [
        "text/html",
        "TEXT/HTML; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "text/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/css",
        "text/xsl",
        "multipart/x-mixed-replace; boundary=x",
        "application/x-shockwave-flash",
        "text/vnd.wap.wml+xml",
        "",
        "html",
        "text/html\r\nSet-Cookie: session=x",
        "image/png\x00text/html",
        "image/ png",
        "a" * 200 + "/png",
    ],
)
def test_a_runnable_or_malformed_type_is_served_as_bytes_to_download(declared: str) -> None:
    served = headers("x", declared, inline=True)
    assert served["Content-Type"] == FALLBACK_TYPE
    assert served["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("declared", "inline", "served", "disposition"),
    [
        ("image/png", True, "image/png", "inline"),
        ("IMAGE/JPEG; name=photo.jpg", True, "image/jpeg", "inline"),
        ("image/jpg", True, "image/jpeg", "inline"),
        ("image/pjpeg", True, "image/jpeg", "inline"),
        ("image/gif", False, "image/gif", "attachment"),
        ("application/pdf", True, "application/pdf", "attachment"),
        ("text/plain; charset=utf-8", True, "text/plain", "attachment"),
        ("text/calendar; method=REQUEST", False, "text/calendar", "attachment"),
        # "xml" inside a name is not an XML type
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            True,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "attachment",
        ),
    ],
)
def test_other_types_are_kept_and_only_pictures_are_inline(
    declared: str, inline: bool, served: str, disposition: str
) -> None:
    found = headers("x", declared, inline=inline)
    assert found["Content-Type"] == served
    assert found["Content-Disposition"].split(";")[0] == disposition


def test_every_answer_forbids_sniffing_scripts_shared_caches_and_embedding() -> None:
    for declared in ("image/png", "text/html", "application/pdf"):
        found = headers("x", declared, inline=True)
        assert found["X-Content-Type-Options"] == "nosniff"
        policy = found["Content-Security-Policy"]
        assert "sandbox" in policy
        assert "default-src 'none'" in policy
        assert found["Cache-Control"] == "private, no-store"
        assert found["Cross-Origin-Resource-Policy"] == "same-site"


def test_attachment_content_gives_the_same_headers() -> None:
    attachment = Attachment("logo.png", "image/png", 10)
    content = AttachmentContent(attachment, iter(()))
    assert content.headers(inline=True) == response_headers(attachment, inline=True)
    assert dict(content.headers())["Content-Disposition"] == 'attachment; filename="logo.png"'


@pytest.mark.parametrize(
    ("given_name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\System32\\evil.exe", "evil.exe"),
        ("..\\..\\autoexec.bat", "autoexec.bat"),
        (".htaccess", "htaccess"),
        ("...", "attachment"),
        ("", "attachment"),
        ("dir/", "attachment"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("a\u2066b\u2069c\u200f.txt", "abc.txt"),
        ("tab\there\nnew\rline.txt", "tabherenewline.txt"),
        ('what?<>:|*".txt', "what_______.txt"),
        ("  spaced   out  name .txt . ", "spaced out name .txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Com1 .log", "_Com1 .log"),
        ("LPT\u00b9.txt", "_LPT\u00b9.txt"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("Cafe\u0301.txt", "Caf\u00e9.txt"),
    ],
)
def test_safe_filenames(given_name: str, safe: str) -> None:
    assert safe_filename(given_name) == safe


def test_a_long_name_is_shortened_and_keeps_its_extension() -> None:
    name = safe_filename("\u00e9" * 300 + ".docx")
    assert name.endswith("\u00e9.docx")
    assert len(name.encode()) <= MAX_FILENAME_BYTES
    assert safe_filename("x" * 500).startswith("x")
    assert len(safe_filename("x" * 500)) == 200
    # an "extension" too long to be one is cut like the rest
    assert len(safe_filename("a." + "b" * 400).encode()) <= MAX_FILENAME_BYTES


def test_a_non_ascii_name_is_sent_in_both_forms() -> None:
    value = content_disposition("\u00dcbersicht \u2013 Q3.pdf")
    assert value == (
        'attachment; filename="_bersicht _ Q3.pdf"; '
        "filename*=UTF-8''%C3%9Cbersicht%20%E2%80%93%20Q3.pdf"
    )


def _filename_of(value: str) -> str:
    """The name a browser takes from a ``Content-Disposition`` (RFC 6266
    §4.3: ``filename*`` wins over ``filename``)."""
    extended = re.search(r"filename\*=UTF-8''([^;]*)$", value)
    if extended:
        return unquote(extended[1], errors="strict")
    plain = re.search(r'filename="([^"\\]*)"', value)
    assert plain is not None
    return plain[1]


_ANY_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from('/\\.:\u202e\u2066\x00\r\n" '))


@given(_ANY_TEXT)
def test_any_name_becomes_one_plain_file_name(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert not set(safe) & set('/\\<>:"|?*')
    assert not re.search("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]", safe)
    assert not re.search("[\ud800-\udfff]", safe)
    assert safe[0] not in ". "
    assert safe[-1] not in ". "
    assert len(safe.encode()) <= MAX_FILENAME_BYTES
    assert safe.split(".", 1)[0].rstrip().upper() not in DEVICES
    assert unicodedata.is_normalized("NFC", safe)
    assert safe_filename(safe) == safe


@given(_ANY_TEXT, st.booleans())
def test_any_name_gives_a_header_that_names_it_exactly(name: str, inline: bool) -> None:
    value = content_disposition(name, inline=inline)
    assert value.isascii()
    assert not re.search("[\x00-\x1f\x7f]", value)
    assert value.startswith("inline;" if inline else "attachment;")
    assert _filename_of(value) == safe_filename(name)


@given(st.text() | st.from_regex(r"[A-Za-z]{1,8}/[A-Za-z0-9.+-]{1,20}(;.*)?", fullmatch=True))
def test_any_type_is_served_as_a_well_formed_type_that_runs_nothing(declared: str) -> None:
    served = served_type(declared)
    assert re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", served)
    sub = served.partition("/")[2]
    assert "html" not in sub
    assert "script" not in sub
    assert not sub.endswith("xml")
    assert not served.startswith("multipart/")
    declared_type = declared.split(";")[0].strip().lower()
    assert served in {FALLBACK_TYPE, declared_type, "image/jpeg", "image/png", "image/bmp"}
    shown = dict(response_headers(Attachment("x", declared, 1), inline=True))
    assert (shown["Content-Disposition"].startswith("inline")) == (served in INLINE_TYPES)
