"""Hostile mail mixed with normal mail, through every mail source into every store.

The corpus (``commlink.testing.hostile``) is delivered to a Maildir, an
mbox file (written by Python's ``mailbox``), a private Dovecot (IMAP) and
the local Gmail API server; each source is synced into SQLite and into a
throw-away PostgreSQL database, each run in its own process so that a
native crash shows as a signal instead of taking the benchmark down. For
each run it prints: the exit status, every normal message imported or
not, what became of each hostile message (imported or skipped with its
reason), ids neither stored nor skipped, and peak RSS. Two specimens
repeat a normal message's header with another body, and two have no
header: an mbox gives header-identical messages one id, so its listing
shows fewer distinct ids than messages.

    .venv/bin/python benchmarks/hostile.py [--normal 200] [--small]

It exits non-zero when any run crashed, failed, lost a normal message or
left a hostile one unaccounted for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.testing.conformance_data import owner_of
from commlink.testing.hostile import OWNER, corpus, normal_mail

SOURCES = ("maildir", "mbox", "imap", "gmail")
STORES = ("sqlite", "postgres")


# -- the child: one source into one store ------------------------------------------


def _provider(source: str, args: argparse.Namespace) -> Any:
    if source == "maildir":
        from commlink.providers.files import MaildirProvider

        return MaildirProvider(args.maildir)
    if source == "mbox":
        from commlink.providers.files import MboxProvider

        return MboxProvider(args.mbox)
    if source == "imap":
        from commlink.providers.imap import ImapProvider

        return ImapProvider(
            "127.0.0.1", args.port, username=args.user, password=args.password, ssl=False
        )
    from google.oauth2.credentials import Credentials

    from commlink.providers.google import GmailProvider

    return GmailProvider(Credentials(token=args.token), api_endpoint=args.endpoint)


def child(args: argparse.Namespace) -> dict[str, Any]:
    from commlink.stores.sql import SqlStore
    from commlink.sync.engine import SyncEngine
    from commlink.testing.directory import InMemoryDirectory

    store = SqlStore(args.url)
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
    channel = Channel("hostile", "u-owner", ChannelKind.MAIL, args.source, settings)
    engine = SyncEngine(store, InMemoryDirectory(), batch_size=50)
    provider = _provider(args.source, args)
    started = time.monotonic()
    reports = []
    try:
        for _ in range(50):
            report = engine.run(channel, provider)
            reports.append(report)
            if report.complete or report.errors:
                break
        listed: dict[str, list[str]] = {}
        folders = [f for f in provider.folders() if settings.folders.selects(f)]
        for scope in provider.scopes(folders):
            page = None
            while True:
                ids = provider.list_page(scope, page)
                listed.setdefault(scope.id, []).extend(ids.ids)
                page = ids.next
                if page is None:
                    break
    finally:
        provider.close()
    skipped = {s.provider_id: s for s in store.skips(channel.id, owner_of(store, channel.id))}
    missing = []
    stored = 0
    for scope_id, ids in listed.items():
        known = store.known_ids(channel.id, scope_id, ids)
        stored += len(known)
        missing += [i for i in ids if i not in known and i not in skipped]
    normal_ids = [f"normal-{n}@client.example" for n in range(args.normal)]
    found = store.threads_by_message_ids(normal_ids)
    return {
        "seconds": round(time.monotonic() - started, 2),
        "status": reports[-1].status.value,
        "errors": [e for r in reports for e in r.errors],
        "listed": sum(len(v) for v in listed.values()),
        # an mbox gives header-identical messages one id (MboxProvider)
        "distinct": sum(len(set(v)) for v in listed.values()),
        "stored": stored,
        "skipped": dict(Counter(s.reason.value for s in skipped.values())),
        "skip_details": sorted({f"{s.reason.value}: {s.detail[:70]}" for s in skipped.values()}),
        "missing": missing,
        "normal_found": len(found),
    }


# -- the parent: sources, stores and processes ---------------------------------------


#: Runs each job it is sent (argv and output files, one JSON line) and answers
#: with its exit code and ``ru_maxrss``. It is started while this process is
#: still small: a child forked from a large parent would report the parent's
#: peak as its own.
_LAUNCHER = """
import json, os, subprocess, sys
for line in sys.stdin:
    job = json.loads(line)
    with open(job["out"], "wb") as out, open(job["err"], "wb") as err:
        child = subprocess.Popen(job["argv"], stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "kb": usage.ru_maxrss}), flush=True)
