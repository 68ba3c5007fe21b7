"""A local Google API server per test, and a Gmail provider on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gapi_support import OWNER
from google.oauth2.credentials import Credentials

from commlink.providers.google.gmail import GmailProvider
from commlink.testing.google import GoogleApiServer


@pytest.fixture
def server() -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=OWNER) as running:
        yield running


@pytest.fixture
def gmail(server: GoogleApiServer) -> Iterator[GmailProvider]:
    provider = GmailProvider(
        Credentials(token=server.token), api_endpoint=server.base_url, base_delay=0.01
    )
    yield provider
    provider.close()
