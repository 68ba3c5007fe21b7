"""An httpx client for Microsoft Graph v1.0: bearer tokens, error mapping,
back-off on throttling, paging and JSON ``$batch``.

Every request asks for immutable ids (``Prefer: IdType="ImmutableId"``) so
an item keeps its id when it moves between folders. ``requests_sent``
counts the HTTP requests that went out (a ``$batch`` counts once).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from ....closing import Closing
from ....credentials import is_loopback_host, redact_url
from ....errors import (
    AuthError,
    ConfigError,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
)
from ...retry import RetryPolicy, retry_after_seconds
from ...sizing import read_at_most
from .auth import TokenSource

__all__ = ["BATCH_LIMIT", "GRAPH_URL", "BatchItem", "GraphClient", "GraphReply", "graph_error"]

GRAPH_URL = "https://graph.microsoft.com/v1.0"
#: Graph runs at most 20 requests per JSON batch.
BATCH_LIMIT = 20
IMMUTABLE_IDS = 'IdType="ImmutableId"'
JSON = Mapping[str, Any]

_RETRYABLE = frozenset({429, 500, 502, 503, 504, 599})  # 599: the network failed
#: Error codes meaning a delta token can no longer be used.
_SYNC_STATE_CODES = frozenset(
    {"syncstatenotfound", "syncstateinvalid", "resyncrequired", "syncstateexpired"}
)


def _chunks(chunks: Iterator[bytes], httpx: Any) -> Iterator[bytes]:
    """A response body's chunks; a connection lost on the way is a ``TransientError``."""
    try:
        yield from chunks
    except httpx.HTTPError as exc:
        raise TransientError(f"Graph download interrupted: {exc!r}") from exc


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("Microsoft Graph needs httpx: pip install commlink[graph]") from exc
    return httpx


@functools.cache
def _tls_context() -> Any:
    """One verifying TLS context for every client of the process: building one
    loads the CA bundle (~20 ms), which a worker cycling through thousands of
    channels would otherwise pay on every quiet pass."""
    return _httpx().create_ssl_context()


@attrs.frozen
class GraphReply:
    """One answer: HTTP status, headers (lower-cased names) and body."""

    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, text, or bytes (``$value``)

    @property
    def json(self) -> JSON:
        return self.body if isinstance(self.body, Mapping) else {}


@attrs.frozen
class BatchItem:
    """One request of a ``$batch``: ``url`` is relative to the version root."""

    key: Hashable
    url: str
    method: str = "GET"


