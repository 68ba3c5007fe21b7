"""Real Celery workers on the local Redis, each run under its own key prefix.

``celery_env`` gives a run's settings (Redis key prefix and queue, a
temporary PostgreSQL database, a Maildir root) as environment variables;
``Workers`` starts ``python -m celery worker`` processes with them, each in
its own process group so a test can stop or kill a whole worker. Every
Redis key of the run is deleted afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery_support import Workers, listening

from commlink.testing.postgres import reachable, temporary_database

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def celery_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not listening(6379):
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    if not reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    token = secrets.token_hex(6)
    prefix = f"commlink-it-{token}:"
    root = tmp_path / "mail"
    root.mkdir()
    with temporary_database() as engine:
        env = {
            "COMMLINK_IT_BROKER": REDIS_URL,
            "COMMLINK_IT_PREFIX": prefix,
            "COMMLINK_IT_QUEUE": f"commlink-it-{token}",
            "COMMLINK_IT_DB": engine.url.render_as_string(hide_password=False),
            "COMMLINK_IT_ROOT": str(root),
        }
        try:
            yield env
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
                if stale:
                    client.delete(*stale)
            finally:
                client.close()


@pytest.fixture
def workers(celery_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    running = Workers(celery_env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
