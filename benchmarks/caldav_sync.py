"""CalDAV sync of EVENTS events in CALENDARS Radicale calendars: ``commlink
sync`` into SQLite side by side with vdirsyncer (sync to files), both
reading the same private Radicale in the same run.

The events (one in ten a weekly series) are written straight into
Radicale's filesystem storage; Radicale logs every request it receives, so
both contenders' requests are counted the same way. Each contender runs as a
fresh process: wall time, CPU time (user + system, from ``wait4``) and peak
RSS (VmHWM) of that process. Passes: a full sync, a no-change pass and a
pass after one edited event; ``commlink-ctag`` is commlink without
sync-collection (the ctag fallback). commlink's modules are compiled to
bytecode first, as an installed package's are (pip compiles vdirsyncer's):
a checkout run with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile
every module again in each process it starts.

``--repeat N`` runs the three passes N times, each round from empty local
state (a new database, new vdirsyncer files), and prints medians: a single
process's time on a shared machine can be off by a third. ``--baseline-src
DIR`` also runs commlink from another source tree (``DIR`` holds the
``commlink`` package) as ``commlink@baseline``, for a before/after
comparison in one session.

vdirsyncer is not a dependency: install it into a venv of its own and name
its command (the default is ``/tmp/vdir/bin/vdirsyncer``)::

    python3 -m venv /tmp/vdir && /tmp/vdir/bin/pip install vdirsyncer
    python benchmarks/caldav_sync.py [--events 5000] [--calendars 10] [--repeat 3]
        [--baseline-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

OWNER = "owner@home.example"
USER, PASSWORD = "bench", "pw"
WARM_UP = (
    '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>'
)
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def event_ics(n: int, title: str | None = None) -> str:
    start = BASE + timedelta(hours=n * 7 % (24 * 300))
    fmt = "%Y%m%dT%H%M%SZ"
    rule = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if n % 10 == 0 else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:bench-{n}@example\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start.strftime(fmt)}\r\n"
        f"DTEND:{(start + timedelta(minutes=45)).strftime(fmt)}\r\n"
        f"SUMMARY:{title or f'Meeting {n}'}\r\nDESCRIPTION:Agenda for meeting {n}\r\n{rule}"
        f"ORGANIZER:mailto:{OWNER}\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:guest{n % 997}@client{n % 50}.example\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def write_storage(storage: Path, events: int, calendars: int) -> None:
    """Lay out the collections the way Radicale's multifilesystem storage does."""
    home = storage / "collection-root" / USER
    for c in range(calendars):
        folder = home / f"cal{c}"
        folder.mkdir(parents=True)
        props = {"tag": "VCALENDAR", "D:displayname": f"Calendar {c}"}
        (folder / ".Radicale.props").write_text(json.dumps(props))
    for n in range(events):
        (home / f"cal{n % calendars}" / f"event-{n}.ics").write_text(event_ics(n), newline="")


# -- configurations ---------------------------------------------------------------


def commlink_config(work: Path, url: str, *, sync_collection: bool = True) -> Path:
    config = work / "commlink.toml"
    extra = "" if sync_collection else "use_sync_collection = false\n"
    config.write_text(
        f"""[store]
url = "sqlite:///{work}/commlink.sqlite"

[[channels]]
id = "bench"
user = "owner"
provider = "caldav"
owner = "{OWNER}"
org_domains = ["home.example"]
calendar_contact_policy = "none"

[channels.options]
url = "{url}"
username = "{USER}"
password = "{PASSWORD}"
{extra}"""
    )
    return config


def vdirsyncer_config(work: Path, url: str) -> Path:
    config = work / "vdirsyncer.conf"
    config.write_text(
        f"""[general]
status_path = "{work}/status/"

[pair bench]
a = "remote"
b = "local"
collections = ["from a"]
conflict_resolution = "a wins"

[storage remote]
type = "caldav"
url = "{url}"
username = "{USER}"
password = "{PASSWORD}"

[storage local]
type = "filesystem"
path = "{work}/calendars/"
fileext = ".ics"
"""
    )
    return config


# -- measuring --------------------------------------------------------------------


class RequestLog:
    """Counts the requests Radicale logged (at INFO) since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def take(self) -> int:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read()
            self.offset = log.tell()
        return text.count(b" request for ")


def measure(
    command: list[str], requests: RequestLog, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a process: wall and CPU seconds, peak RSS (its own VmHWM, sampled
    every 5 ms: ``wait4``'s maxrss would count the forking parent) and the
    requests the server saw meanwhile."""
    requests.take()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peak = [0]

    def sample() -> None:
        status = Path(f"/proc/{process.pid}/status")
        while True:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = process.stdout.read()  # type: ignore[union-attr]
    # wait4 reaps the child, so the sampler's last reads see a zombie without VmHWM
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({process.returncode}): {out.decode()[-2000:]}")
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": peak[0] / 1024,
        "requests": requests.take(),
    }


# -- driver -----------------------------------------------------------------------


def warm_up(account: Any, path: str, attempts: int = 10) -> None:
    """A listing of ``path`` that Radicale has cached; on a busy machine its
    first one may outlast the client's timeout (the server goes on caching)."""
    for attempt in range(attempts):
        try:
            account.request("PROPFIND", path, WARM_UP, {"Depth": "1"})
            return
        except OSError:
            if attempt == attempts - 1:
                raise


def compile_commlink(baseline_src: str | None) -> None:
    """Bytecode for commlink's modules, next to them (as an install has it)."""
    import commlink

    compileall.compile_dir(Path(commlink.__file__).parent, quiet=1)
    if baseline_src:
        compileall.compile_dir(Path(baseline_src) / "commlink", quiet=1)


