"""``commlink demo``: a small CRM in SQLite, a mailbox and a calendar synced into it.

The CRM has two companies with people and opportunities; the mailbox is a
Google Takeout-style mbox and the calendar an .ics file, both shipped with
the package (``DEMO_DATA``). The demo prints email and meeting timelines as the
mailbox owner and as a colleague (who sees subjects only), and why each
left-out message was left out.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError
from ..model import Channel, ChannelKind, ChannelSettings, ContactPolicy, Visibility
from ..providers.files.ics import IcsProvider
from ..providers.files.mbox import MboxProvider
from ..records import PageRequest, Target, TargetKind, Viewer, Window
from ..stores.sql import SqlDirectory, SqlStore
from ..sync.engine import SyncEngine
from .output import format_events, format_skips, format_thread, format_threads

__all__ = ["DEMO_DATA", "cmd_demo", "find_demo_data", "run_demo"]

OWNER = "alice@northwind.example"


#: The demo mailbox and calendar shipped with the package.
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


def find_demo_data(explicit: str | Path | None = None) -> Path:
    """The folder holding demo.mbox and demo.ics (``DEMO_DATA`` by default)."""
    folder = Path(explicit).expanduser() if explicit else DEMO_DATA
    if (folder / "demo.mbox").is_file() and (folder / "demo.ics").is_file():
        return folder
    raise ConfigError(f"demo.mbox and demo.ics not found in {folder}", field="data")


def build_crm(directory: SqlDirectory) -> None:
    directory.add_company("globex", "Globex", ["globex.example"])
    directory.add_company("initech", "Initech", ["initech.example"])
    directory.add_person("hank", "Hank Scorpio", ["hank@globex.example"], company_id="globex")
    directory.add_person("mindy", "Mindy Simmons", ["Mindy@Sales.Globex.example"])
    directory.add_person("peter", "Peter Gibbons", ["peter@initech.example"], company_id="initech")
    directory.add_person("bill", "Bill Lumbergh", ["bill@initech.example"], company_id="initech")
    directory.add_person("carol", "Carol Baskin", ["carol.baskin@gmail.com"])
    directory.add_opportunity("globex-renewal", "Globex renewal 2027", "globex", ["hank"])
    directory.add_opportunity("initech-pilot", "Initech pilot", "initech", ["peter"])


def cmd_demo(args: argparse.Namespace) -> int:
    """``commlink demo [--db FILE] [--data DIR]``."""
    return run_demo(sys.stdout, db=args.db, data=args.data)


def run_demo(
    out: TextIO = sys.stdout, *, db: str | Path | None = None, data: str | Path | None = None
) -> int:
    folder = find_demo_data(data)
    path = Path(db) if db else Path.cwd() / "commlink-demo.sqlite"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    # closed at the end: the demo database is then one file, its log folded in
    with SqlStore(f"sqlite:///{path}") as store:
        return _demo(out, store, path, folder)


def _demo(out: TextIO, store: SqlStore, path: Path, folder: Path) -> int:
    directory = SqlDirectory(store)
    build_crm(directory)

    settings = ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"northwind.example"}),
        visibility=Visibility.SUBJECT,
        contact_policy=ContactPolicy.SENT,
        blocklist=frozenset({"@headhunters.example"}),
    )
    mail = Channel("alice-mail", "alice", ChannelKind.MAIL, "mbox", settings)
    calendar = Channel("alice-calendar", "alice", ChannelKind.CALENDAR, "ics", settings)
    engine = SyncEngine(store, directory)
    say = out.write
    say(f"commlink demo: CRM and sync state in {path}\n\n")
    for channel, provider in (
        (mail, MboxProvider(folder / "demo.mbox")),
        (calendar, IcsProvider(folder / "demo.ics")),
    ):
        try:
            report = engine.run(channel, provider)
        finally:
            provider.close()
        say(f"synced {report.summary()}\n")
        for error in report.errors:
            say(f"  error: {error}\n")

    alice, bob = Viewer("alice"), Viewer("bob")
    window = Window(
        datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
    )
    sections = [
        ("Person: Hank Scorpio (Globex)", Target(TargetKind.PERSON, "hank")),
        ("Company: Globex", Target(TargetKind.COMPANY, "globex")),
        ("Opportunity: Initech pilot", Target(TargetKind.OPPORTUNITY, "initech-pilot")),
    ]
    for title, target in sections:
        for viewer, note in ((alice, "as Alice, the mailbox owner"), (bob, "as Bob, a colleague")):
            say(f"\n== {title}: email, {note}\n")
            threads = store.timeline(target, viewer, PageRequest(limit=20)).items
            say("\n".join(format_threads(threads)) + "\n")
        say(f"\n== {title}: meetings (Oct-Dec 2026), as Bob\n")
        say(
            "\n".join(format_events(store.events(target, bob, window, PageRequest(limit=20)).items))
            + "\n"
        )

    globex = store.timeline(Target(TargetKind.COMPANY, "globex"), alice, PageRequest(limit=1)).items
    if globex:
        view = store.thread(globex[0].thread_id, alice)
        if view is not None:
            say("\n== The latest Globex conversation, whole, as Alice\n")
            say("\n".join(format_thread(view)) + "\n")

    say("\n== Left out of the CRM, and why\n")
    say("\n".join(format_skips(store.skips(mail.id, alice))) + "\n")
    say("\n== Contacts created from sent mail\n")
    new_people = directory.people_by_addresses(["dana@hooli.example"])
    new_companies = directory.companies_by_domains(["hooli.example"])
    for key, person in new_people.items():
        company = new_companies.get("hooli.example")
        at = f", company {company.name!r}" if company and person.company_id == company.id else ""
        say(f"  {person.name or key} <{key}>{at}\n")
    if not new_people:
        say("  (none)\n")
    return 0
