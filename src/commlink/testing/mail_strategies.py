"""Hypothesis strategies for raw RFC 5322 messages.

``mail_specs()`` draws a ``MailSpec``: realistic message bytes together with
what was put into them (participants, subject, ids, body text, a forwarded
message's participants), so tests can check a parser round trip.
``raw_messages()`` draws just the bytes; ``mutated(strategy)`` damages bytes
the way mail gets damaged in the wild (flipped bytes, truncation, duplicated
headers, changed line endings, bogus charset labels).

Only needs hypothesis, which must be installed to import this module.
"""

from __future__ import annotations

import base64
import quopri
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from functools import lru_cache

import attrs
from hypothesis import strategies as st

__all__ = [
    "FORWARDED_DOMAIN",
    "MailSpec",
    "addresses",
    "mail_specs",
    "mutated",
    "raw_messages",
]

#: Domain of every address inside a generated forwarded message.
FORWARDED_DOMAIN = "forwarded.invalid"

_START = datetime(2015, 1, 1, tzinfo=timezone.utc)
_WORDS = (
    "meeting",
    "invoice",
    "Grüße",
    "café",
    "naïve",
    "Zürich",
    "ok",
    "tomorrow",
    "Привет",
    "日本",
    "€100",
    "thanks",
    "—",
    "re:",
    "a",
    "the",
)
_NAME_CHARS = st.characters(
    codec="utf-8",
    categories=("L", "N", "Zs"),
    include_characters=",.'\"()@;:<>\\-",
    exclude_characters="\u2028\u2029\x85\xa0",
)
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_LOCALS = ("ana", "bob.smith", "o'brien+tag", "x_y=z", "jörg", "renée", "用户", "info", "a.b-c")
_DOMAINS = (
    "example.com",
    "client.example",
    "bücher.de",
    "例え.jp",
    "mail.co.uk",
    "xn--bcher-kva.de",
)
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


@attrs.frozen
class MailSpec:
    """A generated message and what went into it.

    Participants are ``(display name, address text)`` pairs; names are what
    a reader should see after decoding (whitespace collapsed).
    """

    raw: bytes
    from_: tuple[tuple[str, str], ...]
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    subject: str
    message_id: str | None
    date: datetime | None
    body: str
    html_only: bool
    forwarded: tuple[tuple[str, str], ...]
    attachment_names: tuple[str, ...]


@lru_cache(maxsize=1)
def _names() -> st.SearchStrategy[str]:
    text = st.text(_NAME_CHARS, max_size=24).map(lambda s: " ".join(s.split()))
    # "=?" would read as the start of an encoded word.
    return text.filter(lambda s: "=?" not in s)


def _mailbox(name: str, address: str, style: int) -> str:
    """A mailbox as a mailer writes it: bare, quoted, encoded word or raw UTF-8."""
    if not name:
        return address if style % 2 else f"<{address}>"
    if name.isascii():
        if not _SPECIALS.search(name) and style % 3 == 0:
            return f"{name} <{address}>"
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    if style % 3 == 0:  # RFC 6532: raw UTF-8 in a quoted string
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{_encoded_word(name, b_encoding=style % 3 == 1)} <{address}>"


def _encoded_word(text: str, *, b_encoding: bool) -> str:
    data = text.encode("utf-8")
    if b_encoding:
        return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="
    encoded = "".join(
        chr(b) if chr(b) in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in data
    )
    return f"=?utf-8?q?{encoded}?="


def addresses() -> st.SearchStrategy[str]:
    """Valid address text: odd local parts, Unicode and IDNA domains, mixed case."""
    return st.builds(
        lambda local, n, domain, case: case(f"{local}{n}@{domain}"),
        st.sampled_from(_LOCALS),
        st.integers(0, 999).map(lambda n: str(n) if n % 3 else ""),
        st.sampled_from(_DOMAINS),
        st.sampled_from((str.lower, str.upper, str.title)),
    )


_Person = tuple[str, str, int]  # display name, address, how the mailer wrote it


