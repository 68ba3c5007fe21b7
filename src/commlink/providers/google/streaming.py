"""Reading Gmail's ``users.messages.attachments.get`` answer as it arrives.

The answer is one JSON object, ``{"size": N, "data": "<base64url>", ...}``,
whose ``data`` is the whole part: about 1.37 times the attachment. The
client library reads an answer whole before handing it over, so this call is
sent with ``requests`` (through google-auth's ``AuthorizedSession``, with the
provider's credentials) and its body read a chunk at a time: gunzipped with
a bounded output, scanned for the ``data`` member and decoded in groups of
four characters. Only a chunk or two is held at any time.

The scanning and decoding (``gunzipped``, ``data_text``,
``base64url_decoded``) are pure and take any chunking of the body.
"""

from __future__ import annotations

import binascii
import importlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import AttachmentTooLarge, ProviderError, TransientError
from ..attachment_streams import CHUNK_BYTES
from .client import map_error

__all__ = [
    "MAX_ERROR_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NESTING",
    "OTHER_MEMBERS_BYTES",
    "answer_limit",
    "base64url_decoded",
    "data_text",
    "gunzipped",
    "streamed_answer",
]

#: The longest member name read before ``data`` (Gmail's are a few bytes).
MAX_KEY_BYTES = 256
#: How deeply a member skipped before ``data`` may nest.
MAX_NESTING = 32
#: Room in an answer for the members besides ``data``.
OTHER_MEMBERS_BYTES = 64 * 1024
#: How much of an error answer is read to find its reason.
MAX_ERROR_BYTES = 64 * 1024

_WHITESPACE = frozenset(b" \t\r\n")
_LITERAL = frozenset(b"0123456789+-.eEtrufalsn")
_OPEN, _CLOSE = frozenset(b"{["), frozenset(b"}]")
_QUOTE, _COMMA, _COLON = ord('"'), ord(","), ord(":")
_BRACE_OPEN, _BRACE_CLOSE = ord("{"), ord("}")
# base64url to the standard alphabet; whitespace and padding are dropped
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_DROPPED = b" \t\r\n="
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _unreadable(why: str) -> ProviderError:
    return ProviderError(f"Gmail sent an unreadable attachment: {why}")


def gunzipped(chunks: Iterable[bytes], piece: int = CHUNK_BYTES) -> Iterator[bytes]:
    """A gzip stream inflated, at most ``piece`` bytes at a time whatever the
    compression ratio; a truncated stream raises ``ProviderError``."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        for chunk in chunks:
            data = chunk
            while data and not inflater.eof:
                out = inflater.decompress(data, piece)
                data = inflater.unconsumed_tail
                if out:
                    yield out
        if not inflater.eof:
            raise _unreadable("the compressed answer ends early")
    except zlib.error as exc:
        raise _unreadable(f"bad compression ({exc})") from None


class _Reader:
    """The bytes of a chunked body, one at a time or a run at a time."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._at = 0

    def _fill(self) -> None:
        """Make at least one byte available, or raise: the answer ended."""
        while self._at >= len(self._buffer):
            chunk = next(self._chunks, None)
            if chunk is None:
                raise _unreadable("the answer ends early")
            self._buffer, self._at = chunk, 0

    def byte(self) -> int:
        self._fill()
        value = self._buffer[self._at]
        self._at += 1
        return value

    def unread(self) -> None:
        """Give back the byte just read (still in the current chunk)."""
        self._at -= 1

    def token(self) -> int:
        """The next byte that is not JSON whitespace."""
        value = self.byte()
        while value in _WHITESPACE:
            value = self.byte()
        return value

    def string(self, escape: Callable[[int], bytes]) -> Iterator[bytes]:
        """Runs of a JSON string's content after its opening quote, up to the
        closing one; ``escape`` turns the byte after a backslash into content."""
        while True:
            self._fill()
            buffer, at = self._buffer, self._at
            quote = buffer.find(b'"', at)
            end = quote if quote >= 0 else len(buffer)
            backslash = buffer.find(b"\\", at, end)
            if backslash >= 0:
                end = backslash
            if end > at:
                yield buffer[at:end]
            self._at = end
            if end == len(buffer):
                continue
            self._at += 1
            if end == quote:
                return
            replaced = escape(self.byte())
            if replaced:
                yield replaced


