"""Size limits before fetching, on every mail provider, against the local
servers (Dovecot, the Google API server, the Graph server, the EWS server)
and real files: a message above ``max_message_bytes`` is fetched headers
only and imported with ``too-large:<bytes>``; bodies come in requests within
``fetch_batch_bytes``; normal messages are unaffected."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from exchangelib.errors import ErrorItemNotFound
from google.oauth2.credentials import Credentials

from commlink.model import Channel, ChannelKind, ChannelSettings, Detail, Limits
from commlink.ports import FetchedMessage, MailProvider, Scope
from commlink.providers.files.maildir import MaildirProvider
from commlink.providers.files.mbox import MboxProvider
from commlink.providers.google import gmail as gmail_module
from commlink.providers.google.gmail import GmailProvider
from commlink.providers.microsoft.exchange import ExchangeMailProvider, connect
from commlink.providers.microsoft.exchange import mail as exchange_module
from commlink.providers.microsoft.exchange.mime import read_mime
from commlink.providers.microsoft.graph import GraphClient, GraphMailProvider, StaticToken
from commlink.providers.microsoft.graph import mail as graph_module
from commlink.records import Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.fetching import MailFetcher
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount, DovecotServer, dovecot_binary
from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import EwsServer, GraphServer

pytestmark = pytest.mark.integration

OWNER = "owner@home.example"
PASSWORD = "s3cret"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
MAX = 40_000
#: Six normal messages of about 9,200 bytes: three fit a 30,000-byte budget.
NORMAL = range(1, 7)
BIG = 9
_users = itertools.count(1)


def message(n: int, body_bytes: int = 9_000) -> bytes:
    date = format_datetime(BASE + timedelta(minutes=n))
    line = b"x" * 76 + b"\r\n"
    return (
        f"From: Ann Client <ann@client.example>\r\nTo: {OWNER}\r\nSubject: Size {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <size-{n}@test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode() + line * (body_bytes // len(line))


def limits(share: int = 1) -> Limits:
    """``max_message_bytes`` of 40,000; a body request budget of 30,000
    bytes after the provider's ``BATCH_SHARE``."""
    return Limits(max_message_bytes=MAX, fetch_batch_bytes=30_000 * share)


def _channel(lim: Limits) -> Channel:
    settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}), limits=lim)
    return Channel("limits", "u-owner", ChannelKind.MAIL, "test", settings)


def _directory() -> InMemoryDirectory:
    directory = InMemoryDirectory()
    directory.add_person("p-ann", "Ann Client", ["ann@client.example"])
    return directory


def _inbox(provider: MailProvider, kind: str = "inbox") -> Scope:
    folders = [f for f in provider.folders() if f.kind.value == kind]
    return provider.scopes(folders)[0]


def _ids(provider: MailProvider, scope: Scope) -> list[str]:
    ids: list[str] = []
    page: str | None = None
    while True:
        found = provider.list_page(scope, page)
        ids.extend(found.ids)
        page = found.next
        if page is None:
            return ids


def _by_subject(fetched: list[FetchedMessage]) -> dict[str, FetchedMessage]:
    found = {}
    for item in fetched:
        assert item.error is None, item.error
        assert item.raw is not None
        subject = next(
            line for line in item.raw.splitlines() if line.lower().startswith(b"subject:")
        )
        found[subject.split(b":", 1)[1].strip().decode()] = item
    return found


def check_fetch(
    provider: MailProvider, scope: Scope, ids: list[str], big_size: Callable[[int], bool]
) -> None:
    """The big message comes with its headers only and its size; the others whole."""
    fetched = _by_subject(list(provider.fetch(scope, ids, Detail.FULL)))
    assert set(fetched) == {f"Size {n}" for n in (*NORMAL, BIG)}
    big = fetched[f"Size {BIG}"]
    assert big.oversize is not None
    assert big_size(big.oversize)
    assert big.raw is not None
    assert b"xxxx" not in big.raw
    assert b"Message-ID: <size-9@test>" in big.raw
    for n in NORMAL:
        item = fetched[f"Size {n}"]
        assert item.oversize is None
        assert item.raw is not None
        assert item.raw.count(b"x" * 76) == 9_000 // 78


def check_import(provider: MailProvider, scope: Scope, lim: Limits) -> None:
    """Through the fetcher: the big one is kept with ``too-large:<bytes>`` and
    no body; a sync imports all seven."""
    store = MemoryStore()
    channel = _channel(lim)
    fetcher = MailFetcher(channel, provider, store, _directory())
    folders = {f.id: f for f in provider.folders()}
    parts = fetcher.process(scope, _ids(provider, scope), folders)
    kept = {r.message.subject: r.message for r in parts.messages}
    assert set(kept) == {f"Size {n}" for n in (*NORMAL, BIG)}
    big = kept[f"Size {BIG}"]
    assert big.body is None
    assert [w for w in big.warnings if w.startswith("too-large:")] == [f"too-large:{big.size}"]
    assert big.size > MAX
    for n in NORMAL:
        normal = kept[f"Size {n}"]
        assert normal.body
        assert "xxxx" in normal.body
        assert not any(w.startswith("too-large") for w in normal.warnings)
    report = SyncEngine(store, _directory()).run(channel, provider)
    assert report.errors == []
    assert report.imported == 7
    timeline = store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner")).items
    assert len(timeline) == 7


