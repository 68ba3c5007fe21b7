"""Gmail sync through the engine against the local Google API server:
expired history, failed batch calls, quota, revoked tokens, labels."""

from __future__ import annotations

import time

import pytest
from gapi_support import OWNER, mail, mail_channel
from google.oauth2.credentials import Credentials

from commlink.errors import AuthError, CursorExpired, RateLimited
from commlink.model import ChannelSettings, Detail, FolderKind, FolderSelection, Visibility
from commlink.providers.google.gmail import GmailProvider
from commlink.records import ChannelStatus, Reason, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.conformance_data import owner_of
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration


def _engine() -> tuple[SyncEngine, MemoryStore]:
    store = MemoryStore()
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann", ["ann@client.example"])
    return SyncEngine(store, directory, batch_size=50), store


def _subjects(store: MemoryStore) -> list[str]:
    items = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    return sorted(t.subject or "" for t in items)


def _stored(store: MemoryStore, server: GoogleApiServer, ids: list[str]) -> set[str]:
    return store.known_ids("gm", "gmail", ids)


def test_expired_history_reconciles_without_duplicates(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 6)]
    engine, store = _engine()
    assert engine.run(mail_channel(), gmail).imported == 5
    server.gmail.delete_message(OWNER, ids[0])
    ids.append(server.gmail.add_message(OWNER, mail(6)))
    server.gmail.expire_history()
    report = engine.run(mail_channel(), gmail)
    assert report.errors == []
    assert report.resyncs == 1
    assert report.imported == 1  # only the new one: known ids are not fetched again
    assert _subjects(store) == [f"Subject {n}" for n in range(2, 7)]
    assert _stored(store, server, ids) == set(ids[1:])


def test_history_404_is_cursor_expired(server: GoogleApiServer, gmail: GmailProvider) -> None:
    scope = gmail.scopes([])[0]
    cursor = gmail.snapshot(scope)
    server.gmail.expire_history()
    with pytest.raises(CursorExpired):
        gmail.changes(scope, cursor)


def test_quiet_incremental_pass_is_one_request(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    server.gmail.add_message(OWNER, mail(1))
    engine, _ = _engine()
    engine.run(mail_channel(), gmail)
    scope = gmail.scopes([])[0]
    cursor = gmail.snapshot(scope)
    before = len(server.request_log)
    changes = gmail.changes(scope, cursor)
    assert (changes.upserted, changes.deleted, changes.cursor) == ((), (), cursor)
    assert len(server.request_log) - before == 1


def test_changes_dedupe_and_drop_later_deleted(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    scope = gmail.scopes([])[0]
    cursor = gmail.snapshot(scope)
    kept = server.gmail.add_message(OWNER, mail(1))
    gone = server.gmail.add_message(OWNER, mail(2))
    server.gmail.modify_labels(OWNER, kept, add=["STARRED"])
    server.gmail.modify_labels(OWNER, gone, add=["STARRED"])
    server.gmail.delete_message(OWNER, gone)
    changes = gmail.changes(scope, cursor)
    assert changes.upserted == (kept,)
    assert changes.deleted == (gone,)


def test_a_failed_call_in_a_batch_is_retried_alone(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 6)]
    server.inject_error(f"messages/{ids[2]}", 503, times=1)
    fetched = list(gmail.fetch(gmail.scopes([])[0], ids, Detail.FULL))
    assert [f.provider_id for f in fetched] == ids
    assert all(f.raw and f.error is None for f in fetched)
    assert server.counters["injected"] == 1
    alone = [p for m, p in server.request_log if m == "GET" and ids[2] in p]
    assert len(alone) == 1  # the retry went out on its own, not in a batch
    # its metadata (the size) failed in the batch and was asked again; then its raw
    assert len(server.calls(ids[2])) == 3
    assert len(server.calls(ids[1])) == 2


def test_not_found_inside_a_batch(server: GoogleApiServer, gmail: GmailProvider) -> None:
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 3)]
    fetched = list(gmail.fetch(gmail.scopes([])[0], [*ids, "ffff"], Detail.METADATA))
    assert fetched[-1].error == "not found"
    assert all(f.raw for f in fetched[:2])


def test_quota_exhaustion_recovers_with_no_unrecovered_429(server: GoogleApiServer) -> None:
    # the server allows 100 units/s; the provider is told a larger quota, so
    # it runs into 429s and must back off as Retry-After says
    server.set_quota(6000, window=1.0)
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 41)]
    provider = GmailProvider(
        Credentials(token=server.token),
        api_endpoint=server.base_url,
        quota_units_per_minute=None,
        base_delay=0.05,
    )
    engine, store = _engine()
    try:
        report = engine.run(mail_channel(), provider)
    finally:
        provider.close()
    assert report.errors == []
    assert server.counters["rate_limited"] > 0
    assert provider.client.retries >= server.counters["rate_limited"] // 50
    assert _stored(store, server, ids) == set(ids)


def test_pacing_stays_under_the_quota(server: GoogleApiServer) -> None:
    server.set_quota(12000)
    for n in range(1, 101):
        server.gmail.add_message(OWNER, mail(n))
    provider = GmailProvider(
        Credentials(token=server.token), api_endpoint=server.base_url, quota_units_per_minute=12000
    )
    started = time.monotonic()
    try:
        report = _engine()[0].run(mail_channel(), provider)
    finally:
        provider.close()
    elapsed = time.monotonic() - started
    assert report.errors == []
    assert report.imported == 100
    assert server.counters["rate_limited"] == 0
    assert provider.bucket.waited > 0
    # 507 units; beyond the burst they go out at no more than the ceiling
    spent = server.units_spent()
    assert spent >= 500
    assert (spent - provider.bucket.capacity) / elapsed <= 12000 / 60


