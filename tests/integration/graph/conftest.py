"""A local Graph server per test, and Graph providers on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_support import OWNER, client

from commlink.ports import Store
from commlink.providers.microsoft.graph import GraphCalendarProvider, GraphMailProvider
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.testing.microsoft import GraphServer


@pytest.fixture
def server() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER, aliases=("sales@home.example",)) as running:
        yield running


@pytest.fixture
def mail(server: GraphServer) -> Iterator[GraphMailProvider]:
    provider = GraphMailProvider(client(server), user=OWNER, page_size=4)
    yield provider
    provider.close()


@pytest.fixture
def calendar(server: GraphServer) -> Iterator[GraphCalendarProvider]:
    provider = GraphCalendarProvider(client(server), user=OWNER)
    yield provider
    provider.close()


@pytest.fixture
def make_mail(server: GraphServer) -> Iterator[Callable[..., GraphMailProvider]]:
    """Mail providers with other client settings, closed after the test."""
    made: list[GraphMailProvider] = []

    def make(client_options: dict[str, Any] | None = None, **kwargs: Any) -> GraphMailProvider:
        options = {"user": OWNER, **kwargs}
        provider = GraphMailProvider(client(server, **(client_options or {})), **options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store kind the tests run against."""
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = SqlStore(f"sqlite:///{tmp_path}/graph.sqlite")
    yield sql
    sql.close()
