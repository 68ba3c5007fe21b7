"""Mail whose sender the receiving server did not verify, through the engine
on a real Maildir: flagged for every viewer, never taken for the owner's own
mail, never a source of new contacts."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import attrs
import pytest

from commlink.addresses import parse_address
from commlink.model import (
    Channel,
    ChannelKind,
    ChannelSettings,
    ContactPolicy,
    Direction,
    Message,
    Participant,
    Role,
    Visibility,
)
from commlink.policy.contacts import contacts_to_create
from commlink.policy.filters import decide, direction
from commlink.providers.files.maildir import MaildirProvider
from commlink.records import Reason, Target, TargetKind, Viewer
from commlink.stores.sql import SqlStore
from commlink.sync.engine import SyncEngine
from commlink.sync.settled import POLICY_REVISION, judging_key
from commlink.testing.directory import InMemoryDirectory

OWNER = "bob@northwind.example"
ARRIVED = 1796083200  # 2026-12-01 00:00 UTC
FAILED = "mx.northwind.example; spf=fail smtp.mailfrom=evil.example; dmarc=fail header.from={}"
PASSED = "mx.northwind.example; spf=pass smtp.mailfrom={0}; dmarc=pass header.from={0}"


def mail(n: int, sender: str, to: str, checked: str, extra: str = "") -> bytes:
    domain = sender.rpartition("@")[2].rstrip(">")
    return (
        f"Authentication-Results: {checked.format(domain)}\r\n"
        f"From: {sender}\r\nTo: {to}\r\n{extra}Subject: Message {n}\r\n"
        f"Date: Tue, 01 Dec 2026 {n:02d}:00:00 +0000\r\nMessage-ID: <m{n}@x.example>\r\n"
        f"\r\nBody {n}.\r\n"
    ).encode()


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    return root


def deliver(root: Path, n: int, raw: bytes) -> None:
    (root / "cur" / f"{ARRIVED + 3600 * n + 60}.M{n}P1.host:2,S").write_bytes(raw)


def test_a_forged_owner_and_a_forged_client_through_the_engine(
    maildir: Path, tmp_path: Path
) -> None:
    directory = InMemoryDirectory()
    directory.add_company("globex", "Globex", ["globex.example"])
    directory.add_person("hank", "Hank Scorpio", ["hank@globex.example"], company_id="globex")
    # 1: "Bob" writes to two strangers: the owner's own address, forged
    deliver(
        maildir,
        1,
        mail(
            1,
            OWNER,
            "Ann <ann@initech.example>, Carl <carl@acme.example>",
            FAILED,
            "Cc: Dora <dora@umbrella.example>\r\n",
        ),
    )
    # 2: "Hank" writes, forged; a colleague of his is copied
    deliver(
        maildir,
        2,
        mail(2, "hank@globex.example", OWNER, FAILED, "Cc: Lisa <lisa@globex.example>\r\n"),
    )
    # 3: the real Hank, and 4: Bob's real mail to a new client
    deliver(maildir, 3, mail(3, "hank@globex.example", OWNER, PASSED))
    deliver(maildir, 4, mail(4, OWNER, "Eve <eve@hooli.example>", PASSED))
    settings = ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"northwind.example"}),
        contact_policy=ContactPolicy.SENT_AND_RECEIVED,
        visibility=Visibility.SUBJECT,
    )
    channel = Channel("bob-mail", "bob", ChannelKind.MAIL, "maildir", settings)
    store = SqlStore(f"sqlite:///{tmp_path / 'forged.sqlite'}")
    provider = MaildirProvider(maildir)
    try:
        report = SyncEngine(store, directory).run(channel, provider)
    finally:
        provider.close()
    assert report.errors == []

    created = {a for p in directory.people() for a in directory.addresses_of(p.id)}
    assert created == {"hank@globex.example", "eve@hooli.example"}

    seen = {}
    for summary in store.timeline(Target(TargetKind.COMPANY, "globex"), Viewer("alice")).items:
        view = store.thread(summary.thread_id, Viewer("alice"))
        assert view is not None
        seen.update({m.message_id: m for m in view.messages})
    assert set(seen) == {"m2@x.example", "m3@x.example"}
    assert seen["m2@x.example"].warnings == ("sender-unverified",)  # a colleague's view: codes
    assert not seen["m3@x.example"].warnings
    assert seen["m2@x.example"].sender_unverified
    assert not seen["m3@x.example"].sender_unverified
    forged_owner = store.threads_by_message_ids(["m1@x.example"])["m1@x.example"]
    view = store.thread(forged_owner, Viewer("bob"))
    assert view is not None
    (message,) = view.messages
    assert message.direction is Direction.INCOMING
    assert "sender-unverified:dmarc" in message.warnings


def _message(sender: str, unverified: bool, *extra: Participant) -> Message:
    return Message(
        provider_id="1",
        message_id="m@x.example",
        date=datetime(2026, 12, 1, tzinfo=timezone.utc),
        participants=(
            Participant(parse_address(sender), Role.FROM),
            Participant(parse_address(OWNER), Role.TO),
            *extra,
        ),
        list_unsubscribe="<mailto:leave@x.example>",
        warnings=("sender-unverified:dmarc",) if unverified else (),
    )


def test_a_forged_owner_is_judged_as_any_outsider() -> None:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"northwind.example"}))
    client = Participant(parse_address("ann@initech.example"), Role.CC)
    genuine, forged = _message(OWNER, False, client), _message(OWNER, True, client)
    assert direction(genuine, settings) is Direction.OUTGOING
    assert direction(forged, settings) is Direction.INCOMING
    assert decide(genuine, settings, {}).reason is Reason.IMPORTED  # the owner's own mailing
    assert decide(forged, settings, {}).reason is Reason.GROUP
    for policy in ContactPolicy:
        chosen = ChannelSettings(owner=OWNER, contact_policy=policy)
        made = contacts_to_create(
            [(forged, Direction.OUTGOING), (_message("x@acme.example", True), Direction.INCOMING)],
            chosen,
            (),
        )
        assert made == []


def test_a_channel_that_leaves_forged_mail_out_and_takes_it_back(
    maildir: Path, tmp_path: Path
) -> None:
    directory = InMemoryDirectory()
    deliver(maildir, 2, mail(2, "hank@globex.example", OWNER, FAILED))
    deliver(maildir, 3, mail(3, "hank@globex.example", OWNER, PASSED))
    # the forged owner's newsletter: the group rule comes first
    deliver(
        maildir,
        4,
        mail(4, OWNER, "Ann <ann@initech.example>", FAILED, "List-Id: <news.x.example>\r\n"),
    )
    strict = ChannelSettings(
        owner=OWNER, org_domains=frozenset({"northwind.example"}), skip_unverified=True
    )
    channel = Channel("bob-mail", "bob", ChannelKind.MAIL, "maildir", strict)
    store = SqlStore(f"sqlite:///{tmp_path / 'strict.sqlite'}")
    engine = SyncEngine(store, directory)
    provider = MaildirProvider(maildir)

    def stored() -> set[str]:
        return set(store.threads_by_message_ids(["m2@x.example", "m3@x.example", "m4@x.example"]))

    def reasons() -> dict[str, tuple[Reason, str, str]]:
        return {
            s.message_id: (s.reason, s.subject, s.sender)
            for s in store.skips(channel.id, Viewer("bob"))
        }

    try:
        first = engine.run(channel, provider)
        assert first.errors == []
        assert first.skipped[Reason.UNVERIFIED] == 1
        assert stored() == {"m3@x.example"}
        # explained to the owner with what a skip of outside mail keeps
        assert reasons()["m2@x.example"] == (Reason.UNVERIFIED, "Message 2", "hank@globex.example")
        assert reasons()["m4@x.example"][0] is Reason.GROUP
        (colleague,) = [
            s for s in store.skips(channel.id, Viewer("alice")) if s.reason is Reason.UNVERIFIED
        ]
        assert (colleague.subject, colleague.sender) == ("", "")

        # turned off: the next resync judges the skipped mail again and imports it
        relaxed = attrs.evolve(channel, settings=attrs.evolve(strict, skip_unverified=False))
        assert engine.run(relaxed, provider).imported == 0  # an incremental pass re-judges nothing
        engine.request_resync(channel.id)
        again = engine.run(relaxed, provider)
        assert again.errors == []
        assert stored() == {"m2@x.example", "m3@x.example"}
        assert "m2@x.example" not in reasons()

        # turned on again: a refetching resync removes what is stored
        engine.request_resync(channel.id, refetch=True)
        last = engine.run(channel, provider)
        assert last.errors == []
        assert stored() == {"m3@x.example"}
        assert reasons()["m2@x.example"][0] is Reason.UNVERIFIED
    finally:
        provider.close()
        store.close()


def test_the_judging_key_of_a_channel_without_the_setting_is_unchanged() -> None:
    """Channels that do not use ``skip_unverified`` keep the key their skip
    records were judged under (a new key would re-judge all of them)."""
    channel = Channel("c", "u", ChannelKind.MAIL, "imap", ChannelSettings(owner=OWNER))
    before = json.dumps([POLICY_REVISION, OWNER, [], [], False, []], separators=(",", ":"))
    assert judging_key(channel) == hashlib.sha256(before.encode()).hexdigest()[:16]
    strict = attrs.evolve(channel, settings=ChannelSettings(owner=OWNER, skip_unverified=True))
    assert judging_key(strict) != judging_key(channel)


def test_the_skip_names_the_check_that_failed() -> None:
    strict = ChannelSettings(owner=OWNER, skip_unverified=True)
    forged = attrs.evolve(
        _message("ceo@globex.example", True),
        list_unsubscribe="",
        warnings=("sender-unverified:compauth",),
    )
    verdict = decide(forged, strict, {})
    assert (verdict.keep, verdict.reason) == (False, Reason.UNVERIFIED)
    assert verdict.detail == "the receiving server found the sender forged (compauth=fail)"
    assert decide(forged, ChannelSettings(owner=OWNER), {}).reason is Reason.IMPORTED
    genuine = attrs.evolve(forged, warnings=())
    assert decide(genuine, strict, {}).reason is Reason.IMPORTED
