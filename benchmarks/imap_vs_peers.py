"""Full IMAP sync of 10,000 messages: commlink against mbsync, offlineimap and
a hand-written imaplib loop (each message parsed by the standard library's
``email`` package, its headers and body read: what a hand-rolled sync
does), all reading the same private Dovecot.

The corpus (benchmarks/corpus.py) is written as Maildir files in three
folders. Each contender runs as a fresh process; wall time, CPU time (user
+ system) and the peak RSS of that process are reported, and every figure
relative to durable mbsync (``FSync yes``), which runs in the same session:
on a shared machine absolute figures drift, ratios much less. Then: the
round trips and time of a no-change incremental pass, and how long a new
message takes to show in the store with the Runner and IMAP IDLE.

commlink's modules are compiled to bytecode first, as an installed
package's are (mbsync is a binary; Debian's offlineimap comes compiled): a
checkout run with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every
module again in each contender's process.

``--baseline-src DIR`` also runs the commlink contenders from another
source tree (``DIR`` holds the ``commlink`` package, e.g. a checkout's
``src``), for a before/after comparison within one session; ``--repeat N``
runs every contender N times and reports medians. A commlink process sets
its garbage collector up as the ``commlink`` executable does
(``commlink.tune_gc()`` at the start, ``gc.freeze()`` as it ends; see
``gc_setting.py``); ``--default-gc`` leaves CPython's settings. ``--no-index-too`` adds
``commlink-noindex``: the full sync into a store that keeps no search index
(``SqlStore.set_search_index(False)``, for a host that searches with its
own engine), and ``commlink-headers``: into a store whose index leaves out
the words of bodies (``set_search_index(True, bodies=False)``).

``--attachments SHARE`` turns that share of the messages (picked with their
own seed; the rest of each message is unchanged) into ``multipart/mixed``
with an ``application/pdf`` attachment of ``--attachment-kib`` KiB (300 by
default) of random bytes, base64. An attachment's content is never stored
(it is fetched on demand), so commlink leaves it on the server, while a
mirror such as mbsync must download it: the figures are then mostly bytes
over the wire, and each commlink process reports the bytes of message
literals it received. It also adds ``commlink-whole``: the full sync with
every message fetched whole (``BODY.PEEK[]``), as before commlink fetched
messages without their file parts (``LEAN_MIN_BYTES`` set out of reach).

    python benchmarks/imap_vs_peers.py [--count 10000] [--skip mbsync offlineimap]
        [--baseline-src /tmp/old/src] [--repeat 3] [--default-gc] [--no-index-too]
        [--attachments 0.25] [--attachment-kib 300]
"""

from __future__ import annotations

import argparse
import compileall
import email
import email.policy
import imaplib
import json
import os
import shutil
import statistics
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

from corpus import add_file_options  # noqa: E402

FOLDERS = {"INBOX": 0.5, "Sent": 0.25, "Archive": 0.25}


def populate(server: Any, count: int, attachments: float = 0.0, kib: int = 300) -> None:
    from corpus import messages, picked_for_files, with_attachment

    corpus = list(messages(count, people=50_000))
    picked = picked_for_files(count, attachments)
    start = 0
    for n, (folder, share) in enumerate(FOLDERS.items()):
        size = count - start if n == len(FOLDERS) - 1 else int(count * share)
        # in slices: with attachments, a folder's messages can take gigabytes
        for first in range(start, start + size, 500):
            last = min(first + 500, start + size)
            server.deliver(
                folder,
                [
                    with_attachment(corpus[i], i, kib) if i in picked else corpus[i]
                    for i in range(first, last)
                ],
            )
        start += size


# -- contenders (each runs in its own process) ------------------------------------------


