"""Peak memory of opening a large attachment: IMAP (Dovecot), Graph, EWS and Gmail.

A message with one attachment of ``--mb`` MiB of random bytes (base64 in
the message, ~1.37 times larger) is put on a private Dovecot and on the
local Graph, EWS and Google API servers. A fresh process then opens the
attachment through the provider's ``open_attachment``, reads every chunk,
hashes it and reports its own peak RSS (``VmHWM``), the time taken and
whether the bytes match; each is held to ``--limit-mb``. The same process
size without the fetch (imports only) is shown for scale; the servers run
in this process and are not counted.

    python benchmarks/attachment_stream.py [--mb 30] [--limit-mb 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def big_content(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def big_message(size: int) -> bytes:
    m = EmailMessage()
    m["From"] = "Ann Client <ann@client.example>"
    m["To"] = "owner@home.example"
    m["Subject"] = "Big file"
    m["Message-ID"] = "<big@attachments>"
    m.set_content("A big file.\n")
    m.add_attachment(big_content(size), "application", "octet-stream", filename="big.bin")
    return bytes(m).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _peak_mb() -> float:
    """This process's peak RSS. ``VmHWM`` starts afresh at exec; ``ru_maxrss``
    would carry the parent's peak over into a child on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the attachment described by ``spec`` in this process and measure."""
    from commlink.model import Attachment
    from commlink.ports import Scope

    attachment = Attachment("big.bin", "application/octet-stream", spec.get("size", 0), part="2")
    provider: Any
    if spec["kind"] == "imap":
        from commlink.providers.imap.provider import ImapProvider

        provider = ImapProvider(
            spec["host"], spec["port"], username=spec["user"], password=spec["password"], ssl=False
        )
    elif spec["kind"] == "graph":
        from commlink.providers.microsoft.graph import GraphMailProvider
        from commlink.providers.microsoft.graph.auth import StaticToken
        from commlink.providers.microsoft.graph.client import GraphClient

        client = GraphClient(StaticToken(spec["token"]), base_url=spec["base_url"])
        provider = GraphMailProvider(client, user=spec["user"])
    elif spec["kind"] == "ews":
        from commlink.providers.microsoft.exchange import ExchangeMailProvider, connect

        provider = ExchangeMailProvider(
            connect(
                spec["user"],
                service_endpoint=spec["url"],
                auth="basic",
                username=spec["user"],
                password=spec["password"],
            )
        )
    elif spec["kind"] == "gmail":
        from google.oauth2.credentials import Credentials

        from commlink.providers.google.gmail import GmailProvider

        provider = GmailProvider(Credentials(token=spec["token"]), api_endpoint=spec["base_url"])
    else:
        return {"imports_only_mb": round(_peak_mb(), 1)}
    digest = hashlib.sha256()
    total = 0
    started = time.perf_counter()
    opened = provider.open_attachment(
        Scope(spec["scope"]), spec["provider_id"], [attachment], 0, spec["max_bytes"]
    )
    with opened as chunks:
        for chunk in chunks:
            digest.update(chunk)
            total += len(chunk)
    provider.close()
    return {
        "bytes": total,
        "sha256": digest.hexdigest(),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(_peak_mb(), 1),
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """``child(spec)`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    if done.returncode:
        raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def imap_spec(host: str, port: int, user: str, password: str, size: int) -> dict[str, Any]:
    """Where the big message sits on an IMAP server (the newest in INBOX)."""
    from commlink.providers.imap.provider import ImapProvider

    with ImapProvider(host, port, username=user, password=password, ssl=False) as provider:
        ids = provider.list_page(provider.scopes(provider.folders())[0], None).ids
    return {
        "kind": "imap",
        "host": host,
        "port": port,
        "user": user,
        "password": password,
        "scope": "INBOX",
        "provider_id": ids[0],
        "size": size,
        "max_bytes": size + 1,
    }


def gmail_spec(base_url: str, token: str, message_id: str, size: int) -> dict[str, Any]:
    """Where the big message sits on a Gmail API server."""
    return {
        "kind": "gmail",
        "base_url": base_url,
        "token": token,
        "scope": "gmail",
        "provider_id": message_id,
        "size": size,
        "max_bytes": size + 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=30)
    parser.add_argument("--limit-mb", type=float, default=100.0)
    parser.add_argument("--child")
    # Gmail is always measured now; the flag stays for older command lines
    parser.add_argument("--gmail", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sys.path.insert(0, str(SRC))
    from commlink.testing.dovecot import DovecotServer
    from commlink.testing.microsoft import GraphServer

    size = args.mb * 2**20
    raw = big_message(size)
    expected = hashlib.sha256(big_content(size)).hexdigest()
    print(f"attachment {args.mb} MiB, message {len(raw) / 2**20:.1f} MiB")
    print(f"imports only: {measure({'kind': 'none'})['imports_only_mb']} MB peak RSS")
    failed = False
    with DovecotServer() as dovecot:
        dovecot.deliver("INBOX", [raw])
        spec = imap_spec(dovecot.host, dovecot.port, dovecot.username, dovecot.password, size)
        failed |= _report("imap (Dovecot)", measure(spec), expected, args.limit_mb)
    with GraphServer(user="owner@home.example") as graph:
        message_id = graph.mail.add_message(raw)
        spec = {
            "kind": "graph",
            "base_url": graph.base_url,
            "token": graph.token,
            "user": "owner@home.example",
            "scope": "inbox",
            "provider_id": message_id,
            "size": size,
            "max_bytes": size + 1,
        }
        failed |= _report("graph (local server)", measure(spec), expected, args.limit_mb)
    from commlink.testing.microsoft import EwsServer

    with EwsServer() as ews:
        item_id = ews.add_message("inbox", raw)
        spec.update(kind="ews", url=ews.url, user=ews.user, password=ews.password)
        spec.update(scope="inbox", provider_id=item_id)
        failed |= _report("ews (local server)", measure(spec), expected, args.limit_mb)
    from commlink.testing.google import GoogleApiServer

    with GoogleApiServer(user="owner@home.example") as google:
        message_id = google.gmail.add_message("owner@home.example", raw)
        spec = gmail_spec(google.base_url, google.token, message_id, size)
        failed |= _report("gmail (local server)", measure(spec), expected, args.limit_mb)
    sys.exit(1 if failed else 0)


def _report(name: str, found: dict[str, Any], expected: str, limit: float) -> bool:
    same = found["sha256"] == expected
    within = found["peak_rss_mb"] < limit
    print(
        f"{name:22} {found['bytes'] / 2**20:6.1f} MiB in {found['seconds']:5.2f} s, "
        f"peak RSS {found['peak_rss_mb']:6.1f} MB ({'within' if within else 'OVER'} "
        f"{limit:g} MB), content {'identical' if same else 'DIFFERENT'}"
    )
    return not (same and within)


if __name__ == "__main__":
    main()
