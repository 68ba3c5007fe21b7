"""Local Google and Graph servers, and the push app served on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from push_app_support import OWNER, Host

from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import GraphServer


@pytest.fixture
def google() -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=OWNER) as running:
        running.calendar.add_calendar(OWNER, OWNER, "Owner", primary=True)
        yield running
        running.wait_for_pushes()


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as running:
        yield running


@pytest.fixture
def host(google: GoogleApiServer, graph: GraphServer) -> Iterator[Host]:
    with Host(google, graph) as running:
        yield running
