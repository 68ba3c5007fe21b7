"""Gmail labels against the local Google API server: a label appearing or
disappearing costs only its own messages, a folder selection change
re-judges only the labels it concerns, and a reconcile fetches no skipped
mail again (counted in ``messages.get`` calls)."""

from __future__ import annotations

import pytest
from gapi_support import OWNER, mail, mail_channel
from google.oauth2.credentials import Credentials

from commlink.errors import ProviderError
from commlink.model import ChannelSettings, FolderSelection
from commlink.providers.google.gmail import GmailProvider
from commlink.records import Reason, SyncBatch, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.cursor import ScopeCursor, legacy_selection
from commlink.sync.engine import SyncEngine
from commlink.sync.report import SyncReport
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.google import GoogleApiServer

pytestmark = pytest.mark.integration


def newsletter(n: int) -> bytes:
    return (
        f"From: News <news@list.example>\r\nTo: {OWNER}\r\nSubject: News {n}\r\n"
        f"List-Id: <weekly.list.example>\r\nMessage-ID: <news-{n}@list.example>\r\n"
        "Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nnews\r\n"
    ).encode()


def selecting(exclude: frozenset[str] = frozenset()) -> ChannelSettings:
    return ChannelSettings(
        owner=OWNER,
        org_domains=frozenset({"home.example"}),
        folders=FolderSelection(exclude=exclude),
    )


class Mailbox:
    """The server, a store and an engine, with request counting."""

    def __init__(self, server: GoogleApiServer, gmail: GmailProvider) -> None:
        self.server, self.gmail = server, gmail
        self.store = MemoryStore()
        self.directory = InMemoryDirectory()
        self.directory.add_person("p-ann", "Ann", ["ann@client.example"])
        self.gets = 0
        self.lists = 0

    def run(self, settings: ChannelSettings | None = None, **options: object) -> SyncReport:
        gets = len(self.server.calls("/messages/"))
        lists = len(self.server.calls("/messages[?]"))
        engine = SyncEngine(self.store, self.directory, **options)  # type: ignore[arg-type]
        report = engine.run(mail_channel(settings), self.gmail)
        assert report.errors == []
        self.gets = len(self.server.calls("/messages/")) - gets
        self.lists = len(self.server.calls("/messages[?]")) - lists
        return report

    def subjects(self) -> list[str]:
        page = self.store.timeline(Target(TargetKind.PERSON, "p-ann"), Viewer("u-owner"))
        return sorted(t.subject or "" for t in page.items)


@pytest.fixture
def box(server: GoogleApiServer, gmail: GmailProvider) -> Mailbox:
    return Mailbox(server, gmail)


def test_a_new_label_costs_only_its_messages(server: GoogleApiServer, box: Mailbox) -> None:
    for n in range(1, 31):
        server.gmail.add_message(OWNER, mail(n))
    assert box.run().imported == 30
    projects = server.gmail.add_label(OWNER, "Projects")
    server.gmail.add_message(OWNER, mail(31), ["INBOX", projects])
    report = box.run()
    assert (report.imported, report.updated) == (1, 0)
    assert (box.gets, box.lists) == (2, 0)  # its metadata and its raw content


def test_a_label_put_on_mail_then_deleted_costs_its_messages(
    server: GoogleApiServer, box: Mailbox
) -> None:
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 21)]
    box.run()
    projects = server.gmail.add_label(OWNER, "Projects")
    for message_id in ids[:3]:
        server.gmail.modify_labels(OWNER, message_id, add=[projects])
    assert box.run().updated == 3
    assert box.gets == 6
    for message_id in ids[:3]:  # deleting a label takes it off its messages
        server.gmail.modify_labels(OWNER, message_id, remove=[projects])
    server.gmail.mailbox(OWNER).labels.pop(projects)
    assert box.run().updated == 3
    assert (box.gets, box.lists) == (6, 0)
    assert len(box.subjects()) == 20


def test_excluding_a_label_rejudges_only_its_messages(
    server: GoogleApiServer, box: Mailbox
) -> None:
    work = server.gmail.add_label(OWNER, "Work")
    for n in range(1, 21):
        server.gmail.add_message(OWNER, mail(n))
    for n in range(21, 25):
        server.gmail.add_message(OWNER, mail(n), [work])
    server.gmail.add_message(OWNER, mail(25), ["INBOX", work])
    assert box.run().imported == 25
    report = box.run(selecting(frozenset({work})))
    assert (box.gets, box.lists) == (10, 1)  # the five messages under the label
    assert (report.deleted, report.updated, report.unchanged) == (4, 1, 0)
    assert report.skipped == {Reason.EXCLUDED_FOLDER: 4}
    assert box.subjects() == sorted(f"Subject {n}" for n in (*range(1, 21), 25))
    assert box.run(selecting(frozenset({work}))).imported == 0
    assert box.gets == 0


