"""``commlink connect CONFIG CHANNEL``: sign in to a channel's account from a
terminal and save the grant in the store's database.

The sign-in runs in the user's browser; the answer comes back to a
listener on ``http://127.0.0.1:<random port>/`` (RFC 8252 §7.3), so the
app must be registered as a desktop ("installed" / "mobile and desktop")
client with a loopback redirect URI. Channels of the configuration that
share the channel's ``token_key`` share the grant, and consent is asked
once for all their scopes.
"""

from __future__ import annotations

import argparse
import sys
import webbrowser

from ..auth.flow import authorization_url, exchange_code
from ..auth.loopback import LoopbackReceiver
from ..auth.options import identity_of, oauth_client, token_key
from ..auth.scopes import scopes_for_channels
from ..errors import ConfigError
from ..stores.sql import SqlStore
from .config import ChannelConfig, Config, load_config
from .output import terminal_safe

__all__ = ["cmd_connect"]


def _sharing(config: Config, item: ChannelConfig, identity: str, key: str) -> list[ChannelConfig]:
    """The configuration's channels served by the same grant as ``item``."""
    return [
        other
        for other in config.channels
        if identity_of(other.options) == identity
        and token_key(other.channel.id, other.options) == key
    ]


def cmd_connect(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    found = [c for c in config.channels if c.channel.id == args.channel]
    if not found:
        known = ", ".join(c.channel.id for c in config.channels) or "none"
        raise ConfigError(f"no channel {args.channel!r} (channels: {known})", field="channel")
    item = found[0]
    identity = identity_of(item.options)
    if identity is None:
        raise ConfigError(
            f"channel {item.channel.id!r} does not sign in with OAuth: set oauth = "
            '"google" or "microsoft" in its options',
            field="oauth",
        )
    key = token_key(item.channel.id, item.options)
    sharing = _sharing(config, item, identity, key)
    scopes = scopes_for_channels(
        ((c.channel.provider, c.channel.settings.visibility) for c in sharing), identity=identity
    )
    client = oauth_client(item.options)
    out = sys.stdout
    with SqlStore(config.store_url) as store:
        tokens = store.token_store(config.token_key)
        with LoopbackReceiver() as receiver:
            request = authorization_url(
                client, scopes, receiver.redirect_uri, login_hint=item.channel.settings.owner
            )
            receiver.expect(request.state)
            out.write(
                f"To connect {item.channel.id}, sign in as {item.channel.settings.owner} "
                f"in a browser:\n\n  {request.url}\n\n"
            )
            out.flush()
            if not args.no_browser:
                webbrowser.open(request.url)
            out.write(f"Waiting for the sign-in (at most {args.timeout:g} s)...\n")
            out.flush()
            params = receiver.wait(args.timeout)
        token = exchange_code(client, request, params)
        tokens.save_token(key, token)
    names = ", ".join(c.channel.id for c in sharing)
    account = token.account or "the account"
    print(terminal_safe(f"Connected {account} ({identity}) for {names}."))
    owner = item.channel.settings.owner
    if token.account and token.account.lower() != owner.lower():
        print(
            terminal_safe(
                f"Note: the channel's owner is {owner}, but {token.account} signed in; "
                "run connect again to sign in as the owner if that was not meant."
            )
        )
    if token.refresh_token is None:
        print("Note: no refresh token was granted; the connection ends when the token expires.")
    missing = sorted(set(scopes) - set(token.scopes)) if token.scopes else []
    if missing:
        print(terminal_safe(f"Note: these permissions were not granted: {' '.join(missing)}"))
    return 0
