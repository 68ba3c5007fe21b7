"""Full import of a generated Maildir into SQLite: speed, memory, quiet passes.

For each size (default 5,000 and 50,000 messages) a fresh process writes a
Maildir, imports it with ``SyncEngine`` into a new SQLite store, then runs
a no-change incremental pass. It prints messages/s, the peak RSS of the
import process and the quiet-pass time, then the RSS growth between sizes.

``--sqlite pysqlite3`` runs the store on pysqlite3-binary's SQLite instead of
the standard library's (3.43 or newer keeps the search index without a copy
of its text); the database file's size per message and the `-wal` log's size
are printed too.

``--cold`` drops the Maildir's files from the page cache before the import
(``posix_fadvise(DONTNEED)``), as for an export written long before: each
file is then read from disk.

The import process calls ``commlink.tune_gc()`` as a sync worker does
(``--default-gc`` leaves CPython's thresholds; see ``gc_setting.py``).

Each Maildir is written once per size and every import reads the same one.
On a shared machine one import's rate moves by 10-20% from run to run:
``--repeat N`` imports N times per size (each in a fresh process, into a
new database) and reports medians, and ``--baseline-src DIR`` also imports
with the ``commlink`` package of another source tree (``DIR`` holds it,
e.g. a worktree's ``src``), alternating with this one round by round, and
prints the ratio of the two medians: a before/after comparison in one run.
Either option adds one import first that is not counted.

``--search-index off`` imports into a store that keeps no search index
(``SqlStore.set_search_index(False)``: a host that searches with its own
engine), ``headers`` into one whose index leaves out the words of bodies
(``set_search_index(True, bodies=False)``); ``both`` alternates ``on`` and
``off``, round by round, ``all`` the three, and each prints the ratios.

The peers index the same Maildir in the same run, each round, into a fresh
database: ``notmuch new`` (notmuch) and ``mu index`` (mu, Debian package
maildir-utils), the two Maildir indexers a mail user is likely to know.
Both read and parse every file and index its headers and text with Xapian
(words with positions, so phrases can be searched); commlink reads and
parses every file, applies the channel's policy (the corpus's internal and
list mail is skipped, with reasons), links each kept message to the CRM
and stores it with its full-text index in SQLite. Each peer's wall time,
CPU time and peak RSS are printed with the ratio of commlink's whole
process (interpreter start-up, store creation and the quiet pass
included) to the peer's: below 1.0, commlink is faster. A peer that is
not installed is left out with a note; ``--skip notmuch mu`` leaves them out.

``--attachments SHARE`` gives that share of the messages (picked with their
own seed, as ``imap_vs_peers.py`` picks them) an ``application/pdf``
attachment of ``--attachment-kib`` KiB (300 by default) of random bytes,
base64: mail as a Takeout export holds it, where files are most of the
bytes.

    python benchmarks/sync_files.py [--sizes 5000 50000] [--sqlite pysqlite3] [--cold]
        [--default-gc] [--repeat 3] [--baseline-src /tmp/old/src] [--skip notmuch mu]
        [--search-index on|headers|off|both|all] [--attachments 0.1] [--attachment-kib 300]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from corpus import add_file_options  # noqa: E402

#: the owner's address, for the channel and the peers' configurations
OWNER = "owner@northwind.example"
#: peer name -> (executable, Debian package)
PEERS = {"notmuch": ("notmuch", "notmuch"), "mu": ("mu", "maildir-utils")}


def write_maildir(root: Path, count: int, attachments: float = 0.0, kib: int = 300) -> None:
    from corpus import arrival, messages, picked_for_files, with_attachment

    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    picked = picked_for_files(count, attachments)
    for n, raw in enumerate(messages(count, people=50_000)):
        if n in picked:
            raw = with_attachment(raw, n, kib)
        (root / "cur" / f"{arrival(n)}.M{n}P1.bench:2,S").write_bytes(raw)


def evict(root: Path) -> None:
    """Drop a directory tree's files from the page cache (they are clean after sync)."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def child(
    size: int,
    maildir: Path,
    workdir: Path,
    module: str,
    cold: bool = False,
    default_gc: bool = False,
    search_index: str = "on",
) -> dict[str, Any]:
    from gc_setting import apply

    from commlink.model import Channel, ChannelKind, ChannelSettings, ContactPolicy
    from commlink.providers.files.maildir import MaildirProvider
    from commlink.stores.sql import SqlDirectory, SqlStore
    from commlink.sync.engine import SyncEngine

    if cold:
        evict(maildir)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    options = {}
    if module == "pysqlite3":
        import pysqlite3.dbapi2

        options["module"] = pysqlite3.dbapi2
    store = SqlStore(f"sqlite:///{workdir}/bench.sqlite", engine_options=options)
    if search_index == "off":
        store.set_search_index(False)
    elif search_index == "headers":
        store.set_search_index(True, bodies=False)
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        text = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'commlink_search_text'"
        ).scalar_one()
    directory = SqlDirectory(store)
    channel = Channel(
        "bench",
        "owner",
        ChannelKind.MAIL,
        "maildir",
        ChannelSettings(owner=OWNER, contact_policy=ContactPolicy.NONE),
    )
    engine = SyncEngine(store, directory)
    provider = MaildirProvider(maildir)
    collector = apply(default_gc).replace(", frozen at exit", "")
    started = time.perf_counter()
    report = engine.run(channel, provider)
    elapsed = time.perf_counter() - started
    assert not report.errors, report.errors
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    db_bytes = (workdir / "bench.sqlite").stat().st_size
    wal = workdir / "bench.sqlite-wal"
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    quiet_started = time.perf_counter()
    quiet = engine.run(channel, provider)
    quiet_elapsed = time.perf_counter() - quiet_started
    assert quiet.imported == 0
    assert not quiet.errors
    return {
        "size": size,
        "gc": collector,
        "seconds_import": elapsed,
        "rate": size / elapsed,
        "imported": report.imported,
        "skipped": sum(report.skipped.values()),
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": rss_import / 1024,
        "quiet_seconds": quiet_elapsed,
        "db_kb_per_message": db_bytes / 1024 / size,
        "wal_mb": wal_bytes / 1024 / 1024,
        "sqlite": f"{version}{' contentless index' if 'contentless_delete' in text else ''}",
    }


