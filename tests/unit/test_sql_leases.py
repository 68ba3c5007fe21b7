"""SqlStore leases across processes, and the engine options a store creates its engine with."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from commlink.stores.sql import SqlStore
from commlink.stores.sql_schema import SERVER_POOL

TTL = timedelta(seconds=2)


def _holder(url: str, ready: Any, release: Any) -> None:
    """A process that takes the lease, says so, and waits to be killed or released."""
    store = SqlStore(url)
    ready.put(store.acquire_lease("shared", f"proc-{os.getpid()}", TTL))
    if release.get():
        store.release_lease("shared", f"proc-{os.getpid()}")
        ready.put("released")
    time.sleep(60)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def spawn() -> Any:
    return multiprocessing.get_context("spawn")


@pytest.mark.postgres
def test_a_lease_holds_across_processes_until_its_holder_dies(
    pg_engine: Engine, spawn: Any
) -> None:
    ready, release = spawn.Queue(), spawn.Queue()
    first = spawn.Process(target=_holder, args=(_url(pg_engine), ready, release))
    first.start()
    try:
        assert ready.get(timeout=30) is True
        store = SqlStore(pg_engine)
        # held by a live process: refused, however often asked
        assert not store.acquire_lease("shared", "other", TTL)
        assert not store.acquire_lease("shared", "other", TTL)
        os.kill(first.pid, signal.SIGKILL)  # dies without releasing it
        first.join(10)
        deadline = time.monotonic() + 10
        while not store.acquire_lease("shared", "other", TTL):
            assert time.monotonic() < deadline, "the dead holder's lease never expired"
            time.sleep(0.1)
        # taken over: a late renewal by the old holder's name is refused now
        assert not store.acquire_lease("shared", f"proc-{first.pid}", TTL)
        store.release_lease("shared", "other")
    finally:
        if first.is_alive():
            first.kill()
            first.join()


@pytest.mark.postgres
def test_a_released_lease_is_free_at_once_for_another_process(
    pg_engine: Engine, spawn: Any
) -> None:
    ready, release = spawn.Queue(), spawn.Queue()
    first = spawn.Process(target=_holder, args=(_url(pg_engine), ready, release))
    first.start()
    try:
        assert ready.get(timeout=30) is True
        store = SqlStore(pg_engine)
        assert not store.acquire_lease("shared", "other", timedelta(minutes=10))
        release.put(True)
        assert ready.get(timeout=10) == "released"
        assert store.acquire_lease("shared", "other", timedelta(minutes=10))
        store.release_lease("shared", "other")
    finally:
        first.kill()
        first.join()


def test_sqlite_store_takes_engine_options(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 's.sqlite'}", engine_options={"echo_pool": False})
    assert store.engine.dialect.name == "sqlite"
    store.close()


@pytest.mark.postgres
def test_postgres_pool_defaults_and_overrides(pg_engine: Engine) -> None:
    url = _url(pg_engine)
    store = SqlStore(url)
    pool: Any = store.engine.pool
    assert pool.size() == SERVER_POOL["pool_size"]
    assert pool._pre_ping
    with store.engine.connect() as conn:
        name = conn.exec_driver_sql("SHOW application_name").scalar()
    assert name == "commlink"
    store.close()
    tuned = SqlStore(
        url,
        engine_options={
            "pool_size": 2,
            "max_overflow": 0,
            "connect_args": {"application_name": "crm-worker"},
        },
    )
    pool = tuned.engine.pool
    assert pool.size() == 2
    assert pool._max_overflow == 0
    with tuned.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW application_name").scalar() == "crm-worker"
    tuned.close()
