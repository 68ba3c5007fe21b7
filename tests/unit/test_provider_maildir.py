from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from commlink.errors import ConfigError, CursorExpired, NotFound
from commlink.model import Detail, FolderKind
from commlink.ports import ChangeSet, MailProvider, Scope
from commlink.providers.files import maildir as maildir_module
from commlink.providers.files import open_path, read_ahead
from commlink.providers.files.maildir import MaildirProvider, unique_name
from commlink.providers.files.read_ahead import READ_AHEAD_FILES

HOUR = 3600


def make_maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def deliver(
    folder: Path, stamp: int | str, n: int, *, seen: bool = False, body: str = "Hello."
) -> str:
    unique = f"{stamp}.M{n}P{1000 + n}.host,S=100"
    text = f"From: a{n}@example.com\nSubject: Message {n}\nMessage-ID: <m{n}@x>\n\n{body}\n"
    if seen:
        (folder / "cur" / f"{unique}:2,S").write_text(text)
    else:
        (folder / "new" / unique).write_text(text)
    return unique


def age(folder: Path, seconds: int = HOUR) -> None:
    """Backdate the folder's directory mtimes, as an idle mailbox has them."""
    past = time.time() - seconds
    for sub in ("new", "cur"):
        os.utime(folder / sub, (past, past))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = make_maildir(tmp_path / "Mail")
    for name in (
        ".Sent",
        ".Archive",
        ".Drafts",
        ".Trash",
        ".Junk",
        ".Foo",
        ".Foo.Bar",
        ".Entw&APw-rfe",
        ".Gesendete Objekte",
    ):
        make_maildir(root / name)
    (root / ".notes").mkdir()  # a dot directory that is no folder
    (root / "dovecot-uidlist").write_text("")
    return root


def inbox(provider: MaildirProvider) -> Scope:
    return next(s for s in provider.scopes(provider.folders()) if s.id == "INBOX")


def test_maildir_plus_plus_folders_and_kinds(root: Path) -> None:
    provider = MaildirProvider(root)
    assert isinstance(provider, MailProvider)
    folders = {f.id: f for f in provider.folders()}
    assert {fid: f.kind for fid, f in folders.items()} == {
        "INBOX": FolderKind.INBOX,
        "Sent": FolderKind.SENT,
        "Archive": FolderKind.ARCHIVE,
        "Drafts": FolderKind.DRAFTS,
        "Trash": FolderKind.TRASH,
        "Junk": FolderKind.SPAM,
        "Foo": FolderKind.CUSTOM,
        "Foo.Bar": FolderKind.CUSTOM,
        "Entw&APw-rfe": FolderKind.DRAFTS,
        "Gesendete Objekte": FolderKind.SENT,
    }
    assert (folders["Foo.Bar"].name, folders["Foo.Bar"].parent) == ("Bar", "Foo")
    assert folders["Entw&APw-rfe"].name == "Entwürfe"
    scopes = provider.scopes(list(folders.values()))
    assert [s.id for s in scopes] == list(folders)
    assert all(s.folder is folders[s.id] for s in scopes)


def test_names() -> None:
    assert unique_name("1700000000.M1P2.host,S=10:2,RS") == "1700000000.M1P2.host,S=10"
    assert unique_name("1700000000.M1P2.host:1,") == "1700000000.M1P2.host"
    assert unique_name("1700000000.M1P2.host!2,S") == "1700000000.M1P2.host"
    assert unique_name("plain") == "plain"


def test_listing_is_newest_first_and_pages(root: Path) -> None:
    stamps = [1_700_000_000 + 60 * i for i in range(7)]
    uniques = [deliver(root, s, i, seen=i % 2 == 0) for i, s in enumerate(stamps)]
    odd = deliver(root, "nodate", 99)
    provider = MaildirProvider(root, page_size=3)
    scope = inbox(provider)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = provider.list_page(scope, token)
        seen.extend(page.ids)
        pages += 1
        if page.next is None:
            break
        token = page.next
    assert seen == [*reversed(uniques), odd]
    assert pages == 3
    with pytest.raises(CursorExpired):
        provider.list_page(scope, "not json")


