"""Gmail attachments read as they arrive: the ``attachments.get`` answer is
scanned and decoded from any chunking of its bytes (gzipped or not), hostile
answers raise only ``ProviderError``, and over HTTP (the local Google
server) the call keeps the Gmail error mapping, retries, quota and limits."""

from __future__ import annotations

import base64
import contextlib
import gzip
import itertools
import json
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import httplib2
import pytest
from google.oauth2.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.errors import (
    AttachmentTooLarge,
    AuthError,
    NotFound,
    ProviderError,
    RateLimited,
    TransientError,
)
from commlink.model import Attachment
from commlink.ports import Scope
from commlink.providers.google.gmail import GmailProvider
from commlink.providers.google.streaming import (
    MAX_NESTING,
    base64url_decoded,
    data_text,
    gunzipped,
)
from commlink.testing.google import GoogleApiServer
from commlink.testing.local_http import HttpAnswer

OWNER = "owner@home.example"
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (positions taken modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def decode(chunks: Sequence[bytes]) -> bytes:
    return b"".join(base64url_decoded(data_text(chunks)))


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """An ``attachments.get`` answer and the content it carries: members in
    any order, any spacing, ``data`` as base64url (padded or not) or as
    standard base64 with its slashes escaped, as some JSON writers do."""
    content = draw(st.binary(max_size=3000))
    style = draw(st.sampled_from(["url", "url-unpadded", "escaped-slash"]))
    if style == "escaped-slash":
        text = base64.b64encode(content).decode()
    else:
        text = base64.urlsafe_b64encode(content).decode()
        if style == "url-unpadded":
            text = text.rstrip("=")
    members: dict[str, Any] = {"data": text, "size": len(content), "attachmentId": "ANGjdJ8w"}
    members["meta"] = draw(json_values)
    order = draw(st.permutations(sorted(members)))
    document = json.dumps(
        {name: members[name] for name in order},
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])),
        ensure_ascii=draw(st.booleans()),
    )
    if style == "escaped-slash":
        document = document.replace(text, text.replace("/", "\\/"))
    return document.encode(), content


@SETTINGS
@given(answers(), st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_decodes_as_the_whole_answer(
    answer: tuple[bytes, bytes], cuts: list[int]
) -> None:
    document, content = answer
    assert decode([document]) == content
    assert decode(split(document, cuts)) == content


@SETTINGS
@given(answers(), st.lists(st.integers(min_value=0), max_size=20), st.integers(1, 9))
def test_gzipped_answers_decode_in_any_chunking(
    answer: tuple[bytes, bytes], cuts: list[int], level: int
) -> None:
    document, content = answer
    packed = gzip.compress(document, compresslevel=level)
    assert decode(list(gunzipped(split(packed, cuts)))) == content


@SETTINGS
@given(answers(), st.data())
def test_an_answer_cut_before_data_ends_raises(answer: tuple[bytes, bytes], data: Any) -> None:
    document, _content = answer
    start = document.index(b'"data"')
    closing = document.index(b'"', document.index(b'"', start + 6) + 1)
    cut = data.draw(st.integers(0, closing))
    with pytest.raises(ProviderError, match="ends early"):
        decode(split(document[:cut], data.draw(st.lists(st.integers(min_value=0)))))


def test_members_after_data_are_not_needed() -> None:
    text = base64.urlsafe_b64encode(b"hello").decode()
    assert decode([f'{{"data": "{text}", "size": 5, "tru'.encode()]) == b"hello"


@SETTINGS
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=10))
def test_hostile_bytes_raise_only_provider_errors(raw: bytes, cuts: list[int]) -> None:
    with contextlib.suppress(ProviderError):
        decode(split(raw, cuts))
    with contextlib.suppress(ProviderError):
        decode(list(gunzipped(split(raw, cuts))))


@SETTINGS
@given(answers(), st.integers(min_value=0), st.integers(0, 255))
def test_a_corrupted_answer_decodes_or_raises_provider_error(
    answer: tuple[bytes, bytes], where: int, value: int
) -> None:
    document = bytearray(answer[0])
    document[where % len(document)] = value
    with contextlib.suppress(ProviderError):
        decode([bytes(document)])


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b'["data", "aGk"]', "expected '{'"),
        (b'{"data": "aG\\u006b"}', "unexpected escape"),
        (b'{"d\\u0061ta": "aGk"}', "escaped member name"),
        (b'{"data": "aG*k"}', "outside base64url"),
        (b'{"data": "aGkhA"}', "truncated final group"),
        (b'{"data": 12}', "expected '\"'"),
        (b'{"size" 12, "data": "aGk"}', "expected ':'"),
        (b'{"size": 12 "data": "aGk"}', "expected ','"),
        (b'{"size": @, "data": "aGk"}', "unexpected '@'"),
        (b'{"' + b"k" * 300 + b'": 1, "data": "aGk"}', "too long"),
        (b'{"m": ' + b"[" * (MAX_NESTING + 1), "nested too deeply"),
        (b"", "ends early"),
    ],
)
def test_unexpected_answers_say_why(document: bytes, why: str) -> None:
    with pytest.raises(ProviderError, match=why):
        decode([document])


