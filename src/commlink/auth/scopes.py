"""Which OAuth scopes each kind of channel needs, per visibility.

Read-only everywhere; the narrowest scope that covers what the provider
calls:

- Gmail: ``gmail.readonly``; a ``METADATA`` channel asks for
  ``gmail.metadata`` only. The Gmail provider then fetches with
  ``format=metadata`` and lists without ``q``, the calls that scope allows
  (``format=raw``/``full`` and search are refused under it). The send-as
  list (``GmailProvider.aliases``) needs ``gmail.readonly``.
- Google Calendar: ``calendar.readonly`` (the calendar list as well as
  events; ``calendar.events.readonly`` cannot list calendars).
- Microsoft Graph: ``Mail.Read`` or ``Calendars.Read`` with ``User.Read``
  (aliases, the account's address). ``Mail.ReadBasic`` is not enough even
  for metadata: the provider reads the message headers and size.
- IMAP with XOAUTH2: Gmail's ``https://mail.google.com/`` (the only scope
  Gmail IMAP accepts, and a broad one) or Outlook's ``IMAP.AccessAsUser.All``.

Sign-in scopes are added so the account's address can be learned:
``openid email`` for Google; ``openid profile email offline_access`` for
Microsoft (``offline_access`` yields the refresh token).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError
from ..model import Visibility

__all__ = [
    "CALENDAR_READONLY",
    "GMAIL_IMAP",
    "GMAIL_METADATA",
    "GMAIL_READONLY",
    "GRAPH_CALENDARS_READ",
    "GRAPH_MAIL_READ",
    "GRAPH_USER_READ",
    "MSAL_RESERVED",
    "OUTLOOK_IMAP",
    "SIGN_IN_SCOPES",
    "scopes_for",
    "scopes_for_channels",
]

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
GMAIL_METADATA = "https://www.googleapis.com/auth/gmail.metadata"
CALENDAR_READONLY = "https://www.googleapis.com/auth/calendar.readonly"
GMAIL_IMAP = "https://mail.google.com/"

GRAPH_MAIL_READ = "https://graph.microsoft.com/Mail.Read"
GRAPH_CALENDARS_READ = "https://graph.microsoft.com/Calendars.Read"
GRAPH_USER_READ = "https://graph.microsoft.com/User.Read"
OUTLOOK_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"

#: Scopes that identify the account and keep the grant (refresh token).
SIGN_IN_SCOPES: dict[str, tuple[str, ...]] = {
    "google": ("openid", "email"),
    "microsoft": ("openid", "profile", "email", "offline_access"),
}
#: Scopes msal adds by itself and refuses to be given.
MSAL_RESERVED = frozenset({"openid", "profile", "offline_access"})

_IDENTITY_OF = {
    "gmail": "google",
    "google-calendar": "google",
    "graph": "microsoft",
    "graph-calendar": "microsoft",
}


def scopes_for(
    provider: str,
    visibility: Visibility = Visibility.FULL,
    *,
    identity: str | None = None,
    sign_in: bool = True,
) -> tuple[str, ...]:
    """The scopes a channel of ``provider`` (the config's ``provider`` name)
    needs at ``visibility``; ``identity`` (``google``/``microsoft``) says
    whose IMAP server an ``imap`` channel logs in to. With ``sign_in``,
    the scopes that reveal the account's address are included."""
    who = _IDENTITY_OF.get(provider, identity)
    if identity is not None and who != identity:
        raise ConfigError(f"a {provider} channel cannot sign in with {identity}", field="oauth")
    if provider == "gmail":
        found: tuple[str, ...] = (
            (GMAIL_METADATA,) if visibility is Visibility.METADATA else (GMAIL_READONLY,)
        )
    elif provider == "google-calendar":
        found = (CALENDAR_READONLY,)
    elif provider == "graph":
        found = (GRAPH_MAIL_READ, GRAPH_USER_READ)
    elif provider == "graph-calendar":
        found = (GRAPH_CALENDARS_READ, GRAPH_USER_READ)
    elif provider == "imap" and who == "google":
        found = (GMAIL_IMAP,)
    elif provider == "imap" and who == "microsoft":
        found = (OUTLOOK_IMAP,)
    else:
        raise ConfigError(
            f"no OAuth scopes known for a {provider} channel"
            + (" (IMAP needs oauth = google or microsoft)" if provider == "imap" else ""),
            field="oauth",
        )
    assert who is not None
    return _union((found, SIGN_IN_SCOPES[who] if sign_in else ()))


def scopes_for_channels(
    channels: Iterable[tuple[str, Visibility]], *, identity: str
) -> tuple[str, ...]:
    """The scopes one grant needs to serve several channels (``(provider,
    visibility)`` pairs) of the same account, e.g. Gmail and its calendar.

    Microsoft issues an access token for one resource at a time, so Graph
    and Outlook IMAP cannot share a grant's access token: that is refused.
    """
    found = _union(scopes_for(p, v, identity=identity) for p, v in channels)
    if identity == "microsoft":
        resources = {s.rsplit("/", 1)[0] for s in found if "://" in s}
        if len(resources) > 1:
            raise ConfigError(
                "Microsoft issues tokens for one API at a time: give Graph and Outlook "
                "IMAP channels different token_key values",
                field="token_key",
            )
    return found


def _union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for scope in group:
            seen.setdefault(scope, None)
    return tuple(sorted(seen))