def _escaped_slash(value: int) -> bytes:
    if value != ord("/"):
        raise _unreadable(f"unexpected escape \\{chr(value)!r} in data")
    return b"/"


def _any_escape(_value: int) -> bytes:
    return b""


def _no_escape(_value: int) -> bytes:
    raise _unreadable("an escaped member name")


def _expect(value: int, wanted: int) -> None:
    if value != wanted:
        raise _unreadable(f"expected {chr(wanted)!r}, found {chr(value)!r}")


def _key(reader: _Reader) -> bytes:
    key = b""
    for run in reader.string(_no_escape):
        key += run
        if len(key) > MAX_KEY_BYTES:
            raise _unreadable("a member name too long")
    return key


def _skip_value(reader: _Reader, first: int) -> None:
    """Read past one JSON value whose first byte was ``first``."""
    depth = 0
    value = first
    while True:
        if value == _QUOTE:
            for _ in reader.string(_any_escape):
                pass
        elif value in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                raise _unreadable("members nested too deeply")
        elif value in _CLOSE and depth:
            depth -= 1
        elif value in _LITERAL:
            while value in _LITERAL:
                value = reader.byte()
            reader.unread()
        elif not depth or value not in b",:":
            raise _unreadable(f"unexpected {chr(value)!r}")
        if not depth:
            return
        value = reader.token()


