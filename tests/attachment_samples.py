"""Messages with attachments for the attachment tests, and a check that runs
one through a provider, a store and ``open_attachment``."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from email.message import EmailMessage
from email.utils import format_datetime

from commlink.attachments import open_attachment
from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
from commlink.ports import MailProvider as _Provider
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.provider_conformance import BASE, OWNER

__all__ = ["CHANNEL", "EXPECTED", "big_message", "drain", "read_all", "rich_message", "synced"]

CHANNEL = Channel(
    "att",
    "u-owner",
    ChannelKind.MAIL,
    "imap",
    ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
)

_rng = random.Random(20)
PDF = b"%PDF-1.4\n" + _rng.randbytes(200_000)
PNG = b"\x89PNG\r\n\x1a\n" + _rng.randbytes(3_000)
CSV = ("name;city\r\n" + "Zoë;Köln\r\n" * 200 + "x" * 300 + "\r\n").encode()
BIN = bytes(range(256)) * 40

#: filename -> content, for the rich message.
EXPECTED = {"logo.png": PNG, "report.pdf": PDF, "data.csv": CSV, "résumé.bin": BIN}


def rich_message(n: int = 1, sender: str = "ann@client.example") -> bytes:
    """A multipart/mixed message: text and HTML alternatives, an inline image
    (``cid:logo@x``), a PDF, a quoted-printable CSV, a forwarded message and
    a binary file with an encoded non-ASCII name."""
    m = EmailMessage()
    m["From"] = f"Ann Client <{sender}>"
    m["To"] = OWNER
    m["Subject"] = f"Files {n}"
    m["Date"] = format_datetime(BASE)
    m["Message-ID"] = f"<files-{n}@attachments>"
    m.set_content("See the files.\n")
    m.add_alternative('<p>See the files. <img src="cid:logo@x"></p>', subtype="html")
    m.add_attachment(PNG, "image", "png", filename="logo.png", cid="<logo@x>", disposition="inline")
    m.add_attachment(PDF, "application", "pdf", filename="report.pdf")
    m.add_attachment(CSV, "text", "csv", filename="data.csv", cte="quoted-printable")
    inner = EmailMessage()
    inner["From"] = sender
    inner["Subject"] = "Earlier note"
    inner.set_content("The earlier note.\n")
    m.add_attachment(inner)
    m.add_attachment(BIN, "application", "octet-stream", filename="résumé.bin")
    return bytes(m).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def big_message(size: int, n: int = 2) -> bytes:
    """A message with one attachment of ``size`` pseudo-random bytes (base64)."""
    m = EmailMessage()
    m["From"] = "Ann Client <ann@client.example>"
    m["To"] = OWNER
    m["Subject"] = f"Big file {n}"
    m["Date"] = format_datetime(BASE)
    m["Message-ID"] = f"<big-{n}@attachments>"
    m.set_content("A big file.\n")
    m.add_attachment(big_content(size), "application", "octet-stream", filename="big.bin")
    return bytes(m).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def big_content(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def synced(provider: _Provider, channel: Channel = CHANNEL) -> tuple[MemoryStore, str]:
    """``provider``'s mail synced into a new memory store; the store and the
    thread id of the first thread of Ann Client."""
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
    store.save_channel(channel)
    report = SyncEngine(store, directory).run(channel, provider)
    assert report.errors == []
    page = store.timeline(
        Target(TargetKind.PERSON, "p-ann"), Viewer(channel.user_id), PageRequest(limit=100)
    )
    assert page.items, "nothing was synced"
    return store, page.items[0].thread_id


def read_all(
    store: MemoryStore,
    provider: object,
    thread_id: str,
    *,
    viewer: Viewer | None = None,
    max_bytes: int = 50 * 2**20,
) -> dict[str, bytes]:
    """Every attachment of the thread's first message, by file name."""
    viewer = viewer or Viewer("u-owner")
    view = store.thread(thread_id, viewer)
    assert view is not None
    message = view.messages[0]
    found: dict[str, bytes] = {}
    providers: Callable[[str], object] = lambda _channel: provider  # noqa: E731
    for n, attachment in enumerate(message.attachments):
        with open_attachment(
            store, providers, thread_id, message.message_id, viewer, index=n, max_bytes=max_bytes
        ) as content:
            found[attachment.filename] = b"".join(content.chunks)
    return found


def drain(opened: AbstractContextManager[Iterator[bytes]]) -> bytes:
    """Everything an ``open_attachment`` of a provider yields."""
    with opened as chunks:
        return b"".join(chunks)
