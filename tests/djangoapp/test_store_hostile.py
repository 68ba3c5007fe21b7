"""Values a database cannot hold never break ``DjangoStore``: a commit of
such a record raises ``InvalidInput`` and writes nothing (the sync engine
then skips that record), and lookups by such keys answer normally."""

from __future__ import annotations

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commlink.contrib.django.store import DjangoStore
from commlink.contrib.django.store_testing import clear_store
from commlink.errors import ConfigError, InvalidInput
from commlink.records import Viewer
from commlink.testing.conformance_data import batch, message, setup_channels

OWNER = Viewer("u1")


@pytest.fixture(params=["default", "postgres"])
def store(request: pytest.FixtureRequest) -> DjangoStore:
    alias = "default" if request.param == "default" else request.getfixturevalue("pg_alias")
    clear_store(alias)
    found = DjangoStore(alias)
    setup_channels(found)
    return found


def test_the_store_needs_aware_datetimes_and_a_known_database() -> None:
    with override_settings(USE_TZ=False), pytest.raises(ConfigError, match="USE_TZ"):
        DjangoStore()
    with pytest.raises(ConfigError, match="nowhere"):
        DjangoStore("nowhere")


def test_an_overlong_message_id_is_refused_alone(store: DjangoStore) -> None:
    store.commit(batch(messages=(message("1"),), cursor="c-1"))
    huge = "x" * 200_000 + "@mail.example"  # over PostgreSQL's index entry limit
    try:
        store.commit(batch(messages=(message("2", huge),), cursor="c-2"))
    except InvalidInput:
        assert store.cursor("c1", "INBOX") == "c-1"  # nothing of the batch stayed
        assert store.known_ids("c1", "INBOX", ["1", "2"]) == {"1"}
    else:  # SQLite holds it
        assert store.known_ids("c1", "INBOX", ["1", "2"]) == {"1", "2"}
    assert store.thread("thread-1@mail.example", OWNER) is not None


def test_lookups_by_unstorable_keys_answer(store: DjangoStore) -> None:
    store.commit(batch(messages=(message("1"),)))
    keys = ["1", "a\x00b", "\x00"]
    assert store.known_ids("c1", "INBOX", keys) == {"1"}
    assert store.threads_by_message_ids(["1@mail.example", "\x00@x"]) == {
        "1@mail.example": "thread-1@mail.example"
    }
    assert store.erased(["x\x00@example.com"]) == set()
    assert store.skip_reasons("c1", keys) == {}
    assert store.stored_addresses(["\x00"]) == set()


_hostile = st.text(st.characters(codec="utf-8") | st.sampled_from("\x00\ud800\udfff"), max_size=40)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(subject=_hostile, body=_hostile, message_id=_hostile)
def test_a_hostile_record_is_stored_as_is_or_refused_whole(
    store: DjangoStore, subject: str, body: str, message_id: str
) -> None:
    clear_store(store.using)
    setup_channels(store)
    record = message("h", message_id or "empty", thread="t", subject=subject, body=body)
    try:
        store.commit(batch(messages=(record,), cursor="after"))
    except InvalidInput:
        assert store.cursor("c1", "INBOX") is None
        assert store.known_ids("c1", "INBOX", ["h"]) == set()
        assert store.thread("t", OWNER) is None
        return
    view = store.thread("t", OWNER)
    assert view is not None
    assert (view.messages[0].subject, view.messages[0].body) == (subject, body)
    assert store.cursor("c1", "INBOX") == "after"