"""


class _Launcher:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def run(self, command: list[str], work: Path) -> dict[str, Any]:
        """Run one child; its JSON result, exit status and peak RSS."""
        out, err = work / "child.out", work / "child.err"
        job = {"argv": command, "out": str(out), "err": str(err)}
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(job) + "\n").encode())
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        text = out.read_text(errors="replace").strip().splitlines()
        result: dict[str, Any] = {}
        if text:
            try:
                result = json.loads(text[-1])
            except ValueError:
                result = {"output": text[-3:]}
        result["exit"] = answer["rc"]
        result["rss_mb"] = answer["kb"] / 1024
        if answer["rc"] != 0:
            result["stderr"] = err.read_text(errors="replace").strip().splitlines()[-5:]
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--normal", type=int, default=200)
    parser.add_argument("--small", action="store_true", help="leave out specimens over 1 MB")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES))
    parser.add_argument("--stores", nargs="*", default=list(STORES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for name in ("url", "maildir", "mbox", "user", "password", "token", "endpoint"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.source = args.child
        print(json.dumps(child(args)))
        return 0

    launcher = _Launcher()  # first, while this process is small
    specimens = list(corpus(large=not args.small))
    mail = [*normal_mail(args.normal), *(s.raw for s in specimens)]
    total = sum(len(m) for m in mail)
    print(
        f"{args.normal} normal and {len(specimens)} hostile messages ({total / 2**20:.1f} MiB): "
        + ", ".join(s.name for s in specimens),
        flush=True,
    )
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        servers = _start_sources(args.sources, mail, Path(tmp))
        try:
            for source in args.sources:
                for store in args.stores:
                    with _database(store, Path(tmp) / f"{source}.sqlite") as url:
                        if url is None:
                            print(f"{source:>8} -> {store:<8} skipped: PostgreSQL not reachable")
                            continue
                        command = [sys.executable, __file__, "--child", source, "--url", url]
                        command += ["--normal", str(args.normal), *servers[source]]
                        result = launcher.run(command, Path(tmp))
                    failed |= _print(source, store, result, args.normal, len(mail))
        finally:
            for stop in servers.get("_stop", []):
                stop()
            launcher.close()
    return 1 if failed else 0


def _print(source: str, store: str, result: dict[str, Any], normal: int, listed: int) -> bool:
    bad = (
        result["exit"] != 0
        or bool(result.get("errors"))
        or result.get("normal_found") != normal
        or bool(result.get("missing"))
    )
    print(
        f"{source:>8} -> {store:<8} exit {result['exit']}  "
        f"{result.get('seconds', '?')} s  peak RSS {result['rss_mb']:.0f} MB  "
        f"listed {result.get('listed', '?')}/{listed}{_distinct(result)}  "
        f"stored {result.get('stored', '?')}  "
        f"skipped {result.get('skipped', {})}  normal {result.get('normal_found', '?')}/{normal}"
        + ("  FAILED" if bad else "  ok"),
        flush=True,
    )
    for key in ("errors", "missing", "stderr", "output"):
        found = result.get(key) or []
        if found:
            shown = "; ".join(str(x)[:200] for x in found[:3])
            more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
            print(f"{'':>21}{key}: {shown}{more}")
    for detail in result.get("skip_details", []):
        print(f"{'':>21}{detail}")
    return bad


def _distinct(result: dict[str, Any]) -> str:
    distinct = result.get("distinct")
    return "" if distinct in (None, result.get("listed")) else f" ({distinct} distinct ids)"


def _start_sources(sources: list[str], mail: list[bytes], tmp: Path) -> dict[str, Any]:
    """Deliver the mail to each source; the child arguments that reach it."""
    found: dict[str, Any] = {"_stop": []}
    if "maildir" in sources:
        root = tmp / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True)
        for n, raw in enumerate(mail):
            (root / "cur" / f"{1_700_000_000 + n}.M{n}P1.bench:2,S").write_bytes(raw)
        found["maildir"] = ["--maildir", str(root)]
    if "mbox" in sources:
        import mailbox

        path = tmp / "hostile.mbox"
        box = mailbox.mbox(path)  # "From " lines in bodies quoted, as mail tools write them
        for raw in mail:
            box.add(raw)
        box.close()
        found["mbox"] = ["--mbox", str(path)]
    if "imap" in sources:
        from commlink.testing.dovecot import DovecotServer

        dovecot = DovecotServer()
        dovecot.start()
        found["_stop"].append(dovecot.stop)
        dovecot.deliver("INBOX", mail)
        found["imap"] = ["--port", str(dovecot.port), "--user", dovecot.username]
        found["imap"] += ["--password", dovecot.password]
    if "gmail" in sources:
        from commlink.testing.google import GoogleApiServer

        google = GoogleApiServer(user=OWNER)
        google.start()
        found["_stop"].append(google.stop)
        for raw in mail:
            google.gmail.add_message(OWNER, raw)
        found["gmail"] = ["--token", google.token, "--endpoint", google.base_url]
    return found


class _database:
    """A SQLite file, or a throw-away PostgreSQL database (URL ``None`` when
    the server is not reachable)."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path = kind, path
        self._context: Any = None

    def __enter__(self) -> str | None:
        if self.kind == "sqlite":
            self.path.unlink(missing_ok=True)
            return f"sqlite:///{self.path}"
        from commlink.testing.postgres import reachable, temporary_database

        if not reachable():
            return None
        self._context = temporary_database()
        engine = self._context.__enter__()
        return engine.url.render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
