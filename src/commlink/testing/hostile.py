"""A corpus of hostile mail, for checking that a mailbox survives it.

Each ``Specimen`` is raw RFC 5322 bytes (as an outsider could send them)
with a name and what it attacks. ``corpus()`` yields them; ``normal_mail()``
yields ordinary messages to mix in. A sync of any mix must import every
normal message and import or skip (with a reason) every hostile one, and
never crash, hang or exhaust memory. ``benchmarks/hostile.py`` runs it
through the providers into the reference stores.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import attrs

__all__ = ["OWNER", "Specimen", "corpus", "normal_mail"]

OWNER = "owner@home.example"
_T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


@attrs.frozen(slots=True)
class Specimen:
    """One message of the corpus: ``name`` says what it attacks."""

    name: str
    raw: bytes
    attack: str


def _headers(n: int, **extra: str) -> list[str]:
    fields = {
        "From": f"Client {n} <client{n}@client{n % 7}.example>",
        "To": f"Owner <{OWNER}>",
        "Subject": f"Proposal {n}",
        "Date": format_datetime(_T0 + timedelta(minutes=n)),
        "Message-ID": f"<normal-{n}@client.example>",
    }
    fields.update({k.replace("_", "-"): v for k, v in extra.items()})
    return [f"{k}: {v}" for k, v in fields.items() if v is not None]


def _message(lines: list[str], body: str = "Hello,\r\nplease find the proposal.\r\n") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")


def normal_mail(count: int, *, start: int = 0) -> Iterator[bytes]:
    """Ordinary external mail to ``OWNER``, one client per message."""
    for n in range(start, start + count):
        yield _message(_headers(n))


def _nested(depth: int) -> bytes:
    """``depth`` multiparts inside each other (fast-mail-parser's native
    stack ends at about 32,000)."""
    head = "\r\n".join(_headers(90_001, Message_ID="<nested@attack.example>"))
    opening = "".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'
        for i in range(depth)
    )
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth + 1)))
    return (
        f'{head}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
        f"{opening}--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n{closing}"
    ).encode()


def _forwarded(inner: bytes, name: str) -> bytes:
    """``inner`` forwarded in base64, where a look at the bytes sees no structure."""
    head = "\r\n".join(_headers(90_002, Message_ID=f"<{name}@attack.example>"))
    encoded = base64.encodebytes(inner).replace(b"\n", b"\r\n")
    return (
        (
            f'{head}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="f"\r\n\r\n'
            "--f\r\nContent-Type: text/plain\r\n\r\nForwarding this.\r\n"
            "--f\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + encoded
        + b"\r\n--f--\r\n"
    )


def _html(lines: list[str], html: str) -> bytes:
    return _message([*lines, "MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"], html)


def _recipients(count: int) -> str:
    return ", ".join(f"r{i} <r{i}@fanout{i % 97}.example>" for i in range(count))


def corpus(*, large: bool = True) -> Iterator[Specimen]:
    """The hostile specimens; ``large=False`` leaves out those over 1 MB."""
    rng = random.Random(1301)
    yield Specimen(
        "forged-message-id",
        _message(_headers(1, Message_ID="<normal-0@client.example>", Subject="Forged copy")),
        "carries another message's Message-ID with other content",
    )
    yield Specimen(
        "nul-in-message-id",
        _message(_headers(2, Message_ID="<nul\x00id@attack.example>")),
        "a NUL byte inside the key records are shared by",
    )
    yield Specimen(
        "nul-in-subject",
        _message(_headers(3, Subject="=?utf-8?q?hello=00world?=")),
        "an encoded NUL in stored text (PostgreSQL text cannot hold it)",
    )
    yield Specimen(
        "nul-in-references",
        _message(_headers(4, References="<a@x.example> <b\x00c@x.example>")),
        "a NUL in the thread keys",
    )
    long_id = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000))
    yield Specimen(
        "long-message-id",
        _message(_headers(5, Message_ID=f"<{long_id}@attack.example>")),
        "a 3,000-byte Message-ID (over a btree index entry)",
    )
    yield Specimen(
        "lone-surrogate-subject",
        _message(
            _headers(6, Subject="=?utf-16?b?" + base64.b64encode(b"\xd8\x00").decode() + "?=")
        ),
        "an encoded word that decodes to a lone surrogate",
    )
    yield Specimen(
        "broken-base64",
        _message(
            [
                *_headers(7),
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: base64",
            ],
            "SGVsbG8gd29ybGQ=!!!@@@\r\nnot base64 at all\r\n",
        ),
        "a body that is not base64",
    )
    yield Specimen(
        "unknown-charset",
        _message(
            [*_headers(8), "MIME-Version: 1.0", "Content-Type: text/plain; charset=x-no-such"],
            "caf\xe9 cr\xe8me\r\n",
        ),
        "a charset nobody knows, with 8-bit text",
    )
    yield Specimen(
        "eight-bit-headers",
        _message(_headers(9, Subject="Gr\udcfc\udcdfe aus K\udcf6ln")),
        "raw Latin-1 bytes in a header",
    )
    yield Specimen("no-headers", b"just a body, no header section at all\r\n", "no headers")
    yield Specimen("empty", b"", "zero bytes")
    yield Specimen(
        "blank-first-line", b"\r\nFrom: x@y.example\r\n\r\nbody\r\n", "empty header block"
    )
    cr_only = "\r".join(_headers(10)) + "\r\r" + "classic Mac line ends\r"
    yield Specimen("cr-only-line-ends", cr_only.encode(), "CR-only line ends")
    yield Specimen(
        "many-recipients",
        _message(_headers(11, To=_recipients(5000))),
        "5,000 recipients (participants and contacts)",
    )
    yield Specimen(
        "address-list-oddities",
        _message(
            _headers(
                12,
                From="Ann (work) <ann@client1.example> (sent from phone)",
                To="bob@client2.example carol@client3.example, jdoe@test . example",
            )
        ),
        "comments, a missing comma and the obsolete spaced domain",
    )
    yield Specimen(
        "no-date",
        _message(
            [
                "Received: from mx.client.example by mx.home.example; "
                + format_datetime(_T0 + timedelta(days=3)),
                *_headers(13, Date="not a date at all"),
            ]
        ),
        "an unreadable Date with a Received trace",
    )
    yield Specimen(
        "forged-invitation",
        _message(
            [
                *_headers(14),
                "MIME-Version: 1.0",
                "Content-Type: text/calendar; method=CANCEL; charset=utf-8",
            ],
            "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:meeting-1@home.example\r\n"
            "ORGANIZER:mailto:boss@home.example\r\nDTSTART:20260601T100000Z\r\n"
            "SEQUENCE:99\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ),
        "a cancellation from someone who is not the organiser",
    )
    yield Specimen(
        "header-without-colon",
        _message([*_headers(15), "this line is not a header", "X-Ok: yes"]),
        "a garbage line in the header section",
    )
    if not large:
        return
    yield Specimen(
        "huge-subject",
        _message(_headers(16, Subject="A" * (2 * 2**20))),
        "a 2 MB Subject",
    )
    yield Specimen("deep-nesting", _nested(40_000), "40,000 nested multiparts")
    yield Specimen(
        "deep-forward",
        _forwarded(_nested(40_000), "deep-forward"),
        "40,000 nested multiparts in a message forwarded in base64",
    )
    words = " ".join(f"=?utf-8?q?w{i}?=" for i in range(80_000))
    yield Specimen(
        "encoded-file-name",
        _message(
            [
                *_headers(19),
                "MIME-Version: 1.0",
                'Content-Type: multipart/mixed; boundary="p"',
            ],
            "--p\r\nContent-Type: text/plain\r\n\r\nThe file.\r\n"
            f'--p\r\nContent-Type: application/pdf; name="{words}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--p--\r\n",
        ),
        "an attachment whose file name is 80,000 encoded words",
    )
    yield Specimen(
        "huge-forward-header",
        _forwarded(_message(_headers(90_003, Subject=words)), "huge-forward-header"),
        "a forwarded message whose Subject is 80,000 encoded words",
    )
    yield Specimen(
        "nested-html",
        _html(_headers(20), "<div>" * 200_000 + "Deep." + "</div>" * 200_000),
        "HTML alone, 200,000 nested blocks, every one closed (2.2 MB)",
    )
    yield Specimen(
        "reopened-formatting",
        _html(
            _headers(21),
            "<div>"
            + "".join(f'<b class="b{i}">' for i in range(100))
            + "</div>"
            + "<div>x</div>" * 50_000,
        ),
        "HTML alone whose 100 open formatting elements reopen in each of"
        " 50,000 blocks (a tree of 5 million elements from 600 KB)",
    )
    yield Specimen(
        "huge-text-body",
        _message(_headers(17), ("words " * 12 + "\r\n") * 150_000),
        "an 11 MB text body",
    )
    yield Specimen(
        "one-long-line",
        _message(_headers(18), "x" * (4 * 2**20)),
        "a 4 MB body line without a line break",
    )
    groups = "g:" * 256_000
    yield Specimen(
        "address-groups",
        _message(_headers(22, Cc=groups, Bcc=groups, Reply_To=groups, Sender=groups)),
        "four address headers, each 512 KB of empty groups (g:g:g:...)",
    )