def data_text(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The base64url text of the ``data`` member of an ``attachments.get``
    answer, in runs as ``chunks`` arrive; other members, before or after it,
    are passed over. An answer without ``data`` is an empty part; one that
    is not a JSON object, or ends early, raises ``ProviderError``."""
    reader = _Reader(chunks)
    _expect(reader.token(), _BRACE_OPEN)
    value = reader.token()
    if value == _BRACE_CLOSE:
        return
    while True:
        _expect(value, _QUOTE)
        key = _key(reader)
        _expect(reader.token(), _COLON)
        value = reader.token()
        if key == b"data":
            _expect(value, _QUOTE)
            yield from reader.string(_escaped_slash)
            return
        _skip_value(reader, value)
        value = reader.token()
        if value == _BRACE_CLOSE:
            return
        _expect(value, _COMMA)
        value = reader.token()


def base64url_decoded(text: Iterable[bytes]) -> Iterator[bytes]:
    """Base64url ``text`` (in runs of any length) decoded four characters at
    a time; padding and whitespace are ignored, anything else outside the
    alphabet raises ``ProviderError``."""
    rest = b""
    for run in text:
        piece = rest + run.translate(_TO_STANDARD, _DROPPED)
        if piece.translate(None, _ALPHABET):
            raise _unreadable("a character outside base64url")
        whole = len(piece) - len(piece) % 4
        rest = piece[whole:]
        if whole:
            yield binascii.a2b_base64(piece[:whole])
    if len(rest) == 1:
        raise _unreadable("a truncated final group")
    if rest:
        yield binascii.a2b_base64(rest + b"=" * (-len(rest) % 4))


def _within(chunks: Iterable[bytes], limit: int, max_bytes: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise AttachmentTooLarge(max_bytes)
        yield chunk


def answer_limit(max_bytes: int) -> int:
    """The longest ``attachments.get`` answer read for a part of at most
    ``max_bytes``: its base64url text and room for the other members."""
    return -(-max_bytes // 3) * 4 + OTHER_MEMBERS_BYTES


@contextmanager
def streamed_answer(
    execute: Callable[[Any, int], Any], request: Any, cost: int, max_bytes: int
) -> Iterator[Iterator[bytes]]:
    """The body of the client-library ``request`` (an ``attachments.get``),
    sent by ``execute(request, cost)`` (pacing, retries) but read as it
    arrives, and at most ``answer_limit(max_bytes)`` of it.

    When the provider sends through an ``httplib2.Http`` with a proxy set
    in code (rather than from the environment), the client library sends
    the call and its answer is held whole, as any other call's.
    """
    sender = _StreamedGet.of(request)
    if sender is None:
        request.postproc = _content
        yield _within((execute(request, cost),), answer_limit(max_bytes), max_bytes)
        return
    try:
        response = execute(sender, cost)
        try:
            yield _within(_body(response), answer_limit(max_bytes), max_bytes)
        finally:
            response.close()
    finally:
        sender.close()


def _content(_response: object, content: bytes) -> bytes:
    return content


def _body(response: Any) -> Iterator[bytes]:
    """The body of a ``requests`` response as it arrives, gunzipped; a broken
    connection raises ``TransientError``."""
    encoding = str(response.headers.get("content-encoding", "")).strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise _unreadable(f"unknown content encoding {encoding[:40]!r}")
    raw = _raw_chunks(response)
    return gunzipped(raw) if encoding == "gzip" else raw


def _raw_chunks(response: Any) -> Iterator[bytes]:
    urllib3 = importlib.import_module("urllib3")
    try:
        yield from response.raw.stream(CHUNK_BYTES, decode_content=False)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError(f"network: reading the attachment: {type(exc).__name__}") from exc


class _StreamedGet:
    """A GET sent with ``requests`` in place of a client-library request:
    ``execute`` (what ``GoogleClient.execute`` calls) answers the response
    with its body unread, or raises the error the client library's
    ``HttpError`` maps to. Credentials are refreshed when expired and once
    on a 401, as the client library does."""

    def __init__(self, credentials: Any, uri: str, headers: dict[str, str], transport: Any) -> None:
        import requests
        from google.auth.transport.requests import AuthorizedSession, Request
        from requests.utils import get_environ_proxies

        httplib2 = importlib.import_module("httplib2")
        self.uri = uri
        self.headers = headers
        self.timeout = transport.timeout
        self._refreshing = requests.Session()
        self._refresh_with = Request(self._refreshing)
        self.session: Any = AuthorizedSession(  # type: ignore[no-untyped-call]
            credentials, refresh_status_codes=(), auth_request=self._refresh_with
        )
        # settings come from the provider's transport, never from ~/.netrc or
        # REQUESTS_CA_BUNDLE; proxies from the environment as httplib2 reads them
        from_environment = transport.proxy_info is httplib2.proxy_info_from_environment
        for session in (self.session, self._refreshing):
            session.trust_env = False
            session.proxies = get_environ_proxies(uri) if from_environment else {}
            if transport.disable_ssl_certificate_validation:
                session.verify = False
            elif transport.ca_certs:
                session.verify = transport.ca_certs

    @classmethod
    def of(cls, request: Any) -> _StreamedGet | None:
        """The same call as client-library ``request``, with its credentials,
        timeout, proxy and certificate settings (``None``: not possible)."""
        authorized = getattr(request, "http", None)
        credentials = getattr(authorized, "credentials", None)
        transport = getattr(authorized, "http", None)
        httplib2 = importlib.import_module("httplib2")
        if credentials is None or not isinstance(transport, httplib2.Http):
            return None
        proxy = transport.proxy_info
        if proxy is not None and proxy is not httplib2.proxy_info_from_environment:
            return None
        headers = {
            name: value
            for name, value in dict(request.headers).items()
            if name.lower() in ("accept", "user-agent", "x-goog-api-client")
        }
        headers["accept-encoding"] = "gzip"
        return cls(credentials, str(request.uri), headers, transport)

    def execute(self, num_retries: int = 0) -> Any:
        """Send the request once; ``num_retries`` is the caller's business."""
        del num_retries
        response = self._send()
        if response.status_code == 401:
            response.close()
            self.session.credentials.refresh(self._refresh_with)
            response = self._send()
        if response.status_code == 200:
            return response
        content = b""
        try:
            for chunk in _body(response):
                content += chunk[: MAX_ERROR_BYTES - len(content)]
                if len(content) >= MAX_ERROR_BYTES:
                    break
        except ProviderError:
            pass
        finally:
            response.close()
        raise map_error(_http_error(response, content, self.uri))

    def _send(self) -> Any:
        return self.session.request(
            "GET",
            self.uri,
            headers=self.headers,
            timeout=self.timeout,
            stream=True,
            allow_redirects=False,
        )

    def close(self) -> None:
        self.session.close()
        self._refreshing.close()


def _http_error(response: Any, content: bytes, uri: str) -> BaseException:
    """The client library's ``HttpError`` for an error answer, so it maps as
    every other Gmail call's does."""
    from googleapiclient.errors import HttpError

    httplib2 = importlib.import_module("httplib2")
    info = {name.lower(): value for name, value in response.headers.items()}
    info["status"] = str(response.status_code)
    resp = httplib2.Response(info)
    resp.reason = response.reason or ""
    error: BaseException = HttpError(resp, content, uri=uri)
    return error