def _error_code(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def graph_error(reply: GraphReply) -> ProviderError:
    """The commlink error for a failed Graph answer."""
    code, message = _error_code(reply.body)
    text = f"HTTP {reply.status} {code}: {message}".strip()[:500]
    status = reply.status
    if status == 410 or code.lower() in _SYNC_STATE_CODES:
        return CursorExpired(text)
    if status == 429 or (status in (503, 504) and "retry-after" in reply.headers):
        return RateLimited(text, retry_after_seconds(reply.headers.get("retry-after")))
    if status in _RETRYABLE or status == 408:
        return TransientError(text)
    if status == 401 or (status == 403 and code != "ErrorQuotaExceeded"):
        return AuthError(text)
    if status == 404:
        return NotFound(text)
    return ProviderError(text)


def _decode_body(content_type: str, body: Any) -> Any:
    """A batch item's body: JSON stays as is, anything else is base64 text."""
    if not isinstance(body, str) or "json" in content_type.lower():
        return body
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return body.encode("utf-8", "surrogateescape")


class GraphClient(Closing):
    """Sends requests to Graph with retries.

    429/503/504 and network failures are retried up to ``max_retries`` times,
    waiting what ``Retry-After`` says (else exponential back-off); a wait
    above ``max_wait`` seconds, or retries running out, raises
    ``RateLimited``/``TransientError`` for the engine to schedule. A 401 is
    retried once with a refreshed token, then raises ``AuthError``.
    """

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = GRAPH_URL,
        http: Any = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")
        base = urlsplit(self.base_url)
        if not base.hostname or not (
            base.scheme == "https" or (base.scheme == "http" and is_loopback_host(base.hostname))
        ):
            raise ConfigError(
                f"the Graph base URL must be https (http only on loopback): {redact_url(base_url)}",
                field="base_url",
            )
        self._origin = _origin(self.base_url)
        self._root = base.path.rstrip("/")
        self._http = http or _httpx().Client(timeout=timeout, verify=_tls_context())
        self._own_http = http is None
        self.retry = RetryPolicy(
            max_retries=max_retries, base_delay=base_delay, max_wait=max_wait, sleep=sleep
        )
        self.requests_sent = 0

    @property
    def retries(self) -> int:
        """How many times a request was sent again after waiting."""
        return self.retry.retries

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def owns(self, url: str) -> bool:
        """Whether an absolute ``url`` (a next or delta link) is on the base
        URL's scheme, host and port: the only place the token is sent."""
        return _origin(url) == self._origin

    def _url(self, path: str) -> str:
        """The URL to send a request for ``path`` to; an absolute link to
        another origin raises ``ProviderError`` before any token is sent."""
        if not path.startswith(("http://", "https://")):
            return self.base_url + path
        if not self.owns(path):
            raise ProviderError(
                f"refusing to send the Graph token to {_origin(path) or 'an invalid URL'}: "
                f"the link is not on {self._origin}"
            )
        return path

    # -- single requests ------------------------------------------------------

    def get(
        self, path: str, params: Mapping[str, str] | None = None, prefer: Sequence[str] = ()
    ) -> JSON:
        """GET a path (``/users/...``) or an absolute ``@odata`` link; the JSON body."""
        return self.call("GET", path, params=params, prefer=prefer).json

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: JSON | None = None,
        prefer: Sequence[str] = (),
    ) -> GraphReply:
        """One request with retries; raises the mapped error when it fails."""
        url = self._url(path)
        attempts = _Attempts(self.tokens, self.retry)
        while True:
            reply = self._send(method, url, params, body, prefer)
            if 200 <= reply.status < 300:
                return reply
            attempts.failed(reply)

    def download(self, path: str, limit: int) -> tuple[bytes | None, int | None]:
        """GET a binary body (``/messages/{id}/$value``) streamed, with the
        retries of ``call``. Returns ``(body, None)``, or ``(None, size)``
        when the body is longer than ``limit`` bytes: it is not read past
        the limit (``size`` is its ``Content-Length``, else ``limit + 1``)."""
        url = self._url(path)
        attempts = _Attempts(self.tokens, self.retry)
        while True:
            reply, body, size = self._stream(url, limit)
            if reply is None:
                return body, size
            attempts.failed(reply)

    @contextlib.contextmanager
    def stream_bytes(self, path: str, chunk_bytes: int) -> Iterator[Iterator[bytes]]:
        """GET a binary body as chunks while the block runs (an attachment's
        ``$value``), with the retries of ``call`` until the body starts."""
        httpx = _httpx()
        url = self._url(path)
        attempts = _Attempts(self.tokens, self.retry)
        while True:
            headers = {"Authorization": f"Bearer {self.tokens.token()}", "Accept": "*/*"}
            self.requests_sent += 1
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    if 200 <= response.status_code < 300:
                        yield _chunks(response.iter_bytes(chunk_bytes), httpx)
                        return
                    response.read()
                    reply = self._reply(response)
            except httpx.HTTPError as exc:
                reply = _network_failure(exc)
            attempts.failed(reply)

    def _stream(self, url: str, limit: int) -> tuple[GraphReply | None, bytes | None, int | None]:
        """One streamed GET: ``(None, body, None)``, ``(None, None, size)``
        when too long, or ``(failed reply, None, None)``."""
        httpx = _httpx()
        headers = {
            "Authorization": f"Bearer {self.tokens.token()}",
            "Prefer": IMMUTABLE_IDS,
            "Accept": "*/*",
        }
        self.requests_sent += 1
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                if not 200 <= response.status_code < 300:
                    response.read()
                    return self._reply(response), None, None
                declared = _content_length(response.headers.get("content-length"))
                if declared is not None and declared > limit:
                    return None, None, declared
                body = read_at_most(response.iter_bytes(), limit)
                return None, body, None if body is not None else max(declared or 0, limit + 1)
        except httpx.HTTPError as exc:
            return _network_failure(exc), None, None

    def pages(
        self, path: str, params: Mapping[str, str] | None = None, prefer: Sequence[str] = ()
    ) -> Iterator[JSON]:
        """Every page of a collection, following ``@odata.nextLink``."""
        found = self.get(path, params, prefer)
        while True:
            yield found
            link = found.get("@odata.nextLink")
            if not link:
                return
            found = self.get(str(link), None, prefer)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: JSON | None,
        prefer: Sequence[str],
    ) -> GraphReply:
        httpx = _httpx()
        headers = {
            "Authorization": f"Bearer {self.tokens.token()}",
            "Prefer": ", ".join((IMMUTABLE_IDS, *prefer)),
            "Accept": "application/json",
        }
        self.requests_sent += 1
        try:
            response = self._http.request(method, url, params=params, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return _network_failure(exc)
        return self._reply(response)

    @staticmethod
    def _reply(response: Any) -> GraphReply:
        """A read httpx response as a ``GraphReply`` (JSON parsed)."""
        content_type = response.headers.get("content-type", "")
        parsed: Any
        if "json" in content_type:
            try:
                parsed = response.json()
            except ValueError:
                parsed = {}
        else:
            parsed = response.content
        return GraphReply(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, parsed
        )

    # -- batches --------------------------------------------------------------

    def batch(
        self, items: Sequence[BatchItem], prefer: Sequence[str] = ()
    ) -> Iterator[tuple[Hashable, GraphReply | ProviderError]]:
        """Run items in ``$batch`` requests of at most 20; yields each key with
        its reply or the error it finally failed with.

        Items that fail with a retryable status are sent again (together,
        after the longest ``Retry-After``); when retries run out, throttling
        is raised as ``RateLimited`` and server errors are yielded. A 401
        inside a batch refreshes the token once, then raises ``AuthError``.
        """
        pending = list(items)
        attempt = 0
        refreshed = False
        while pending:
            again: list[BatchItem] = []
            worst: ProviderError | None = None
            unauthorized = False
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start : start + BATCH_LIMIT]
                for item, reply in self._batch_once(chunk, prefer):
                    if 200 <= reply.status < 300:
                        yield item.key, reply
                        continue
                    error = graph_error(reply)
                    if reply.status == 401:
                        unauthorized = True
                        again.append(item)
                    elif isinstance(error, TransientError):
                        again.append(item)
                        worst = _worse(worst, error)
                    else:
                        yield item.key, error
            pending = again
            if not pending:
                return
            if unauthorized:
                if refreshed:
                    raise AuthError("Graph refused the token inside a batch")
                self.tokens.refresh()
                refreshed = True
                if worst is None:
                    continue
            assert worst is not None
            if attempt >= self.retry.max_retries and not isinstance(worst, RateLimited):
                for item in pending:  # a server error that outlasted the retries
                    yield item.key, worst
                return
            self.retry.wait_or_raise(worst, attempt)
            attempt += 1

    def _batch_once(
        self, chunk: Sequence[BatchItem], prefer: Sequence[str]
    ) -> Iterator[tuple[BatchItem, GraphReply]]:
        headers = {"Prefer": ", ".join((IMMUTABLE_IDS, *prefer))}
        requests = [
            {
                "id": str(n),
                "method": item.method,
                "url": item.url,
                "headers": headers,
            }
            for n, item in enumerate(chunk)
        ]
        if len(chunk) == 1:  # no need for a batch envelope
            item = chunk[0]
            yield item, self._send(item.method, self.base_url + item.url, None, None, prefer)
            return
        reply = self.call("POST", "/$batch", body={"requests": requests})
        answers = {str(r.get("id")): r for r in reply.json.get("responses", []) or []}
        del reply  # the answers are let go of one by one
        for n, item in enumerate(chunk):
            answer = answers.pop(str(n), None)
            if not isinstance(answer, Mapping):
                yield item, GraphReply(503, {}, {"error": {"code": "noAnswer", "message": ""}})
                continue
            item_headers = {
                str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()
            }
            body = _decode_body(item_headers.get("content-type", ""), answer.get("body"))
            status = int(answer.get("status") or 500)
            del answer  # its base64 text
            yield item, GraphReply(status, item_headers, body)
            del body