@pytest.mark.parametrize("document", [b"{}", b' { "size" : 0 } ', b'{"size": 0, "data": ""}'])
def test_an_answer_without_data_is_an_empty_part(document: bytes) -> None:
    assert decode([document]) == b""


def test_nested_members_that_look_like_data_are_passed_over() -> None:
    fake = json.dumps({"data": "AAAA", "x": ['"data": "AAAA"', {"data": "AAAA"}]})
    text = base64.urlsafe_b64encode(b"the real one").decode()
    document = f'{{"meta": {fake}, "note": "\\"data\\": \\"AAAA\\"", "data": "{text}"}}'
    assert decode([document.encode()]) == b"the real one"


def test_inflating_is_bounded_whatever_the_ratio() -> None:
    packed = gzip.compress(b"\0" * (16 * 2**20))
    assert len(packed) < 64 * 1024
    pieces = [len(p) for p in gunzipped([packed], piece=2**16)]
    assert sum(pieces) == 16 * 2**20
    assert max(pieces) <= 2**16


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_broken_compression_raises(damage: str) -> None:
    packed = gzip.compress(b'{"data": "aGk"}')
    broken = packed[:-6] if damage == "cut" else packed[:12] + b"\xff" * 20
    with pytest.raises(ProviderError, match="compress"):
        list(gunzipped([broken]))


# -- over HTTP, against the local Google API server ---------------------------

CONTENT = random.Random(7).randbytes(700 * 1024)


def _message() -> bytes:
    message = EmailMessage()
    message["From"] = "ann@client.example"
    message["To"] = OWNER
    message["Subject"] = "A file"
    message["Message-ID"] = "<file@stream>"
    message.set_content("A file.\n")
    message.add_attachment(CONTENT, "application", "octet-stream", filename="file.bin")
    return bytes(message)


class StreamingGoogle(GoogleApiServer):
    """The local Google server answering ``attachments.get`` in small HTTP
    chunks, gzipped when asked; it can stall, break off or pad an answer."""

    def __init__(self) -> None:
        super().__init__(user=OWNER)
        self.accept_encodings: list[str] = []
        self.stall = 0.0
        self.break_at: int | None = None
        self.padding = 0

    def answer_http(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpAnswer:
        status, extra, payload = super().answer_http(method, target, headers, body)
        if "/attachments/" not in target or status != 200 or not isinstance(payload, bytes):
            return status, extra, payload
        accepted = headers.get("accept-encoding", "")
        self.accept_encodings.append(accepted)
        if self.padding:
            payload = b'{"padding": "' + b"x" * self.padding + b'", ' + payload[1:]
        if "gzip" in [token.strip() for token in accepted.split(",")]:
            payload = gzip.compress(payload)
            extra = {**extra, "Content-Encoding": "gzip"}
        return status, extra, self._chunks(payload)

    def _chunks(self, payload: bytes) -> Iterator[bytes]:
        for start in range(0, len(payload), 8192):
            if self.break_at is not None and start >= self.break_at:
                raise ConnectionAbortedError("the answer breaks off")
            if start and self.stall:
                time.sleep(self.stall)
            yield payload[start : start + 8192]


@pytest.fixture
def server() -> Iterator[StreamingGoogle]:
    with StreamingGoogle() as running:
        yield running


def _provider(server: GoogleApiServer, **options: Any) -> GmailProvider:
    options.setdefault("base_delay", 0.01)
    return GmailProvider(Credentials(token=server.token), api_endpoint=server.base_url, **options)


def _read(server: GoogleApiServer, provider: GmailProvider, max_bytes: int = 10**7) -> bytes:
    message_id = server.gmail.add_message(OWNER, _message())
    attachment = Attachment("file.bin", "application/octet-stream", len(CONTENT), part="2")
    with provider.open_attachment(Scope("gmail"), message_id, [attachment], 0, max_bytes) as got:
        return b"".join(got)


@pytest.mark.integration
def test_the_answer_streams_gzipped_and_costs_what_gmail_charges(server: StreamingGoogle) -> None:
    with _provider(server) as gmail:
        assert _read(server, gmail) == CONTENT
    assert server.accept_encodings == ["gzip"]
    assert server.units_spent() == 10  # messages.get and attachments.get, 5 units each


@pytest.mark.integration
def test_a_transient_failure_is_retried_and_charged_once(server: StreamingGoogle) -> None:
    server.inject_error("/attachments/", 503)
    with _provider(server) as gmail:
        assert _read(server, gmail) == CONTENT
        assert gmail.client.retries == 1
    assert len(server.calls("/attachments/")) == 2
    assert server.units_spent() == 10


@pytest.mark.integration
@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (401, None, AuthError),
        (403, "forbidden", AuthError),
        (403, "userRateLimitExceeded", RateLimited),
        (429, None, RateLimited),
        (404, None, NotFound),
        (500, None, TransientError),
        (400, "invalidArgument", ProviderError),
    ],
)
def test_errors_map_as_every_gmail_call(
    server: StreamingGoogle, status: int, reason: str | None, error: type[ProviderError]
) -> None:
    server.inject_error("/attachments/", status, retry_after=7, reason=reason)
    with _provider(server, max_retries=0) as gmail, pytest.raises(error) as raised:
        _read(server, gmail)
    assert type(raised.value) is error
    if error is RateLimited:
        assert isinstance(raised.value, RateLimited)
        assert raised.value.retry_after == 7
    assert server.token not in str(raised.value)


