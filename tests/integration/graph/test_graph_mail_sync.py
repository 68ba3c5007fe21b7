"""Graph mail sync through the engine against the local Graph server:
expired delta tokens, throttling, revoked tokens, moves, deselected folders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from graph_support import OWNER, engine, mail_channel, raw_mail

from commlink.errors import AuthError, CursorExpired, RateLimited, TransientError
from commlink.mime.parse import parse_message
from commlink.model import Detail, FolderKind
from commlink.ports import Scope, Store
from commlink.providers.microsoft.graph import GraphMailProvider, StaticToken
from commlink.providers.microsoft.graph.client import GraphClient
from commlink.records import ChannelStatus, Target, TargetKind, Viewer
from commlink.testing.microsoft import GraphServer

pytestmark = pytest.mark.integration


def _subjects(store: Store) -> list[str]:
    items = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    return sorted(t.subject or "" for t in items)


def _scope(provider: GraphMailProvider, folder_id: str) -> Scope:
    return provider.scopes([f for f in provider.folders() if f.id == folder_id])[0]


def test_folders_map_well_known_kinds_and_nest_children(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    inbox = server.mail.folder_id("inbox")
    projects = server.mail.add_folder("Projects", inbox)
    deep = server.mail.add_folder("Acme", projects)
    server.mail.add_folder("Hidden", hidden=True)
    folders = {f.id: f for f in mail.folders()}
    kinds = {f.name: f.kind for f in folders.values()}
    assert kinds["Inbox"] is FolderKind.INBOX
    assert kinds["Sent Items"] is FolderKind.SENT
    assert kinds["Deleted Items"] is FolderKind.TRASH
    assert kinds["Junk Email"] is FolderKind.SPAM
    assert kinds["Drafts"] is FolderKind.DRAFTS
    assert kinds["Archive"] is FolderKind.ARCHIVE
    assert folders[deep].name == "Inbox/Projects/Acme"
    assert folders[deep].parent == projects
    assert "Hidden" not in kinds
    assert "Conversation History" not in kinds
    assert "Sync Issues" not in kinds
    # the well-known ids are learned once, in one batch
    before = server.requests
    mail.folders()
    assert server.requests - before == 3  # one request (or batch) per level of nesting


def test_expired_delta_reconciles_without_duplicates_or_losses(
    server: GraphServer, mail: GraphMailProvider, store: Store
) -> None:
    ids = [server.mail.add_message(raw_mail(n)) for n in range(1, 7)]
    sync, _ = engine(store)
    channel = mail_channel(frozenset({"inbox"}))
    assert sync.run(channel, mail).imported == 6
    server.mail.delete(ids[0])
    ids.append(server.mail.add_message(raw_mail(7)))
    server.expire_delta_tokens()
    report = sync.run(channel, mail)
    assert report.errors == []
    assert report.resyncs == 1
    assert report.imported == 1  # only the new one: known ids are not fetched again
    assert _subjects(store) == [f"Subject {n}" for n in range(2, 8)]
    inbox = server.mail.folder_id("inbox")
    assert store.known_ids("gr", inbox, ids) == set(ids[1:])


def test_expired_delta_link_is_cursor_expired(server: GraphServer, mail: GraphMailProvider) -> None:
    server.mail.add_message(raw_mail(1))
    scope = _scope(mail, server.mail.folder_id("inbox"))
    cursor = mail.snapshot(scope)
    server.expire_delta_tokens()
    with pytest.raises(CursorExpired):
        mail.changes(scope, cursor)


def test_quiet_pass_is_one_request_per_folder(server: GraphServer, mail: GraphMailProvider) -> None:
    archive = server.mail.folder_id("archive")
    server.mail.add_message(raw_mail(1))
    server.mail.add_message(raw_mail(2), archive)
    sync, _ = engine(folder_ttl=timedelta(minutes=5))
    channel = mail_channel(frozenset({"inbox", "archive"}))
    assert sync.run(channel, mail).imported == 2
    before = server.requests
    quiet = sync.run(channel, mail)
    assert quiet.errors == []
    assert quiet.imported == 0
    log = server.request_log[before:]
    assert len(log) == 2
    assert all("/messages/delta?%24deltatoken=" in t or "$deltatoken=" in t for _, t in log)


def test_delta_pages_honour_maxpagesize_and_select(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    for n in range(1, 10):
        server.mail.add_message(raw_mail(n))
    scope = _scope(mail, server.mail.folder_id("inbox"))
    before = server.requests
    mail.snapshot(scope)
    assert server.requests - before == 3  # 9 messages, 4 a page
    [first_call] = server.calls("messages/delta")[:1]
    assert "%24select=" in first_call or "$select=" in first_call
    assert "receivedDateTime" in first_call
    assert "bodyPreview" not in first_call
    assert "internetMessageHeaders" not in first_call  # delta rounds do not return them
    first = mail.list_page(scope, None)
    fetched = mail.fetch(scope, first.ids, Detail.METADATA)
    subjects = [parse_message(f.raw or b"", provider_id=f.provider_id).subject for f in fetched]
    assert subjects == ["Subject 9", "Subject 8", "Subject 7", "Subject 6"]
    assert server.requests - before == 5  # one listing page, one batch of header GETs


def test_listing_pages_newest_first_and_restarts_when_its_link_expired(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    ids = [server.mail.add_message(raw_mail(n)) for n in range(1, 11)]
    scope = _scope(mail, server.mail.folder_id("inbox"))
    first = mail.list_page(scope, None)
    assert first.ids == tuple(reversed(ids[-4:]))
    assert first.next is not None
    second = mail.list_page(scope, first.next)
    assert second.ids == tuple(reversed(ids[2:6]))
    assert second.next is not None
    server.expire_delta_tokens()
    again = mail.list_page(scope, second.next)  # the round is gone: list from the top
    assert again.ids == first.ids


def test_throttled_sync_backs_off_and_completes(
    server: GraphServer, make_mail: Callable[..., GraphMailProvider]
) -> None:
    for n in range(1, 31):
        server.mail.add_message(raw_mail(n))
    server.set_throttle(12, window=1.0)
    provider = make_mail(page_size=10)
    sync, store = engine()
    report = sync.run(mail_channel(frozenset({"inbox"})), provider)
    assert report.errors == []
    assert report.imported == 30
    assert server.counters["throttled"] > 0
    assert provider.client.retries > 0
    assert len(_subjects(store)) == 30


def test_throttling_beyond_max_wait_is_rate_limited(
    server: GraphServer, make_mail: Callable[..., GraphMailProvider]
) -> None:
    server.inject_error("mailFolders", 429, times=100, retry_after=120)
    provider = make_mail({"max_wait": 5.0})
    with pytest.raises(RateLimited) as caught:
        provider.folders()
    assert caught.value.retry_after == 120
    sync, store = engine()
    report = sync.run(mail_channel(), provider)
    assert report.status is not ChannelStatus.FAILED_AUTH
    state = store.channel_state("gr")
    assert state is not None
    assert state.next_attempt is not None


def test_transient_errors_are_retried_then_raised(
    server: GraphServer, make_mail: Callable[..., GraphMailProvider]
) -> None:
    server.inject_error(r"mailFolders\?", 503, times=2)
    provider = make_mail({"max_retries": 3})
    assert provider.folders()
    assert server.counters["injected"] == 2
    server.inject_error(r"mailFolders\?", 503, times=10)
    with pytest.raises(TransientError):
        make_mail({"max_retries": 2}).folders()


def test_revoked_token_fails_the_channel_for_auth(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    server.mail.add_message(raw_mail(1))
    sync, store = engine()
    assert sync.run(mail_channel(), mail).errors == []
    server.revoke_token()
    report = sync.run(mail_channel(), mail)
    assert report.status is ChannelStatus.FAILED_AUTH
    state = store.channel_state("gr")
    assert state is not None
    assert state.status is ChannelStatus.FAILED_AUTH
    assert "InvalidAuthenticationToken" in state.last_error


class _Rotating:
    """A token source whose first token the server no longer accepts."""

    def __init__(self, server: GraphServer) -> None:
        self.server = server
        self.current = "stale"
        self.refreshes = 0

    def token(self) -> str:
        return self.current

    def refresh(self) -> str:
        self.refreshes += 1
        self.current = self.server.token
        return self.current


def test_a_401_refreshes_the_token_once(server: GraphServer) -> None:
    server.mail.add_message(raw_mail(1))
    tokens = _Rotating(server)
    provider = GraphMailProvider(GraphClient(tokens, base_url=server.base_url), user=OWNER)
    try:
        assert provider.folders()
        assert tokens.refreshes == 1
    finally:
        provider.close()
    still_bad = GraphMailProvider(
        GraphClient(StaticToken("nope"), base_url=server.base_url), user=OWNER
    )
    try:
        with pytest.raises(AuthError):
            still_bad.folders()
    finally:
        still_bad.close()


def test_a_401_inside_a_batch_refreshes_then_fails(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    ids = [server.mail.add_message(raw_mail(n)) for n in range(1, 4)]
    provider = mail
    scope = _scope(provider, server.mail.folder_id("inbox"))
    server.inject_error("/messages/", 401, times=10)
    with pytest.raises(AuthError):
        list(provider.fetch(scope, ids, Detail.FULL))


def test_a_moved_message_keeps_its_identity(
    server: GraphServer, mail: GraphMailProvider, store: Store
) -> None:
    inbox, archive = server.mail.folder_id("inbox"), server.mail.folder_id("archive")
    moved = server.mail.add_message(raw_mail(1))
    server.mail.add_message(raw_mail(2))
    sync, _ = engine(store)
    channel = mail_channel(frozenset({"inbox", "archive"}))
    assert sync.run(channel, mail).imported == 2
    assert server.mail.move(moved, archive) == moved
    report = sync.run(channel, mail)
    assert report.errors == []
    assert store.known_ids("gr", inbox, [moved]) == set()
    assert store.known_ids("gr", archive, [moved]) == {moved}
    timeline = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    assert sorted(t.subject or "" for t in timeline) == ["Subject 1", "Subject 2"]
    assert sum(t.message_count for t in timeline) == 2


def test_without_immutable_ids_a_move_changes_the_id(server: GraphServer) -> None:
    moved = server.mail.add_message(raw_mail(1))
    message = server.mail.get(moved)
    before = message.rest_id
    server.mail.move(moved, "archive")
    assert server.mail.get(moved).rest_id != before
    assert server.mail.get(moved).immutable_id == moved


def test_a_deselected_folder_is_dropped(
    server: GraphServer, mail: GraphMailProvider, store: Store
) -> None:
    archive = server.mail.folder_id("archive")
    kept = server.mail.add_message(raw_mail(1))
    dropped = server.mail.add_message(raw_mail(2), archive)
    sync, _ = engine(store)
    assert sync.run(mail_channel(frozenset({"inbox", "archive"})), mail).imported == 2
    assert archive in store.scope_ids("gr")
    report = sync.run(mail_channel(frozenset({"inbox"})), mail)
    assert report.errors == []
    assert archive not in store.scope_ids("gr")
    assert store.known_ids("gr", archive, [dropped]) == set()
    assert store.known_ids("gr", server.mail.folder_id("inbox"), [kept]) == {kept}
    assert _subjects(store) == ["Subject 1"]


def test_batch_item_failures_are_retried_or_reported(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    ids = [server.mail.add_message(raw_mail(n)) for n in range(1, 6)]
    scope = _scope(mail, server.mail.folder_id("inbox"))
    server.inject_error(f"messages/{ids[2]}", 503, times=1)
    server.inject_error(f"messages/{ids[3]}", 500, times=50)
    fetched = {f.provider_id: f for f in mail.fetch(scope, [*ids, "AAkALgmissing"], Detail.FULL)}
    assert fetched[ids[2]].raw
    assert fetched[ids[2]].error is None
    assert len(server.calls(ids[2])) == 3  # its size, again, then its MIME
    assert fetched["AAkALgmissing"].error == "not found"
    assert fetched[ids[3]].raw is None
    assert "500" in (fetched[ids[3]].error or "")


def test_metadata_fetch_gets_the_headers_in_one_batch(
    server: GraphServer, mail: GraphMailProvider
) -> None:
    server.mail.add_message(raw_mail(1))
    scope = _scope(mail, server.mail.folder_id("inbox"))
    mail.snapshot(scope)
    ids = mail.list_page(scope, None).ids
    before = server.requests
    [item] = list(mail.fetch(scope, ids, Detail.METADATA))
    assert server.requests == before + 1
    [call] = server.calls(ids[0])
    assert "internetMessageHeaders" in call
    assert item.raw is not None
    assert b"Subject: Subject 1" in item.raw
    assert b"Message-ID: <m1@test>" in item.raw
    assert item.thread_hint
    assert item.date is not None


def test_aliases_come_from_proxy_addresses(mail: GraphMailProvider) -> None:
    assert mail.aliases() == (OWNER, "sales@home.example")
