"""MIME parsing speed: commlink's parse_message against the parsers it builds on.

Generates N deterministic, realistic messages (about 8 KB: multipart/alternative
text + HTML, every fourth one multipart/mixed with a PDF, trace and DKIM headers,
encoded-word display names, replies with References) and prints messages per
second for:

* commlink ``parse_message`` with ``Detail.FULL``;
* commlink ``parse_message`` with ``Detail.METADATA`` on header-only bytes;
* the standard library, ``policy.default`` (headers and body content read);
* the standard library, ``compat32`` (parse only);
* fast-mail-parser on its own (``parse_email``, lazy attachments).

The standard-library parsers are slow, so they run on a sample (``--sample``).
Rates are the best of ``--rounds`` runs, by wall clock and by CPU time of
this process (the second is steadier on a machine that is busy elsewhere).

    python benchmarks/mime_parse.py [-n 10000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import base64
import email
import quopri
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from email import policy
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import fast_mail_parser

from commlink.mime.headers import header_block
from commlink.mime.parse import parse_message
from commlink.model import Detail

OWNER = "Owner Name <owner@northwind.example>"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
FIRST = (
    "Ann", "Bob", "Carla", "Dev", "Erin", "Farid", "Gita", "Hugo",
    "Ines", "Jon", "Kira", "Liam", "Mona", "Nils", "Olga", "Paul",
)  # fmt: skip
FIRST_INTL = (
    "Jörg", "Zoë", "Åsa", "Łukasz", "Renée", "Çağla", "Ñuño", "Søren", "Ștefan", "Žofia", "李",
    "Мария",
)  # fmt: skip
LAST = (
    "Smith", "Jones", "Novak", "Rossi", "Meyer", "Dubois", "Silva", "Kowalski", "Tanaka", "Berg",
    "Moreau", "Costa",
)  # fmt: skip
TOPICS = (
    "proposal", "renewal", "contract", "pricing", "onboarding", "meeting", "quarterly", "review",
    "invoice", "integration", "roadmap", "support", "escalation", "pilot", "deployment",
    "security", "audit", "budget", "timeline", "milestone", "workshop", "training", "feedback",
    "licence", "seats", "discount", "approval",
)  # fmt: skip
WORDS = (
    *TOPICS, "the", "a", "to", "of", "and", "for", "with", "on", "we", "you", "please", "let",
    "me", "know", "thanks", "regards",
)  # fmt: skip


def _encoded(name: str, rng: random.Random) -> str:
    """A display name as a mailer writes it: plain, quoted, or RFC 2047 encoded."""
    if name.isascii():
        return f'"{name}"' if rng.random() < 0.3 else name
    if rng.random() < 0.5:
        return "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="
    q = quopri.encodestring(name.encode(), header=True).decode()
    return f"=?utf-8?q?{q}?="


def _contacts(count: int, rng: random.Random) -> list[tuple[str, str]]:
    people = []
    for i in range(count):
        first = rng.choice(FIRST_INTL if i % 3 == 0 else FIRST)
        last = rng.choice(LAST)
        people.append((f"{first} {last}", f"{last.lower()}.{i}@client{i % 400}.example"))
    return people


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60))).capitalize() + "."
        for _ in range(count)
    ]


def _wrap(text: str, width: int = 76) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def message(n: int, contacts: Sequence[tuple[str, str]], rng: random.Random) -> bytes:
    """One generated message, about 8 KB."""
    name, addr = rng.choice(contacts)
    sender = f"{_encoded(name, rng)} <{addr}>"
    others = [rng.choice(contacts) for _ in range(rng.randint(0, 3))]
    incoming = rng.random() < 0.6
    from_, to = (sender, OWNER) if incoming else (OWNER, sender)
    date = T0 + timedelta(minutes=11 * n)
    headers = [
        f"Return-Path: <{addr}>",
        *(
            f"Received: from mx{k}.client.example (mx{k}.client.example [192.0.2.{k + 1}])\r\n"
            f"\tby mx.northwind.example with ESMTPS id {n:08x}{k}\r\n"
            f"\tfor <owner@northwind.example>; {format_datetime(date)}"
            for k in range(3)
        ),
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=client.example; s=s1;\r\n"
        "\th=from:to:subject:date:message-id; bh=" + "x" * 44 + ";\r\n\tb=" + "A" * 340,
        "Authentication-Results: mx.northwind.example; dkim=pass; spf=pass; dmarc=pass",
        f"From: {from_}",
        f"To: {to}",
    ]
    if others:
        headers.append("Cc: " + ", ".join(f"{_encoded(o[0], rng)} <{o[1]}>" for o in others))
    topic = " ".join(rng.choice(TOPICS) for _ in range(4))
    reply = n > 3 and rng.random() < 0.4
    headers += [
        f"Subject: {'Re: ' if reply else ''}{topic.capitalize()} {n}",
        f"Date: {format_datetime(date)}",
        f"Message-ID: <{n}.{rng.getrandbits(48):012x}@mail.client.example>",
    ]
    if reply:
        ref = f"<{n - 3}.{n * 7919:012x}@mail.client.example>"
        headers += [f"In-Reply-To: {ref}", f"References: <{n - 5}@mail.example> {ref}"]
    headers += ["MIME-Version: 1.0", "X-Mailer: Generated Mail 1.0"]

    paragraphs = _paragraphs(rng, rng.randint(7, 10))
    text = "\r\n\r\n".join("\r\n".join(_wrap(p)) for p in paragraphs)
    html = (
        '<html><head><style>p { font-family: sans-serif; }</style></head><body><div dir="ltr">'
        + "".join(f"<p>{p}</p>\r\n" for p in paragraphs)
        + "<div>--<br>Regards</div></div></body></html>"
    )
    html_lines = "\r\n".join(html[i : i + 76] for i in range(0, len(html), 76))
    alt = (
        f'Content-Type: multipart/alternative; boundary="alt-{n}"\r\n\r\n'
        f"--alt-{n}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
        f"--alt-{n}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 7bit\r\n\r\n{html_lines}\r\n--alt-{n}--\r\n"
    )
    if n % 4 == 0:
        blob = base64.encodebytes(rng.randbytes(1100)).decode().replace("\n", "\r\n")
        body = (
            f'Content-Type: multipart/mixed; boundary="mix-{n}"\r\n\r\n'
            f"--mix-{n}\r\n{alt}\r\n--mix-{n}\r\n"
            f'Content-Type: application/pdf; name="quote-{n}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="quote-{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{blob}--mix-{n}--\r\n"
        )
    else:
        body = alt
    return ("\r\n".join(headers) + "\r\n" + body).encode()


def corpus(count: int, seed: int = 11) -> list[bytes]:
    """``count`` deterministic messages among a pool of 2,000 correspondents."""
    rng = random.Random(seed)
    contacts = _contacts(2000, rng)
    return [message(n, contacts, rng) for n in range(count)]


def _rate(fn: Callable[[bytes], object], raws: Sequence[bytes]) -> tuple[float, float]:
    """Messages per second of wall-clock and of CPU time (robust to a busy machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for raw in raws:
        fn(raw)
    return len(raws) / (time.perf_counter() - wall), len(raws) / (time.process_time() - cpu)


def _stdlib_default(raw: bytes) -> object:
    msg = email.message_from_bytes(raw, policy=policy.default)
    body = msg.get_body(("plain", "html"))
    return (msg["from"], msg["to"], msg["date"], body.get_content() if body else None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=2_000, help="messages for the stdlib")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    args = parser.parse_args(argv)

    raws = corpus(args.messages)
    heads = [header_block(raw) for raw in raws]
    sample = raws[: args.sample]
    size = sum(map(len, raws)) / len(raws)
    print(f"{len(raws):,} messages, avg {size / 1024:.1f} KiB ({sum(map(len, raws)) >> 20} MiB)")

    def full(raw: bytes) -> object:
        return parse_message(raw, provider_id="b")

    def metadata(raw: bytes) -> object:
        return parse_message(raw, provider_id="b", detail=Detail.METADATA)

    def fast(raw: bytes) -> object:
        return fast_mail_parser.parse_email(raw, mode="lazy")

    rows = [
        ("commlink parse_message FULL", full, raws, args.rounds),
        ("commlink METADATA, header-only bytes", metadata, heads, args.rounds),
        ("fast-mail-parser parse_email (raw)", fast, raws, args.rounds),
        ("stdlib policy.default, full", _stdlib_default, sample, 1),
        ("stdlib compat32, parse", lambda r: email.message_from_bytes(r), sample, 1),
    ]
    print(f"{'':40s} {'wall msg/s':>12s} {'CPU msg/s':>12s}")
    for label, fn, data, rounds in rows:
        runs = [_rate(fn, data) for _ in range(rounds)]
        wall = max(r[0] for r in runs)
        cpu = max(r[1] for r in runs)
        print(f"{label:40s} {wall:12,.0f} {cpu:12,.0f}  ({len(data):,} messages)")


if __name__ == "__main__":
    main()