def import_once(
    args: argparse.Namespace,
    size: int,
    maildir: Path,
    workdir: Path,
    src: str | None,
    search_index: str = "on",
) -> dict[str, Any]:
    """One import in a fresh process (``src``: the source tree to import
    commlink from; ``search_index``: on, headers or off, the store's setting)."""
    from imap_vs_peers import measure

    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    process = measure(
        [
            sys.executable,
            __file__,
            "--child",
            str(size),
            "--maildir",
            str(maildir),
            "--workdir",
            str(workdir),
            "--sqlite",
            args.sqlite,
            *(["--cold"] if args.cold else []),
            *(["--default-gc"] if args.default_gc else []),
            *([] if search_index == "on" else ["--index-state", search_index]),
        ],
        env,
    )
    # the import's own figures, and the whole process's for the peers' ratio
    result: dict[str, Any] = {k: v for k, v in process.items() if k not in ("seconds", "cpu")}
    result["process_seconds"] = process["seconds"]
    result["process_cpu"] = process["cpu"]
    result["seconds"] = process["seconds_import"]
    return result


def peer_once(name: str, maildir: Path, workdir: Path) -> dict[str, Any]:
    """One peer indexes the Maildir into a new database in ``workdir``."""
    from imap_vs_peers import measure

    if name == "notmuch":
        database = workdir / "notmuch"
        database.mkdir()
        config = workdir / "notmuch-config"
        config.write_text(
            f"[database]\npath={database}\nmail_root={maildir}\n"
            "[new]\ntags=\n[maildir]\nsynchronize_flags=false\n"
            f"[user]\nprimary_email={OWNER}\n"
        )
        result = measure(["notmuch", f"--config={config}", "new", "--quiet"])
        count = ["notmuch", f"--config={config}", "count", "*"]
        result["indexed"] = int(subprocess.run(count, check=True, capture_output=True).stdout)
    else:
        home = f"--muhome={workdir / 'mu'}"
        init = ["mu", "init", home, f"--maildir={maildir}", f"--my-address={OWNER}"]
        subprocess.run(init, check=True, capture_output=True)
        result = measure(["mu", "index", home, "--quiet"])
        info = subprocess.run(["mu", "info", "store", home], check=True, capture_output=True)
        found = [line for line in info.stdout.decode().splitlines() if "messages in store" in line]
        result["indexed"] = int(found[0].strip(" |").split("|")[-1]) if found else -1
    return result