@pytest.mark.integration
@pytest.mark.parametrize("refusals", [1, 2])
def test_a_refused_token_is_refreshed_once(server: StreamingGoogle, refusals: int) -> None:
    server.add_token("fresh-token", OWNER)
    refreshed: list[str] = []

    def refresh(_request: object, scopes: object) -> tuple[str, datetime]:
        refreshed.append("fresh-token")
        return "fresh-token", datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=1)

    server.inject_error("/attachments/", 401, times=refusals)
    credentials = Credentials(token=server.token, refresh_handler=refresh)
    with GmailProvider(credentials, api_endpoint=server.base_url, base_delay=0.01) as gmail:
        if refusals == 1:
            assert _read(server, gmail) == CONTENT
        else:
            with pytest.raises(AuthError):
                _read(server, gmail)
    assert refreshed == ["fresh-token"]


@pytest.mark.integration
def test_an_expired_token_is_refreshed_before_sending(server: StreamingGoogle) -> None:
    server.add_token("fresh-token", OWNER)
    later = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=1)
    credentials = Credentials(
        token=server.token, refresh_handler=lambda _request, scopes: ("fresh-token", later)
    )
    with GmailProvider(credentials, api_endpoint=server.base_url) as gmail:
        message_id = server.gmail.add_message(OWNER, _message())
        credentials.expiry = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
        server.revoke_token()
        attachment = Attachment("file.bin", "application/octet-stream", len(CONTENT), part="2")
        with gmail.open_attachment(Scope("gmail"), message_id, [attachment], 0, 10**7) as got:
            assert b"".join(got) == CONTENT
    assert credentials.token == "fresh-token"


@pytest.mark.integration
def test_an_answer_that_breaks_off_is_transient(server: StreamingGoogle) -> None:
    server.break_at = 100_000
    with _provider(server) as gmail, pytest.raises(TransientError):
        _read(server, gmail)


@pytest.mark.integration
def test_the_transport_timeout_applies_while_reading(server: StreamingGoogle) -> None:
    server.stall = 3.0
    with _provider(server, http=httplib2.Http(timeout=1.0)) as gmail:
        started = time.monotonic()
        with pytest.raises(TransientError):
            _read(server, gmail)
    assert time.monotonic() - started < 2.9


@pytest.mark.integration
def test_an_answer_longer_than_its_limit_stops(server: StreamingGoogle) -> None:
    server.padding = 2 * 2**20
    with _provider(server) as gmail, pytest.raises(AttachmentTooLarge):
        _read(server, gmail, max_bytes=len(CONTENT) + 10)


@pytest.mark.integration
def test_a_proxy_set_in_code_sends_through_the_client_library(server: StreamingGoogle) -> None:
    proxy = httplib2.ProxyInfo(httplib2.socks.PROXY_TYPE_HTTP, "127.0.0.1", 9)
    proxy.bypass_hosts = ["127.0.0.1"]  # the server is reached directly, by httplib2
    with _provider(server, http=httplib2.Http(proxy_info=proxy)) as gmail:
        assert _read(server, gmail) == CONTENT
    assert server.accept_encodings == ["gzip, deflate"]
