"""A fresh CalDAV user per test on each server (Radicale, Xandikos, Cyrus:
``server_fixtures``), and a rewriting proxy that makes a server look like a
less capable or less careful one."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from commlink.providers.caldav.provider import CalDavProvider
from commlink.testing.dav_account import DavAccount
from server_fixtures import DavServer

pytestmark = pytest.mark.integration

Rewrite = Callable[[str, str, bytes], bytes]


@pytest.fixture
def account(dav_server: DavServer) -> DavAccount:
    """A fresh user with an empty calendar home, on each server."""
    return dav_server.account("user")


@pytest.fixture
def connect(account: DavAccount) -> Iterator[Callable[..., CalDavProvider]]:
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

    def __init__(self, port: int, rewrite: Rewrite, root: str = "/") -> None:
        self.target = port
        self.rewrite = rewrite
        self.root = root
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
            do_MKCALENDAR = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's CalDAV root, through the proxy."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.root}"

    def __enter__(self) -> RewritingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(dav_server: DavServer) -> Iterator[Callable[[Rewrite], RewritingProxy]]:
    """Proxies to the test's server, rewriting what it answers."""
    started: list[RewritingProxy] = []

    def make(rewrite: Rewrite) -> RewritingProxy:
        running = RewritingProxy(dav_server.port, rewrite, dav_server.root).__enter__()
        started.append(running)
        return running

    yield make
    for running in started:
        running.__exit__()
