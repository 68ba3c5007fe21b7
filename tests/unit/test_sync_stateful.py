"""The sync engine against a randomly edited mailbox, with crashes and faults.

Hypothesis drives a fake mailbox through new mail, deletions, moves, flag
changes and folder selection changes, while sync steps run with random
batch budgets, transient errors, rate limits, expired cursors and crashes
before and after store commits. After a final clean sync the store must
equal the policy applied to the mailbox: every kept message stored once
per folder, nothing else stored, every left-out message with a reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from commlink.errors import CommlinkError, RateLimited, TransientError
from commlink.mime.parse import parse_message
from commlink.model import Channel, ChannelKind, ChannelSettings, Detail, FolderSelection
from commlink.policy.filters import decide
from commlink.records import PageRequest, Target, TargetKind, Viewer
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.sync.report import Backoff
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.fake import FakeMailbox, FakeMailProvider, Faults

OWNER = "owner@home.example"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

SENDERS = {
    "client": ("Ann Client", "ann@client.example"),
    "partner": ("Pat Partner", "pat@partner.example"),
    "colleague": ("Col League", "col@home.example"),
    "robot": ("Robot", "no-reply@robot.example"),
    "blocked": ("Spammer", "x@spam.blocked.example"),
}


class Crash(CommlinkError):
    """A simulated process death at a store boundary."""


class CrashingStore:
    """Delegates to a store, crashing around commits when told to."""

    def __init__(self, inner: MemoryStore, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults

    def commit(self, batch: Any) -> None:
        self.faults.check("commit.before")
        self.inner.commit(batch)
        self.faults.check("commit.after")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def raw_message(n: int, sender: str, *, list_mail: bool = False) -> bytes:
    name, address = SENDERS[sender]
    to = OWNER if sender != "colleague" else "owner@home.example, col2@home.example"
    extra = "List-Id: <news.client.example>\r\n" if list_mail else ""
    return (
        f"From: {name} <{address}>\r\nTo: {to}\r\nSubject: Message {n}\r\n"
        f"Date: {format_datetime(T0 + timedelta(minutes=n))}\r\n"
        f"Message-ID: <m{n}@stateful.example>\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nBody {n}\r\n"
    ).encode()


class SyncMachine(RuleBasedStateMachine):
    @initialize(store_faults=st.booleans())
    def setup(self, store_faults: bool) -> None:
        self.box = FakeMailbox.standard()
        self.provider = FakeMailProvider(self.box, page_size=3, changes_page=4)
        self.store_faults = Faults()
        self.memory = MemoryStore()
        self.store = CrashingStore(self.memory, self.store_faults)
        self.directory = InMemoryDirectory()
        self.directory.add_person("ann", "Ann Client", ["ann@client.example"])
        self.directory.add_person("pat", "Pat Partner", ["pat@partner.example"])
        self.excluded: frozenset[str] = frozenset()
        self.counter = 0
        self.engine = SyncEngine(
            self.store,  # type: ignore[arg-type]
            self.directory,
            batch_size=2,
            backoff=Backoff(base=0.0, cap=0.0, jitter=False),
            max_failures=1000,
        )

    @property
    def channel(self) -> Channel:
        return Channel(
            "ch",
            "u-owner",
            ChannelKind.MAIL,
            "fake",
            ChannelSettings(
                owner=OWNER,
                org_domains=frozenset({"home.example"}),
                blocklist=frozenset({"@blocked.example"}),
                folders=FolderSelection(exclude=self.excluded),
            ),
        )

    # -- mailbox edits ------------------------------------------------------

    @rule(
        folder=st.sampled_from(["INBOX", "Sent", "Archive", "Spam"]),
        sender=st.sampled_from(sorted(SENDERS)),
        list_mail=st.booleans(),
        copies=st.integers(1, 2),
    )
    def new_mail(self, folder: str, sender: str, list_mail: bool, copies: int) -> None:
        self.counter += 1
        raw = raw_message(self.counter, sender, list_mail=list_mail)
        self.box.add(folder, raw)
        if copies == 2:  # the same message filed twice (same Message-ID)
            self.box.add("Archive" if folder != "Archive" else "INBOX", raw)

    @precondition(lambda self: any(self.box.items.values()))
    @rule(data=st.data())
    def delete_mail(self, data: st.DataObject) -> None:
        folder, item = data.draw(st.sampled_from(self._all_items()))
        self.box.delete(folder, item)

    @precondition(lambda self: any(self.box.items.values()))
    @rule(data=st.data(), destination=st.sampled_from(["INBOX", "Sent", "Archive", "Spam"]))
    def move_mail(self, data: st.DataObject, destination: str) -> None:
        folder, item = data.draw(st.sampled_from(self._all_items()))
        if folder != destination:
            self.box.move(item, folder, destination)

    @precondition(lambda self: any(self.box.items.values()))
    @rule(data=st.data())
    def flag_change(self, data: st.DataObject) -> None:
        folder, item = data.draw(st.sampled_from(self._all_items()))
        self.box.touch(folder, item)

    @rule(excluded=st.sampled_from([frozenset(), frozenset({"Archive"}), frozenset({"sent"})]))
    def change_selection(self, excluded: frozenset[str]) -> None:
        self.excluded = excluded

    # -- faults -------------------------------------------------------------

    @rule()
    def expire_cursors(self) -> None:
        self.box.expire_cursors()

    @rule(
        method=st.sampled_from(["folders", "snapshot", "list_page", "changes", "fetch"]),
        rate_limited=st.booleans(),
        after=st.integers(0, 3),
    )
    def provider_fault(self, method: str, rate_limited: bool, after: int) -> None:
        exc = RateLimited("slow down", retry_after=0) if rate_limited else TransientError("flaky")
        self.provider.faults.fail(method, exc, after=after)

    @rule(where=st.sampled_from(["commit.before", "commit.after"]), after=st.integers(0, 4))
    def store_crash(self, where: str, after: int) -> None:
        self.store_faults.fail(where, Crash(f"crash at {where}"), after=after)

    @rule(after=st.integers(0, 6))
    def store_crash_inside_commit(self, after: int) -> None:
        """The store fails midway through its next commit's writes."""
        remaining = iter(range(after + 1))

        def fail() -> None:
            if next(remaining, None) is None:
                self.memory.fault_hook = None
                raise Crash(f"crash after {after} writes inside a commit")

        self.memory.fault_hook = fail

    # -- syncing ------------------------------------------------------------

    @rule(budget=st.one_of(st.none(), st.integers(1, 3)))
    def sync_step(self, budget: int | None) -> None:
        self.engine.max_batches = budget
        report = self.engine.run(self.channel, self.provider)
        assert report.leased

    def teardown(self) -> None:
        if not hasattr(self, "box"):
            return
        self.provider.faults.clear()
        self.store_faults.clear()
        self.memory.fault_hook = None
        self.engine.max_batches = None
        for _ in range(3):
            report = self.engine.run(self.channel, self.provider)
            if report.complete and not report.errors:
                break
        assert report.complete, report.errors
        assert not report.errors, report.errors
        self._check_store_equals_policy()

    # -- the oracle ---------------------------------------------------------

    def _check_store_equals_policy(self) -> None:
        channel = self.channel
        folders = {f.id: f for f in self.box.folders.values()}
        selected = {f.id for f in folders.values() if channel.settings.folders.selects(f)}
        skipped = {s.provider_id: s for s in self.memory.skips("ch", Viewer("u-owner"))}
        kept_ids: set[str] = set()
        ever = {entry[3] for entry in self.box.log}  # every id the mailbox ever had
        for folder_id, items in self.box.items.items():
            stored = self.memory.known_ids("ch", folder_id, ever)
            if folder_id not in selected:
                assert stored == set(), f"{folder_id} is not selected but has {stored}"
                continue
            for item_id, raw in items.items():
                message = parse_message(
                    raw, provider_id=item_id, detail=Detail.FULL, folders=(folder_id,)
                )
                decision = decide(message, channel.settings, folders)
                if decision.keep:
                    assert item_id in stored, f"{folder_id}/{item_id} missing"
                    kept_ids.add(message.message_id)
                else:
                    assert item_id not in stored, f"{folder_id}/{item_id} should be left out"
                    assert item_id in skipped, f"{folder_id}/{item_id} has no recorded reason"
                    assert skipped[item_id].reason is decision.reason
            assert stored <= set(items)
        assert set(self.memory.scope_ids("ch")) <= selected
        # one logical message per Message-ID: count threads reachable from the people
        seen: set[str] = set()
        for person in ("ann", "pat"):
            page = self.memory.timeline(
                Target(TargetKind.PERSON, person), Viewer("u-owner"), PageRequest(limit=1000)
            )
            for summary in page.items:
                view = self.memory.thread(summary.thread_id, Viewer("u-owner"))
                assert view is not None
                ids = [m.message_id for m in view.messages]
                assert len(ids) == len(set(ids)), "duplicate message in a thread"
                seen.update(ids)
        assert seen == kept_ids

    def _all_items(self) -> list[tuple[str, str]]:
        return sorted((f, i) for f, items in self.box.items.items() for i in items)


SyncMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSyncMachine = SyncMachine.TestCase