def test_including_a_label_fetches_only_what_it_left_out(
    server: GoogleApiServer, box: Mailbox
) -> None:
    work = server.gmail.add_label(OWNER, "Work")
    for n in range(1, 21):
        server.gmail.add_message(OWNER, mail(n))
    for n in range(21, 25):
        server.gmail.add_message(OWNER, mail(n), [work])
    server.gmail.add_message(OWNER, mail(25), ["INBOX", work])
    server.gmail.add_message(OWNER, newsletter(1), [work])
    server.gmail.add_message(OWNER, newsletter(2))
    excluded = selecting(frozenset({work}))
    assert box.run(excluded).skipped == {Reason.EXCLUDED_FOLDER: 5, Reason.GROUP: 1}
    report = box.run()
    # the four left out for their label, and the newsletter: stored ones are not asked for
    assert (box.gets, box.lists) == (10, 1)
    assert (report.imported, report.unchanged) == (4, 1)
    assert report.skipped == {Reason.GROUP: 1}
    assert len(box.subjects()) == 25


def test_a_relabel_resumes_across_steps(server: GoogleApiServer) -> None:
    small = GmailProvider(
        Credentials(token=server.token), api_endpoint=server.base_url, page_size=2
    )
    box = Mailbox(server, small)
    work = server.gmail.add_label(OWNER, "Work")
    for n in range(1, 4):
        server.gmail.add_message(OWNER, mail(n))
    for n in range(4, 11):
        server.gmail.add_message(OWNER, mail(n), [work])
    box.run()
    excluded = selecting(frozenset({work}))
    steps, gets, deleted = 0, 0, 0
    while True:
        report = box.run(excluded, max_batches=1)
        steps, gets, deleted = steps + 1, gets + box.gets, deleted + report.deleted
        if report.complete:
            break
    small.close()
    assert steps >= 4
    assert (gets, deleted) == (14, 7)  # each of the label's messages asked for once
    assert box.subjects() == ["Subject 1", "Subject 2", "Subject 3"]


def test_a_selection_changed_during_an_import_is_applied_after_it(
    server: GoogleApiServer,
) -> None:
    small = GmailProvider(
        Credentials(token=server.token), api_endpoint=server.base_url, page_size=3
    )
    box = Mailbox(server, small)
    work = server.gmail.add_label(OWNER, "Work")
    for n in range(1, 7):
        server.gmail.add_message(OWNER, mail(n), [work] if n % 2 else ["INBOX"])
    assert not box.run(max_batches=1).complete
    while not box.run(selecting(frozenset({work})), max_batches=1).complete:
        pass
    small.close()
    assert box.subjects() == ["Subject 2", "Subject 4", "Subject 6"]


def test_a_reconcile_fetches_no_skipped_mail(server: GoogleApiServer, box: Mailbox) -> None:
    ids = [server.gmail.add_message(OWNER, mail(n)) for n in range(1, 6)]
    for n in range(1, 5):
        server.gmail.add_message(OWNER, newsletter(n))
    box.run()
    server.gmail.delete_message(OWNER, ids[0])
    server.gmail.expire_history()
    report = box.run()
    assert report.resyncs == 1
    assert box.gets == 0
    assert (report.deleted, report.unchanged) == (1, 8)


def test_a_cursor_of_an_earlier_version_is_adopted(server: GoogleApiServer, box: Mailbox) -> None:
    for n in range(1, 6):
        server.gmail.add_message(OWNER, mail(n))
    box.run()
    cursor = ScopeCursor.decode(box.store.cursor("gm", "gmail"))
    assert cursor is not None
    selected = [f for f in box.gmail.folders() if selecting().folders.selects(f)]
    old = ScopeCursor("incremental", cursor.provider, selection=legacy_selection(selected))
    box.store.commit(SyncBatch("gm", "gmail", cursor=old.encode(), generation=old.generation))
    server.gmail.add_message(OWNER, mail(6))
    assert box.run().imported == 1
    assert box.gets == 2  # the new message only: no re-judging of the mailbox


def test_a_label_deleted_before_it_is_listed_has_no_messages(
    server: GoogleApiServer, gmail: GmailProvider
) -> None:
    work = server.gmail.add_label(OWNER, "Work")
    scope = gmail.scopes([])[0]
    server.inject_error(f"labelIds={work}", 400, reason="invalidArgument")
    with pytest.raises(ProviderError):  # the label exists: a real failure
        gmail.label_page(scope, work, None)
    server.gmail.mailbox(OWNER).labels.pop(work)
    server.inject_error(f"labelIds={work}", 400, reason="invalidArgument")
    assert gmail.label_page(scope, work, None).ids == ()
