from __future__ import annotations

from datetime import datetime, timezone

import pytest

from commlink.addresses import parse_address
from commlink.model import (
    Attendee,
    ChannelSettings,
    Direction,
    Event,
    Folder,
    FolderKind,
    FolderSelection,
    Message,
    Participant,
    Role,
)
from commlink.policy.filters import decide, decide_event, direction, org_domains
from commlink.records import Reason

OWNER = "me@acme.com"
WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)


def settings(**kw: object) -> ChannelSettings:
    return ChannelSettings(owner=kw.pop("owner", OWNER), **kw)  # type: ignore[arg-type]


def msg(sender: str, *to: str, **kw: object) -> Message:
    people = [Participant(parse_address(sender), Role.FROM)]
    people += [Participant(parse_address(t), Role.TO) for t in to]
    return Message(provider_id="p1", message_id="m1@x", date=WHEN, participants=tuple(people), **kw)  # type: ignore[arg-type]


def event(organizer: str | None, *attendees: str) -> Event:
    return Event(
        provider_id="e1",
        uid="u1",
        start=WHEN,
        end=WHEN,
        organizer=Attendee(parse_address(organizer), organizer=True) if organizer else None,
        attendees=tuple(Attendee(parse_address(a)) for a in attendees),
    )


NO_FOLDERS: dict[str, Folder] = {}


class TestOrgDomains:
    def test_configured_domains_are_normalised(self) -> None:
        s = settings(org_domains=frozenset({"Acme.COM", "Bücher.de", "@"}))
        assert org_domains(s) == {"acme.com", "xn--bcher-kva.de"}

    def test_defaults_to_owner_domain(self) -> None:
        assert org_domains(settings(owner="Me@Sub.Acme.com")) == {"sub.acme.com"}

    def test_free_mail_owner_has_none(self) -> None:
        assert org_domains(settings(owner="me@gmail.com")) == frozenset()


class TestFolders:
    def test_spam_trash_drafts_always_excluded(self) -> None:
        folders = {
            "s": Folder("s", "Junk", FolderKind.SPAM),
            "t": Folder("t", "Bin", FolderKind.TRASH),
            "d": Folder("d", "Drafts", FolderKind.DRAFTS),
            "i": Folder("i", "Inbox", FolderKind.INBOX),
        }
        everything = settings(folders=FolderSelection(include=frozenset({"i", "s", "t", "d"})))
        for kind in ("s", "t", "d"):
            d = decide(msg("a@client.io", OWNER, folders=("i", kind)), everything, folders)
            assert not d.keep
            assert d.reason is Reason.EXCLUDED_FOLDER
            assert folders[kind].kind.value in d.detail

    def test_unselected_folder_excluded(self) -> None:
        folders = {"i": Folder("i", "Inbox", FolderKind.INBOX), "x": Folder("x", "Private")}
        s = settings(folders=FolderSelection(include=frozenset({"inbox"})))
        assert decide(msg("a@client.io", OWNER, folders=("x",)), s, folders).reason is (
            Reason.EXCLUDED_FOLDER
        )
        assert decide(msg("a@client.io", OWNER, folders=("x", "i")), s, folders).keep

    def test_excluded_by_id(self) -> None:
        folders = {"x": Folder("x", "Private")}
        s = settings(folders=FolderSelection(exclude=frozenset({"x"})))
        d = decide(msg("a@client.io", OWNER, folders=("x",)), s, folders)
        assert d.reason is Reason.EXCLUDED_FOLDER
        assert "Private" in d.detail

    def test_unknown_folder_ids_are_custom_folders(self) -> None:
        s = settings(folders=FolderSelection(include=frozenset({"inbox"})))
        assert decide(msg("a@client.io", OWNER, folders=("?",)), s, NO_FOLDERS).reason is (
            Reason.EXCLUDED_FOLDER
        )
        assert decide(msg("a@client.io", OWNER, folders=("?",)), settings(), NO_FOLDERS).keep

    def test_no_folders_not_excluded(self) -> None:
        s = settings(folders=FolderSelection(include=frozenset({"inbox"})))
        assert decide(msg("a@client.io", OWNER), s, NO_FOLDERS).keep