Contender = tuple[list[str], dict[str, str] | None]


def contenders_for(
    work: Path, url: str, args: argparse.Namespace, requests: RequestLog
) -> dict[str, Contender]:
    """Each contender's command and environment, with empty local state under ``work``."""
    found: dict[str, Contender] = {}
    variants = [("commlink", True, None), ("commlink-ctag", False, None)]
    if args.baseline_src:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.baseline_src, env.get("PYTHONPATH")) if p
        )
        variants.insert(1, ("commlink@baseline", True, env))
    for name, sync_collection, env in variants:
        folder = work / name
        folder.mkdir()
        config = commlink_config(folder, url, sync_collection=sync_collection)
        found[name] = ([sys.executable, "-m", "commlink", "sync", str(config)], env)
    vdirsyncer = shutil.which(args.vdirsyncer)
    if vdirsyncer is not None and "vdirsyncer" not in args.skip:
        folder = work / "vdirsyncer"
        folder.mkdir()
        config = vdirsyncer_config(folder, url)
        for c in range(args.calendars):  # so discover asks nothing
            (folder / "calendars" / f"cal{c}").mkdir(parents=True)
        command = [vdirsyncer, "-c", str(config)]
        listed = measure([*command, "discover"], requests)
        print(
            f"vdirsyncer discover (not timed below): {listed['seconds']:.2f} s, "
            f"{listed['requests']} requests"
        )
        found["vdirsyncer"] = ([*command, "sync"], None)
    return {k: v for k, v in found.items() if k not in args.skip}


Results = dict[str, dict[str, dict[str, Any]]]


def one_round(server: Any, work: Path, args: argparse.Namespace, requests: RequestLog) -> Results:
    """A full sync, a no-change pass and a pass after one edit, per contender."""
    contenders = contenders_for(work, server.url, args, requests)
    results: Results = {k: {} for k in contenders}
    for name, (command, env) in contenders.items():
        results[name]["full"] = show(name, "full", measure(command, requests, env))
    for name, (command, env) in contenders.items():
        results[name]["no-change"] = show(name, "no-change", measure(command, requests, env))
    server.account.put("cal3", "event-3.ics", event_ics(3, "Meeting 3 moved"))
    for name, (command, env) in contenders.items():
        results[name]["one-edit"] = show(name, "one edit", measure(command, requests, env))
        server.account.put("cal3", "event-3.ics", event_ics(3, f"Meeting 3 by {name}"))
    return results


def medians(rounds: list[Results]) -> Results:
    """Each figure's median over the rounds."""
    merged: Results = {}
    for name, passes in rounds[0].items():
        merged[name] = {}
        for what, first in passes.items():
            merged[name][what] = {
                key: statistics.median(r[name][what][key] for r in rounds) for key in first
            }
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--calendars", type=int, default=10)
    parser.add_argument("--vdirsyncer", default="/tmp/vdir/bin/vdirsyncer")
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (medians)")
    parser.add_argument("--baseline-src", help="also run commlink from this source tree")
    args = parser.parse_args()
    from commlink.testing.radicale import RadicaleServer

    compile_commlink(args.baseline_src)
    if shutil.which(args.vdirsyncer) is None and "vdirsyncer" not in args.skip:
        print(f"vdirsyncer not found at {args.vdirsyncer}: see this file's docstring")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = RadicaleServer(
            root / "radicale", username=USER, password=PASSWORD,
            extra_args=("--logging-level", "info"),
        )  # fmt: skip
        write_storage(server.storage, args.events, args.calendars)
        with server:
            # Radicale parses every item on its first listing: keep that out of the timings
            warm_up(server.account, f"/{USER}/")
            for c in range(args.calendars):
                warm_up(server.account, f"/{USER}/cal{c}/")
            requests = RequestLog(server.log_path)
            print(f"{args.events:,} events in {args.calendars} calendars", flush=True)
            rounds = []
            for n in range(args.repeat):
                if args.repeat > 1:
                    print(f"round {n + 1} of {args.repeat}", flush=True)
                work = root / f"round{n}"
                work.mkdir()
                rounds.append(one_round(server, work, args, requests))
    results = medians(rounds)
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} rounds:")
        for name, passes in results.items():
            for what, result in passes.items():
                show(name, what.replace("-", " "), result)
    ratios(results, args.calendars)


def show(name: str, what: str, result: dict[str, Any]) -> dict[str, Any]:
    print(
        f"{name:<14} {what:<10} {result['seconds']:6.2f} s  CPU {result['cpu']:6.2f} s  "
        f"peak RSS {result['rss_mb']:6.1f} MiB  {result['requests']:>4g} requests",
        flush=True,
    )
    return result


def ratios(results: dict[str, dict[str, dict[str, Any]]], calendars: int) -> None:
    ours, peer = results.get("commlink"), results.get("vdirsyncer")
    if ours is None:
        return
    print(f"\nrequests per calendar (commlink, {calendars} calendars, discovery included):")
    for what, result in ours.items():
        print(f"  {what:<10} {result['requests'] / calendars:.1f}")
    if peer is None:
        return
    print("commlink / vdirsyncer (a shared machine: read the ratios, not the seconds):")
    for name in ("commlink", "commlink@baseline"):
        if name not in results:
            continue
        print(f"  {name}")
        for what in ("full", "no-change", "one-edit"):
            a, b = results[name][what], peer[what]
            print(
                f"    {what:<10} wall x{a['seconds'] / b['seconds']:.2f}  "
                f"CPU x{a['cpu'] / b['cpu']:.2f}  RSS x{a['rss_mb'] / b['rss_mb']:.2f}  "
                f"requests {a['requests']:g} vs {b['requests']:g}"
            )


if __name__ == "__main__":
    main()
