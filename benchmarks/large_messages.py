"""Peak memory of a FULL sync of large messages, provider by provider.

Eight messages of 25 MB (decimal; mostly a base64 attachment of random
bytes) and a few small ones are served by each source: a private Dovecot
(IMAP), the local Google API server (Gmail), the local Graph and EWS
servers, a Maildir and an mbox file. Each sync into SQLite runs in a child
process of its own while the servers run in this one, so what is measured is
the sync alone: the peak RSS (``ru_maxrss`` from ``os.wait4``) of the child.
Children are started by a small launcher process that is itself started
before anything large is allocated here: a child's ``ru_maxrss`` includes
the peak of the process it was forked from. Target: under 300 MB everywhere.

    .venv/bin/python benchmarks/large_messages.py [--providers imap gmail ...]
        [--count 8] [--size 25000000] [--max-message-bytes N]

Run it against another checkout with ``PYTHONPATH=/that/checkout/src``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

OWNER = "owner@home.example"
PASSWORD = "bench-password"
PROVIDERS = ("imap", "gmail", "graph", "ews", "maildir", "mbox")
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

#: Runs each job it is sent (one JSON line: argv, env, output files) and
#: answers with its exit code and ``ru_maxrss``; it stays small, so the
#: children it forks inherit no large peak.
LAUNCHER = """
import json, os, subprocess, sys
for line in sys.stdin:
    job = json.loads(line)
    with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
        child = subprocess.Popen(job["argv"], stdout=out, stderr=err, env=job["env"])
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps({"rc": child.returncode, "maxrss_kb": usage.ru_maxrss}), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def run(self, argv: list[str], work: Path) -> dict[str, Any]:
        job = {
            "argv": argv,
            "env": dict(os.environ),
            "stdout": str(work / "child.out"),
            "stderr": str(work / "child.err"),
        }
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(job) + "\n").encode())
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        out = (work / "child.out").read_text().strip().splitlines()
        if answer["rc"] != 0 or not out:
            err = (work / "child.err").read_text()[-3000:]
            raise RuntimeError(f"child failed ({answer['rc']}): {err}")
        return {**json.loads(out[-1]), "rss_mb": answer["maxrss_kb"] / 1024}

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# -- the mail -------------------------------------------------------------------------


