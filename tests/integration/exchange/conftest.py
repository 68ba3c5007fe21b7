"""A local EWS server per test, and Exchange providers connected to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ews_support import OWNER, PASSWORD

from commlink.providers.microsoft.exchange import (
    Caller,
    ExchangeCalendarProvider,
    ExchangeConnection,
    ExchangeMailProvider,
    connect,
)
from commlink.stores.sql import SqlStore
from commlink.testing.microsoft import EwsServer


@pytest.fixture
def server() -> Iterator[EwsServer]:
    with EwsServer(user=OWNER, password=PASSWORD) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    """The back-off waits the providers asked for (nothing really sleeps)."""
    return []


def _connect(server: EwsServer, password: str = PASSWORD) -> ExchangeConnection:
    return connect(
        OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password=password
    )


@pytest.fixture
def mail(server: EwsServer, sleeps: list[float]) -> Iterator[ExchangeMailProvider]:
    provider = ExchangeMailProvider(
        _connect(server), page_size=4, fetch_batch=3, caller=Caller(sleep=sleeps.append)
    )
    yield provider
    provider.close()


@pytest.fixture
def calendar(server: EwsServer, sleeps: list[float]) -> Iterator[ExchangeCalendarProvider]:
    provider = ExchangeCalendarProvider(_connect(server), caller=Caller(sleep=sleeps.append))
    yield provider
    provider.close()


@pytest.fixture
def sql_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield store
    store.close()
