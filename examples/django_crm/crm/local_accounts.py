"""Local stand-ins for Google in development: a sign-in server (OAuth 2.0
with PKCE, consenting at once) and a Gmail API holding a small mailbox, both
from ``commlink.testing``.

``LocalAccounts`` starts them and writes where they listen to
``local_accounts.json`` in the data folder; while that file exists the
settings declare the ``bob-gmail`` channel (``crm_site/local_google.py``),
which the accounts page offers to connect.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType

from crm_site.local_google import ACCOUNT, SETTINGS_FILE, TOKEN_KEY_FILE

from commlink.stores import generate_token_key
from commlink.testing.google import GoogleApiServer
from commlink.testing.oauth import GoogleOAuthServer

CLIENT_ID = "northwind-crm.apps.local"
#: the callback of commlink's connect view, on any port (RFC 8252 loopback rule)
REDIRECT_URIS = (
    "http://127.0.0.1/commlink/oauth/callback/",
    "http://localhost/commlink/oauth/callback/",
)

#: (sender, subject, body) of the local mailbox's messages, one a day
MAILBOX = (
    ("Peter Gibbons <peter@initech.example>", "Pilot usage report", "Forty users logged in."),
    ("Bill Lumbergh <bill@initech.example>", "Pilot budget", "We can extend to March."),
    ("Hank Scorpio <hank@globex.example>", "Training feedback", "The admins loved it."),
)


def local_message(n: int, sender: str, subject: str, body: str, now: datetime) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"Bob Chen <{ACCOUNT}>"
    message["Subject"] = subject
    message["Date"] = format_datetime(now - timedelta(days=len(MAILBOX) - n))
    message["Message-ID"] = f"<local-{n}@gmail.example>"
    message.set_content(body)
    return message.as_bytes()


class LocalAccounts:
    """The local Google servers, and the settings file that points at them."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.oauth = GoogleOAuthServer(ACCOUNT, client_id=CLIENT_ID, redirect_uris=REDIRECT_URIS)
        self.api = GoogleApiServer(ACCOUNT)

    @property
    def settings_file(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    @property
    def endpoints(self) -> dict[str, str]:
        """What a channel needs to sign in and read mail here (see ``local_gmail_channel``)."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": self.oauth.client_secret or "",
            "auth_uri": self.oauth.authorization_endpoint,
            "token_uri": self.oauth.token_endpoint,
            "revoke_uri": self.oauth.revocation_endpoint,
            "issuer": self.oauth.issuer,
            "api_endpoint": self.api.base_url,
        }

    def start(self) -> LocalAccounts:
        self.oauth.start()
        self.api.start()
        self.oauth.issue_to(self.api)
        now = datetime.now(timezone.utc)
        for n, (sender, subject, body) in enumerate(MAILBOX):
            self.api.gmail.add_message(ACCOUNT, local_message(n, sender, subject, body, now))
        key = self.data_dir / TOKEN_KEY_FILE
        if not key.exists():  # grants stay readable across restarts
            key.touch(mode=0o600)
            key.write_text(generate_token_key(), encoding="utf-8")
        self.settings_file.write_text(json.dumps(self.endpoints, indent=2), encoding="utf-8")
        return self

    def stop(self) -> None:
        self.settings_file.unlink(missing_ok=True)
        self.api.stop()
        self.oauth.stop()

    def __enter__(self) -> LocalAccounts:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