def large_message(n: int, size: int) -> bytes:
    """A message of exactly ``size`` bytes: a short text part and a base64
    attachment of random bytes."""
    boundary = f"bench-boundary-{n}"
    head = (
        f"From: Ann Client <ann@client.example>\r\nTo: {OWNER}\r\n"
        f"Subject: Large {n}\r\nDate: {format_datetime(BASE + timedelta(minutes=n))}\r\n"
        f"Message-ID: <large-{n}@bench.example>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "The drawings are attached.\r\n"
    ).encode()
    attachment = (
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: attachment; filename="drawings-{n}.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    room = size - len(head) - len(attachment) - len(tail)
    data = random.Random(n).randbytes(room // 78 * 57)  # 76 characters and CRLF per 57 bytes
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    short = size - len(head) - len(attachment) - len(encoded) - len(tail)
    filler = b"x" * (short - 2) + b"\r\n" if short >= 2 else b" " * short
    return head + filler + attachment + encoded + tail


def small_message(n: int) -> bytes:
    return (
        f"From: Ann Client <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Small {n}\r\n"
        f"Date: {format_datetime(BASE + timedelta(hours=1, minutes=n))}\r\n"
        f"Message-ID: <small-{n}@bench.example>\r\nContent-Type: text/plain\r\n\r\n"
        + "A short note about the drawings.\r\n"
        * 40
    ).encode()


def corpus(count: int, size: int, small: int) -> list[bytes]:
    return [large_message(n, size) for n in range(count)] + [small_message(n) for n in range(small)]


# -- the sources (in this process) ----------------------------------------------------


@contextlib.contextmanager
def serve(name: str, messages: list[bytes], work: Path) -> Iterator[dict[str, Any]]:
    """Start and seed the source; yield what a child needs to connect."""
    if name == "imap":
        from commlink.testing.dovecot import DovecotServer

        with DovecotServer() as server:
            server.deliver("INBOX", messages)
            yield {"port": server.port, "user": server.username, "password": server.password}
    elif name == "gmail":
        from commlink.testing.google import GoogleApiServer

        with GoogleApiServer(user=OWNER) as google:
            for raw in messages:
                google.gmail.add_message(OWNER, raw)
            yield {"endpoint": google.base_url, "token": google.token}
    elif name == "graph":
        from commlink.testing.microsoft import GraphServer

        with GraphServer(user=OWNER) as graph:
            for raw in messages:
                graph.mail.add_message(raw)
            yield {"base_url": graph.base_url, "token": graph.token}
    elif name == "ews":
        from commlink.testing.microsoft import EwsServer

        with EwsServer(user=OWNER, password=PASSWORD) as ews:
            for raw in messages:
                ews.add_message("inbox", raw)
            yield {"url": ews.url}
    elif name == "maildir":
        root = work / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True)
        for n, raw in enumerate(messages):
            (root / "cur" / f"{1_770_000_000 + n}.M{n}P1.bench:2,S").write_bytes(raw)
        yield {"path": str(root)}
    elif name == "mbox":
        path = work / "mail.mbox"
        with path.open("wb") as out:
            for raw in messages:
                out.write(b"From ann@client.example Mon Mar  2 09:00:00 2026\r\n")
                out.write(raw.replace(b"\r\nFrom ", b"\r\n>From ") + b"\r\n")
        yield {"path": str(path)}
    else:
        raise SystemExit(f"unknown provider {name}")


# -- the sync (in a child) ------------------------------------------------------------


def _with_limits(cls: Any, limits: Any) -> dict[str, Any]:
    """``limits=`` when the provider takes it (older checkouts do not)."""
    import inspect

    return {"limits": limits} if "limits" in inspect.signature(cls).parameters else {}


def open_provider(name: str, config: dict[str, Any], limits: Any) -> Any:
    if name == "imap":
        from commlink.providers.imap.provider import ImapProvider

        return ImapProvider(
            "127.0.0.1",
            config["port"],
            username=config["user"],
            password=config["password"],
            ssl=False,
            **_with_limits(ImapProvider, limits),
        )
    if name == "gmail":
        from google.oauth2.credentials import Credentials

        from commlink.providers.google.gmail import GmailProvider

        return GmailProvider(
            Credentials(token=config["token"]),
            api_endpoint=config["endpoint"],
            **_with_limits(GmailProvider, limits),
        )
    if name == "graph":
        from commlink.model import Detail
        from commlink.providers.microsoft.graph import GraphClient, GraphMailProvider, StaticToken

        client = GraphClient(StaticToken(config["token"]), base_url=config["base_url"])
        return GraphMailProvider(  # as the registry makes it for a FULL channel
            client, user=OWNER, delta_detail=Detail.FULL, **_with_limits(GraphMailProvider, limits)
        )
    if name == "ews":
        from commlink.providers.microsoft.exchange import ExchangeMailProvider, connect

        connection = connect(
            OWNER, service_endpoint=config["url"], auth="basic", username=OWNER, password=PASSWORD
        )
        return ExchangeMailProvider(connection, **_with_limits(ExchangeMailProvider, limits))
    if name == "maildir":
        from commlink.providers.files.maildir import MaildirProvider

        return MaildirProvider(config["path"], **_with_limits(MaildirProvider, limits))
    from commlink.providers.files.mbox import MboxProvider

    return MboxProvider(config["path"], **_with_limits(MboxProvider, limits))


class Counting:
    """A provider that counts the messages handed over headers only."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.too_large = 0

    def folders(self) -> Any:
        return self.inner.folders()

    def scopes(self, folders: Any) -> Any:
        return self.inner.scopes(folders)

    def snapshot(self, scope: Any) -> Any:
        return self.inner.snapshot(scope)

    def list_page(self, scope: Any, page: Any) -> Any:
        return self.inner.list_page(scope, page)

    def changes(self, scope: Any, cursor: Any) -> Any:
        return self.inner.changes(scope, cursor)

    def fetch(self, scope: Any, ids: Any, detail: Any) -> Iterator[Any]:
        for item in self.inner.fetch(scope, ids, detail):
            if getattr(item, "oversize", None) is not None:
                self.too_large += 1
            yield item

    def watch(self, scope: Any) -> Any:
        return None

    def close(self) -> None:
        self.inner.close()


def child(spec: dict[str, Any]) -> None:
    from commlink.model import Channel, ChannelKind, ChannelSettings, Limits, Visibility
    from commlink.stores.sql import SqlDirectory, SqlStore
    from commlink.sync.engine import SyncEngine

    name = spec["provider"]
    if name == "baseline":  # what the imports alone cost
        from commlink.providers.google.gmail import GmailProvider  # noqa: F401
        from commlink.providers.imap.provider import ImapProvider  # noqa: F401
        from commlink.providers.microsoft.exchange import ExchangeMailProvider  # noqa: F401
        from commlink.providers.microsoft.graph import GraphMailProvider  # noqa: F401

        print(json.dumps({"provider": name}))
        return
    limits = Limits(**spec["limits"])
    settings = ChannelSettings(owner=OWNER, visibility=Visibility.FULL, limits=limits)
    channel = Channel("bench", "u-owner", ChannelKind.MAIL, name, settings)
    store = SqlStore(f"sqlite:///{spec['work']}/commlink.sqlite")
    provider = Counting(open_provider(name, spec["config"], limits))
    started = time.perf_counter()
    report = SyncEngine(store, SqlDirectory(store)).run(channel, provider)
    result = {
        "provider": name,
        "seconds": round(time.perf_counter() - started, 2),
        "fetched": report.fetched,
        "imported": report.imported,
        "too_large": provider.too_large,
        "errors": report.errors[:3],
    }
    provider.close()
    print(json.dumps(result))


# -- driver ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    parser.add_argument("--count", type=int, default=8, help="large messages")
    parser.add_argument("--size", type=int, default=25_000_000, help="bytes per large message")
    parser.add_argument("--small", type=int, default=5, help="small messages")
    parser.add_argument("--max-message-bytes", type=int, default=None)
    parser.add_argument("--fetch-batch-bytes", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    launcher = Launcher()  # first, while this process is still small
    limits = {
        k: v
        for k, v in (
            ("max_message_bytes", args.max_message_bytes),
            ("fetch_batch_bytes", args.fetch_batch_bytes),
        )
        if v is not None
    }
    script = str(Path(__file__).resolve())
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
            base = Path(tmp)
            spec = {"provider": "baseline"}
            baseline = launcher.run([sys.executable, script, "--child", json.dumps(spec)], base)
            print(f"baseline (imports only): peak RSS {baseline['rss_mb']:.0f} MB", flush=True)
            messages = corpus(args.count, args.size, args.small)
            total = sum(len(m) for m in messages)
            print(
                f"{args.count} x {args.size:,} bytes + {args.small} small "
                f"({total / 1e6:.1f} MB) per provider; limits {limits or 'default'}",
                flush=True,
            )
            for name in args.providers:
                work = base / name
                work.mkdir()
                with serve(name, messages, work) as config:
                    job = {"provider": name, "config": config, "work": str(work), "limits": limits}
                    result = launcher.run(
                        [sys.executable, script, "--child", json.dumps(job)], work
                    )
                rows.append(result)
                print(
                    f"{name:8} peak RSS {result['rss_mb']:7.0f} MB  "
                    f"imported {result['imported']:3}  too-large {result['too_large']:3}  "
                    f"{result['seconds']:6.1f}s  errors {result['errors'] or 'none'}",
                    flush=True,
                )
    finally:
        launcher.close()
    worst = max(r["rss_mb"] for r in rows) if rows else 0
    print(f"highest peak RSS: {worst:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    main()
