"""Deterministic, realistic generated mail for the benchmarks.

Messages are multipart/alternative (text + HTML), about 4-8 KB, between an
owner at ``northwind.example`` and people at many client companies, with
a share of replies, newsletters, internal mail and no-reply senders.
"""

from __future__ import annotations

import argparse
import base64
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

OWNER = "owner@northwind.example"
COMPANIES = 20_000
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
WORDS = [
    "proposal",
    "renewal",
    "contract",
    "pricing",
    "onboarding",
    "meeting",
    "quarterly",
    "review",
    "invoice",
    "integration",
    "roadmap",
    "support",
    "escalation",
    "pilot",
    "deployment",
    "security",
    "audit",
    "budget",
    "timeline",
    "milestone",
    "workshop",
    "training",
    "feedback",
    "licence",
    "seats",
    "discount",
    "approval",
]
FIRST = [
    "Ann",
    "Bob",
    "Carla",
    "Dev",
    "Erin",
    "Farid",
    "Gita",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Mona",
    "Nils",
    "Olga",
    "Paul",
]
LAST = [
    "Smith",
    "Jones",
    "Novak",
    "Rossi",
    "Meyer",
    "Dubois",
    "Silva",
    "Kowalski",
    "Tanaka",
    "Berg",
    "Moreau",
    "Costa",
]


def person(i: int) -> tuple[str, str]:
    """The display name and address of generated person ``i``."""
    name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"
    return name, f"{name.split()[0].lower()}.{i}@client{i % COMPANIES}.example"


def message(n: int, people: int, rng: random.Random, *, size: int = 6000) -> bytes:
    kind = rng.random()
    pname, paddr = person(rng.randrange(people))
    cname, caddr = person(rng.randrange(people))
    if kind < 0.45:
        sender, to, cc = f"{pname} <{paddr}>", f"Owner <{OWNER}>", f"{cname} <{caddr}>"
    elif kind < 0.85:
        sender, to, cc = f"Owner <{OWNER}>", f"{pname} <{paddr}>", ""
    elif kind < 0.92:
        sender, to, cc = "Colleague <colleague@northwind.example>", f"Owner <{OWNER}>", ""
    elif kind < 0.97:
        sender, to, cc = f"News <news@client{n % 50}.example>", f"Owner <{OWNER}>", ""
    else:
        sender, to, cc = "Billing <no-reply@billing.example>", f"Owner <{OWNER}>", ""
    subject = " ".join(rng.choice(WORDS) for _ in range(5)).capitalize()
    words = " ".join(rng.choice(WORDS) for _ in range(size // 14))
    text = "\r\n".join(words[i : i + 72] for i in range(0, len(words), 72))
    html = "<html><body><p>" + words[: size // 2] + "</p></body></html>"
    reply = n > 10 and rng.random() < 0.4
    headers = [
        f"From: {sender}",
        f"To: {to}",
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: {'Re: ' if reply else ''}{subject}",
        f"Date: {format_datetime(sent_at(n))}",
        f"Message-ID: <bench-{n}@generated.example>",
        *([f"In-Reply-To: <bench-{n - 3}@generated.example>"] if reply else []),
        *([f"References: <bench-{n - 3}@generated.example>"] if reply else []),
        *(["List-Unsubscribe: <mailto:unsubscribe@news.example>"] if 0.92 <= kind < 0.97 else []),
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="b1"',
    ]
    body = (
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b1--\r\n"
    )
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def sent_at(n: int) -> datetime:
    """When message ``n`` was sent: its Date header."""
    return T0 + timedelta(minutes=7 * n)


def arrival(n: int) -> int:
    """When message ``n`` arrived, in Unix seconds (a Maildir file name's time)."""
    return int(sent_at(n).timestamp()) + 30


def messages(count: int, people: int, seed: int = 7) -> Iterator[bytes]:
    rng = random.Random(seed)
    for n in range(count):
        yield message(n, people, rng)


def add_file_options(parser: argparse.ArgumentParser, share_help: str) -> None:
    """``--attachments SHARE`` and ``--attachment-kib K``: the messages given a
    PDF by ``with_attachment``, and its size."""
    parser.add_argument("--attachments", type=float, default=0.0, metavar="SHARE", help=share_help)
    parser.add_argument(
        "--attachment-kib", type=int, default=300, metavar="K", help="attachment size (KiB)"
    )


def picked_for_files(count: int, share: float) -> set[int]:
    """The messages (of ``count``) that ``with_attachment`` turns into mail
    with a file: ``share`` of them, picked with their own seed."""
    share = min(max(share, 0.0), 1.0)
    return set(random.Random(11).sample(range(count), round(count * share)))


def with_attachment(raw: bytes, n: int, kib: int) -> bytes:
    """Corpus message ``n`` as ``multipart/mixed``: its multipart/alternative
    body, then a PDF of ``kib`` KiB of random bytes (seeded by ``n``)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    alternative = b'Content-Type: multipart/alternative; boundary="b1"'
    assert head.endswith(alternative), head[-200:]
    data = base64.b64encode(random.Random(n).randbytes(kib * 1024))
    lines = b"\r\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    name = f"report-{n}.pdf".encode()
    return b"".join(
        [
            head[: -len(alternative)],
            b'Content-Type: multipart/mixed; boundary="m1"\r\n\r\n',
            b"--m1\r\n",
            alternative,
            b"\r\n\r\n",
            body,
            b'\r\n--m1\r\nContent-Type: application/pdf; name="',
            name,
            b'"\r\nContent-Transfer-Encoding: base64\r\n'
            b'Content-Disposition: attachment; filename="',
            name,
            b'"\r\n\r\n',
            lines,
            b"\r\n--m1--\r\n",
        ]
    )
