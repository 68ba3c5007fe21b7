"""Building an exchangelib ``Account`` from explicit settings, with no probing.

exchangelib guesses the server version and the authentication type with
extra requests when they are not given; here both always are, so the only
requests sent are the ones the provider makes. Autodiscover runs only when
asked for. Every HTTP response is counted (``ExchangeConnection.requests_sent``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import attrs

from ....closing import Closing
from ....errors import ConfigError

__all__ = ["VERSIONS", "ExchangeConnection", "connect"]

#: Server generations accepted as ``version`` (Exchange SE shares the 2019 build line).
VERSIONS = {"2016": (15, 1, 2507, 6), "2019": (15, 2, 1118, 7), "se": (15, 2, 2562, 17)}

_CHUNK = 1 << 16
#: the only hosts reachable over plain http (local test servers)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

_AUTH = {"basic": "basic", "ntlm": "NTLM", "oauth2": "OAuth 2.0"}


@attrs.define(eq=False)
class ExchangeConnection(Closing):
    """An exchangelib account and the protocol that counts its requests."""

    account: Any
    protocol: Any
    verify: bool = True
    timeout: float = 60.0

    @property
    def requests_sent(self) -> int:
        return int(self.protocol.requests_sent)

    def fork(self) -> ExchangeConnection:
        """A connection of its own to the same mailbox (a long-lived stream
        must not hold the session the provider's requests need)."""
        from exchangelib import DELEGATE, UTC, Account

        config = self.protocol.config
        account = Account(
            self.account.primary_smtp_address,
            config=config,
            autodiscover=False,
            access_type=DELEGATE,
            default_timezone=UTC,
        )
        return _attach(account, config, self.verify, self.timeout)

    def close(self) -> None:
        self.protocol.close()


def _large_chunks(iter_content: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def chunks(chunk_size: int | None = _CHUNK, decode_unicode: bool = False) -> Iterator[Any]:
        return iter_content(chunk_size, decode_unicode)

    return chunks


@functools.cache
def _protocol_classes() -> tuple[type[Any], type[Any]]:
    from exchangelib.protocol import NoVerifyHTTPAdapter, Protocol

    class CountingProtocol(Protocol):  # type: ignore[misc]
        """A protocol of its own (not from exchangelib's shared cache) that
        counts the HTTP responses its sessions receive."""

        requests_sent = 0

        def create_session(self) -> Any:
            session = super().create_session()
            session.hooks["response"].append(self._count)
            return session

        def _count(self, response: Any, *args: Any, **kwargs: Any) -> None:
            self.requests_sent += 1
            if not kwargs.get("stream"):
                # exchangelib parses ``response.iter_content()``, whose default
                # chunk is one byte: a loaded body is handed over in large chunks
                response.iter_content = _large_chunks(response.iter_content)

    class UnverifiedProtocol(CountingProtocol):
        HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter

    return CountingProtocol, UnverifiedProtocol


def _forget_cached_protocol(protocol: Any) -> None:
    """Drop the protocol exchangelib cached for this account (it is replaced)."""
    from exchangelib.protocol import Protocol

    with contextlib.suppress(KeyError):
        del Protocol[protocol.config]
    protocol.close()


def _version(value: str | tuple[int, ...]) -> Any:
    from exchangelib.version import Build, Version

    parts: tuple[int, ...] | None
    if isinstance(value, str):
        parts = VERSIONS.get(value.strip().lower().replace("exchange", "").strip())
        if parts is None:
            try:
                parts = tuple(int(p) for p in value.split("."))
            except ValueError:
                parts = None
        if parts is None or len(parts) < 2:
            raise ConfigError(f"unknown Exchange version {value!r}", field="version")
    else:
        parts = tuple(value)
    return Version(build=Build(*parts[:4]))


def _credentials(
    auth: str,
    username: str | None,
    password: str | None,
    credentials: Any,
    access_token: str | None,
) -> Any:
    from exchangelib import Credentials, OAuth2AuthorizationCodeCredentials
    from oauthlib.oauth2 import OAuth2Token  # type: ignore[import-untyped, unused-ignore]

    if credentials is not None:
        return credentials
    if auth == "oauth2":
        if not access_token:
            raise ConfigError("OAuth2 needs credentials or an access token", field="access_token")
        token = OAuth2Token({"access_token": access_token, "token_type": "Bearer"})
        return OAuth2AuthorizationCodeCredentials(access_token=token)
    if not username or password is None:
        raise ConfigError("username and password are required", field="username")
    return Credentials(username, password)


def connect(
    email: str,
    *,
    server: str | None = None,
    service_endpoint: str | None = None,
    version: str | tuple[int, ...] = "2019",
    auth: str = "ntlm",
    username: str | None = None,
    password: str | None = None,
    credentials: Any = None,
    access_token: str | None = None,
    autodiscover: bool = False,
    verify: bool = True,
    timeout: float = 60.0,
) -> ExchangeConnection:
    """An account for ``email`` on ``server`` (``https://{server}/EWS/Exchange.asmx``)
    or ``service_endpoint``; ``auth`` is ``"ntlm"``, ``"basic"`` or ``"oauth2"``
    (exchangelib OAuth2 ``credentials``, or a bearer ``access_token``)."""
    from exchangelib import DELEGATE, UTC, Account, Configuration, FailFast

    auth_key = auth.strip().lower()
    if auth_key not in _AUTH:
        raise ConfigError(f"unknown auth {auth!r} (ntlm, basic or oauth2)", field="auth")
    creds = _credentials(auth_key, username, password, credentials, access_token)
    endpoint = service_endpoint or (f"https://{server}/EWS/Exchange.asmx" if server else None)
    if endpoint is None and not autodiscover:
        raise ConfigError("server or service_endpoint is required", field="server")
    local = endpoint is not None and urlsplit(endpoint).hostname in (
        "127.0.0.1",
        "localhost",
        "::1",
    )
    if endpoint is not None and not endpoint.startswith("https://") and not local:
        raise ConfigError("EWS must be reached over https", field="service_endpoint")
    config = Configuration(
        service_endpoint=endpoint,
        credentials=creds,
        auth_type=_AUTH[auth_key],
        version=_version(version),
        retry_policy=FailFast(),
    )
    if autodiscover:
        account = Account(
            email, credentials=creds, config=config, autodiscover=True, access_type=DELEGATE,
            default_timezone=UTC,
        )  # fmt: skip
        config = account.protocol.config
    else:
        account = Account(
            email, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=UTC
        )
    return _attach(account, config, verify, timeout)


def _attach(account: Any, config: Any, verify: bool, timeout: float) -> ExchangeConnection:
    """Give ``account`` a counting protocol of its own."""
    _forget_cached_protocol(account.protocol)
    counting, unverified = _protocol_classes()
    cls = counting if verify else unverified
    protocol = type.__call__(cls, config=config)  # not through exchangelib's shared cache
    protocol.TIMEOUT = timeout
    account.protocol = protocol
    return ExchangeConnection(account, protocol, verify, timeout)