def test_paging_survives_changes_between_pages(root: Path) -> None:
    uniques = [deliver(root, 1_700_000_000 + i, i) for i in range(6)]
    provider = MaildirProvider(root, page_size=2)
    scope = inbox(provider)
    first = provider.list_page(scope, None)
    assert first.ids == (uniques[5], uniques[4])
    newer = deliver(root, 1_800_000_000, 50)  # arrives mid-listing: newer than the token
    (root / "new" / uniques[3]).unlink()  # and one not yet listed disappears
    second = provider.list_page(scope, first.next)
    assert second.ids == (uniques[2], uniques[1])
    assert newer not in second.ids


def test_fetch_by_unique_name(root: Path) -> None:
    unique = deliver(root, 1_700_000_000, 1, seen=True, body="Body text.")
    provider = MaildirProvider(root)
    scope = inbox(provider)
    (fetched,) = provider.fetch(scope, [unique], Detail.FULL)
    assert fetched.raw is not None
    assert fetched.raw.endswith(b"Body text.\n")
    assert fetched.folders == ("INBOX",)
    assert fetched.date == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    (headers,) = provider.fetch(scope, [unique], Detail.METADATA)
    assert headers.raw is not None
    assert b"Subject: Message 1" in headers.raw
    assert b"Body text." not in headers.raw
    (missing,) = provider.fetch(scope, ["1700000000.nope"], Detail.FULL)
    assert (missing.error, missing.raw) == ("not found", None)


def test_date_only_from_a_numeric_time_prefix(root: Path) -> None:
    unique = deliver(root, "abc", 1)
    provider = MaildirProvider(root)
    (fetched,) = provider.fetch(inbox(provider), [unique], Detail.FULL)
    assert fetched.raw is not None
    assert fetched.date is None


def test_flag_rename_keeps_the_id(root: Path) -> None:
    unique = deliver(root, 1_700_000_000, 1)
    provider = MaildirProvider(root)
    scope = inbox(provider)
    assert provider.list_page(scope, None).ids == (unique,)
    # the mail client reads it: new/ -> cur/ with flags, then flags change
    os.rename(root / "new" / unique, root / "cur" / f"{unique}:2,S")
    (fetched,) = provider.fetch(scope, [unique], Detail.FULL)
    assert fetched.raw is not None
    os.rename(root / "cur" / f"{unique}:2,S", root / "cur" / f"{unique}:2,RS")
    assert provider.list_page(scope, None).ids == (unique,)
    (fetched,) = provider.fetch(scope, [unique], Detail.FULL)
    assert fetched.error is None
    assert fetched.raw is not None


