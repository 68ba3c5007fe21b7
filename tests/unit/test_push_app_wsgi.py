"""``push_app`` as a WSGI callable fed hostile requests: whatever the method,
path, ``Content-Length``, transfer coding, query and body, it answers one
well-formed response, never reads more than an endpoint's limit (nothing
at all when the declared size is over it), and wakes nothing without a
valid secret."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.contrib.webhooks import PushPaths, push_app
from commlink.errors import ConfigError
from commlink.stores.push_memory import MemorySubscriptionStore

LIMITS = {"/push/gmail": 64 * 1024, "/push/google-calendar": 64 * 1024}
GRAPH_LIMIT = 1 << 20


class CountingInput(io.BytesIO):
    """``wsgi.input`` that counts what is read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


class Response:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        assert not self.status, "start_response called twice"
        self.status, self.headers = status, headers


woken: list[str] = []
APP = push_app(
    MemorySubscriptionStore(),
    woken.append,
    gmail_audience="https://crm.example.com/push/gmail",
    gmail_service_accounts=["push@p.iam.gserviceaccount.com"],
    gmail_certs_url="http://127.0.0.1:9/certs",  # never reached: no token verifies
)

paths = st.sampled_from(
    ["/push/gmail", "/push/google-calendar", "/push/graph", "/push/graph/lifecycle", "/", "/x"]
) | st.text(max_size=40)
lengths = st.one_of(
    st.none(),
    st.integers(0, 3 << 20).map(str),
    st.sampled_from(["", "-1", "abc", " 12", "1e3", "٣", "99999999999999999999"]),
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "post", ""]),
    path=paths,
    declared=lengths,
    chunked=st.booleans(),
    terminated=st.booleans(),
    query=st.text(max_size=200),
    body=st.binary(max_size=2048),
    headers=st.dictionaries(
        st.sampled_from(
            ["HTTP_AUTHORIZATION", "HTTP_X_GOOG_CHANNEL_ID", "HTTP_X_GOOG_RESOURCE_STATE"]
        ),
        st.text(max_size=60),
    ),
)
def test_any_request_gets_one_bounded_answer(
    method: str,
    path: str,
    declared: str | None,
    chunked: bool,
    terminated: bool,
    query: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    stream = CountingInput(body + b"x" * (3 << 20) if chunked else body)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "application/json",
        "wsgi.input": stream,
        **headers,
    }
    if declared is not None:
        environ["CONTENT_LENGTH"] = declared
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = terminated
    response = Response()
    answer = b"".join(APP(environ, response))
    code = int(response.status.split()[0])
    assert 200 <= code < 600
    names = [name.lower() for name, _ in response.headers]
    if code == 204:
        assert answer == b""
        assert "content-length" not in names
    else:
        assert ("content-length", str(len(answer))) in [(n.lower(), v) for n, v in response.headers]
    limit = LIMITS.get(path, GRAPH_LIMIT)
    assert stream.read_bytes <= limit + 1
    if not chunked and declared and declared.isdigit() and int(declared) > limit:
        assert stream.read_bytes == 0
        # refused unread: no route, wrong method, too large, or a GET handshake without its token
        graph_get = path.endswith("/graph") and method == "GET"
        assert code in (404, 405, 413) or (graph_get and code == 400) or "validationToken" in query
    if chunked and not terminated:
        assert stream.read_bytes == 0
    assert woken == []


def test_paths_are_checked() -> None:
    assert PushPaths(graph="/hooks/graph").url("https://crm.example.com/c/", "graph") == (
        "https://crm.example.com/c/hooks/graph"
    )
    for bad in ("hooks", "/a b", "/a?b", "/a/../b", "/a/", "", "/a//b", "/é"):
        with pytest.raises(ConfigError, match=r"paths\.gmail"):
            PushPaths(gmail=bad)
    with pytest.raises(ConfigError, match="a path of its own"):
        PushPaths(gmail="/push/graph")


def test_gmail_needs_its_audience_with_its_accounts() -> None:
    with pytest.raises(ConfigError, match="gmail_audience"):
        push_app(MemorySubscriptionStore(), woken.append, gmail_service_accounts=["a@b.example"])
    with pytest.raises(ConfigError, match="allowed_emails"):
        push_app(MemorySubscriptionStore(), woken.append, gmail_audience="https://x.example/p")
