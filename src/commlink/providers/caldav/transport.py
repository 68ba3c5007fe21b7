"""The HTTP side of the CalDAV provider, on httpx (imported lazily).

Credentials go with the first request (Basic or Digest; ``auth=None``
waits for the server's challenge and answers it). Redirects are followed
only within the configured origin (``http`` may become ``https`` on the same
host); any other target is refused, so credentials never travel elsewhere.
Errors become commlink's: a network failure ``TransientError``, 429 (or 503
with ``Retry-After``) ``RateLimited``, 401/403 ``AuthError``; no error text
carries credentials. Multistatus answers are parsed as they arrive
(``multistatus``), one ``DAV:response`` at a time; one may be asked for
ahead of its use (``ahead=True``): a thread of its own sends it and reads
at most ``AHEAD_CHUNKS`` chunks of the answer until it is consumed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit
from xml.etree.ElementTree import ParseError

import attrs

from ...closing import Closing
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
from .davxml import DAV, MultistatusReader, Node, parse_tree, preconditions

__all__ = [
    "AHEAD_CHUNKS",
    "AHEAD_IDLE_SECONDS",
    "CHUNK_BYTES",
    "DavResponse",
    "DavTransport",
    "Multistatus",
    "ReadAhead",
    "Unsupported",
]

_VALID_TOKEN = f"{DAV}valid-sync-token"
_SUPPORTED_REPORT = f"{DAV}supported-report"
_MAX_REDIRECTS = 5
#: Longest error body read (its DAV:error conditions are near the start).
_ERROR_BODY = 64 * 1024
_XML = "application/xml; charset=utf-8"
#: Size of the (decoded) chunks an answer is read in.
CHUNK_BYTES = 64 * 1024
#: Chunks of an answer read ahead of its consumer (1 MiB): the rest waits
#: in the socket until it is consumed.
AHEAD_CHUNKS = 16
#: An answer read ahead and not consumed for this long is closed.
AHEAD_IDLE_SECONDS = 300.0


class Unsupported(ProviderError):
    """The server refused a REPORT it does not implement."""


@attrs.frozen(slots=True)
class DavResponse:
    status: int
    tree: Node | None


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the CalDAV provider needs httpx: pip install commlink[caldav]", field="provider"
        ) from exc
    return httpx


def _challenge_auth(httpx: Any, username: str, password: str) -> Any:
    """An httpx auth that sends nothing until a 401 names the scheme."""

    class ChallengeAuth(httpx.Auth):  # type: ignore[misc]
        def __init__(self) -> None:
            self._chosen: Any = None

        def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            if self._chosen is not None:
                yield from self._chosen.auth_flow(request)
                return
            response = yield request
            if response.status_code != 401:
                return
            challenge = response.headers.get("www-authenticate", "").lower()
            self._chosen = (
                httpx.DigestAuth(username, password)
                if challenge.startswith("digest")
                else httpx.BasicAuth(username, password)
            )
            yield from self._chosen.auth_flow(request)

    return ChallengeAuth()


class ReadAhead:
    """The chunks of an answer, requested and read by a thread of its own
    while the caller does other work; iterate to consume them (an error of
    the request is raised there). ``cancel()`` stops the thread at its next
    chunk and closes the answer."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._queue: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(
            AHEAD_CHUNKS
        )
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(chunks,), name="commlink-caldav-ahead", daemon=True
        )
        self._thread.start()

    def _read(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if not self._put(chunk, None):
                    return
            self._put(None, None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(None, exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _put(self, chunk: bytes | None, error: BaseException | None) -> bool:
        """Queue a chunk; False when cancelled or left unconsumed too long."""
        deadline = time.monotonic() + AHEAD_IDLE_SECONDS
        while not self._stopped.is_set() and time.monotonic() < deadline:
            try:
                self._queue.put((chunk, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk, error = self._queue.get(timeout=1)
                except queue.Empty:
                    if self._thread.is_alive() or not self._queue.empty():
                        continue
                    raise TransientError("an answer read ahead was left unread too long") from None
                if error is not None:
                    raise error
                if chunk is None:
                    return
                yield chunk
        finally:
            self.cancel()

    def cancel(self) -> None:
        self._stopped.set()
        while True:  # unblock a waiting put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


class Multistatus:
    """A streamed multistatus answer: iterate for its responses; then
    ``sync_token`` holds the document's top-level ``DAV:sync-token``."""

    def __init__(self, chunks: Iterable[bytes], shown: str) -> None:
        self._chunks = chunks
        self._shown = shown
        self._reader = MultistatusReader()

    def cancel(self) -> None:
        """Stop reading an answer asked for ahead (see ``ReadAhead``)."""
        if isinstance(self._chunks, ReadAhead):
            self._chunks.cancel()

    @property
    def sync_token(self) -> str:
        return self._reader.sync_token

    def __iter__(self) -> Iterator[Node]:
        try:
            for chunk in self._chunks:
                yield from self._reader.feed(chunk)
            yield from self._reader.close()
        except ParseError as exc:
            raise ProviderError(f"{self._shown}: malformed multistatus ({exc})") from None


class DavTransport(Closing):
    """Sends WebDAV requests with one ``httpx.Client`` and counts them."""

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
        self._counting = threading.Lock()  # answers read ahead count from their thread
        # by scheme: building a verifying TLS context costs ~40 ms, and a
        # plain-http server never needs one
        self._clients: dict[str, Any] = {}
        self._host = _netloc(urlsplit(url))

    def prepare(self) -> None:
        """Build the client for the base URL now (loading the HTTP library),
        so that a first request sent from another thread starts at once."""
        self._connect(urlsplit(self.url).scheme)

    def _connect(self, scheme: str) -> Any:
        client = self._clients.get(scheme)
        if client is None:
            httpx = _httpx()
            auth: Any = None
            if self.username is not None and self.password is not None:
                if self.auth == "basic":
                    auth = httpx.BasicAuth(self.username, self.password)
                elif self.auth == "digest":
                    auth = httpx.DigestAuth(self.username, self.password)
                else:
                    auth = _challenge_auth(httpx, self.username, self.password)
            client = self._clients[scheme] = httpx.Client(
                auth=auth,
                verify=self.verify if scheme == "https" else False,
                timeout=self.timeout,
                follow_redirects=False,
                headers={"User-Agent": "commlink-caldav"},
            )
        return client

    # -- requests ----------------------------------------------------------------

    def propfind(self, url: str, body: str, *, depth: int) -> DavResponse:
        return self._whole("PROPFIND", url, body, depth)

    def report(self, url: str, body: str, *, depth: int, sync: bool = False) -> DavResponse:
        """A REPORT read whole; with ``sync``, an invalid token raises
        ``CursorExpired`` and a refused report ``Unsupported``."""
        return self._whole("REPORT", url, body, depth, sync=sync)

    def multistatus(
        self,
        url: str,
        body: str,
        *,
        depth: int,
        sync: bool = False,
        report: bool = True,
        ahead: bool = False,
    ) -> Multistatus:
        """A REPORT (or PROPFIND) whose responses are parsed as they arrive;
        ``ahead``: sent now and read by a thread of its own (``ReadAhead``)."""
        method = "REPORT" if report else "PROPFIND"
        chunks = self._stream(method, url, body, depth, sync)
        return Multistatus(ReadAhead(chunks) if ahead else chunks, redact_url(url))

    def _whole(
        self, method: str, url: str, body: str, depth: int, *, sync: bool = False
    ) -> DavResponse:
        parts: list[bytes] = []
        for chunk in self._stream(method, url, body, depth, sync):
            parts.append(chunk)
        data = b"".join(parts)
        try:
            return DavResponse(207, parse_tree(data) if data.strip() else None)
        except ParseError as exc:
            raise ProviderError(f"{method} {redact_url(url)}: malformed answer ({exc})") from None

    def _stream(self, method: str, url: str, body: str, depth: int, sync: bool) -> Iterator[bytes]:
        """The body of a successful answer, chunk by chunk (redirects followed
        within the origin); commlink errors for everything else."""
        httpx = _httpx()
        headers = {"Depth": str(depth), "Content-Type": _XML}
        content = body.encode("utf-8")
        for _ in range(_MAX_REDIRECTS + 1):
            shown = redact_url(url)
            parts = urlsplit(url)
            if (
                parts.scheme != "https"
                and (
                    parts.hostname or "",
                    parts.port or _default_port(parts.scheme),
                )
                != self._host
            ):
                # a server-given href may name another host: only over TLS
                raise ProviderError(f"refusing plain http to {shown}, not the configured host")
            with self._counting:
                client = self._connect(parts.scheme)
                self.requests += 1
            try:
                request = client.build_request(method, url, content=content, headers=headers)
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _network_error(httpx, exc, f"{method} {shown}") from None
            try:
                status = response.status_code
                if status in (301, 302, 307, 308) and "location" in response.headers:
                    url = self._redirect(url, response.headers["location"])
                    continue
                if status >= 300:
                    raise self._failure(response, method, shown, sync)
                try:
                    yield from response.iter_bytes(CHUNK_BYTES)
                except httpx.HTTPError as exc:
                    raise _network_error(httpx, exc, f"{method} {shown}") from None
                return
            finally:
                response.close()
        raise ProviderError(f"{method} {redact_url(url)}: too many redirects")

    def _redirect(self, url: str, location: str) -> str:
        """Where a redirect leads: the same origin, or the same host over TLS."""
        target = urljoin(url, location)
        parts, here = urlsplit(target), urlsplit(url)
        same_origin = parts.scheme == here.scheme and _netloc(parts) == _netloc(here)
        upgrade = (here.scheme, parts.scheme) == (
            "http",
            "https",
        ) and parts.hostname == here.hostname
        if not (same_origin or upgrade):
            raise ProviderError(
                f"{redact_url(url)} redirects to {redact_url(target)}: another origin is refused"
            )
        return target

    def _failure(self, response: Any, method: str, shown: str, sync: bool) -> ProviderError:
        status = int(response.status_code)
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _ERROR_BODY:
                break
        try:
            tree = parse_tree(body) if body.strip()[:1] == b"<" else None
        except ParseError:
            tree = None
        conditions = preconditions(tree)
        if sync and (_VALID_TOKEN in conditions or status in (409, 412)):
            return CursorExpired(f"sync token of {shown} is no longer valid ({status})")
        if sync and (_SUPPORTED_REPORT in conditions or status in (400, 405, 501)):
            return Unsupported(f"{shown} does not support sync-collection ({status})")
        if status == 404:
            return NotFound(f"{shown} not found")
        if status in (401, 403):
            return AuthError(f"{method} {shown} refused ({status})")
        retry_after = response.headers.get("retry-after")
        if status == 429 or (status == 503 and retry_after):
            wait = retry_after_seconds(retry_after)
            return RateLimited(f"{method} {shown}: too many requests ({status})", retry_after=wait)
        if status >= 500 or status == 408:
            return TransientError(f"{method} {shown} failed with {status}")
        if status in (400, 405, 501):
            return Unsupported(f"{method} {shown} refused ({status})")
        return ProviderError(f"{method} {shown} failed with {status}")

    def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def _netloc(parts: SplitResult) -> tuple[str, int]:
    return parts.hostname or "", parts.port or _default_port(parts.scheme)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _network_error(httpx: Any, exc: Exception, what: str) -> ProviderError:
    """``TransientError`` for a failed connection or timeout (text redacted)."""
    text = redact_text(str(exc))
    name = type(exc).__name__
    if isinstance(exc, (httpx.TransportError, httpx.TimeoutException)):
        return TransientError(f"{what}: {name}: {text}"[:500])
    return ProviderError(f"{what}: {name}: {text}"[:500])
