"""Django settings for the tests of ``commlink.contrib.django``.

Settings are configured once per process: the app, the test host app
``crm_host`` (this folder is put on ``sys.path``), and two databases:
``default``, an SQLite file in a temporary folder, migrated at once, and
``pg``, a fresh PostgreSQL database created and migrated by the ``pg_alias``
fixture on first use (its tests are skipped without a server) and dropped
at the end of the session.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from commlink.testing.postgres import reachable  # noqa: E402

_TEMP = Path(tempfile.mkdtemp(prefix="commlink-django-"))
_PG_NAME = f"commlink_dj_{secrets.token_hex(6)}"
_PG_CREATED = False

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="commlink-tests-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "commlink.contrib.django",
            "crm_host",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        ROOT_URLCONF="crm_host.urls",
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(_TEMP / "default.sqlite3"),
                # writers take the lock when their transaction starts, so
                # concurrent writers wait instead of failing to upgrade a read
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
            },
            "pg": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": _PG_NAME,
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": "5432",
            },
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        COMMLINK={},
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", database="default", verbosity=0)


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True
    ) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_alias() -> Iterator[str]:
    """The ``pg`` database alias, migrated (skipped without PostgreSQL)."""
    global _PG_CREATED
    if not reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from django.core.management import call_command
    from django.db import connections

    if not _PG_CREATED:
        _admin_execute(f'CREATE DATABASE "{_PG_NAME}"')
        _PG_CREATED = True
        call_command("migrate", database="pg", verbosity=0)
    yield "pg"
    connections["pg"].close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _PG_CREATED:
        from django.db import connections

        connections.close_all()
        _admin_execute(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)')
    shutil.rmtree(_TEMP, ignore_errors=True)
