"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# detailed assertion messages for the public suites, which live in the package
pytest.register_assert_rewrite("commlink.testing")

from sqlalchemy.engine import Engine  # noqa: E402

from commlink.testing.postgres import reachable, temporary_database  # noqa: E402

# the real servers (Dovecot, Cyrus, Radicale, Xandikos), one of each kind per session
pytest_plugins = ["server_fixtures"]


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    """A fresh PostgreSQL database per test module (skipped without a server)."""
    if not reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with temporary_database() as engine:
        yield engine