def peer_version(name: str) -> str:
    out = subprocess.run([PEERS[name][0], "--version"], capture_output=True, text=True).stdout
    words = out.split()
    return next((w for w in words if w[:1].isdigit()), "?")


#: the figures that differ from run to run (the counts do not)
MEASURED = (
    "seconds",
    "process_seconds",
    "process_cpu",
    "rate",
    "rss_before_mb",
    "rss_peak_mb",
    "quiet_seconds",
    "db_kb_per_message",
    "wal_mb",
)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each measured figure over the runs (the first run's counts)."""
    merged = dict(runs[0])
    for key in MEASURED:
        merged[key] = statistics.median(r[key] for r in runs)
    return merged


def describe(label: str, result: dict[str, Any]) -> str:
    shown = f"{label:<16}" if label else ""
    return (
        f"{shown}{result['size']:>7,} messages: {result['seconds']:6.1f}s "
        f"{result['rate']:7,.0f} msg/s (target >= 5,000)  "
        f"process {result['process_seconds']:.1f} s, CPU {result['process_cpu']:.1f} s  "
        f"imported {result['imported']:,}, skipped {result['skipped']:,}  "
        f"peak RSS {result['rss_peak_mb']:6.1f} MB  "
        f"quiet pass {result['quiet_seconds'] * 1000:6.1f} ms (target < 1 s)  "
        f"database {result['db_kb_per_message']:.1f} KiB/msg, "
        f"log {result['wal_mb']:.0f} MiB  "
        f"(SQLite {result['sqlite']}; gc: {result['gc']})"
    )


def describe_peer(peer: str, size: int, result: dict[str, Any]) -> str:
    indexed = result["indexed"]
    return (
        f"{peer} {peer_version(peer)}: {size:>7,} messages: {result['seconds']:6.1f}s "
        f"{size / result['seconds']:7,.0f} msg/s  CPU {result['cpu']:.1f} s  "
        f"peak RSS {result['rss_mb']:6.1f} MB  indexed {indexed:,}"
        + ("" if indexed == size else "  (not every message!)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--sqlite", choices=["stdlib", "pysqlite3"], default="stdlib")
    parser.add_argument("--cold", action="store_true", help="read the Maildir from disk")
    parser.add_argument(
        "--default-gc", action="store_true", help="leave out commlink.tune_gc() (gc_setting.py)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="imports per size (medians)")
    parser.add_argument("--baseline-src", help="also import with commlink from this source tree")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=sorted(PEERS), help="peers to leave out"
    )
    parser.add_argument(
        "--search-index",
        choices=["on", "headers", "off", "both", "all"],
        default="on",
        help="commlink's store's search index: kept, without bodies or not "
        "(both: alternate on and off; all: the three)",
    )
    add_file_options(parser, "share of the messages given a PDF attachment")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index-state", default="on", help=argparse.SUPPRESS)
    parser.add_argument("--maildir", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(
            args.child,
            Path(args.maildir),
            Path(args.workdir),
            args.sqlite,
            args.cold,
            args.default_gc,
            args.index_state,
        )
        print(json.dumps(result))
        return
    # bytecode, as an installed package has (both trees alike): without it
    # (PYTHONDONTWRITEBYTECODE) every module imported during the import is compiled
    import commlink

    compileall.compile_dir(Path(commlink.__file__).parent, quiet=1)
    if args.baseline_src:
        compileall.compile_dir(Path(args.baseline_src) / "commlink", quiet=1)
    # name -> (source tree, the store's search index setting)
    first = "on" if args.search_index in ("both", "all") else args.search_index
    sources: dict[str, tuple[str | None, str]] = {"this": (None, first)}
    if args.baseline_src:
        sources["baseline"] = (args.baseline_src, first)
    if args.search_index == "all":
        sources["headers-index"] = (None, "headers")
    if args.search_index in ("both", "all"):
        sources["no-index"] = (None, "off")
    compare = len(sources) > 1
    medians: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    peers = []
    for peer, (executable, package) in PEERS.items():
        if peer in args.skip:
            continue
        if shutil.which(executable) is None:
            print(f"{peer}: not installed (Debian: {package}), left out")
        else:
            peers.append(peer)
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            maildir = Path(tmp) / "Maildir"
            write_maildir(maildir, size, args.attachments, args.attachment_kib)
            # an export on disk was written long before its import: its
            # files' write-back must not land in the import's fsyncs
            os.sync()
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
            peer_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in peers}
            names = list(sources)
            if args.repeat > 1 or compare:
                # not counted: the first import after the Maildir is written
                # tends to run slower, whichever tree it uses
                warm = Path(tmp) / "warm-up"
                warm.mkdir()
                import_once(args, size, maildir, warm, None)
            for n in range(max(1, args.repeat)):
                # alternate which goes first: the machine's load drifts
                for name in names[::-1] if n % 2 else names:
                    workdir = Path(tmp) / f"{name}-{n}"
                    workdir.mkdir()
                    result = import_once(args, size, maildir, workdir, *sources[name])
                    runs[name].append(result)
                    label = name if compare else "commlink" if peers else ""
                    if args.repeat > 1 or compare:
                        label = f"{label} #{n + 1}".strip()
                    print(describe(label, result), flush=True)
                for peer in peers:
                    workdir = Path(tmp) / f"{peer}-{n}"
                    workdir.mkdir()
                    result = peer_once(peer, maildir, workdir)
                    peer_runs[peer].append(result)
                    print(describe_peer(peer, size, result), flush=True)
            for name in names:
                merged = median_of(runs[name])
                medians[name].append(merged)
                if args.repeat > 1:
                    shown = name if compare else "commlink" if peers else ""
                    print(describe(f"{shown} median".strip(), merged))
            if args.baseline_src:
                this, base = medians["this"][-1]["rate"], medians["baseline"][-1]["rate"]
                print(f"{size:,} messages: this tree / baseline = {this / base:.2f}x msg/s")
            for name, what in (("headers-index", "without bodies"), ("no-index", "without")):
                if name in medians:
                    this, other = medians["this"][-1]["rate"], medians[name][-1]["rate"]
                    print(
                        f"{size:,} messages: {what} / with the search index = "
                        f"{other / this:.2f}x msg/s"
                    )
            ours = medians["this"][-1]
            for peer in peers:
                done = peer_runs[peer]
                wall = statistics.median(r["seconds"] for r in done)
                cpu = statistics.median(r["cpu"] for r in done)
                print(
                    f"{size:,} messages: commlink's process / {peer} = "
                    f"{ours['process_seconds'] / wall:.2f}x wall time, "
                    f"{ours['process_cpu'] / cpu:.2f}x CPU time "
                    f"({ours['process_seconds']:.1f} s against {wall:.1f} s"
                    f"{', medians' if len(done) > 1 else ''})"
                )
    for name in sources:
        done = medians[name]
        if len(done) >= 2:
            growth = done[-1]["rss_peak_mb"] - done[0]["rss_peak_mb"]
            print(
                f"{name + ': ' if compare else ''}peak RSS growth "
                f"{done[0]['size']:,} -> {done[-1]['size']:,}: {growth:.1f} MB (target < 25 MB)"
            )


if __name__ == "__main__":
    main()
