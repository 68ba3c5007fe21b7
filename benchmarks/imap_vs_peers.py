"""Full IMAP sync of 10,000 messages: commlink against mbsync, offlineimap and
a hand-written imaplib loop, all reading the same private Dovecot.

The corpus (benchmarks/corpus.py) is written as Maildir files in three
folders. Each contender runs as a fresh process; wall time and the peak RSS
of that process are reported. Then: the round trips and time of a no-change
incremental pass, and how long a new message takes to show in the store
with the Runner and IMAP IDLE.

    python benchmarks/imap_vs_peers.py [--count 10000] [--skip mbsync offlineimap]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import imaplib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

FOLDERS = {"INBOX": 0.5, "Sent": 0.25, "Archive": 0.25}


def populate(server: Any, count: int) -> None:
    from corpus import messages

    corpus = list(messages(count, people=50_000))
    start = 0
    for n, (folder, share) in enumerate(FOLDERS.items()):
        size = count - start if n == len(FOLDERS) - 1 else int(count * share)
        server.deliver(folder, corpus[start : start + size])
        start += size


# -- contenders (each runs in its own process) ------------------------------------------


def commlink_child(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy, Visibility
    from commlink.providers.imap.provider import ImapProvider
    from commlink.stores.sql import SqlDirectory, SqlStore
    from commlink.sync.engine import SyncEngine

    visibility = Visibility.METADATA if args.contender == "commlink-metadata" else Visibility.FULL
    store = SqlStore(f"sqlite:///{work}/commlink.sqlite")
    channel = Channel(
        "bench",
        "owner",
        ChannelKind.MAIL,
        "imap",
        ChannelSettings(
            owner="owner@northwind.example",
            contact_policy=ContactPolicy.NONE,
            visibility=visibility,
        ),
    )
    engine = SyncEngine(store, SqlDirectory(store))
    provider = ImapProvider(
        "127.0.0.1", args.port, username=args.user, password=args.password, ssl=False
    )
    report = engine.run(channel, provider)
    assert not report.errors, report.errors
    result: dict[str, Any] = {
        "messages": report.fetched,
        "imported": report.imported,
        "skipped": sum(report.skipped.values()),
    }
    # a no-change pass on the same connection
    before = provider.round_trips
    started = time.perf_counter()
    quiet = engine.run(channel, provider)
    result["quiet_seconds"] = time.perf_counter() - started
    assert quiet.imported == 0, quiet
    assert not quiet.errors, quiet.errors
    result["quiet_round_trips"] = provider.round_trips - before
    result["scopes"] = quiet.scopes
    provider.close()
    return result


def imaplib_child(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    conn = imaplib.IMAP4("127.0.0.1", args.port)
    conn.login(args.user, args.password)
    total = 0
    for folder in FOLDERS:
        conn.select(folder, readonly=True)
        _, data = conn.uid("SEARCH", "ALL")
        uids = data[0].split()
        for start in range(0, len(uids), 500):
            chunk = b",".join(uids[start : start + 500]).decode()
            _, rows = conn.uid("FETCH", chunk, "(BODY.PEEK[])")
            for row in rows:
                if not isinstance(row, tuple):
                    continue
                message = email.message_from_bytes(row[1], policy=email.policy.default)
                _ = (message["subject"], message["from"], message["to"], message["date"])
                body = message.get_body(("plain", "html"))
                if body is not None:
                    body.get_content()
                total += 1
    conn.logout()
    return {"messages": total}


def mbsync_config(args: argparse.Namespace, work: Path, fsync: bool) -> Path:
    local = work / "mbsync"
    local.mkdir()
    config = work / "mbsyncrc"
    config.write_text(
        f"""FSync {"yes" if fsync else "no"}

IMAPAccount bench
Host 127.0.0.1
Port {args.port}
User {args.user}
Pass {args.password}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns INBOX Sent Archive
Create Near
Sync Pull
SyncState *
"""
    )
    return config


def offlineimap_config(args: argparse.Namespace, work: Path) -> Path:
    config = work / "offlineimaprc"
    config.write_text(
        f"""[general]
