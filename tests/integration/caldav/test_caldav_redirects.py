"""Redirects: followed within the configured origin, refused to anywhere
else, so credentials never leave for another host."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from commlink.errors import ProviderError
from commlink.providers.caldav.provider import CalDavProvider

pytestmark = pytest.mark.integration

PASSWORD = "redirect-pw-K8s2"


class Redirector(BaseHTTPRequestHandler):
    """Sends every request elsewhere: ``/away`` to another loopback host,
    anything else to ``/away`` on the same origin."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_PROPFIND(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        port = self.server.server_address[1]
        target = f"http://127.0.0.2:{port}/elsewhere/" if self.path == "/away/" else "/away/"
        self.send_response(301)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    Redirector.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_redirect_to_another_host_is_refused(redirector: str) -> None:
    provider = CalDavProvider(redirector, username="bob", password=PASSWORD, timeout=5)
    with pytest.raises(ProviderError, match="another origin is refused") as caught:
        provider.calendars()
    provider.close()
    assert PASSWORD not in str(caught.value)
    # the same-origin hop was followed (with credentials); the other host saw nothing
    assert [path for path, _ in Redirector.seen] == ["/", "/away/"]
    assert all(auth.startswith("Basic ") for _, auth in Redirector.seen)
    assert provider.requests == 2
