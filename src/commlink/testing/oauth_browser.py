"""What the user's browser does during a sign-in, for tests: open the
authorization URL, and carry the answer to the redirect URI.

The answer comes back as a redirect (``302`` with the code in the query)
or, with ``response_mode=form_post``, as a page holding a form the browser
submits. ``consent`` reads either; ``deliver`` sends it on like a browser
(a GET of the redirect, or a POST of the form).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

__all__ = ["ConsentAnswer", "consent", "deliver"]


@attrs.frozen
class ConsentAnswer:
    """The authorization server's answer: where it goes and what it says.

    ``method`` is ``GET`` (query) or ``POST`` (form_post); ``status`` and
    ``page`` are the authorization server's own answer when it did not
    redirect (an unknown client, a bad redirect URI)."""

    redirect_uri: str
    params: dict[str, str]
    method: str
    status: int = 302
    page: str = ""


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs_}
        if tag == "form" and not self.action:
            self.action, self.method = found.get("action", ""), found.get("method", "GET")
        elif tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields[found["name"]] = found.get("value", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(ca_file: str | None, *, follow: bool) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    handlers: list[Any] = [urllib.request.HTTPSHandler(context=context)]
    if not follow:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


def consent(url: str, *, ca_file: str | None = None, timeout: float = 10.0) -> ConsentAnswer:
    """Open the authorization URL (the local server consents at once) and
    read its answer, without delivering it."""
    try:
        with _opener(ca_file, follow=False).open(url, timeout=timeout) as response:
            status, page = response.status, response.read().decode("utf-8", "replace")
            location = response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        status, page = error.code, error.read().decode("utf-8", "replace")
        location = error.headers.get("Location", "")
    if status in (301, 302, 303, 307) and location:
        parts = urlsplit(location)
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return ConsentAnswer(target, dict(parse_qsl(parts.query, keep_blank_values=True)), "GET")
    form = _FormReader()
    form.feed(page)
    if status == 200 and form.action and form.method.upper() == "POST":
        return ConsentAnswer(form.action, form.fields, "POST")
    return ConsentAnswer("", {}, "", status, page)


def deliver(
    answer: ConsentAnswer, *, ca_file: str | None = None, timeout: float = 10.0
) -> tuple[int, str]:
    """Carry the answer to its redirect URI like a browser; the status and
    page the redirect URI answered."""
    if answer.method == "GET":
        joiner = "&" if urlsplit(answer.redirect_uri).query else "?"
        request = urllib.request.Request(answer.redirect_uri + joiner + urlencode(answer.params))
    elif answer.method == "POST":
        request = urllib.request.Request(
            answer.redirect_uri,
            data=urlencode(answer.params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
    else:
        raise ValueError("the authorization server did not answer with a redirect")
    try:
        with _opener(ca_file, follow=True).open(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
