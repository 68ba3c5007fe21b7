"""The IMAP provider's pure helpers: ids, UID sets, VANISHED, folder roles, Gmail items."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.errors import ConfigError, CursorExpired, InvalidInput
from commlink.model import Detail, FolderKind
from commlink.providers.imap.provider import ImapProvider
from commlink.providers.imap.responses import (
    ImapCursor,
    compress_uids,
    fetched_message,
    folder_from_list,
    make_id,
    parse_id,
    parse_uid_set,
    parse_vanished,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=300))
def test_uid_sets_round_trip(uids: list[int]) -> None:
    text = compress_uids(uids)
    assert parse_uid_set(text) == sorted(set(uids))
    assert len(text.split(",")) <= len(set(uids))


def test_compress_uids_makes_ranges() -> None:
    assert compress_uids([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"
    with pytest.raises(InvalidInput, match="empty"):
        compress_uids([])


def test_uid_sets_can_be_bounded() -> None:
    assert parse_uid_set("5:3,10:20", below=12) == [3, 4, 5, 10, 11]
    with pytest.raises(ValueError, match="too large"):
        parse_uid_set("1:99999999")


def test_vanished_responses() -> None:
    lines = [b"(EARLIER) 41,43:45", b"50"]
    assert parse_vanished(lines) == [41, 43, 44, 45, 50]
    assert parse_vanished(["(EARLIER) 1:4"], below=3) == [1, 2]
    with pytest.raises(CursorExpired, match="unreadable"):
        parse_vanished([b"(EARLIER) nonsense"])
    with pytest.raises(CursorExpired, match="unreadable"):
        parse_vanished([b"1::4"])
    with pytest.raises(CursorExpired, match="too large"):
        parse_vanished([b"1:99999999"])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=2**32 - 1), st.integers(min_value=1, max_value=2**32 - 1))
def test_ids_round_trip(uidvalidity: int, uid: int) -> None:
    assert parse_id(make_id(uidvalidity, uid)) == (uidvalidity, uid)


@pytest.mark.parametrize("text", ["", "12", "a:1", "1:b", "1:2:3", "-1:2"])
def test_foreign_ids_are_not_parsed(text: str) -> None:
    assert parse_id(text) is None


def test_cursor_round_trip_and_unreadable_cursor() -> None:
    cursor = ImapCursor(uidvalidity=7, uidnext=42, highestmodseq=99, messages=40)
    assert ImapCursor.decode(cursor.encode()) == cursor
    assert '"uidvalidity":7' in cursor.encode()
    with pytest.raises(CursorExpired):
        ImapCursor.decode("not json")
    with pytest.raises(CursorExpired):
        ImapCursor.decode('{"uidnext": 3}')


@pytest.mark.parametrize(
    ("flags", "name", "kind"),
    [
        ((b"\\HasNoChildren", b"\\Sent"), "Gesendet", FolderKind.SENT),
        ((b"\\Archive",), "Old", FolderKind.ARCHIVE),
        ((b"\\Junk",), "Bulk", FolderKind.SPAM),
        ((b"\\Trash",), "Bin", FolderKind.TRASH),
        ((b"\\Drafts",), "Unsent", FolderKind.DRAFTS),
        ((b"\\All", b"\\HasNoChildren"), "[Gmail]/All Mail", FolderKind.ALL),
        ((b"\\Flagged",), "[Gmail]/Starred", FolderKind.STARRED),
        ((), "inbox", FolderKind.INBOX),
        ((), "Sent Items", FolderKind.SENT),
        ((), "Sent Messages", FolderKind.SENT),
        ((), "Gesendet", FolderKind.SENT),
        ((), "Envoyés", FolderKind.SENT),
        ((), "Entwürfe", FolderKind.DRAFTS),
        ((), "Deleted Items", FolderKind.TRASH),
        ((), "Papierkorb", FolderKind.TRASH),
        ((), "Spam", FolderKind.SPAM),
        ((), "Junk", FolderKind.SPAM),
        ((), "Archive", FolderKind.ARCHIVE),
        ((), "INBOX/Trash", FolderKind.TRASH),
        ((), "Clients/Archive", FolderKind.CUSTOM),
        ((), "Projects", FolderKind.CUSTOM),
    ],
)
def test_folder_kinds(flags: tuple[bytes, ...], name: str, kind: FolderKind) -> None:
    folder = folder_from_list(flags, b"/", name)
    assert folder is not None
    assert folder.kind is kind
    assert folder.id == name


def test_folders_parents_and_noselect() -> None:
    assert folder_from_list((b"\\Noselect", b"\\HasChildren"), b"/", "[Gmail]") is None
    assert folder_from_list((b"\\NonExistent",), b"/", "Gone") is None
    child = folder_from_list((), b".", "INBOX.Clients.Acme")
    assert child is not None
    assert (child.name, child.parent) == ("Acme", "INBOX.Clients")
    top = folder_from_list((), None, "Projects")
    assert top is not None
    assert top.parent is None


def test_gmail_fetch_items() -> None:
    when = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    item = {
        b"BODY[]": b"Subject: hi\r\n\r\nbody\r\n",
        b"INTERNALDATE": when,
        b"X-GM-THRID": 1278455344230334865,
        b"X-GM-LABELS": (b"\\Inbox", b"\\Important", b"Clients/Acme", b"Entw&APw-rfe"),
        b"SEQ": 3,
    }
    fetched = fetched_message(42, 7, item, Detail.FULL, gmail=True)
    assert fetched is not None
    assert fetched.provider_id == "42:7"
    assert fetched.raw == b"Subject: hi\r\n\r\nbody\r\n"
    assert fetched.thread_hint == "1278455344230334865"
    assert fetched.folders == ("\\Inbox", "\\Important", "Clients/Acme", "Entwürfe")
    assert fetched.date == when


def test_non_gmail_fetch_items_and_unsolicited_flags() -> None:
    naive = datetime(2026, 3, 2, 9, 30)
    fetched = fetched_message(
        1, 2, {b"BODY[HEADER]": b"Subject: x\r\n\r\n", b"INTERNALDATE": naive}, Detail.METADATA
    )
    assert fetched is not None
    assert fetched.thread_hint is None
    assert fetched.folders == ()
    assert fetched.date == naive.replace(tzinfo=timezone.utc)
    # a FETCH that only reports flags (sent unasked) is not a message
    assert fetched_message(1, 2, {b"FLAGS": (b"\\Seen",)}, Detail.FULL) is None


def test_a_page_size_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="page_size"):
        ImapProvider("imap.example", username="ann", page_size=0)
