"""Showing a message's content: its HTML through commlink's renderer (which
sanitises it again and blocks remote images), else the plain-text body,
which the template escapes."""

from __future__ import annotations

from commlink.mime.html import render_html
from commlink.records import MessageView


def safe_html(view: MessageView) -> str | None:
    """The message's HTML ready to insert in a page, or ``None`` to show its text.

    ``MessageView.html`` is only set for a viewer allowed to see the full
    message; remote images stay blocked (they would tell the sender who
    read the mail, and when).
    """
    if not view.html:
        return None
    return render_html(view.html, remote_images=False) or None
