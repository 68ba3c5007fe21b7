"""Folder names as IMAP servers and Maildir trees spell them: modified
UTF-7 (RFC 3501 5.1.3) and the well-known names that give a folder its role
when the server does not say (no SPECIAL-USE)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from ..model import FolderKind

__all__ = ["FOLDER_NAMES", "decode_modified_utf7", "kind_from_name", "kind_from_path"]

_BY_KIND: Mapping[FolderKind, tuple[str, ...]] = {
    FolderKind.INBOX: ("inbox",),
    FolderKind.SENT: (
        "sent", "sent items", "sent messages", "sent mail", "gesendet",
        "gesendete objekte", "gesendete elemente", "envoyés", "éléments envoyés",
    ),
    FolderKind.ARCHIVE: ("archive", "archives", "archiv"),
    FolderKind.DRAFTS: ("drafts", "draft", "entwürfe", "brouillons"),
    FolderKind.TRASH: (
        "trash", "bin", "deleted items", "deleted messages", "papierkorb",
        "gelöschte elemente", "corbeille",
    ),
    FolderKind.SPAM: (
        "spam", "junk", "junk e-mail", "junk email", "junk mail", "bulk mail", "spamverdacht",
    ),
}  # fmt: skip

#: Well-known folder names (case-folded) and the role each one stands for.
FOLDER_NAMES: Mapping[str, FolderKind] = {
    name: kind for kind, names in _BY_KIND.items() for name in names
}


def kind_from_path(path: Sequence[str]) -> FolderKind:
    """A folder's kind from its (decoded) path, one name per level.

    Only top-level folders and direct children of INBOX are recognised, so
    ``Clients/Archive`` stays a custom folder.
    """
    if len(path) == 2 and path[0].upper() == "INBOX":
        path = path[1:]
    if len(path) != 1:
        return FolderKind.CUSTOM
    return FOLDER_NAMES.get(path[0].strip().casefold(), FolderKind.CUSTOM)


def kind_from_name(name: str, delimiter: str) -> FolderKind:
    """``kind_from_path`` for a full name whose levels ``delimiter`` separates."""
    return kind_from_path(name.split(delimiter) if delimiter else [name])


def decode_modified_utf7(value: bytes | str) -> str:
    """Decode a mailbox name or Gmail label in modified UTF-7.

    A name with anything in it that does not decode (an ``&`` without its
    ``-``, bad base64, broken UTF-16) is returned as it is, never half
    decoded: it then names the folder the same way on every pass. Bytes are
    read as UTF-8, which servers with ``UTF8=ACCEPT`` send as is.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if "&" not in text:
        return text
    out: list[str] = []
    done = 0
    while (start := text.find("&", done)) >= 0:
        end = text.find("-", start + 1)
        if end < 0:
            return text
        out.append(text[done:start])
        chunk = text[start + 1 : end].replace(",", "/")
        if not chunk:
            out.append("&")
        else:
            try:
                data = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
                out.append(data.decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                return text
        done = end + 1
    out.append(text[done:])
    return "".join(out)
