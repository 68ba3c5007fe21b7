"""Exchange mail sync through the engine against the local EWS server:
invalid sync states, throttling, credentials, moves and folder selection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ews_support import (
    OWNER,
    engine,
    mail_channel,
    settings,
    subjects,
)
from ews_support import mail as message

from commlink.errors import AuthError, CursorExpired, RateLimited, TransientError
from commlink.model import FolderKind, FolderSelection
from commlink.ports import Scope
from commlink.providers.microsoft.exchange import ExchangeMailProvider, connect
from commlink.records import ChannelStatus
from commlink.stores.memory import MemoryStore
from commlink.stores.sql import SqlStore
from commlink.testing.microsoft import EwsServer

pytestmark = pytest.mark.integration


def _inbox_scope(provider: ExchangeMailProvider) -> Scope:
    inbox = [f for f in provider.folders() if f.kind is FolderKind.INBOX]
    return provider.scopes(inbox)[0]


def test_initial_and_incremental_sync_into_sqlite(
    server: EwsServer, mail: ExchangeMailProvider, sql_store: SqlStore
) -> None:
    for n in range(1, 11):
        server.add_message("inbox", message(n))
    server.add_message("sentitems", message(11))
    sync = engine(sql_store, batch_size=4)
    report = sync.run(mail_channel(), mail)
    assert report.errors == []
    assert report.imported == 11
    assert subjects(sql_store) == sorted(f"Subject {n}" for n in range(1, 12))
    server.delete(server.find("m3@test"))
    server.add_message("inbox", message(12))
    again = sync.run(mail_channel(), mail)
    assert again.errors == []
    assert (again.imported, again.deleted) == (1, 1)
    assert "Subject 3" not in subjects(sql_store)
    assert "Subject 12" in subjects(sql_store)


def test_invalid_sync_state_resyncs_and_reconciles(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    for n in range(1, 7):
        server.add_message("inbox", message(n))
    store = MemoryStore()
    sync = engine(store)
    assert sync.run(mail_channel(), mail).imported == 6
    server.delete(server.find("m1@test"))
    server.add_message("inbox", message(7))
    server.invalidate_sync_states("inbox")
    before = server.requests["GetItem"]
    report = sync.run(mail_channel(), mail)
    assert report.errors == []
    assert report.resyncs == 1
    assert report.imported == 1  # the new message only: known ids are not fetched again
    assert server.requests["GetItem"] - before == 2  # sizes and headers, then MIME
    assert subjects(store) == [f"Subject {n}" for n in range(2, 8)]


def test_invalid_sync_state_is_cursor_expired(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    scope = _inbox_scope(mail)
    cursor = mail.snapshot(scope)
    server.invalidate_sync_states("inbox")
    with pytest.raises(CursorExpired):
        mail.changes(scope, cursor)


def test_server_busy_backs_off_then_recovers(
    server: EwsServer, mail: ExchangeMailProvider, sleeps: list[float]
) -> None:
    for n in range(1, 4):
        server.add_message("inbox", message(n))
    server.server_busy("GetItem", times=2, back_off_ms=1500)
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert report.imported == 3
    assert sleeps == [1.5, 1.5]


def test_persistent_throttling_is_rate_limited_with_the_servers_wait(
    server: EwsServer, mail: ExchangeMailProvider, sleeps: list[float]
) -> None:
    scope = _inbox_scope(mail)
    server.server_busy("SyncFolderItems", times=10, back_off_ms=2000)
    with pytest.raises(RateLimited) as raised:
        mail.snapshot(scope)
    assert raised.value.retry_after == 2.0
    assert len(sleeps) == 3  # max_retries
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    state = store.channel_state("ews")
    assert report.errors
    assert "RateLimited" in report.errors[0]
    assert state is not None
    assert state.next_attempt is not None


def test_a_long_back_off_is_not_waited_here(
    server: EwsServer, mail: ExchangeMailProvider, sleeps: list[float]
) -> None:
    server.server_busy("GetFolder", back_off_ms=300_000)
    with pytest.raises(RateLimited) as raised:
        mail.folders()
    assert raised.value.retry_after == 300.0
    assert sleeps == []


def test_bad_credentials_fail_auth(server: EwsServer) -> None:
    server.add_message("inbox", message(1))
    provider = ExchangeMailProvider(
        connect(OWNER, service_endpoint=server.url, auth="basic", username=OWNER, password="wrong")
    )
    with pytest.raises(AuthError):
        provider.folders()
    store = MemoryStore()
    report = engine(store).run(mail_channel(), provider)
    assert report.status is ChannelStatus.FAILED_AUTH
    state = store.channel_state("ews")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert server.requests["unauthorized"] >= 1
    provider.close()


def test_message_moved_between_folders(server: EwsServer, mail: ExchangeMailProvider) -> None:
    server.add_folder("Clients")
    first = server.add_message("inbox", message(1))
    server.add_message("inbox", message(2))
    store = MemoryStore()
    sync = engine(store)
    assert sync.run(mail_channel(), mail).imported == 2
    moved = server.move(first, "Clients")
    assert moved != first  # EWS ids change on move
    report = sync.run(mail_channel(), mail)
    assert report.errors == []
    assert (report.imported, report.deleted) == (1, 1)
    assert subjects(store) == ["Subject 1", "Subject 2"]
    clients = server.mailbox.folder_id("Clients")
    assert store.known_ids("ews", clients, [moved]) == {moved}
    inbox = server.mailbox.folder_id("inbox")
    assert store.known_ids("ews", inbox, [first]) == set()


def test_deselected_folder_is_dropped(server: EwsServer, mail: ExchangeMailProvider) -> None:
    clients = server.add_folder("Clients")
    server.add_message("inbox", message(1))
    kept = server.add_message("Clients", message(2))
    store = MemoryStore()
    sync = engine(store)
    assert sync.run(mail_channel(), mail).imported == 2
    only_inbox = settings(folders=FolderSelection(exclude=frozenset({clients})))
    report = sync.run(mail_channel(only_inbox), mail)
    assert report.errors == []
    assert clients not in store.scope_ids("ews")
    assert store.known_ids("ews", clients, [kept]) == set()
    assert subjects(store) == ["Subject 1"]


def test_quiet_pass_is_one_request_per_folder(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    server.add_folder("Clients")
    server.add_message("inbox", message(1))
    store = MemoryStore()
    sync = engine(store)
    sync.folder_ttl = timedelta(minutes=5)
    first = sync.run(mail_channel(), mail)
    before = dict(server.requests)
    quiet = sync.run(mail_channel(), mail)
    assert quiet.errors == []
    assert quiet.imported == 0
    sent = {k: v - before.get(k, 0) for k, v in server.requests.items() if v != before.get(k, 0)}
    assert sent == {"SyncFolderItems": first.scopes}


def test_junk_drafts_and_deleted_items_are_never_synced(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    server.add_message("junkemail", message(1))
    server.add_message("drafts", message(2))
    server.add_message("deleteditems", message(3))
    server.add_message("Archive", message(4))
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert subjects(store) == ["Subject 4"]


def test_changes_page_through_large_change_sets(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    scope = _inbox_scope(mail)
    cursor = mail.snapshot(scope)
    for n in range(600):
        server.add_message("inbox", message(n))
    first = mail.changes(scope, cursor)
    assert (len(first.upserted), first.complete) == (512, False)
    second = mail.changes(scope, first.cursor)
    assert (len(second.upserted), second.complete) == (88, True)
    assert not set(first.upserted) & set(second.upserted)


def test_service_unavailable_is_retried_like_a_busy_server(
    server: EwsServer, mail: ExchangeMailProvider, sleeps: list[float]
) -> None:
    server.add_message("inbox", message(1))
    server.http_error(503, "GetItem")
    store = MemoryStore()
    report = engine(store).run(mail_channel(), mail)
    assert report.errors == []
    assert report.imported == 1
    assert len(sleeps) == 1


def test_a_server_error_page_is_transient(server: EwsServer, mail: ExchangeMailProvider) -> None:
    server.http_error(500, "GetFolder")
    with pytest.raises(TransientError):
        mail.folders()
    assert [f.kind for f in mail.folders() if f.kind is FolderKind.INBOX] == [FolderKind.INBOX]


def _listing(provider: ExchangeMailProvider, scope: Scope) -> list[str]:
    ids: list[str] = []
    page = provider.list_page(scope, None)
    ids.extend(page.ids)
    while page.next is not None:
        page = provider.list_page(scope, page.next)
        ids.extend(page.ids)
    return ids


def test_listing_is_newest_first_and_survives_changes_between_pages(
    server: EwsServer, mail: ExchangeMailProvider
) -> None:
    same = datetime(2026, 1, 5, tzinfo=timezone.utc)
    ids = [
        server.add_message("inbox", message(n), same + timedelta(minutes=max(0, n - 6)))
        for n in range(10)
    ]  # m0..m6 share one second; m7..m9 are newer
    scope = _inbox_scope(mail)
    first = mail.list_page(scope, None)  # page_size=4
    assert first.ids[:3] == (ids[9], ids[8], ids[7])
    assert first.next is not None
    server.delete(first.ids[0])  # already listed
    server.add_message("inbox", message(50), same + timedelta(days=1))  # after the snapshot
    rest: list[str] = []
    page = mail.list_page(scope, first.next)
    rest.extend(page.ids)
    while page.next is not None:
        page = mail.list_page(scope, page.next)
        rest.extend(page.ids)
    listed = list(first.ids) + rest
    assert len(listed) == len(set(listed)) == 10
    assert set(listed) == set(ids)


def test_listing_many_messages_of_one_second(server: EwsServer, mail: ExchangeMailProvider) -> None:
    same = datetime(2026, 1, 5, tzinfo=timezone.utc)
    # Exchange keeps sub-second times but shows whole seconds
    ids = {
        server.add_message("inbox", message(n), same + timedelta(milliseconds=7 * n))
        for n in range(70)
    }
    listed = _listing(mail, _inbox_scope(mail))
    assert len(listed) == len(set(listed)) == 70
    assert set(listed) == ids
