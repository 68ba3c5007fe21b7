"""OAuth settings in a channel's options, as the configuration file and
the provider registry carry them.

    oauth = "google"                  # or "microsoft"
    client_id = "...apps.googleusercontent.com"
    client_secret_env = "GOOGLE_CLIENT_SECRET"
    token_key = "alice-google"        # default: the channel id
    tenant = "contoso.onmicrosoft.com"  # Microsoft; default "common"

Overrides for national clouds and local servers: ``authority_host``
(Microsoft), ``auth_uri``, ``token_uri``, ``revoke_uri`` and ``issuer``
(Google; the ID token's issuer is checked only against Google's own, or
the one given), and ``oauth_ca_file``, a CA bundle to trust for the sign-in endpoints. The
grant itself lives in the ``TokenStore`` given as ``token_store``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..credentials import Secret, reveal
from ..errors import ConfigError
from ..ports import TokenStore
from .flow import token_source
from .identity import MICROSOFT_LOGIN, OAuthClient, google_identity, microsoft_identity
from .source import SavedTokenSource

__all__ = ["IDENTITIES", "identity_of", "oauth_client", "saved_source", "token_key"]

IDENTITIES = ("google", "microsoft")


def identity_of(options: Mapping[str, Any]) -> str | None:
    """``google`` or ``microsoft`` when the channel signs in with OAuth."""
    found = options.get("oauth")
    if found is None:
        return None
    if found not in IDENTITIES:
        raise ConfigError(f"must be one of {', '.join(IDENTITIES)}", field="oauth")
    return str(found)


def token_key(channel_id: str, options: Mapping[str, Any]) -> str:
    """Where the channel's grant is saved: ``token_key``, else the channel id."""
    key = options.get("token_key", channel_id)
    if not isinstance(key, str) or not key.strip():
        raise ConfigError("must be a non-empty string", field="token_key")
    return key.strip()


def oauth_client(options: Mapping[str, Any]) -> OAuthClient:
    """The registered app the options describe."""
    identity = identity_of(options)
    if identity is None:
        raise ConfigError("say which identity provider signs in", field="oauth")
    client_id = options.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError("is required to sign in with OAuth", field="client_id")
    secret = options.get("client_secret")
    ca_file = options.get("oauth_ca_file")
    if identity == "google":
        defaults = google_identity()
        token_uri = str(options.get("token_uri", defaults.token_endpoint))
        # ID tokens name Google as issuer only when they come from Google
        issuer = defaults.issuer if token_uri == defaults.token_endpoint else None
        provider = google_identity(
            authorization_endpoint=str(options.get("auth_uri", defaults.authorization_endpoint)),
            token_endpoint=token_uri,
            revocation_endpoint=str(options.get("revoke_uri", defaults.revocation_endpoint)),
            issuer=str(options.get("issuer", issuer) or "") or None,
        )
    else:
        provider = microsoft_identity(
            str(options.get("tenant", "common")),
            authority_host=str(options.get("authority_host", MICROSOFT_LOGIN)),
        )
    plain = reveal(secret) if isinstance(secret, Secret | str) else None
    return OAuthClient(
        provider,
        client_id,
        Secret(plain) if plain else None,
        ca_file=str(ca_file) if ca_file else None,
    )


def saved_source(options: Mapping[str, Any], channel_id: str = "") -> SavedTokenSource:
    """A token source on the channel's saved grant: ``options["token_store"]``
    under ``token_key`` (default: ``channel_id``)."""
    store = options.get("token_store")
    if store is None:
        raise ConfigError(
            "an OAuth channel needs a token store (the CLI makes one from the store's "
            "database; hosts pass token_store=)",
            field="token_store",
        )
    if not isinstance(store, TokenStore):
        raise ConfigError("must be a TokenStore", field="token_store")
    return token_source(oauth_client(options), store, token_key(channel_id, options))