@lru_cache(maxsize=32)
def _people(
    min_size: int, max_size: int, address: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[tuple[_Person, ...]]:
    # Built once: validating a fresh strategy on every draw is slow.
    text = addresses() if address is None else address
    mailbox = st.tuples(_names(), text, st.integers(0, 5))
    return st.lists(mailbox, min_size=min_size, max_size=max_size).map(tuple)


def _header_line(name: str, people: tuple[_Person, ...]) -> str:
    return f"{name}: " + ",\r\n ".join(_mailbox(n, a, style) for n, a, style in people)


def _pairs(people: tuple[_Person, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((n, a) for n, a, _ in people)


def _body_part(text: str, subtype: str, charset: str, cte: str) -> bytes:
    data = text.replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        payload = base64.encodebytes(data).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        payload = quopri.encodestring(data).replace(b"\n", b"\r\n")
    else:
        payload = data + b"\r\n"
    head = f"Content-Type: text/{subtype}; charset={charset}\r\nContent-Transfer-Encoding: {cte}"
    return head.encode("ascii") + b"\r\n\r\n" + payload


def _charset_for(text: str, choice: int) -> str:
    for charset in (("utf-8", "iso-8859-1", "windows-1252")[choice % 3], "utf-8"):
        try:
            text.encode(charset)
        except UnicodeEncodeError:
            continue
        return charset
    return "utf-8"  # pragma: no cover - utf-8 encodes everything


def _multipart(kind: str, boundary: str, parts: list[bytes]) -> bytes:
    out = [f'Content-Type: multipart/{kind}; boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii") + part + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _forwarded(people: tuple[_Person, ...]) -> bytes:
    lines = [_header_line("From", people[:1]), _header_line("To", people[1:] or people)]
    inner = "\r\n".join([*lines, "Subject: inner", "Message-ID: <inner@forwarded.invalid>", ""])
    return b"Content-Type: message/rfc822\r\n\r\n" + inner.encode("utf-8") + b"\r\ninner body\r\n"


@st.composite
def mail_specs(
    draw: st.DrawFn,
    *,
    max_recipients: int = 4,
    multipart: bool | None = None,
    forwarded: bool | None = None,
    message_id: bool | None = None,
    address: st.SearchStrategy[str] | None = None,
    extra_headers: st.SearchStrategy[Sequence[tuple[str, str]]] | None = None,
) -> MailSpec:
    """Realistic messages with known content.

    ``multipart``, ``forwarded`` and ``message_id`` force a choice (``None``
    draws it). ``address`` draws the participants' address text (default:
    ``addresses()``); ``extra_headers`` draws more ``(name, value)`` header
    fields, such as ``List-Id`` or ``Precedence``. Bodies come as text or
    HTML (or both), in UTF-8, Latin-1 or Windows-1252, 7/8-bit,
    quoted-printable or base64; attachments carry RFC 2231 or encoded-word
    file names.
    """
    from_ = draw(_people(1, 2, address))
    to = draw(_people(1, max_recipients, address))
    cc = draw(_people(0, max_recipients, address))
    styles = draw(st.lists(st.integers(0, 5), min_size=6, max_size=6))
    subject = " ".join(draw(st.lists(st.sampled_from(_WORDS), min_size=0, max_size=6)))
    has_id = draw(st.booleans()) if message_id is None else message_id
    msg_id = (
        f"{draw(st.integers(0, 10**9))}.{draw(st.integers(0, 999))}@gen.example" if has_id else None
    )
    when = draw(st.none() | st.integers(0, 10**9).map(lambda s: _START + timedelta(seconds=s)))

    headers = [_header_line("From", from_), _header_line("To", to)]
    if cc:
        headers.append(_header_line("Cc", cc))
    if subject.isascii():
        headers.append(f"Subject: {subject}" if subject else "Subject:")
    elif styles[0] % 3 == 0:  # RFC 6532
        headers.append(f"Subject: {subject}")
    else:
        headers.append(f"Subject: {_encoded_word(subject, b_encoding=styles[0] % 3 == 1)}")
    if when is not None:
        headers.append(f"Date: {format_datetime(when)}")
    if msg_id is not None:
        headers.append(f"Message-ID: <{msg_id}>")
    if extra_headers is not None:
        headers.extend(f"{name}: {value}" for name, value in draw(extra_headers))
    headers.append("MIME-Version: 1.0")

    words = draw(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=40))
    text = " ".join(words)
    charset = _charset_for(text, styles[3])
    cte = draw(st.sampled_from(("7bit", "8bit", "quoted-printable", "base64")))
    if cte == "7bit" and not text.isascii():
        cte = "quoted-printable"
    is_multi = draw(st.booleans()) if multipart is None else multipart
    html_only = draw(st.booleans()) if not is_multi else draw(st.integers(0, 3)) == 0
    html = f"<html><body><p>{text}</p></body></html>"
    fwd_people: tuple[_Person, ...] = ()
    names: list[str] = []
    if not is_multi:
        body = _body_part(
            html if html_only else text, "html" if html_only else "plain", charset, cte
        )
    else:
        if html_only:
            main = _body_part(html, "html", charset, cte)
        else:
            main = _multipart(
                "alternative",
                "alt-b",
                [_body_part(text, "plain", charset, cte), _body_part(html, "html", charset, cte)],
            )
        parts = [main]
        for index in range(draw(st.integers(0, 2))):
            filename = draw(st.sampled_from(("report.pdf", "résumé.pdf", "données 2024.xlsx")))
            names.append(filename)
            if filename.isascii():
                disposition = f'attachment; filename="{filename}"'
            elif styles[4 + index] % 2:
                quoted = "".join(f"%{b:02X}" for b in filename.encode("utf-8"))
                disposition = f"attachment; filename*=utf-8''{quoted}"
            else:
                disposition = f'attachment; filename="{_encoded_word(filename, b_encoding=True)}"'
            blob = base64.encodebytes(bytes(range(index * 40, index * 40 + 90)))
            parts.append(
                f"Content-Type: application/octet-stream\r\nContent-Disposition: {disposition}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii")
                + blob.replace(b"\n", b"\r\n")
            )
        if forwarded or (forwarded is None and draw(st.booleans())):
            fwd_people = tuple(
                (n, f"{a.rpartition('@')[0]}@{FORWARDED_DOMAIN}", style)
                for n, a, style in draw(_people(1, 3))
            )
            parts.append(_forwarded(fwd_people))
        body = _multipart("mixed", "mix-b", parts)

    raw = ("\r\n".join(headers) + "\r\n").encode("utf-8") + body
    return MailSpec(
        raw=raw,
        from_=_pairs(from_),
        to=_pairs(to),
        cc=_pairs(cc),
        subject=subject,
        message_id=msg_id,
        date=when,
        body=text,
        html_only=html_only,
        forwarded=_pairs(fwd_people),
        attachment_names=tuple(names),
    )


def raw_messages(
    *,
    max_recipients: int = 4,
    multipart: bool | None = None,
    forwarded: bool | None = None,
    message_id: bool | None = None,
    address: st.SearchStrategy[str] | None = None,
    extra_headers: st.SearchStrategy[Sequence[tuple[str, str]]] | None = None,
) -> st.SearchStrategy[bytes]:
    """Realistic RFC 5322 message bytes (see ``mail_specs`` for the options)."""
    specs = mail_specs(
        max_recipients=max_recipients,
        multipart=multipart,
        forwarded=forwarded,
        message_id=message_id,
        address=address,
        extra_headers=extra_headers,
    )
    return specs.map(lambda spec: spec.raw)


_CHARSETS = ("utf-8", "x-unknown", "iso-8859-1", "", '"', "utf-7", "bogus-42", "gb2312", "base64")
_CHARSET_PARAM = re.compile(rb"charset=[^;\s]*", re.IGNORECASE)


def _flip(raw: bytes, at: int, value: int) -> bytes:
    if not raw:
        return raw
    at %= len(raw)
    return raw[:at] + bytes([value]) + raw[at + 1 :]


def _duplicate_header(raw: bytes, at: int) -> bytes:
    """Repeat one header line at the top (Date, From, Message-ID ... twice)."""
    end = raw.find(b"\r\n\r\n")
    lines = (raw[:end] if end >= 0 else raw).split(b"\r\n")
    return lines[at % len(lines)] + b"\r\n" + raw


def _apply(raw: bytes, op: tuple[int, int, int]) -> bytes:
    kind, at, value = op
    if kind == 0:
        return _flip(raw, at, value)
    if kind == 1:
        return raw[: at % (len(raw) + 1)]
    if kind == 2:
        return _duplicate_header(raw, at)
    if kind == 3:
        return raw.replace(b"\r\n", (b"\n", b"\r", b"\n\r", b"\r\r\n")[value % 4])
    if kind == 4:
        label = _CHARSETS[value % len(_CHARSETS)].encode("ascii")
        return _CHARSET_PARAM.sub(b"charset=" + label, raw, count=1 + value % 3)
    if kind == 5:  # a run of arbitrary bytes
        at %= len(raw) + 1
        return raw[:at] + bytes([value]) * (1 + value % 7) + raw[at:]
    return raw[: at % (len(raw) + 1)] + raw[(at + value) % (len(raw) + 1) :]  # cut a span


def mutated(raw: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """``raw`` damaged by one to five mutations."""
    ops = st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 2**16), st.integers(0, 255)),
        min_size=1,
        max_size=5,
    )

    def damage(item: tuple[bytes, list[tuple[int, int, int]]]) -> bytes:
        data, steps = item
        for step in steps:
            data = _apply(data, step)
        return data

    return st.tuples(raw, ops).map(damage)
