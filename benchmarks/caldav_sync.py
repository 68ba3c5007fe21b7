"""Full and incremental CalDAV sync against a local Radicale into SQLite.

Writes EVENTS events (one in ten a weekly series) spread over CALENDARS
calendars straight into Radicale's filesystem storage, starts Radicale,
then imports everything with ``SyncEngine`` into a new SQLite store. It
prints the full-sync time and rate, then the HTTP requests and time of a
no-change pass and of a pass after one edited event, in both sync modes
(RFC 6578 sync-collection, and the ctag/ETag fallback).

    python benchmarks/caldav_sync.py [--events 5000] [--calendars 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from commlink.model import CalendarContactPolicy, Channel, ChannelKind, ChannelSettings
from commlink.providers.caldav.provider import CalDavProvider
from commlink.stores.sql import SqlDirectory, SqlStore
from commlink.sync.engine import SyncEngine
from commlink.testing.radicale import RadicaleServer

OWNER = "owner@home.example"
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


def write_storage(server: RadicaleServer, user: str, events: int, calendars: int) -> None:
    """Lay out the collections the way Radicale's multifilesystem storage does."""
    home = server.storage / "collection-root" / user
    for c in range(calendars):
        folder = home / f"cal{c}"
        folder.mkdir(parents=True)
        props = {"tag": "VCALENDAR", "D:displayname": f"Calendar {c}"}
        (folder / ".Radicale.props").write_text(json.dumps(props))
    for n in range(events):
        (home / f"cal{n % calendars}" / f"event-{n}.ics").write_text(event_ics(n), newline="")


def run(events: int, calendars: int, sync_collection: bool | None, root: Path) -> dict[str, object]:
    with RadicaleServer(root / "radicale", username="bench", password="pw") as server:
        server.stop()  # write the storage while the server is down
        write_storage(server, "bench", events, calendars)
        server.start()
        # Radicale parses every item on its first listing; time that apart
        started = time.perf_counter()
        status, _ = server.account.request("PROPFIND", "/bench/", WARM_UP, {"Depth": "1"})
        assert status == 207, status
        warm_up = time.perf_counter() - started
        store = SqlStore(f"sqlite:///{root}/bench.sqlite")
        channel = Channel(
            "bench",
            "owner",
            ChannelKind.CALENDAR,
            "caldav",
            ChannelSettings(
                owner=OWNER,
                org_domains=frozenset({"home.example"}),
                calendar_contact_policy=CalendarContactPolicy.NONE,
            ),
        )
        engine = SyncEngine(store, SqlDirectory(store))
        provider = CalDavProvider(
            server.url, username="bench", password="pw", use_sync_collection=sync_collection
        )
        started = time.perf_counter()
        report = engine.run(channel, provider)
        full = time.perf_counter() - started
        assert not report.errors, report.errors
        full_requests = provider.requests

        before = provider.requests
        started = time.perf_counter()
        quiet_report = engine.run(channel, provider)
        quiet = time.perf_counter() - started
        assert not quiet_report.errors, quiet_report.errors
        quiet_requests = provider.requests - before

        server.account.put("cal3", "event-3.ics", event_ics(3, "Meeting 3 moved"))
        before = provider.requests
        started = time.perf_counter()
        edit_report = engine.run(channel, provider)
        edit = time.perf_counter() - started
        assert not edit_report.errors, edit_report.errors
        edit_requests = provider.requests - before
        provider.close()
        store.close()
        return {
            "mode": "sync-collection" if sync_collection is not False else "ctag fallback",
            "events": events,
            "calendars": calendars,
            "imported": report.imported,
            "server_warm_up_s": round(warm_up, 2),
            "full_sync_s": round(full, 2),
            "events_per_s": round(events / full),
            "full_sync_requests": full_requests,
            "quiet_pass_requests": quiet_requests,
            "quiet_pass_ms": round(quiet * 1000, 1),
            "one_edit_requests": edit_requests,
            "one_edit_fetched": edit_report.fetched,
            "one_edit_ms": round(edit * 1000, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--calendars", type=int, default=10)
    args = parser.parse_args()
    for mode in (None, False):
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(args.events, args.calendars, mode, Path(tmp))))


if __name__ == "__main__":
    main()
