"""SqlDirectory specifics: shared database, one-statement lookups, bulk loads.
Its port behaviour is checked by the
Directory conformance suite, its admin rules by test_reference_directories."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from commlink.errors import InvalidInput, StoreError
from commlink.ports import Directory
from commlink.stores.sql import SqlStore
from commlink.stores.sql_directory import SqlDirectory
from commlink.testing.postgres import emptied


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def directory(request: pytest.FixtureRequest, tmp_path: Any) -> SqlDirectory:
    if request.param == "sqlite":
        return SqlDirectory(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    engine: Engine = request.getfixturevalue("pg_engine")
    emptied(engine)
    return SqlDirectory(engine)


def test_it_is_a_directory(directory: SqlDirectory) -> None:
    assert isinstance(directory, Directory)


def test_directory_shares_the_store_database(tmp_path: Any) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'shared.sqlite'}")
    directory = SqlDirectory(store)
    directory.add_person("p", "P", ["p@x.example"])
    assert directory.engine is store.engine
    assert "commlink_people" in sa.inspect(store.engine).get_table_names()


def test_large_lookups_are_one_statement(directory: SqlDirectory) -> None:
    count = 25_000
    directory.add_people_bulk(
        (f"p{i}", f"Person {i}", [f"p{i}@c{i % 100}.example"], None) for i in range(count)
    )
    keys = [f"p{i}@c{i % 100}.example" for i in range(count)] + ["x@nowhere.example"]
    selects: list[str] = []

    def record(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            selects.append(args[2])

    event.listen(directory.engine, "before_cursor_execute", record)
    try:
        found = directory.people_by_addresses(keys)
    finally:
        event.remove(directory.engine, "before_cursor_execute", record)
    assert len(found) == count
    assert found["p123@c23.example"].id == "p123"
    assert len(selects) == 1  # the 25,001 keys travel as one parameter


@pytest.mark.parametrize("directory", ["sqlite"], indirect=True)
def test_two_hundred_thousand_people(directory: SqlDirectory) -> None:
    count = 200_000
    began = time.perf_counter()
    directory.add_people_bulk(
        (f"p{i}", f"Person {i}", [f"p{i}@c{i % 5000}.example"], None) for i in range(count)
    )
    wanted = [f"p{i}@c{i % 5000}.example" for i in range(0, count, 7)]
    found = directory.people_by_addresses(wanted)
    elapsed = time.perf_counter() - began
    assert len(found) == len(wanted)
    assert elapsed < 60, f"{elapsed:.1f}s for 200,000 people"
    small = time.perf_counter()
    assert len(directory.people_by_addresses(wanted[:50])) == 50
    assert time.perf_counter() - small < 1


def test_bulk_insert_errors_are_store_errors(directory: SqlDirectory) -> None:
    directory.add_people_bulk([("p1", "P", ["p1@x.example"], None)])
    with pytest.raises(StoreError):
        directory.add_people_bulk([("p1", "P again", ["other@x.example"], None)])
    assert directory.people_by_addresses(["other@x.example"]) == {}


def test_bulk_insert_normalises_and_checks_addresses(directory: SqlDirectory) -> None:
    directory.add_people_bulk([("p1", "P", ["P1@FAß.example"], None)])
    assert directory.people_by_addresses(["p1@xn--fa-hia.example"])["p1@xn--fa-hia.example"].id == (
        "p1"
    )
    with pytest.raises(InvalidInput):
        directory.add_people_bulk([("p2", "P", ["not an address"], None)])
    with pytest.raises(InvalidInput):
        directory.add_people_bulk(
            [("p3", "P", ["x@y.example"], None), ("p4", "Q", ["X@y.example"], None)]
        )
    assert directory.people_by_addresses(["x@y.example"]) == {}