class TestDecide:
    def test_external_mail_imported(self) -> None:
        d = decide(msg("a@client.io", OWNER), settings(), NO_FOLDERS)
        assert d.keep
        assert d.reason is Reason.IMPORTED

    def test_invalid_when_nobody_but_owner(self) -> None:
        alias = settings(aliases=frozenset({"me@acme.io"}))
        for m in (msg(OWNER), msg(OWNER, "me@acme.io"), msg("garbage", OWNER), msg("", "x@")):
            d = decide(m, alias, NO_FOLDERS)
            assert not d.keep
            assert d.reason is Reason.INVALID

    def test_blocked_names_the_entry(self) -> None:
        s = settings(blocklist=frozenset({"@Spam.io", "Bad@x.com"}))
        d = decide(msg("a@news.spam.io", OWNER), s, NO_FOLDERS)
        assert d.reason is Reason.BLOCKED
        assert "@spam.io" in d.detail
        d = decide(msg(OWNER, "friend@ok.io", "bad@x.com"), s, NO_FOLDERS)
        assert d.reason is Reason.BLOCKED
        assert "bad@x.com" in d.detail

    def test_owner_is_never_blocked_by_own_domain_entry(self) -> None:
        s = settings(blocklist=frozenset({"@acme.com"}))
        assert decide(msg(OWNER, "client@client.io"), s, NO_FOLDERS).keep

    def test_blocked_before_group(self) -> None:
        s = settings(blocklist=frozenset({"@spam.io"}))
        d = decide(msg("news@spam.io", OWNER, list_id="<l>"), s, NO_FOLDERS)
        assert d.reason is Reason.BLOCKED

    @pytest.mark.parametrize(
        ("kw", "rule"),
        [
            ({"list_id": "<news.client.io>"}, "List-Id"),
            ({"list_unsubscribe": "<mailto:u@client.io>"}, "List-Unsubscribe"),
            ({"precedence": "Bulk"}, "bulk"),
            ({"precedence": "list"}, "list"),
            ({"precedence": "junk"}, "junk"),
            ({"auto_submitted": "auto-generated"}, "Auto-Submitted"),
            ({"auto_submitted": "auto-replied; owner-email=x"}, "auto-replied"),
        ],
    )
    def test_group_headers(self, kw: dict[str, str], rule: str) -> None:
        d = decide(msg("a@client.io", OWNER, **kw), settings(), NO_FOLDERS)
        assert d.reason is Reason.GROUP
        assert rule in d.detail

    def test_not_group(self) -> None:
        for kw in ({"precedence": "first-class"}, {"auto_submitted": "no"}, {"list_id": " "}):
            assert decide(msg("a@client.io", OWNER, **kw), settings(), NO_FOLDERS).keep

    def test_role_sender_is_group(self) -> None:
        d = decide(msg("no-reply@client.io", OWNER), settings(), NO_FOLDERS)
        assert d.reason is Reason.GROUP
        assert "no-reply@client.io" in d.detail

    def test_role_recipient_is_not_group(self) -> None:
        assert decide(msg(OWNER, "support@client.io"), settings(), NO_FOLDERS).keep

    def test_mail_from_owner_or_alias_is_never_group(self) -> None:
        s = settings(aliases=frozenset({"Me@Acme.IO"}))
        for sender in (OWNER, "ME@acme.com", "me@acme.io"):
            m = msg(sender, "list@client.io", list_id="<l>", precedence="bulk")
            assert decide(m, s, NO_FOLDERS).keep

    def test_internal_only_skipped(self) -> None:
        d = decide(msg("colleague@acme.com", OWNER), settings(), NO_FOLDERS)
        assert d.reason is Reason.INTERNAL
        d = decide(msg("colleague@eu.acme.com", OWNER), settings(), NO_FOLDERS)
        assert d.reason is Reason.INTERNAL
        assert decide(msg("colleague@acme.com", OWNER), settings(sync_internal=True), {}).keep

    def test_one_external_participant_makes_it_external(self) -> None:
        assert decide(msg("colleague@acme.com", OWNER, "x@client.io"), settings(), {}).keep

    def test_invalid_participants_do_not_make_mail_external(self) -> None:
        d = decide(msg("colleague@acme.com", OWNER, "broken@"), settings(), NO_FOLDERS)
        assert d.reason is Reason.INTERNAL

    def test_free_mail_owner_has_no_internal_mail(self) -> None:
        s = settings(owner="me@gmail.com")
        assert decide(msg("friend@gmail.com", "me@gmail.com"), s, NO_FOLDERS).keep

    def test_configured_org_domains(self) -> None:
        s = settings(org_domains=frozenset({"acme.com", "acme-labs.io"}))
        assert decide(msg("x@acme-labs.io", OWNER), s, NO_FOLDERS).reason is Reason.INTERNAL


class TestDirection:
    def test_outgoing_from_owner_and_aliases(self) -> None:
        s = settings(aliases=frozenset({"me@acme.io"}))
        assert direction(msg("Me@Acme.com", "x@y.io"), s) is Direction.OUTGOING
        assert direction(msg("me@acme.io", "x@y.io"), s) is Direction.OUTGOING
        assert direction(msg("x@y.io", OWNER), s) is Direction.INCOMING

    def test_no_sender_is_incoming(self) -> None:
        m = Message(provider_id="p", message_id="m", date=WHEN)
        assert direction(m, settings()) is Direction.INCOMING


class TestDecideEvent:
    def test_external_meeting_imported(self) -> None:
        assert decide_event(event(OWNER, "client@client.io"), settings()).keep

    def test_invalid_without_others(self) -> None:
        for e in (event(OWNER), event(None), event(OWNER, OWNER, "broken@")):
            d = decide_event(e, settings())
            assert d.reason is Reason.INVALID

    def test_blocked(self) -> None:
        s = settings(blocklist=frozenset({"@client.io"}))
        d = decide_event(event("boss@eu.client.io", OWNER), s)
        assert d.reason is Reason.BLOCKED
        assert "@client.io" in d.detail

    def test_internal(self) -> None:
        d = decide_event(event(OWNER, "colleague@acme.com"), settings())
        assert d.reason is Reason.INTERNAL
        assert decide_event(event(OWNER, "colleague@acme.com"), settings(sync_internal=True)).keep
        assert decide_event(event("client@client.io", "colleague@acme.com"), settings()).keep
