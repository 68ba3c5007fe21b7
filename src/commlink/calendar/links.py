"""Finding an event's online-meeting link, for ``commlink.calendar.ical``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["find_meeting_link", "first_http_url", "https_url"]

_URL_TAIL = r"[^\s<>\"'\\]*"
_MEETING = re.compile(
    r"https?://(?:"
    r"meet\.google\.com/[a-z0-9-]+" + _URL_TAIL
    + r"|teams\.microsoft\.com/l/meetup-join/" + _URL_TAIL
    + r"|teams\.live\.com/meet/" + _URL_TAIL
    + r"|(?:[a-z0-9-]+\.)*zoom\.us/(?:j|my|w|s|wc/join)/" + _URL_TAIL
    + r"|(?:[a-z0-9-]+\.)*zoomgov\.com/(?:j|my|w|s)/" + _URL_TAIL
    + r"|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.webex\.com/" + _URL_TAIL
    + r")",
    re.IGNORECASE,
)  # fmt: skip
_HTTP = re.compile(r"https?://" + _URL_TAIL, re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def _clean(url: str) -> str:
    return url.rstrip(_TRAILING)


def _secure(url: str) -> str:
    """A found meeting link over ``https:``: every meeting service serves its
    join pages over TLS, so a plain ``http:`` link is upgraded, not shown."""
    if url[:7].lower() == "http://":
        url = "https://" + url[7:]
    return https_url(url)


def find_meeting_link(texts: Iterable[str]) -> str:
    """The first Google Meet, Teams, Zoom or Webex link in ``texts``, else ``""``.

    Texts are searched in the order given, each from its start. The link is
    returned as ``https:`` (see ``https_url``).
    """
    for text in texts:
        if not text:
            continue
        found = _MEETING.search(text)
        if found is not None:
            return _secure(_clean(found.group(0)))
    return ""


def first_http_url(text: str) -> str:
    """The first ``https:`` URL in ``text``, else ``""``; plain ``http:``
    links are skipped (an event's link is shown to users as a link)."""
    for found in _HTTP.finditer(text or ""):
        url = https_url(_clean(found.group(0)))
        if url:
            return url
    return ""


def https_url(value: object) -> str:
    """``value`` when it is an absolute ``https:`` URL with a host, else
    ``""``: a conference link from a provider's structured data is shown as
    a link, so ``javascript:``, ``data:``, ``http:`` and the like are dropped."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if any(c.isspace() or ord(c) < 0x20 or c in "<>\"'\\" for c in text):
        return ""
    if not text.lower().startswith("https://"):
        return ""
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return ""
    return text if host else ""
