"""Regenerate the demo mailbox (demo.mbox, Google Takeout style) and calendar (demo.ics).

The output is deterministic and lands in the package
(``src/commlink/cli/demo_data/``, shipped in the wheel so ``commlink demo``
works after ``pip install commlink``); run
``python examples/generate_demo_data.py`` after editing the scenario below.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src" / "commlink" / "cli" / "demo_data"
T0 = datetime(2026, 10, 5, 8, 30, tzinfo=timezone.utc)

ALICE = "Alice Martin <alice@northwind.example>"
BOB = "Bob Chen <bob@northwind.example>"
HANK = "Hank Scorpio <hank@globex.example>"
MINDY = "Mindy Simmons <mindy@sales.globex.example>"
PETER = "Peter Gibbons <peter@initech.example>"
BILL = "Bill Lumbergh <bill@initech.example>"
DANA = "Dana Scully <dana@hooli.example>"
CAROL = "Carol Baskin <carol.baskin@gmail.com>"

# (id, thread, labels, from, to, cc, subject, body, extra headers, in-reply-to, references)
MESSAGES: list[tuple[str, str, str, str, str, str, str, str, str, str, str]] = [
    (
        "g1",
        "t-globex",
        "Inbox,Important",
        HANK,
        ALICE,
        MINDY,
        "Globex renewal for 2027",
        "Hi Alice,\n\nWe would like to renew for 2027 and add 40 seats.\n"
        "Can you send a quote?\n\nHank",
        "",
        "",
        "",
    ),
    (
        "g2",
        "t-globex",
        "Sent",
        ALICE,
        HANK,
        MINDY,
        "Re: Globex renewal for 2027",
        "Hi Hank,\n\nGreat news. Quote attached: 40 seats at the 2026 rate.\n\nAlice",
        "",
        "g1",
        "g1",
    ),
    (
        "g3",
        "t-globex",
        "Inbox",
        MINDY,
        ALICE,
        HANK,
        "Re: Globex renewal for 2027",
        "Alice, procurement needs the quote in EUR. Thanks! Mindy",
        "",
        "g2",
        "g1 g2",
    ),
    # a client that keeps only In-Reply-To and changes the subject
    (
        "g4",
        "t-globex",
        "Inbox",
        HANK,
        ALICE,
        "",
        "Signed order form",
        "Signed copy attached. Let's kick off next week.",
        "",
        "g3",
        "",
    ),
    (
        "i1",
        "t-initech",
        "Sent",
        ALICE,
        PETER,
        BILL,
        "Initech pilot: next steps",
        "Peter, Bill,\n\nThanks for the call. Proposed pilot: 3 teams, 6 weeks.\n\nAlice",
        "",
        "",
        "",
    ),
    (
        "i2",
        "t-initech",
        "Inbox",
        PETER,
        ALICE,
        BILL,
        "Re: Initech pilot: next steps",
        "Sounds good. Bill will sign off on Friday.",
        "",
        "i1",
        "i1",
    ),
    (
        "d1",
        "t-hooli",
        "Sent",
        ALICE,
        DANA,
        "",
        "Introduction from Northwind",
        "Hi Dana, Hank at Globex suggested I reach out about your data team.",
        "",
        "",
        "",
    ),
    (
        "c1",
        "t-carol",
        "Inbox",
        CAROL,
        ALICE,
        "",
        "Question about pricing",
        "Hi, do you offer a plan for freelancers?",
        "",
        "",
        "",
    ),
    # left out, each for a reason the demo explains
    (
        "n1",
        "t-news",
        "Inbox,Category Promotions",
        "Globex News <news@globex.example>",
        ALICE,
        "",
        "Globex monthly newsletter",
        "Read all about it.",
        "List-Unsubscribe: <mailto:unsub@globex.example>\nPrecedence: bulk\n",
        "",
        "",
    ),
    ("b1", "t-internal", "Inbox", BOB, ALICE, "", "Lunch?", "Pizza at 12?", "", "", ""),
    (
        "r1",
        "t-robot",
        "Inbox",
        "Billing <no-reply@billing.example>",
        ALICE,
        "",
        "Your invoice is ready",
        "Invoice #1234",
        "",
        "",
        "",
    ),
    (
        "s1",
        "t-spam",
        "Spam",
        "Winner <win@prizes.example>",
        ALICE,
        "",
        "You won!!!",
        "Click here",
        "",
        "",
        "",
    ),
    (
        "x1",
        "t-blocked",
        "Inbox",
        "Recruiter <jobs@headhunters.example>",
        ALICE,
        "",
        "Exciting opportunity",
        "Are you open to new roles?",
        "",
        "",
        "",
    ),
]


def _thread_number(thread: str) -> int:
    """Takeout thread ids are 64-bit numbers; number the demo threads in order."""
    order = list(dict.fromkeys(m[1] for m in MESSAGES))
    return 1780000000000000000 + order.index(thread)


def _mid(key: str) -> str:
    return f"<{key}.demo@northwind.example>"


def write_mbox() -> None:
    chunks = []
    for n, (key, thread, labels, sender, to, cc, subject, body, extra, irt, refs) in enumerate(
        MESSAGES
    ):
        when = T0 + timedelta(hours=5 * n)
        headers = [
            f"X-GM-THRID: {_thread_number(thread)}",
            f"X-Gmail-Labels: {labels}",
            f"From: {sender}",
            f"To: {to}",
        ]
        if cc:
            headers.append(f"Cc: {cc}")
        headers += [
            f"Subject: {subject}",
            f"Date: {format_datetime(when)}",
            f"Message-ID: {_mid(key)}",
        ]
        if irt:
            headers.append(f"In-Reply-To: {_mid(irt)}")
        if refs:
            headers.append("References: " + " ".join(_mid(r) for r in refs.split()))
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
        text = "\n".join(headers) + "\n" + extra + "\n" + body + "\n"
        stamp = when.strftime("%a %b %d %H:%M:%S +0000 %Y")
        chunks.append(f"From 1{n:04d}@xxx {stamp}\n{text}\n")
    (HERE / "demo.mbox").write_text("".join(chunks), encoding="utf-8")


def write_ics() -> None:
    def stamp(dt: datetime) -> str:
        return dt.strftime("%Y%m%dT%H%M%SZ")

    first = datetime(2026, 10, 6, 15, 0, tzinfo=timezone.utc)
    moved = first + timedelta(weeks=2)
    events = [
        # weekly Globex check-in, one instance moved, one cancelled
        [
            "UID:globex-weekly@northwind.example",
            f"DTSTART:{stamp(first)}",
            f"DTEND:{stamp(first + timedelta(minutes=30))}",
            "RRULE:FREQ=WEEKLY;COUNT=8",
            f"EXDATE:{stamp(first + timedelta(weeks=3))}",
            "SUMMARY:Globex weekly check-in",
            "DESCRIPTION:Renewal progress and onboarding plan.",
            "LOCATION:https://meet.google.com/abc-defg-hij",
            "ORGANIZER;CN=Alice Martin:mailto:alice@northwind.example",
            "ATTENDEE;CN=Hank Scorpio;PARTSTAT=ACCEPTED:mailto:hank@globex.example",
            "ATTENDEE;CN=Mindy Simmons;PARTSTAT=TENTATIVE:mailto:mindy@sales.globex.example",
        ],
        [
            "UID:globex-weekly@northwind.example",
            f"RECURRENCE-ID:{stamp(moved)}",
            f"DTSTART:{stamp(moved + timedelta(hours=2))}",
            f"DTEND:{stamp(moved + timedelta(hours=2, minutes=30))}",
            "SUMMARY:Globex weekly check-in (moved)",
            "ORGANIZER;CN=Alice Martin:mailto:alice@northwind.example",
            "ATTENDEE;CN=Hank Scorpio;PARTSTAT=ACCEPTED:mailto:hank@globex.example",
        ],
        [
            "UID:initech-pilot-kickoff@northwind.example",
            f"DTSTART:{stamp(datetime(2026, 10, 8, 13, 0, tzinfo=timezone.utc))}",
            f"DTEND:{stamp(datetime(2026, 10, 8, 14, 0, tzinfo=timezone.utc))}",
            "SUMMARY:Initech pilot kickoff",
            "DESCRIPTION:Join: https://teams.microsoft.com/l/meetup-join/19%3ameeting_demo",
            "ORGANIZER;CN=Peter Gibbons:mailto:peter@initech.example",
            "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED:mailto:alice@northwind.example",
            "ATTENDEE;CN=Bill Lumbergh;PARTSTAT=NEEDS-ACTION:mailto:bill@initech.example",
        ],
        [
            "UID:team-standup@northwind.example",
            f"DTSTART:{stamp(datetime(2026, 10, 7, 9, 0, tzinfo=timezone.utc))}",
            f"DTEND:{stamp(datetime(2026, 10, 7, 9, 15, tzinfo=timezone.utc))}",
            "SUMMARY:Team stand-up",
            "ORGANIZER;CN=Bob Chen:mailto:bob@northwind.example",
            "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED:mailto:alice@northwind.example",
        ],
    ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//commlink//demo//EN"]
    for body in events:
        lines += ["BEGIN:VEVENT", f"DTSTAMP:{stamp(T0)}", *body, "END:VEVENT"]
    lines.append("END:VCALENDAR")
    (HERE / "demo.ics").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


if __name__ == "__main__":
    write_mbox()
    write_ics()