def commlink_child(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from gc_setting import apply

    collector = apply(args.default_gc)
    from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy, Visibility
    from commlink.providers.imap.provider import ImapProvider
    from commlink.stores.sql import SqlDirectory, SqlStore
    from commlink.sync.engine import SyncEngine

    if args.contender == "commlink-whole":
        from commlink.providers.imap import bodystructure

        bodystructure.LEAN_MIN_BYTES = 10**18  # every message fetched whole
    visibility = Visibility.METADATA if args.contender == "commlink-metadata" else Visibility.FULL
    store = SqlStore(f"sqlite:///{work}/commlink.sqlite")
    if args.contender == "commlink-noindex":
        store.set_search_index(False)
    elif args.contender == "commlink-headers":
        store.set_search_index(True, bodies=False)
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
        "gc": collector,
        "messages": report.fetched,
        "imported": report.imported,
        "skipped": sum(report.skipped.values()),
        "bytes_fetched": provider.bytes_fetched,
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


def compile_commlink(baseline_src: str | None) -> None:
    """Bytecode for the commlink modules the contenders import, next to them."""
    import commlink

    compileall.compile_dir(Path(commlink.__file__).parent, quiet=1)
    if baseline_src:
        compileall.compile_dir(Path(baseline_src) / "commlink", quiet=1)


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a process; its wall time, CPU time, peak RSS (VmHWM sampled every
    10 ms) and, for our own children, its JSON result."""
    # write back what earlier runs left dirty, so no contender's fsyncs wait
    # behind another's writes
    os.sync()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or dict(os.environ)
    )
    peak = [0]
    finished = threading.Event()

    def sample() -> None:
        # VmHWM of the process itself: ru_maxrss from wait4 would include the
        # forking Python parent's memory, which the child inherits until exec;
        # no poll() here, it would reap the child before wait4 can
        status = Path(f"/proc/{process.pid}/status")
        while not finished.is_set():
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
    # wait4: the CPU time of this child alone (its peak RSS comes from VmHWM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    finished.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": peak[0] / 1024,
    }
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
    parser.add_argument("--baseline-src", help="also run commlink from this source tree")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (medians)")
    parser.add_argument(
        "--default-gc", action="store_true", help="leave out commlink.tune_gc() (gc_setting.py)"
    )
    parser.add_argument(
        "--no-index-too",
        action="store_true",
        help="also run commlink-headers and commlink-noindex: the full sync into a store "
        "whose search index leaves out bodies, and into one without a search index",
    )
    add_file_options(
        parser, "share of the messages given a PDF attachment; also runs commlink-whole"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--password", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = Path(args.child)
        run = imaplib_child if args.contender == "imaplib" else commlink_child
        print(json.dumps(run(args, work)), flush=True)
        if run is commlink_child:
            from gc_setting import before_exit

            before_exit(args.default_gc)
        return

    from commlink.testing.dovecot import DovecotServer

    compile_commlink(args.baseline_src)
    with tempfile.TemporaryDirectory() as tmp, DovecotServer() as server:
        print(f"writing {args.count:,} messages into {', '.join(FOLDERS)} ...", flush=True)
        populate(server, args.count, args.attachments, args.attachment_kib)
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
            *(["--default-gc"] if args.default_gc else []),
        ]
        results: dict[str, dict[str, Any]] = {}
        contenders = [
            "commlink-full",
            *(["commlink-whole"] if args.attachments > 0 else []),
            "commlink-metadata",
            *(["commlink-headers", "commlink-noindex"] if args.no_index_too else []),
            "imaplib",
            "mbsync",
            "mbsync-nofsync",
            "offlineimap",
        ]
        if args.baseline_src:
            at = contenders.index("commlink-metadata") + 1
            contenders[at:at] = ["commlink-full@baseline", "commlink-metadata@baseline"]
        contenders = [c for c in contenders if not any(c.startswith(s) for s in args.skip)]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        # round by round, not contender by contender: on a shared machine the
        # load drifts, and every contender should see the same drift
        for n in range(max(1, args.repeat)):
            for name in contenders:
                if n and not runs[name]:
                    continue  # not installed
                work = Path(tmp) / f"{name}-{n}"
                work.mkdir()
                result = run_contender(name, args, server, base, work)
                if result is not None:
                    runs[name].append(result)
                    print(f"  round {n + 1}: {describe(name, result)}", flush=True)
        for name in contenders:
            if runs[name]:
                results[name] = median_of(runs[name])
                print(describe(name, results[name]))
        report(results)
        latencies = idle_latency(server, Path(tmp))
        print(
            "new message visible in the store (Runner + IDLE): "
            + ", ".join(f"{x * 1000:.0f}" for x in latencies)
            + f" ms; worst {max(latencies) * 1000:.0f} ms (target < 2,000 ms)"
        )


def run_contender(
    name: str, args: argparse.Namespace, server: Any, base: list[str], work: Path
) -> dict[str, Any] | None:
    """One run of one contender, ``None`` when it is not installed."""
    if name.startswith("mbsync"):
        if shutil.which("mbsync") is None:
            print(f"{name}: mbsync not installed (Debian: isync)")
            return None
        config = mbsync_config(args_for(server), work, fsync=name == "mbsync")
        result = measure(["mbsync", "-q", "-c", str(config), "-a"])
        result["messages"] = count_files(work / "mbsync")
        return result
    if name == "offlineimap":
        if shutil.which("offlineimap") is None:
            print("offlineimap: not installed (Debian: offlineimap3)")
            return None
        config = offlineimap_config(args_for(server), work)
        result = measure(["offlineimap", "-c", str(config), "-o", "-u", "quiet"])
        result["messages"] = count_files(work / "offlineimap")
        return result
    contender, _, variant = name.partition("@")
    env = dict(os.environ)
    if variant == "baseline":
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.baseline_src, env.get("PYTHONPATH")) if p
        )
    return measure([*base, "--child", str(work), "--contender", contender], env)


def describe(name: str, result: dict[str, Any]) -> str:
    fetched = result.get("bytes_fetched")
    return (
        f"{name:<27} {result['seconds']:7.2f} s  cpu {result['cpu']:6.2f} s  "
        f"{result['messages']:>7,} msgs  {result['messages'] / result['seconds']:8,.0f} msg/s  "
        f"peak RSS {result['rss_mb']:7.1f} MB"
        + (f"  fetched {fetched / 1e6:.1f} MB" if fetched is not None else "")
    )


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number over the runs (the first run's other values)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in runs)
    merged["runs"] = len(runs)
    return merged


def args_for(server: Any) -> argparse.Namespace:
    return argparse.Namespace(port=server.port, user=server.username, password=server.password)


def report(results: dict[str, dict[str, Any]]) -> None:
    if not results:
        return
    ref = results.get("mbsync")
    if ref is not None:
        print("\nrelative to durable mbsync (FSync yes), same session:")
        for name, result in results.items():
            print(
                f"  {name:<27} wall x{result['seconds'] / ref['seconds']:5.2f}   "
                f"cpu x{result['cpu'] / max(ref['cpu'], 1e-3):6.2f}   "
                f"RSS x{result['rss_mb'] / ref['rss_mb']:6.2f}"
            )
    for name in (
        "commlink-full",
        "commlink-full@baseline",
        "commlink-metadata",
        "commlink-metadata@baseline",
    ):
        quiet = results.get(name)
        if quiet is None:
            continue
        per_folder = quiet["quiet_round_trips"] / max(1, quiet["scopes"])
        print(
            f"{name}: no-change pass {quiet['quiet_round_trips']} round trips for "
            f"{quiet['scopes']} folders ({per_folder:.2f}/folder, target <= 3), "
            f"{quiet['quiet_seconds'] * 1000:.1f} ms (target < 50 ms); "
            f"imported {quiet['imported']:,}, skipped {quiet['skipped']:,}; gc: {quiet['gc']}"
        )


if __name__ == "__main__":
    main()