# -- IMAP (Dovecot) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed")
    with DovecotServer() as server:
        yield server


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> Iterator[DovecotAccount]:
    account = DovecotAccount(dovecot, f"limits{next(_users)}")
    for n in (*NORMAL, BIG):
        account.add("INBOX", message(n, 60_000 if n == BIG else 9_000))
    yield account
    account.close()


def test_imap_fetches_sizes_first_and_bodies_within_the_budget(
    imap_account: DovecotAccount,
) -> None:
    provider = imap_account.new_provider(limits=limits())
    scope = _inbox(provider)
    commands: list[tuple[str, ...]] = []
    stream_uid = provider.conn.stream_uid

    def recording(client: Any, command: str, *args: str, max_literal: int) -> Any:
        commands.append((command, *args))
        return stream_uid(client, command, *args, max_literal=max_literal)

    ids = _ids(provider, scope)
    provider.conn.stream_uid = recording  # type: ignore[method-assign]
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    items = [c[2] for c in commands if c[0] == "FETCH"]
    assert items.count("(RFC822.SIZE)") == 1
    assert sum("BODY.PEEK[HEADER]" in i for i in items) == 1  # the big one
    bodies = [c[1] for c in commands if c[0] == "FETCH" and "BODY.PEEK[]" in c[2]]
    assert len(bodies) == 2  # 6 x 9,200 bytes in requests of at most 30,000
    assert all(len(s.replace(":", ",").split(",")) <= 3 for s in bodies)
    check_import(provider, scope, limits())


def test_imap_without_limits_fetches_everything_in_one_request(
    imap_account: DovecotAccount,
) -> None:
    provider = imap_account.new_provider()
    scope = _inbox(provider)
    fetched = list(provider.fetch(scope, _ids(provider, scope), Detail.FULL))
    assert len(fetched) == 7
    assert all(f.oversize is None and f.raw and b"xxxx" in f.raw for f in fetched)


# -- Gmail ------------------------------------------------------------------------------


@pytest.fixture
def google() -> Iterator[GoogleApiServer]:
    with GoogleApiServer(user=OWNER) as server:
        for n in (*NORMAL, BIG):
            server.gmail.add_message(OWNER, message(n, 60_000 if n == BIG else 9_000))
        yield server


def test_gmail_reads_size_estimates_then_raw_within_the_budget(google: GoogleApiServer) -> None:
    lim = limits(gmail_module.BATCH_SHARE)
    provider = GmailProvider(
        Credentials(token=google.token), api_endpoint=google.base_url, limits=lim
    )
    scope = provider.scopes([])[0]
    ids = _ids(provider, scope)
    before = len(google.request_log)
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    log = google.request_log[before:]
    assert log == [("POST", "/batch/gmail/v1")] * 3  # metadata, then two batches of raw
    raw_calls = google.calls("format=raw")
    assert len(raw_calls) == 6
    big_id = google.gmail.find(OWNER, "size-9@test")
    assert not any(big_id in call for call in raw_calls)
    check_import(provider, scope, lim)
    provider.close()


# -- Microsoft Graph -------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(user=OWNER) as server:
        for n in (*NORMAL, BIG):
            server.mail.add_message(message(n, 60_000 if n == BIG else 9_000))
        yield server


def _graph_provider(server: GraphServer, lim: Limits) -> GraphMailProvider:
    client = GraphClient(StaticToken(server.token), base_url=server.base_url, base_delay=0.01)
    return GraphMailProvider(client, user=OWNER, limits=lim)


def test_graph_reads_message_sizes_then_mime_within_the_budget(graph: GraphServer) -> None:
    lim = limits(graph_module.BATCH_SHARE)
    provider = _graph_provider(graph, lim)
    scope = _inbox(provider)
    ids = _ids(provider, scope)
    before = graph.requests
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    assert graph.requests - before == 3  # sizes and headers, then two batches of MIME
    assert len(graph.calls(r"/\$value$")) == 6
    big_id = graph.mail.find("size-9@test")
    assert not graph.calls(f"{big_id}/\\$value")
    assert big_id in ids
    check_import(provider, scope, lim)
    provider.close()


