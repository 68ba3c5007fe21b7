"""The requests session the sign-in libraries (google-auth, msal) send through."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .identity import OAuthClient

__all__ = ["requests_session"]


@contextmanager
def requests_session(client: OAuthClient) -> Iterator[Any]:
    """A ``requests.Session`` with the client's timeout, trusting
    ``client.ca_file`` when given, closed on exit. The CA file is passed on
    every request: set on the session only, requests would let
    ``REQUESTS_CA_BUNDLE`` override it (psf/requests#3829)."""
    import requests

    session = requests.Session()
    extra: dict[str, Any] = {"timeout": client.timeout}
    if client.ca_file:
        extra["verify"] = client.ca_file
    session.request = functools.partial(session.request, **extra)  # type: ignore[method-assign]
    try:
        yield session
    finally:
        session.close()
