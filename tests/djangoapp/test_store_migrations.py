"""The app's migrations match its models, and the tables the store writes
never clash with the reference SQL store's in a shared database."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

from commlink.stores.sql_tables import metadata


def test_makemigrations_finds_no_changes() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "commlink", check=True, dry_run=True, stdout=out)
    except SystemExit as exc:  # pragma: no cover - the failure this test reports
        pytest.fail(f"models changed without a migration:\n{out.getvalue()}")
        raise AssertionError from exc
    assert "No changes detected" in out.getvalue()


def test_tables_do_not_clash_with_the_reference_store() -> None:
    ours = {model._meta.db_table for model in apps.get_app_config("commlink").get_models()}
    assert ours
    assert all(name.startswith("commlink_orm_") for name in ours)
    assert not ours & set(metadata.tables)