def test_quiet_folder_costs_two_stats(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deliver(root, 1_700_000_000, 1)
    age(root)
    provider = MaildirProvider(root)
    scope = inbox(provider)
    cursor = provider.snapshot(scope)

    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("scandir on a quiet folder")

    monkeypatch.setattr(maildir_module.os, "scandir", no_scan)
    assert provider.changes(scope, cursor) == ChangeSet((), (), cursor)


def test_new_mail_expires_the_cursor(root: Path) -> None:
    deliver(root, 1_700_000_000, 1)
    age(root)
    provider = MaildirProvider(root)
    scope = inbox(provider)
    cursor = provider.snapshot(scope)
    deliver(root, 1_700_000_100, 2)
    with pytest.raises(CursorExpired):
        provider.changes(scope, cursor)


def test_flag_change_expires_the_cursor(root: Path) -> None:
    unique = deliver(root, 1_700_000_000, 1, seen=True)
    age(root)
    provider = MaildirProvider(root)
    scope = inbox(provider)
    cursor = provider.snapshot(scope)
    os.rename(root / "cur" / f"{unique}:2,S", root / "cur" / f"{unique}:2,ST")
    with pytest.raises(CursorExpired):
        provider.changes(scope, cursor)


def test_racy_snapshot_is_checked_by_counting(root: Path) -> None:
    deliver(root, 1_700_000_000, 1)
    provider = MaildirProvider(root)
    scope = inbox(provider)
    cursor = provider.snapshot(scope)  # taken right after a delivery
    quiet = provider.changes(scope, cursor)
    assert quiet.upserted == quiet.deleted == ()
    # a delivery within the same clock tick leaves the directory mtime alone
    before = (root / "new").stat()
    deliver(root, 1_700_000_100, 2)
    os.utime(root / "new", ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(CursorExpired):
        provider.changes(scope, cursor)


def test_cursor_shape_and_bad_cursors(root: Path) -> None:
    provider = MaildirProvider(root)
    scope = inbox(provider)
    state = json.loads(provider.snapshot(scope))
    assert {"new_mtime_ns", "cur_mtime_ns", "count"} <= set(state)
    with pytest.raises(CursorExpired):
        provider.changes(scope, "[]")


def test_subfolder_scope(root: Path) -> None:
    unique = deliver(root / ".Sent", 1_700_000_000, 1, seen=True)
    provider = MaildirProvider(root)
    sent = next(s for s in provider.scopes(provider.folders()) if s.id == "Sent")
    assert provider.list_page(sent, None).ids == (unique,)
    (fetched,) = provider.fetch(sent, [unique], Detail.FULL)
    assert fetched.folders == ("Sent",)
    assert provider.list_page(inbox(provider), None).ids == ()


def test_vanished_folder(root: Path) -> None:
    provider = MaildirProvider(root)
    scope = Scope("Gone", None)
    with pytest.raises(NotFound):
        provider.snapshot(scope)


def test_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        MaildirProvider(tmp_path)
    assert info.value.field == "path"


def test_open_path_detects_maildir(root: Path, tmp_path: Path) -> None:
    assert isinstance(open_path(root), MaildirProvider)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError):
        open_path(empty)


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_files_are_opened_ahead_and_none_left_open(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [deliver(root, 1_700_000_000 + n, n, seen=True, body=f"Body {n}.") for n in range(80)]
    provider = MaildirProvider(root)
    scope = inbox(provider)
    hinted: list[int] = []
    real_fadvise = os.posix_fadvise
    monkeypatch.setattr(
        read_ahead.os,
        "posix_fadvise",
        lambda fd, offset, length, advice: (
            hinted.append(length) or real_fadvise(fd, offset, length, advice)
        ),
    )
    before = _open_fds()
    fetched = provider.fetch(scope, ids, Detail.FULL)
    first = next(fetched)
    assert first.raw is not None
    assert first.raw.endswith(b"Body 0.\n")
    # the first file and the READ_AHEAD_FILES after it are open, each with a hint
    assert len(hinted) == READ_AHEAD_FILES + 1
    assert len(_open_fds() - before) == READ_AHEAD_FILES
    fetched.close()  # a caller that stops early leaves nothing open
    assert _open_fds() - before == set()
    bodies = [m.raw for m in provider.fetch(scope, ids, Detail.FULL)]
    assert bodies == [(root / "cur" / f"{i}:2,S").read_bytes() for i in ids]
    assert _open_fds() - before == set()
    hinted.clear()
    (headers,) = provider.fetch(scope, ids[:1], Detail.METADATA)
    assert headers.raw is not None
    assert b"Body" not in headers.raw
    assert hinted == [maildir_module._MAX_HEADER]  # headers only: the file's start


def test_files_gone_after_the_listing_are_reported_either_way(root: Path) -> None:
    ids = [deliver(root, 1_700_000_000 + n, n, seen=True) for n in range(40)]
    provider = MaildirProvider(root)
    scope = inbox(provider)
    assert len(provider.list_page(scope, None).ids) == 40
    fetched = provider.fetch(scope, ids, Detail.FULL)
    assert next(fetched).raw is not None  # files 1..32 are open now
    os.unlink(root / "cur" / f"{ids[5]}:2,S")  # opened ahead: still readable
    os.unlink(root / "cur" / f"{ids[39]}:2,S")  # not yet opened: gone
    os.rename(root / "cur" / f"{ids[38]}:2,S", root / "cur" / f"{ids[38]}:2,RS")
    rest = {m.provider_id: m for m in fetched}
    assert rest[ids[5]].raw is not None
    assert (rest[ids[39]].error, rest[ids[39]].raw) == ("not found", None)
    assert rest[ids[38]].raw is not None  # found again under its new name
    assert all(rest[i].raw is not None for i in ids[1:39])


def test_read_ahead_without_posix_fadvise_opens_nothing_early(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "_WILLNEED", None)
    ids = [deliver(root, 1_700_000_000 + n, n, seen=True) for n in range(10)]
    ahead = read_ahead.ReadAhead(lambda i: str(root / "cur" / f"{ids[i]}:2,S"), 10, os.O_RDONLY)
    assert ahead.take(0) is None
    ahead.close()
    provider = MaildirProvider(root)
    assert all(m.raw is not None for m in provider.fetch(inbox(provider), ids, Detail.FULL))
