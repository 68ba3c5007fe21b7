"""The HTTP side of the CalDAV provider: the ``caldav`` library's client,
with its (and its HTTP library's) exceptions translated into commlink's.

The ``caldav`` package is imported lazily, on the first request.
"""

from __future__ import annotations

from typing import Any, cast

import attrs

from ...credentials import redact_text, redact_url
from ...errors import (
    AuthError,
    ConfigError,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
)
from ..retry import retry_after_seconds
from .davxml import DAV, Node, preconditions

__all__ = ["DavResponse", "DavTransport", "Unsupported"]

_VALID_TOKEN = f"{DAV}valid-sync-token"
_SUPPORTED_REPORT = f"{DAV}supported-report"
# Exceptions of the HTTP stack (niquests/requests/urllib3) are told apart by
# module, since which library the caldav client uses depends on what is installed.
_NETWORK_MODULES = ("niquests", "requests", "urllib3", "urllib3_future", "socket", "ssl")


class Unsupported(ProviderError):
    """The server refused a REPORT it does not implement."""


@attrs.frozen(slots=True)
class DavResponse:
    status: int
    tree: Node | None


class DavTransport:
    """Sends WebDAV requests through ``caldav.DAVClient`` and counts them."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None,
        password: str | None,
        timeout: float,
        verify: bool | str,
        auth: str | None = "basic",
    ) -> None:
        if auth not in (None, "basic", "digest"):
            raise ConfigError(
                f"unknown CalDAV auth {auth!r}: use basic, digest or None", field="auth"
            )
        self.url = url
        self.username = username
        self.password = password
        self.timeout = timeout
        self.verify = verify
        # credentials go with the first request: some servers (Cyrus, Xandikos)
        # answer an anonymous request as for an anonymous user, never with a 401
        self.auth = auth if username is not None and password is not None else None
        self.requests = 0
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            try:
                from caldav.davclient import DAVClient
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "the CalDAV provider needs the caldav package: pip install commlink[caldav]",
                    field="provider",
                ) from exc
            try:
                self._client = DAVClient(
                    url=self.url,
                    username=self.username,
                    password=self.password,
                    timeout=cast(Any, self.timeout),
                    ssl_verify_cert=self.verify,
                    enable_rfc6764=False,
                    auth_type=self.auth,
                )
            except Exception as exc:
                raise ConfigError(
                    f"invalid CalDAV settings: {redact_text(str(exc))}", field="url"
                ) from exc
        return self._client

    def propfind(self, url: str, body: str, *, depth: int) -> DavResponse:
        return self._send("PROPFIND", url, body, depth)

    def report(self, url: str, body: str, *, depth: int, sync: bool = False) -> DavResponse:
        """A REPORT; with ``sync``, an invalid token raises ``CursorExpired``
        and a refused report ``Unsupported``."""
        return self._send("REPORT", url, body, depth, sync=sync)

    def _send(
        self, method: str, url: str, body: str, depth: int, *, sync: bool = False
    ) -> DavResponse:
        client = self._connect()
        self.requests += 1
        shown = redact_url(url)
        try:
            response = client.request(url, method, body, {"Depth": str(depth)})
        except Exception as exc:
            raise _translate(exc, shown, sync) from exc
        status = int(response.status)
        tree = cast("Node | None", response.tree)
        if status < 300:
            return DavResponse(status, tree)
        conditions = preconditions(tree)
        if sync and (_VALID_TOKEN in conditions or status in (409, 412)):
            raise CursorExpired(f"sync token of {shown} is no longer valid ({status})")
        if sync and (_SUPPORTED_REPORT in conditions or status in (400, 405, 501)):
            raise Unsupported(f"{shown} does not support sync-collection ({status})")
        if status == 404:
            raise NotFound(f"{shown} not found")
        if status in (401, 403):
            raise AuthError(f"{method} {shown} refused ({status})")
        if status == 429:
            wait = retry_after_seconds((response.headers or {}).get("Retry-After"))
            raise RateLimited(f"{method} {shown}: too many requests", retry_after=wait)
        if status >= 500 or status == 408:
            raise TransientError(f"{method} {shown} failed with {status}")
        raise ProviderError(f"{method} {shown} failed with {status}")

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None


def _translate(exc: Exception, url: str, sync: bool) -> Exception:
    """A commlink error for an exception raised inside the caldav client
    (``url`` already redacted; the exception's text is redacted here)."""
    name = type(exc).__name__
    status = getattr(exc, "status", None)
    conditions = [str(c) for c in getattr(exc, "preconditions", None) or ()]
    if name == "RateLimitError":
        retry = getattr(exc, "retry_after_seconds", None)
        return RateLimited(f"{url}: rate limited", retry_after=retry)
    if name == "AuthorizationError" or status in (401, 403):
        if sync and _VALID_TOKEN in conditions:
            return CursorExpired(f"sync token of {url} is no longer valid")
        if sync and _SUPPORTED_REPORT in conditions:
            return Unsupported(f"{url} does not support sync-collection")
        return AuthError(f"{url}: access refused ({status or name})")
    module = type(exc).__module__.split(".")[0]
    if module in _NETWORK_MODULES or isinstance(exc, (OSError, TimeoutError)):
        return TransientError(f"{url}: {name}: {redact_text(str(exc))}"[:500])
    return ProviderError(f"{url}: {name}: {redact_text(str(exc))}"[:500])
