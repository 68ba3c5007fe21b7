"""The Gmail channel that connects at the local Google servers
(``manage.py local_accounts``, see ``crm/local_accounts.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the Google account the local sign-in server signs in
ACCOUNT = "bob@northwind.example"
#: where ``local_accounts`` writes the servers' addresses, in the data folder
SETTINGS_FILE = "local_accounts.json"
#: the Fernet key sealing OAuth grants in the database, in the data folder
TOKEN_KEY_FILE = "token.key"


def token_key(data_dir: Path) -> str:
    """The key sealing OAuth grants, kept in the data folder (``local_accounts``
    writes it once, so grants stay readable across restarts)."""
    return (data_dir / TOKEN_KEY_FILE).read_text(encoding="utf-8").strip()


def local_gmail_channel(endpoints: Mapping[str, str], org: Mapping[str, Any]) -> dict[str, Any]:
    """Bob's Gmail channel, signing in and reading mail at ``endpoints``
    (``client_id``, ``client_secret``, ``auth_uri``, ``token_uri``,
    ``revoke_uri``, ``issuer``, ``api_endpoint``)."""
    return {
        "id": "bob-gmail",
        "user": "bob",
        "provider": "gmail",
        "owner": ACCOUNT,
        "visibility": "subject",
        **org,
        "options": {"oauth": "google", "token_key": "bob-google", **endpoints},
    }