class _Attempts:
    """The retries of one request: after a first 401 the token is refreshed
    and the request sent again at once; other failures wait, or raise, as
    the retry policy says."""

    def __init__(self, tokens: TokenSource, retry: RetryPolicy) -> None:
        self._tokens = tokens
        self._retry = retry
        self._refreshed = False
        self._waited = 0

    def failed(self, reply: GraphReply) -> None:
        """Ready the request to be sent again after ``reply``, or raise its error."""
        error = graph_error(reply)
        if isinstance(error, AuthError) and reply.status == 401 and not self._refreshed:
            self._tokens.refresh()
            self._refreshed = True
            return
        self._retry.wait_or_raise(error, self._waited)
        self._waited += 1


def _network_failure(exc: Exception) -> GraphReply:
    """A request that never got an answer, as a retryable reply (599)."""
    return GraphReply(599, {}, {"error": {"code": "network", "message": repr(exc)}})


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL (default ports filled in), or ``""``."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return ""
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return ""
    host = parts.hostname.lower()
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _worse(current: ProviderError | None, new: ProviderError) -> ProviderError:
    """The error whose wait is longest (rate limits first)."""
    if current is None:
        return new
    wait_new = new.retry_after if isinstance(new, RateLimited) else None
    wait_old = current.retry_after if isinstance(current, RateLimited) else None
    if wait_new is not None and (wait_old is None or wait_new > wait_old):
        return new
    return current
