"""Serving an attachment to a browser without letting its sender run code on the host's site.

An attachment's name and type are written by whoever sent the message. Sent
back as they are, from the CRM's own origin, an HTML file or an SVG image
would run its scripts with the signed-in user's session. ``response_headers``
gives the headers that make the browser download anything it could run, show
only plain pictures inline, and never sniff a type of its own.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from ..model import Attachment

__all__ = [
    "FALLBACK_TYPE",
    "INLINE_TYPES",
    "MAX_FILENAME_BYTES",
    "response_headers",
    "safe_filename",
    "served_type",
]

#: types a browser shows as a picture and never runs: the only ones served inline
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
#: what a missing, malformed or runnable type is served as
FALLBACK_TYPE = "application/octet-stream"
#: a served file name's longest form, in UTF-8 bytes (file systems allow 255)
MAX_FILENAME_BYTES = 200
#: the policy of the attachment's own response, should a browser open it as a page
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
}
# RFC 6838 §4.2: a type and a subtype of at most 127 characters each
_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\Z")
# control characters, explicit direction marks and lone surrogates
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# characters Windows refuses in a file name; the separators are handled before
_RESERVED_CHARS = re.compile(r'[<>:"|?*]')
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"}
)
_LONGEST_EXTENSION = 16


def served_type(content_type: str) -> str:
    """The ``Content-Type`` to serve an attachment declared as ``content_type`` with.

    Parameters are dropped and a few common aliases mended. A type a browser
    would render as a page or run (HTML, XML and SVG, scripts, style sheets,
    multipart) and anything malformed become ``FALLBACK_TYPE``; other types
    are kept, so a downloaded file still opens in the right program.
    """
    value = content_type.split(";", 1)[0].strip().lower()
    value = _ALIASES.get(value, value)
    if _TYPE.match(value) is None or _runnable(value):
        return FALLBACK_TYPE
    return value


def _runnable(value: str) -> bool:
    top, _, sub = value.partition("/")
    return (
        top == "multipart"
        or sub == "xml"
        or sub.endswith("+xml")
        or "html" in sub
        or "script" in sub
        or sub in {"css", "xsl", "xslt", "x-shockwave-flash", "cache-manifest"}
    )


def safe_filename(filename: str) -> str:
    """``filename`` as a name any browser and file system takes as one plain file.

    Only the last path component is kept; control and direction characters
    are removed, characters Windows refuses become ``_``; leading dots
    (hidden files) and trailing dots and spaces go, Windows device names
    (``CON``, ``NUL.txt``) get a leading ``_``; a name over
    ``MAX_FILENAME_BYTES`` is shortened, keeping its extension. What is left
    of an empty name is ``"attachment"``.
    """
    name = unicodedata.normalize("NFC", _INVISIBLE.sub("", filename))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _RESERVED_CHARS.sub("_", name)
    name = " ".join(name.split()).lstrip(". ").rstrip(". ")
    if name.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
        name = "_" + name
    name = _shortened(name)
    return name or "attachment"


def _shortened(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > _LONGEST_EXTENSION:
        stem, extension = name, ""
    room = MAX_FILENAME_BYTES - len(extension.encode("utf-8")) - len(dot if extension else "")
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return f"{cut}.{extension}" if extension else cut


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """A ``Content-Disposition`` value for ``filename`` (RFC 6266), made safe
    by ``safe_filename``: a plain ASCII ``filename`` for old clients and, for
    any other name, its UTF-8 form in ``filename*`` (RFC 8187)."""
    name = safe_filename(filename)
    kind = "inline" if inline else "attachment"
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def response_headers(
    attachment: Attachment, *, inline: bool = False
) -> tuple[tuple[str, str], ...]:
    """The HTTP headers to serve ``attachment``'s content with.

    ``inline=True`` (an image of an HTML body, a preview) is honoured only
    for ``INLINE_TYPES``; everything else is sent as a download. Whatever the
    type, the browser is told not to guess another (``nosniff``), the
    response runs nothing and loads nothing should it be opened as a page
    (a sandboxing ``Content-Security-Policy``), no shared cache keeps it and
    no other site may embed it.
    """
    kind = served_type(attachment.content_type)
    shown = inline and kind in INLINE_TYPES
    return (
        ("Content-Type", kind),
        ("Content-Disposition", content_disposition(attachment.filename, inline=shown)),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("Cache-Control", "private, no-store"),
        ("Cross-Origin-Resource-Policy", "same-site"),
    )