def test_a_long_retry_after_goes_to_the_engine(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    server.gmail.add_message(OWNER, mail(1))
    server.inject_error("labels", 429, times=1, retry_after=300)
    engine, store = _engine()
    report = engine.run(mail_channel(), gmail)
    assert report.errors
    assert "RateLimited" in report.errors[0]
    state = store.channel_state("gm")
    assert state is not None
    assert state.next_attempt is not None
    server.inject_error("labels", 429, times=1, retry_after=300)
    with pytest.raises(RateLimited) as caught:
        gmail.folders()
    assert caught.value.retry_after == pytest.approx(300)


def test_403_user_rate_limit_is_retried(server: GoogleApiServer, gmail: GmailProvider) -> None:
    server.inject_error("labels", 403, times=2, reason="userRateLimitExceeded")
    assert any(f.kind is FolderKind.INBOX for f in gmail.folders())
    assert gmail.client.retries == 2


def test_revoked_token_fails_auth(server: GoogleApiServer, gmail: GmailProvider) -> None:
    server.gmail.add_message(OWNER, mail(1))
    engine, store = _engine()
    assert engine.run(mail_channel(), gmail).status is ChannelStatus.ACTIVE
    server.revoke_token()
    report = engine.run(mail_channel(), gmail)
    assert report.status is ChannelStatus.FAILED_AUTH
    state = store.channel_state("gm")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    with pytest.raises(AuthError):
        gmail.snapshot(gmail.scopes([])[0])


def test_deselecting_a_label_removes_its_messages(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    news = server.gmail.add_label(OWNER, "Newsletters")
    inbox = [server.gmail.add_message(OWNER, mail(n)) for n in (1, 2)]
    labelled = [server.gmail.add_message(OWNER, mail(n), [news]) for n in (3, 4)]
    both = server.gmail.add_message(OWNER, mail(5), ["INBOX", news])
    archived = server.gmail.add_message(OWNER, mail(6), ["UNREAD"])
    engine, store = _engine()
    everything = [*inbox, *labelled, both, archived]
    assert engine.run(mail_channel(), gmail).imported == 6
    settings = ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"home.example"}),
        folders=FolderSelection(exclude=frozenset({news})),
    )
    report = engine.run(mail_channel(settings), gmail)
    assert report.errors == []
    assert _stored(store, server, everything) == {*inbox, both, archived}
    assert _subjects(store) == ["Subject 1", "Subject 2", "Subject 5", "Subject 6"]


def test_spam_and_trash_labels_are_excluded(server: GoogleApiServer, gmail: GmailProvider) -> None:
    kept = server.gmail.add_message(OWNER, mail(1))
    engine, store = _engine()
    engine.run(mail_channel(), gmail)
    server.gmail.modify_labels(OWNER, kept, add=["TRASH"], remove=["INBOX"])
    report = engine.run(mail_channel(), gmail)
    assert report.errors == []
    assert _subjects(store) == []


def test_metadata_channels_never_request_raw(server: GoogleApiServer, gmail: GmailProvider) -> None:
    for n in range(1, 4):
        server.gmail.add_message(OWNER, mail(n, body="secret body"))
    settings = ChannelSettings(
        owner=OWNER, org_domains=frozenset({"home.example"}), visibility=Visibility.METADATA
    )
    engine, store = _engine()
    assert engine.run(mail_channel(settings), gmail).imported == 3
    server.gmail.add_message(OWNER, mail(4))
    assert engine.run(mail_channel(settings), gmail).imported == 1
    assert not server.calls("format=raw")
    metadata = server.calls("format=metadata")
    assert len(metadata) == 4
    assert all("metadataHeaders=List-Unsubscribe" in p for p in metadata)
    assert _subjects(store) == [f"Subject {n}" for n in range(1, 5)]


def test_thread_ids_and_internal_dates_come_from_gmail(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    first = server.gmail.add_message(OWNER, mail(1), thread_id="t-1")
    no_date = b"From: ann@client.example\r\nTo: owner@home.example\r\nSubject: x\r\n\r\nhi\r\n"
    second = server.gmail.add_message(OWNER, no_date, internal_date=1772442000000)
    fetched = list(gmail.fetch(gmail.scopes([])[0], [first, second], Detail.FULL))
    assert fetched[0].thread_hint == "t-1"
    assert fetched[0].folders == ("INBOX",)
    assert fetched[1].date is not None
    assert fetched[1].date.timestamp() == 1772442000


def test_unread_is_not_a_folder(gmail: GmailProvider) -> None:
    ids = {f.id for f in gmail.folders()}
    assert "INBOX" in ids
    assert "UNREAD" not in ids
    kinds = {f.id: f.kind for f in gmail.folders()}
    assert kinds["DRAFT"] is FolderKind.DRAFTS
    assert kinds["CATEGORY_SOCIAL"] is FolderKind.CATEGORY


def test_report_counts_error_skips(server: GoogleApiServer, gmail: GmailProvider) -> None:
    good = server.gmail.add_message(OWNER, mail(1))
    bad = server.gmail.add_message(OWNER, mail(2))
    server.gmail.corrupt_raw(OWNER, bad, "@@not*base64@@")
    engine, store = _engine()
    report = engine.run(mail_channel(), gmail)
    assert report.errors == []
    assert report.skipped[Reason.ERROR] == 1
    assert _stored(store, server, [good, bad]) == {good}
    [skip] = [s for s in store.skips("gm", owner_of(store, "gm")) if s.provider_id == bad]
    assert "base64" in skip.detail
