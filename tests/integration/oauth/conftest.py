"""Local authorization servers and the API servers that accept their tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oauth_support import OWNER, Clock

from commlink.stores.sql import SqlStore
from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import GraphServer
from commlink.testing.oauth import GoogleOAuthServer, MicrosoftOAuthServer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def google_oauth(clock: Clock) -> Iterator[GoogleOAuthServer]:
    with GoogleOAuthServer(OWNER, clock=clock) as server:
        yield server


@pytest.fixture
def google_api(google_oauth: GoogleOAuthServer) -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=OWNER) as api:
        google_oauth.issue_to(api)
        yield api


@pytest.fixture
def microsoft_oauth(clock: Clock) -> Iterator[MicrosoftOAuthServer]:
    with MicrosoftOAuthServer(OWNER, clock=clock) as server:
        yield server


@pytest.fixture
def graph_api(microsoft_oauth: MicrosoftOAuthServer) -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as api:
        microsoft_oauth.issue_to(api)
        yield api


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The reference SQL store on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        store = SqlStore(f"sqlite:///{tmp_path / 'tokens.db'}")
    else:
        store = SqlStore(request.getfixturevalue("pg_engine"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def unique_key() -> Callable[[str], str]:
    """Token keys that do not collide in a database shared by a module."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"
