from __future__ import annotations

import io
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mbox_reference import reference_offsets

from commlink.errors import ConfigError, CursorExpired
from commlink.model import Detail, FolderKind
from commlink.ports import ChangeSet, MailProvider
from commlink.providers.files import mbox as mbox_module
from commlink.providers.files import mbox_format, open_path
from commlink.providers.files.mbox import MboxProvider
from commlink.providers.files.mbox_format import from_line_date, iter_separators, split_labels

TAKEOUT = (
    Path(__file__).parent.parent / "data" / "takeout" / "All mail Including Spam and Trash.mbox"
)


def message(n: int, body: str = "", *, hour: int = 9) -> bytes:
    headers = (
        f"From: Sender {n} <s{n}@example.com>\n"
        f"To: you@example.org\n"
        f"Subject: Message {n}\n"
        f"Message-ID: <m{n}@example.com>\n"
    )
    body = body or f"Body of message {n}.\n"
    return (
        f"From s{n}@example.com Mon Jan  {1 + n % 9} {hour:02d}:00:00 2024\n{headers}\n{body}\n"
    ).encode()


def reference_message(data: bytes, offsets: list[int], i: int) -> bytes:
    """Message ``i`` rebuilt line by line: unescaped, without the separator blank."""
    end = offsets[i + 1] if i + 1 < len(offsets) else len(data)
    entry = data[offsets[i] : end]
    body = entry[entry.index(b"\n") + 1 :] if b"\n" in entry else b""
    lines = [line[1:] if line.lstrip(b">").startswith(b"From ") and line[:1] == b">" else line
             for line in body.split(b"\n")]  # fmt: skip
    text = b"\n".join(lines)
    if text.endswith(b"\r\n\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(b"\n\n") else text


def ids_at(data: bytes, offsets: list[int]) -> list[str | None]:
    """The provider ids of the messages at these offsets."""
    return [mbox_format.message_key(io.BytesIO(data), o) for o in offsets]


@pytest.fixture
def mbox(tmp_path: Path) -> Path:
    path = tmp_path / "archive.mbox"
    path.write_bytes(
        message(1)
        + message(2, "Quoting:\n>From the start it was clear.\n>>From nested quote.\n")
        + message(3, "A line\nFrom here on, this is body text.\n\nFrom now on too.\n")
    )
    return path


def test_one_id_per_from_line(mbox: Path) -> None:
    data = mbox.read_bytes()
    provider = MboxProvider(mbox)
    assert isinstance(provider, MailProvider)
    (scope,) = provider.scopes(provider.folders())
    page = provider.list_page(scope, None)
    expected = [0, data.index(b"From s2@"), data.index(b"From s3@")]
    assert reference_offsets(data) == expected
    assert list(page.ids) == ids_at(data, expected)
    assert len(set(page.ids)) == 3
    assert all(len(i) == 16 for i in page.ids)
    assert page.next is None


def test_fetch_unescapes_and_strips_the_separator_blank(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    ids = provider.list_page(scope, None).ids
    fetched = list(provider.fetch(scope, ids, Detail.FULL))
    assert [f.provider_id for f in fetched] == list(ids)
    second = fetched[1].raw
    assert second is not None
    assert b"\nFrom the start it was clear.\n" in second
    assert b"\n>From nested quote.\n" in second
    assert second.startswith(b"From: Sender 2")
    assert second.endswith(b">From nested quote.\n")
    third = fetched[2].raw
    assert third is not None
    assert b"From here on, this is body text." in third
    assert b"From now on too." in third
    assert fetched[0].folders == ("mbox",)
    assert fetched[0].thread_hint is None
    assert fetched[0].date == datetime(2024, 1, 2, 9, tzinfo=timezone.utc)


def test_metadata_fetch_is_headers_only(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    first = provider.list_page(scope, None).ids[0]
    (fetched,) = provider.fetch(scope, [first], Detail.METADATA)
    assert fetched.raw is not None
    assert fetched.raw.startswith(b"From: Sender 1")
    assert fetched.raw.endswith(b"Message-ID: <m1@example.com>\n")
    assert b"Body of message" not in fetched.raw


def test_unknown_ids_are_not_found(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    bogus = ["5", "abc", "", "0123456789abcdef"]
    results = list(provider.fetch(scope, bogus, Detail.FULL))
    assert [r.error for r in results] == ["not found"] * len(bogus)
    assert all(r.raw is None for r in results)


def test_paging(tmp_path: Path) -> None:
    path = tmp_path / "big.mbox"
    path.write_bytes(b"".join(message(n) for n in range(7)))
    provider = MboxProvider(path, page_size=3)
    (scope,) = provider.scopes(provider.folders())
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
    assert pages == 3
    data = path.read_bytes()
    assert seen == ids_at(data, reference_offsets(data))
    assert len(seen) == 7
    with pytest.raises(CursorExpired):
        provider.list_page(scope, "not-a-number")


def test_plain_mbox_is_one_inbox_folder(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (folder,) = provider.folders()
    assert (folder.id, folder.name, folder.kind) == ("mbox", "archive", FolderKind.INBOX)
    assert not provider.is_takeout()
    assert provider.scopes([]) == []


def test_missing_or_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        MboxProvider(tmp_path / "nope.mbox")
    assert info.value.field == "path"
    with pytest.raises(ConfigError):
        MboxProvider(tmp_path)


# -- Takeout --------------------------------------------------------------------


def test_takeout_labels_become_folders() -> None:
    provider = MboxProvider(TAKEOUT)
    assert provider.is_takeout()
    kinds = {f.id: f.kind for f in provider.folders()}
    assert kinds == {
        "Inbox": FolderKind.INBOX,
        "Important": FolderKind.IMPORTANT,
        "Category Updates": FolderKind.CATEGORY,
        "Sent": FolderKind.SENT,
        "Archived": FolderKind.ARCHIVE,
        "Work, Clients": FolderKind.CUSTOM,
        "Kunden München": FolderKind.CUSTOM,
        "Work/Partners": FolderKind.CUSTOM,
        "Spam": FolderKind.SPAM,
        "Chat": FolderKind.CUSTOM,
        "Starred": FolderKind.STARRED,
        "Trash": FolderKind.TRASH,
        "Drafts": FolderKind.DRAFTS,
    }
    partners = next(f for f in provider.folders() if f.id == "Work/Partners")
    assert (partners.name, partners.parent) == ("Partners", "Work")


def test_takeout_messages_carry_labels_and_threads() -> None:
    provider = MboxProvider(TAKEOUT)
    (scope,) = provider.scopes(provider.folders())
    ids = provider.list_page(scope, None).ids
    assert len(ids) == 5
    fetched = {f.provider_id: f for f in provider.fetch(scope, ids, Detail.FULL)}
    first, second, third = (fetched[i] for i in ids[:3])
    assert first.folders == ("Inbox", "Important", "Category Updates")  # Opened is a state
    assert first.thread_hint == second.thread_hint == "1790000000000000001"
    assert third.thread_hint == "1790000000000000003"
    assert third.folders == ("Archived", "Work, Clients", "Kunden München", "Work/Partners")
    assert first.date == datetime(2024, 1, 8, 9, 15, tzinfo=timezone.utc)
    assert second.raw is not None
    assert b"\r\nFrom the archive: last year's quote is attached.\r\n" in second.raw
    assert second.raw.endswith(b"Alice\r\n")
    assert third.raw is not None
    assert b"From what I hear, you know Bill." in third.raw


def test_takeout_folders_scan_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "takeout.mbox"
    shutil.copy(TAKEOUT, path)
    provider = MboxProvider(path)
    calls = 0
    real = mbox_module.iter_separators

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(mbox_module, "iter_separators", counting)
    first = provider.folders()
    after_first = calls
    assert provider.folders() == first
    assert calls == after_first


@pytest.mark.parametrize(
    ("value", "labels"),
    [
        ("Inbox,Important", ("Inbox", "Important")),
        ('Archived,"Work, Clients", Sent', ("Archived", "Work, Clients", "Sent")),
        ('"say \\"hi\\"",x', ('say "hi"', "x")),
        (" , Inbox,,Inbox ", ("Inbox",)),
    ],
)
def test_split_labels(value: str, labels: tuple[str, ...]) -> None:
    assert split_labels(value) == labels


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


FROM_LINES = [
    (b"From a@b Mon Jan  1 10:00:00 2024", utc(2024, 1, 1, 10)),
    (b"From 1@xxx Wed Feb 07 10:00:00 +0200 2024", utc(2024, 2, 7, 8)),
    (b"From - Sat Mar 02 23:30 2024", utc(2024, 3, 2, 23, 30)),
    (b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011 -0700", utc(2011, 7, 8, 19, 8, 34)),
    (b"From someone", None),
    (b"From x Mon Foo 99 10:00:00 2024", None),
]


@pytest.mark.parametrize(("line", "expected"), FROM_LINES)
def test_from_line_dates(line: bytes, expected: datetime | None) -> None:
    assert from_line_date(line) == expected


# -- incremental ----------------------------------------------------------------


def test_appended_mail_is_all_that_changes(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    cursor = provider.snapshot(scope)
    assert provider.changes(scope, cursor).upserted == ()
    old_size = mbox.stat().st_size
    with mbox.open("ab") as fh:
        fh.write(message(4) + message(5))
    changes = provider.changes(scope, cursor)
    data = mbox.read_bytes()
    assert list(changes.upserted) == ids_at(data, [old_size, data.index(b"From s5@")])
    assert changes.deleted == ()
    assert changes.complete
    quiet = provider.changes(scope, changes.cursor)
    assert quiet.upserted == ()
    assert quiet.cursor == changes.cursor
    (fetched,) = provider.fetch(scope, [changes.upserted[0]], Detail.FULL)
    assert fetched.raw is not None
    assert fetched.raw.startswith(b"From: Sender 4")


def test_unchanged_file_costs_one_stat(mbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    cursor = provider.snapshot(scope)

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("file opened for an unchanged mbox")

    monkeypatch.setattr(Path, "open", no_open)
    assert provider.changes(scope, cursor) == ChangeSet((), (), cursor)


def test_many_appended_messages_come_in_pages(mbox: Path) -> None:
    provider = MboxProvider(mbox, page_size=2)
    (scope,) = provider.scopes(provider.folders())
    cursor = provider.snapshot(scope)
    with mbox.open("ab") as fh:
        fh.write(b"".join(message(n) for n in range(10, 15)))
    collected: list[str] = []
    complete = False
    rounds = 0
    while not complete:
        changes = provider.changes(scope, cursor)
        collected.extend(changes.upserted)
        cursor, complete = changes.cursor, changes.complete
        rounds += 1
    assert rounds == 3
    data = mbox.read_bytes()
    assert collected == ids_at(data, reference_offsets(data)[3:])


def test_small_file_growing_past_the_head_hash(tmp_path: Path) -> None:
    path = tmp_path / "small.mbox"
    path.write_bytes(message(1))
    provider = MboxProvider(path)
    (scope,) = provider.scopes(provider.folders())
    cursor = provider.snapshot(scope)
    with path.open("ab") as fh:
        fh.write(b"".join(message(n, "x" * 1000 + "\n") for n in range(2, 100)))
    assert len(provider.changes(scope, cursor).upserted) == 98


@pytest.mark.parametrize("edit", ["rewrite", "shrink", "replace", "mid-message", "same-size"])
def test_rewritten_file_expires_the_cursor(mbox: Path, edit: str) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    cursor = provider.snapshot(scope)
    data = mbox.read_bytes()
    if edit == "rewrite":  # first message removed, more appended: it grew
        mbox.write_bytes(data[data.index(b"From s2@") :] + message(8) + message(9) + message(10))
    elif edit == "shrink":
        mbox.write_bytes(data[: data.index(b"From s3@")])
    elif edit == "replace":  # a new file in its place (another inode)
        other = mbox.with_suffix(".new")
        other.write_bytes(data + message(4))
        os.replace(other, mbox)
    elif edit == "mid-message":  # the old end is no longer a message boundary
        mbox.write_bytes(data[:-1] + b"more body\n\n" + message(4))
    else:
        mbox.write_bytes(data.replace(b"Body of message 1", b"Body of message X"))
        os.utime(mbox, ns=(0, mbox.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(CursorExpired):
        provider.changes(scope, cursor)


def test_ids_survive_a_rewrite_that_moves_messages(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    before = provider.list_page(scope, None).ids
    with mbox.open("ab") as fh:
        fh.write(message(4))
    after_append = provider.list_page(scope, None).ids
    assert after_append[:3] == before
    data = mbox.read_bytes()
    mbox.write_bytes(data[data.index(b"From s2@") :])  # the first message deleted
    after_delete = provider.list_page(scope, None).ids
    assert after_delete == after_append[1:]
    (gone,) = provider.fetch(scope, [before[0]], Detail.FULL)
    assert gone.error == "not found"
    fetched = list(provider.fetch(scope, after_delete, Detail.METADATA))
    assert [(f.raw or b"")[:14] for f in fetched] == [
        b"From: Sender 2",
        b"From: Sender 3",
        b"From: Sender 4",
    ]


def test_fetch_finds_ids_listed_by_another_instance(mbox: Path) -> None:
    lister = MboxProvider(mbox)
    (scope,) = lister.scopes(lister.folders())
    ids = lister.list_page(scope, None).ids
    data = mbox.read_bytes()
    mbox.write_bytes(message(0) + data)  # everything moves
    fresh = MboxProvider(mbox)
    fetched = list(fresh.fetch(scope, ids, Detail.METADATA))
    assert [(f.raw or b"")[:14] for f in fetched] == [
        b"From: Sender 1",
        b"From: Sender 2",
        b"From: Sender 3",
    ]


def test_bad_cursor_expires(mbox: Path) -> None:
    provider = MboxProvider(mbox)
    (scope,) = provider.scopes(provider.folders())
    with pytest.raises(CursorExpired):
        provider.changes(scope, "{}")
    with pytest.raises(CursorExpired):
        provider.changes(scope, "garbage")
    state = json.loads(provider.snapshot(scope))
    assert set(state) == {"size", "mtime_ns", "inode", "head_hash"}


# -- the chunked scanner --------------------------------------------------------

BODY_LINES = st.sampled_from(
    [
        "plain text",
        "From here on, it is body text",
        ">From an escaped line",
        ">>From a nested one",
        "From someone at 10:30 in the morning",
        "",
        "From x Mon Jan  1 10:00:00 2024",
        "\r",
        "x" * 70,
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(BODY_LINES, max_size=8), min_size=0, max_size=6),
    st.integers(min_value=1, max_value=64),
    st.booleans(),
)
def test_scanner_and_reader_match_line_by_line_reading(
    bodies: list[list[str]], chunk: int, crlf: bool
) -> None:
    data = b"".join(
        message(n, "".join(f"{line}\n" for line in body)) for n, body in enumerate(bodies)
    )
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    expected = reference_offsets(data)
    original = mbox_format._CHUNK
    mbox_format._CHUNK = chunk
    try:
        found = list(iter_separators(io.BytesIO(data)))
        resumed = [list(iter_separators(io.BytesIO(data), start)) for start in expected]
        read = [mbox_format.read_message(io.BytesIO(data), o, False) for o in expected]
    finally:
        mbox_format._CHUNK = original
    assert found == expected
    for i, offsets in enumerate(resumed):
        assert offsets == expected[i:]
    for i, result in enumerate(read):
        assert result is not None
        assert result[1] == reference_message(data, expected, i)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(BODY_LINES, st.sampled_from(["From \r05 00:00:00", "From a 1:00"])), max_size=12
    ),
    st.one_of(st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=400)),
    st.integers(min_value=1, max_value=16),
)
def test_a_scan_from_any_offset_finds_what_the_whole_scan_finds_after_it(
    lines: list[str], start: int, chunk: int
) -> None:
    # Incremental passes scan from the old end of the file, wherever it is.
    data = "\n".join(lines).encode()
    start = min(start, len(data))
    whole = list(iter_separators(io.BytesIO(data), first_chunk=chunk))
    resumed = list(iter_separators(io.BytesIO(data), start, len(data), first_chunk=chunk))
    assert resumed == [o for o in whole if o >= start]


def test_a_from_line_after_a_leading_blank_line_is_found_from_its_own_offset() -> None:
    data = b"\nFrom a@b 10:00:00 2024\nSubject: x\n\nbody\n"
    assert list(iter_separators(io.BytesIO(data))) == [1]
    assert list(iter_separators(io.BytesIO(data), 1)) == [1]
    assert list(iter_separators(io.BytesIO(b"\n" + data), 2)) == [2]


# -- open_path ------------------------------------------------------------------


def test_open_path_detects_mbox(mbox: Path, tmp_path: Path) -> None:
    assert isinstance(open_path(mbox), MboxProvider)
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"")
    assert isinstance(open_path(empty), MboxProvider)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ConfigError) as info:
        open_path(text)
    assert info.value.field == "path"
    with pytest.raises(ConfigError):
        open_path(tmp_path / "missing")