def test_graph_full_channels_read_the_sizes_with_the_delta_round(graph: GraphServer) -> None:
    lim = limits(graph_module.BATCH_SHARE)
    client = GraphClient(StaticToken(graph.token), base_url=graph.base_url, base_delay=0.01)
    provider = GraphMailProvider(client, user=OWNER, limits=lim, delta_detail=Detail.FULL)
    scope = _inbox(provider)
    ids = _ids(provider, scope)
    assert "singleValueExtendedProperties" in graph.calls("messages/delta")[0]
    before = len(graph.call_log)
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    calls = [target for _, target in graph.call_log[before:]]
    big_id = graph.mail.find("size-9@test")
    heads = [c for c in calls if "internetMessageHeaders" in c]
    assert len(heads) == 1  # the big one's headers, nothing asked for the sizes
    assert big_id in heads[0]
    assert not any("singleValueExtendedProperties" in c for c in calls)
    assert len([c for c in calls if c.endswith("/$value")]) == 6
    provider.close()


def test_graph_streams_a_message_alone_and_stops_at_the_limit(graph: GraphServer) -> None:
    """A message without a known size is streamed alone; past the limit its
    body is dropped and it comes with its headers only."""
    provider = _graph_provider(graph, limits(graph_module.BATCH_SHARE))
    scope = _inbox(provider)
    big_id = graph.mail.find("size-9@test")
    head = provider._message_path(big_id) + "?$select=subject,internetMessageHeaders"
    found = provider.client.get(head)
    [fetched] = list(provider._bodies(scope, {big_id: dict(found)}, {big_id: None}))
    assert fetched.oversize is not None
    assert fetched.oversize > MAX
    assert fetched.raw is not None
    assert b"xxxx" not in fetched.raw
    assert len(graph.calls(f"{big_id}/\\$value")) == 1
    body, size = provider.client.download(provider._message_path(big_id) + "/$value", 10**6)
    assert size is None
    assert body == graph.mail.get(big_id).raw
    provider.close()


# -- Exchange (EWS) --------------------------------------------------------------------


@pytest.fixture
def ews() -> Iterator[EwsServer]:
    with EwsServer(user=OWNER, password=PASSWORD) as server:
        for n in (*NORMAL, BIG):
            server.add_message("inbox", message(n, 60_000 if n == BIG else 9_000))
        yield server


def test_exchange_reads_item_sizes_then_mime_within_the_budget(ews: EwsServer) -> None:
    lim = limits(exchange_module.BATCH_SHARE)
    connection = connect(
        OWNER, service_endpoint=ews.url, auth="basic", username=OWNER, password=PASSWORD
    )
    provider = ExchangeMailProvider(connection, fetch_batch=10, limits=lim)
    scope = _inbox(provider)
    ids = _ids(provider, scope)
    before = ews.requests["GetItem"]
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    assert ews.requests["GetItem"] - before == 3  # sizes and headers, then two of MIME
    check_import(provider, scope, lim)
    provider.close()


def test_exchange_streamed_mime_reports_item_errors_faults_and_long_content(
    ews: EwsServer,
) -> None:
    connection = connect(
        OWNER, service_endpoint=ews.url, auth="basic", username=OWNER, password=PASSWORD
    )
    provider = ExchangeMailProvider(connection)
    big, small = ews.find("size-9@test"), ews.find("size-1@test")
    found = dict(read_mime(connection, [small, "AAMkgone", big], limit=MAX))
    assert found[small] == message(1)
    assert isinstance(found["AAMkgone"], ErrorItemNotFound)
    assert found[big] == len(message(BIG, 60_000))  # decoded, counted, not kept
    ews.server_busy("GetItem", times=1, back_off_ms=10)
    before = ews.requests["GetItem"]
    [(item_id, content)] = provider.caller("GetItem", lambda: read_mime(connection, [small], MAX))
    assert (item_id, content) == (small, message(1))
    assert ews.requests["GetItem"] - before == 2  # busy, then answered
    provider.close()


# -- files ----------------------------------------------------------------------------


def test_maildir_reads_a_large_file_headers_only(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    for n in (*NORMAL, BIG):
        raw = message(n, 60_000 if n == BIG else 9_000)
        (root / "cur" / f"{1_700_000_000 + n}.M{n}P1.host:2,S").write_bytes(raw)
    provider = MaildirProvider(root, limits=limits())
    scope = _inbox(provider)
    ids = _ids(provider, scope)
    check_fetch(provider, scope, ids, lambda size: size == len(message(BIG, 60_000)))
    check_import(provider, scope, limits())


def test_mbox_reads_a_large_entry_headers_only(tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    with path.open("wb") as out:
        for n in (*NORMAL, BIG):
            out.write(b"From sender@example.invalid Mon Mar  2 09:00:00 2026\n")
            out.write(message(n, 60_000 if n == BIG else 9_000) + b"\n")
    provider = MboxProvider(path, limits=limits())
    scope = _inbox(provider)
    ids = _ids(provider, scope)
    check_fetch(provider, scope, ids, lambda size: MAX < size <= len(message(BIG, 60_000)) + 2)
    check_import(provider, scope, limits())
