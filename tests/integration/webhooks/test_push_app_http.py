"""``push_app`` on a real HTTP server: bodies over an endpoint's limit are
refused on their ``Content-Length`` without being read, chunked bodies are
refused, other paths and methods get 404/405, Graph's handshake is
answered, and no token or secret reaches a log line or the console."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from push_app_support import GMAIL, GRAPH_MAIL, OWNER, Host, raw_mail, request, wait_for

from commlink.contrib.webhook_server import PushServer
from commlink.contrib.webhooks import push_app
from commlink.stores.push_memory import MemorySubscriptionStore

pytestmark = pytest.mark.integration


def _raw(url: str, head: str, body: bytes = b"") -> tuple[str, float]:
    """Send a request head (and maybe part of a body) and read the answer
    without sending the rest: its status line, and how long it took."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(), time.monotonic() - started


@pytest.fixture
def bare() -> Iterator[PushServer]:
    """The app without Gmail (no audience given)."""
    app = push_app(MemorySubscriptionStore(), lambda channel_id: None)
    with PushServer(app, "127.0.0.1", 0) as server:
        yield server
    app.close()


@pytest.mark.parametrize(
    ("path", "declared"),
    [
        ("/push/graph", 50_000_000),
        ("/push/graph/lifecycle", (1 << 20) + 1),
        ("/push/gmail", 64 * 1024 + 1),
        ("/push/google-calendar", 64 * 1024 + 1),
    ],
)
def test_oversize_bodies_are_refused_without_being_read(
    host: Host, path: str, declared: int
) -> None:
    # only a few bytes of the declared body are sent: reading it would hang
    head = (
        f"POST {path} HTTP/1.1\nHost: crm.example.com\nContent-Type: application/json\n"
        f"Content-Length: {declared}\n"
    )
    status, took = _raw(host.url, head, b'{"value": [')
    assert status.split()[1] == "413", status
    assert took < 2
    assert request(f"{host.url}/push/graph?validationToken=still-here")[2] == b"still-here"


def test_chunked_bodies_and_bad_lengths_are_refused(host: Host) -> None:
    chunked = "POST /push/graph HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n"
    status, took = _raw(host.url, chunked, b"5\r\nhello\r\n")
    assert status.split()[1] == "411"
    assert took < 2
    head = "POST /push/graph HTTP/1.1\nHost: x\nContent-Length: {}\n"
    for length, expected in (("abc", "400"), ("-1", "400"), ("1e3", "400"), ("9" * 30, "413")):
        status, _ = _raw(host.url, head.format(length))
        assert status.split()[1] == expected, length


def test_other_paths_and_methods(bare: PushServer) -> None:
    assert request(f"{bare.url}/", "GET")[0] == 404
    assert request(f"{bare.url}/push/graph/", "POST")[0] == 404
    assert request(f"{bare.url}/push/gmail", "POST")[0] == 404  # no Gmail audience given
    status, headers, _ = request(f"{bare.url}/push/google-calendar", "GET")
    assert (status, headers["allow"]) == (405, "POST")
    status, headers, _ = request(f"{bare.url}/push/graph", "PUT", body=b"x")
    assert (status, headers["allow"]) == (405, "GET, POST")
    assert request(f"{bare.url}/push/graph", "GET")[0] == 400


def test_graph_handshake_on_both_urls_and_both_methods(bare: PushServer) -> None:
    token = "Validation: token with spaces & symbols"
    query = "?validationToken=Validation%3A+token+with+spaces+%26+symbols"
    for path in ("/push/graph", "/push/graph/lifecycle"):
        for method in ("POST", "GET"):
            status, headers, body = request(f"{bare.url}{path}{query}", method)
            assert (status, body.decode()) == (200, token)
            assert headers["content-type"].startswith("text/plain")
            assert headers["x-content-type-options"] == "nosniff"
    status, _, _ = request(f"{bare.url}/push/graph?validationToken=%3Cscript%3E", "POST")
    assert status == 400  # never reflected


def test_no_token_or_secret_is_logged(
    host: Host, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    host.run(GMAIL, GRAPH_MAIL)
    host.google.gmail.add_message(OWNER, raw_mail(1))
    host.graph_server.mail.add_message(raw_mail(2), "inbox")
    assert wait_for(lambda: host.stored(GMAIL.id) == 1 and host.stored(GRAPH_MAIL.id) == 1)
    validation = "sekrit-validation-token-1234"
    request(f"{host.url}/push/graph?validationToken={validation}", "GET")
    request(
        f"{host.url}/push/gmail",
        headers={"Authorization": "Bearer forged.sekrit.jwt"},
        body=b"{}",
    )
    assert host.google.wait_for_pushes()
    secrets = [validation, "forged.sekrit.jwt"]
    for attempt in host.google.sender.attempts_to(f"{host.url}/push/gmail"):
        secrets.append(attempt.headers["Authorization"].split()[1])
    secrets += [s.secret.reveal() for s in host.subscriptions.subscriptions() if s.secret]
    out, err = capfd.readouterr()
    assert len(secrets) >= 4
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in out + err
    assert "push graph answered 200" in caplog.text  # the app does log, without them