accounts = bench
metadata = {work}/offlineimap-meta
ui = quiet

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {work}/offlineimap

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {args.port}
remoteuser = {args.user}
remotepass = {args.password}
ssl = no
starttls = no
maxconnections = 1
readonly = True
folderfilter = lambda name: name in ("INBOX", "Sent", "Archive")
"""
    )
    return config


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a process; its wall time, peak RSS (VmHWM sampled every 10 ms) and,
    for our own children, its JSON result."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or dict(os.environ)
    )
    peak = [0]

    def sample() -> None:
        # VmHWM of the process itself: ru_maxrss from wait4 would include the
        # forking Python parent's memory, which the child inherits until exec
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.01)

    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    out = process.stdout.read()  # type: ignore[union-attr]
    reader.join()
    err = b"".join(errors)
    process.wait()
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = {"seconds": seconds, "rss_mb": peak[0] / 1024}
    lines = out.decode().strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result.update(json.loads(lines[-1]))
    return result


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


# -- IDLE latency ---------------------------------------------------------------------


def idle_latency(server: Any, work: Path, rounds: int = 5) -> list[float]:
    """Seconds from APPEND until the message is in the store, Runner + IDLE."""
    import imapclient

    from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
    from commlink.providers.imap.provider import ImapProvider
    from commlink.stores.sql import SqlDirectory, SqlStore
    from commlink.sync.engine import SyncEngine
    from commlink.sync.runner import Runner

    user = "idle"
    server.add_user(user)
    store = SqlStore(f"sqlite:///{work}/idle.sqlite")
    channel = Channel(
        "idle",
        "owner",
        ChannelKind.MAIL,
        "imap",
        ChannelSettings(owner="owner@northwind.example", contact_policy=ContactPolicy.NONE),
    )
    store.save_channel(channel)

    def connect(_: Channel) -> ImapProvider:
        return ImapProvider(
            server.host, server.port, username=user, password=server.password, ssl=False
        )

    runner = Runner(SyncEngine(store, SqlDirectory(store)), connect, interval=timedelta(hours=1))
    runner.run_once()
    thread = threading.Thread(target=runner.serve, kwargs={"tick": timedelta(seconds=30)})
    thread.start()
    admin = imapclient.IMAPClient(server.host, server.port, ssl=False)
    admin.login(user, server.password)
    latencies = []
    try:
        time.sleep(1.0)  # the watcher logs in and starts IDLE
        for n in range(rounds):
            raw = (
                f"From: Ann <ann@client{n}.example>\r\nTo: owner@northwind.example\r\n"
                f"Subject: ping {n}\r\nMessage-ID: <ping-{n}@bench>\r\n\r\nhello\r\n"
            ).encode()
            started = time.perf_counter()
            admin.append("INBOX", raw)
            while not store.threads_by_message_ids([f"ping-{n}@bench"]):
                if time.perf_counter() - started > 30:
                    raise RuntimeError("the message never arrived")
                time.sleep(0.005)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.3)
    finally:
        admin.logout()
        runner.stop()
        thread.join(timeout=10)
    return latencies


# -- driver ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--password", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = Path(args.child)
        run = imaplib_child if args.contender == "imaplib" else commlink_child
        print(json.dumps(run(args, work)))
        return

    from commlink.testing.dovecot import DovecotServer

    with tempfile.TemporaryDirectory() as tmp, DovecotServer() as server:
        print(f"writing {args.count:,} messages into {', '.join(FOLDERS)} ...", flush=True)
        populate(server, args.count)
        import imapclient

        warm = imapclient.IMAPClient(server.host, server.port, ssl=False)
        warm.login(server.username, server.password)
        for folder in FOLDERS:  # let Dovecot build its indexes before any timing
            warm.select_folder(folder, readonly=True)
            warm.search(["ALL"])
        warm.logout()
        base = [
            sys.executable,
            __file__,
            "--port",
            str(server.port),
            "--user",
            server.username,
            "--password",
            server.password,
        ]
        results: dict[str, dict[str, Any]] = {}
        contenders = [
            "commlink-full",
            "commlink-metadata",
            "imaplib",
            "mbsync",
            "mbsync-nofsync",
            "offlineimap",
        ]
        for name in contenders:
            if any(name.startswith(s) for s in args.skip):
                continue
            work = Path(tmp) / name
            work.mkdir()
            if name.startswith("mbsync"):
                if shutil.which("mbsync") is None:
                    print(f"{name}: mbsync not installed (Debian: isync)")
                    continue
                config = mbsync_config(args_for(server), work, fsync=name == "mbsync")
                result = measure(["mbsync", "-q", "-c", str(config), "-a"])
                result["messages"] = count_files(work / "mbsync")
            elif name == "offlineimap":
                if shutil.which("offlineimap") is None:
                    print("offlineimap: not installed (Debian: offlineimap3)")
                    continue
                config = offlineimap_config(args_for(server), work)
                result = measure(["offlineimap", "-c", str(config), "-o", "-u", "quiet"])
                result["messages"] = count_files(work / "offlineimap")
            else:
                result = measure([*base, "--child", str(work), "--contender", name])
            results[name] = result
            print(
                f"{name:<18} {result['seconds']:7.2f} s  {result['messages']:>7,} msgs  "
                f"{result['messages'] / result['seconds']:8,.0f} msg/s  "
                f"peak RSS {result['rss_mb']:7.1f} MB",
                flush=True,
            )
        report(results)
        latencies = idle_latency(server, Path(tmp))
        print(
            "new message visible in the store (Runner + IDLE): "
            + ", ".join(f"{x * 1000:.0f}" for x in latencies)
            + f" ms; worst {max(latencies) * 1000:.0f} ms (target < 2,000 ms)"
        )


def args_for(server: Any) -> argparse.Namespace:
    return argparse.Namespace(port=server.port, user=server.username, password=server.password)


def report(results: dict[str, dict[str, Any]]) -> None:
    if not results:
        return
    print("\nwall time and peak RSS relative to commlink-full:")
    ref = results.get("commlink-full")
    for name, result in results.items():
        if ref is None:
            break
        print(
            f"  {name:<18} time x{result['seconds'] / ref['seconds']:5.2f}   "
            f"RSS x{result['rss_mb'] / ref['rss_mb']:5.2f}"
        )
    for name in ("commlink-full", "commlink-metadata"):
        result = results.get(name)
        if result is None:
            continue
        per_folder = result["quiet_round_trips"] / max(1, result["scopes"])
        print(
            f"{name}: no-change pass {result['quiet_round_trips']} round trips for "
            f"{result['scopes']} folders ({per_folder:.2f}/folder, target <= 3), "
            f"{result['quiet_seconds'] * 1000:.1f} ms (target < 50 ms); "
            f"imported {result['imported']:,}, skipped {result['skipped']:,}"
        )


if __name__ == "__main__":
    main()
