"""A Radicale server for the CalDAV tests, one account per test, and a
rewriting proxy that makes it look like a less capable or less careful server."""

from __future__ import annotations

import http.client
import itertools
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.radicale import RadicaleAccount, RadicaleServer

pytestmark = pytest.mark.integration

_users = itertools.count(1)

Rewrite = Callable[[str, str, bytes], bytes]


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture
def account(radicale: RadicaleServer) -> RadicaleAccount:
    """A fresh user with an empty calendar home."""
    return radicale.add_account(f"user{next(_users)}", "pw")


@pytest.fixture
def connect(account: RadicaleAccount) -> Iterator[Callable[..., CalDavProvider]]:
    opened: list[CalDavProvider] = []

    def make(url: str | None = None, **options: object) -> CalDavProvider:
        provider = CalDavProvider(
            url or account.url, username=account.username, password=account.password,
            **options,  # type: ignore[arg-type]
        )  # fmt: skip
        opened.append(provider)
        return provider

    yield make
    for provider in opened:
        provider.close()


class RewritingProxy:
    """Forwards HTTP to a server and passes each response body through
    ``rewrite(method, path, body)``."""

    def __init__(self, port: int, rewrite: Rewrite) -> None:
        self.target = port
        self.rewrite = rewrite
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target, timeout=30)
                # no compression, so rewrites see plain text
                dropped = ("host", "accept-encoding")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = proxy.rewrite(self.command, self.path, response.read())
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> RewritingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(radicale: RadicaleServer) -> Iterator[Callable[[Rewrite], RewritingProxy]]:
    started: list[RewritingProxy] = []

    def make(rewrite: Rewrite) -> RewritingProxy:
        running = RewritingProxy(radicale.port, rewrite).__enter__()
        started.append(running)
        return running

    yield make
    for running in started:
        running.__exit__()
