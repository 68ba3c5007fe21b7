"""One table of well-known folder names and one modified UTF-7 decoder, as
the IMAP and Maildir providers both read them."""

from __future__ import annotations

import base64
from itertools import groupby
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.model import FolderKind
from commlink.providers.files.maildir import MaildirProvider
from commlink.providers.folder_names import (
    FOLDER_NAMES,
    decode_modified_utf7,
    kind_from_name,
    kind_from_path,
)
from commlink.providers.imap.responses import folder_from_list, gmail_labels

NAMES = sorted(FOLDER_NAMES.items())
ROLE_NAMES = [(name, kind) for name, kind in NAMES if kind is not FolderKind.INBOX]


def encode_modified_utf7(text: str) -> str:
    """RFC 3501 5.1.3, as a server writes it (the reverse of the decoder)."""
    out = []
    for printable, chars in groupby(text, lambda c: " " <= c <= "~"):
        run = "".join(chars)
        if printable:
            out.append(run.replace("&", "&-"))
        else:
            data = base64.b64encode(run.encode("utf-16-be")).decode()
            out.append("&" + data.rstrip("=").replace("/", ",") + "-")
    return "".join(out)


def test_the_table_is_the_union_of_what_imap_and_maildir_knew() -> None:
    for name in ("spamverdacht", "bulk mail", "junk mail"):
        assert FOLDER_NAMES[name] is FolderKind.SPAM
    assert FOLDER_NAMES["bin"] is FolderKind.TRASH
    assert all(name == name.casefold().strip() for name in FOLDER_NAMES)


@pytest.mark.parametrize(("name", "kind"), NAMES)
def test_kind_from_name(name: str, kind: FolderKind) -> None:
    assert kind_from_name(name.title(), "/") is kind
    assert kind_from_name(f" {name.upper()} ", "/") is kind
    assert kind_from_name(f"INBOX/{name}", "/") is kind
    assert kind_from_name(f"INBOX.{name}", ".") is kind
    assert kind_from_name(f"Clients/{name}", "/") is FolderKind.CUSTOM
    assert kind_from_name(f"INBOX/Clients/{name}", "/") is FolderKind.CUSTOM
    assert kind_from_path([name]) is kind


@pytest.mark.parametrize(("name", "kind"), ROLE_NAMES)
def test_imap_list_responses(name: str, kind: FolderKind) -> None:
    top = folder_from_list((b"\\HasNoChildren",), b"/", name.title())
    assert top is not None
    assert top.kind is kind
    child = folder_from_list((), b".", f"INBOX.{name.title()}")
    assert child is not None
    assert (child.kind, child.parent) == (kind, "INBOX")
    nested = folder_from_list((), b"/", f"Clients/{name}")
    assert nested is not None
    assert nested.kind is FolderKind.CUSTOM
    flagged = folder_from_list((b"\\Archive",), b"/", name)
    assert flagged is not None
    assert flagged.kind is FolderKind.ARCHIVE  # SPECIAL-USE wins over the name


@pytest.mark.parametrize(("name", "kind"), ROLE_NAMES)
def test_maildir_folders(tmp_path: Path, name: str, kind: FolderKind) -> None:
    leaf = encode_modified_utf7(name.title())
    for folder in ("", f".{leaf}", f".INBOX.{leaf}", f".Clients.{leaf}"):
        for sub in ("cur", "new", "tmp"):
            (tmp_path / folder / sub).mkdir(parents=True, exist_ok=True)
    folders = {f.id: f for f in MaildirProvider(tmp_path).folders()}
    assert folders[leaf].name == name.title()
    assert folders[leaf].kind is kind
    assert folders[f"INBOX.{leaf}"].kind is kind
    assert folders[f"Clients.{leaf}"].kind is FolderKind.CUSTOM
    assert folders[f"Clients.{leaf}"].parent == "Clients"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("Entw&APw-rfe", "Entwürfe"),
        (b"Entw&APw-rfe", "Entwürfe"),
        ("Caf&AOk-", "Café"),
        ("&ZeVnLIqe-", "日本語"),
        ("Tom &- Jerry", "Tom & Jerry"),
        ("A&-B&-", "A&B&"),
        ("Plain", "Plain"),
        ("Entwürfe", "Entwürfe"),  # a server that sends UTF-8
        ("Entwürfe".encode(), "Entwürfe"),
    ],
)
def test_decoding(raw: str | bytes, decoded: str) -> None:
    assert decode_modified_utf7(raw) == decoded


@pytest.mark.parametrize(
    "raw",
    [
        "broken&",  # no closing "-"
        "A&APw",
        "Caf&AOk-&A-",  # one bad run spoils the whole name
        "&AOk*-",  # not base64
        "&AAAA-x",  # three bytes: no whole UTF-16 unit
        "&2D0-",  # a lone surrogate
    ],
)
def test_undecodable_names_stay_as_they_are(raw: str) -> None:
    assert decode_modified_utf7(raw) == raw
    assert gmail_labels((raw.encode(),)) == (raw,)


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_decoding_reverses_encoding(text: str) -> None:
    assert decode_modified_utf7(encode_modified_utf7(text)) == text
