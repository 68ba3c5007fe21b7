"""The import policy through a provider's metadata: part of
``MailProviderConformance``.

A METADATA channel never downloads bodies, so the headers a provider hands
over must carry every one the policy reads. ``MetadataPolicyChecks`` adds the
same newsletter (``List-Unsubscribe``), mailing-list (``List-Id``), bulk
(``Precedence: bulk``), auto-reply (``Auto-Submitted``), no-reply, forged
and genuine owner's (``Authentication-Results``) and normal message to the
inbox, fetches them with ``Detail.METADATA`` and
``Detail.FULL`` and expects the same decisions (and group mail skipped as
``group``) at both levels, and a forged client's mail skipped as
``unverified`` by a channel with ``skip_unverified``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Protocol

import pytest

from ..model import ChannelSettings, Detail, Message
from ..policy.filters import decide
from ..ports import FetchedMessage, MailProvider, Scope
from ..records import Reason
from ..sync.fetching import parse_fetched

__all__ = ["POLICY_CASES", "MetadataPolicyChecks", "policy_message"]

OWNER = "owner@home.example"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

#: Mail the policy must judge the same from headers alone as from the whole
#: message: (Message-ID, sender, extra headers, expected reason).
POLICY_CASES = (
    (
        "newsletter@conformance",
        "Bob Client <bob@client.example>",
        "List-Unsubscribe: <mailto:leave@client.example>, <https://client.example/leave>\r\n",
        Reason.GROUP,
    ),
    (
        "mailing-list@conformance",
        "Carol Client <carol@client.example>",
        "List-Id: Client users <users.lists.client.example>\r\n",
        Reason.GROUP,
    ),
    ("bulk@conformance", "Dave Client <dave@client.example>", "Precedence: bulk\r\n", Reason.GROUP),
    (
        "auto-reply@conformance",
        "Erin Client <erin@client.example>",
        "Auto-Submitted: auto-replied\r\n",
        Reason.GROUP,
    ),
    ("no-reply@conformance", "Client Alerts <no-reply@client.example>", "", Reason.GROUP),
    # The owner's address forged: the receiving server's topmost
    # Authentication-Results says so, whatever a lower one claims, and the
    # group rules apply as to any outsider's mail.
    (
        "forged-owner@conformance",
        f"Owner <{OWNER}>",
        "Authentication-Results: mx.home.example; spf=fail smtp.mailfrom=client.example;\r\n"
        " dmarc=fail (p=none) header.from=home.example\r\n"
        "Authentication-Results: mx.client.example; dmarc=pass header.from=home.example\r\n"
        "Cc: Mallory <mallory@client.example>\r\n"
        "List-Unsubscribe: <mailto:leave@client.example>\r\n",
        Reason.GROUP,
    ),
    # A client's address forged: imported and marked, unless the channel
    # leaves such mail out (``skip_unverified``, judged below too).
    (
        "forged-client@conformance",
        "Hank Client <hank@client.example>",
        "Authentication-Results: mx.home.example; dkim=none;\r\n"
        " dmarc=fail (p=quarantine dis=none) header.from=client.example\r\n",
        Reason.IMPORTED,
    ),
    # The owner's own mail to a client: a forged "fail" below the server's
    # "pass" changes nothing.
    (
        "own-mailing@conformance",
        f"Owner <{OWNER}>",
        "Authentication-Results: mx.home.example; dmarc=pass header.from=home.example\r\n"
        "Authentication-Results: mx.client.example; dmarc=fail header.from=home.example\r\n"
        "Cc: Frank Client <frank@client.example>\r\n"
        "List-Unsubscribe: <mailto:leave@home.example>\r\n",
        Reason.IMPORTED,
    ),
    (
        "normal@conformance",
        "Ann Client <ann@client.example>",
        "In-Reply-To: <msg-1@conformance>\r\n"
        "References: <msg-0@conformance> <msg-1@conformance>\r\n",
        Reason.IMPORTED,
    ),
)


def policy_message(n: int, message_id: str, sender: str, extra: str) -> bytes:
    """A message for ``POLICY_CASES``: external sender, the owner as recipient."""
    date = format_datetime(BASE + timedelta(minutes=n))
    return (
        f"From: {sender}\r\nTo: {OWNER}\r\nSubject: Policy case {n}\r\n"
        f"Date: {date}\r\nMessage-ID: <{message_id}>\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello, this is policy case {n}.\r\n"
    ).encode()


class _Harness(Protocol):
    provider: MailProvider

    def add(self, folder_id: str, raw: bytes) -> None: ...

    def inbox(self) -> str: ...


class MetadataPolicyChecks:
    """The policy checks of ``MailProviderConformance`` (which includes them)."""

    @pytest.fixture
    def harness(self) -> Iterator[_Harness]:
        raise NotImplementedError("provide a harness fixture")

    def test_metadata_and_full_fetches_get_the_same_policy_decisions(
        self, harness: _Harness
    ) -> None:
        for n, (message_id, sender, extra, _) in enumerate(POLICY_CASES, start=1):
            harness.add(harness.inbox(), policy_message(n, message_id, sender, extra))
        provider = harness.provider
        scope = _inbox(provider, harness.inbox())
        ids = _all_ids(provider, scope)
        folders = {f.id: f for f in provider.folders()}
        settings = ChannelSettings(owner=OWNER, org_domains=frozenset({"home.example"}))
        strict = ChannelSettings(
            owner=OWNER, org_domains=frozenset({"home.example"}), skip_unverified=True
        )
        seen: dict[Detail, dict[str, tuple[object, ...]]] = {}
        strictly: dict[Detail, dict[str, Reason]] = {}
        for detail in (Detail.METADATA, Detail.FULL):
            found = seen.setdefault(detail, {})
            for item in provider.fetch(scope, ids, detail):
                message = _as_the_engine_parses(item, detail)
                verdict = decide(message, settings, folders)
                strictly.setdefault(detail, {})[message.message_id] = decide(
                    message, strict, folders
                ).reason
                found[message.message_id] = (
                    verdict.keep,
                    verdict.reason,
                    verdict.detail,
                    message.list_id,
                    message.list_unsubscribe,
                    message.precedence,
                    message.auto_submitted,
                    message.sender_unverified,
                    message.in_reply_to,
                    message.references,
                )
        expected = {message_id: reason for message_id, _, _, reason in POLICY_CASES}
        assert set(seen[Detail.FULL]) == set(expected)
        assert seen[Detail.METADATA] == seen[Detail.FULL]
        reasons = {message_id: found[1] for message_id, found in seen[Detail.FULL].items()}
        assert reasons == expected
        unverified = {m for m, found in seen[Detail.METADATA].items() if found[-3]}
        assert unverified == {"forged-owner@conformance", "forged-client@conformance"}
        # the group rule comes first: the forged owner's newsletter stays group
        assert (
            strictly[Detail.METADATA]
            == strictly[Detail.FULL]
            == {
                **expected,
                "forged-client@conformance": Reason.UNVERIFIED,
            }
        )
        normal = seen[Detail.METADATA]["normal@conformance"]
        assert normal[-2:] == (("msg-1@conformance",), ("msg-0@conformance", "msg-1@conformance"))


def _inbox(provider: MailProvider, folder_id: str) -> Scope:
    matching = [f for f in provider.folders() if f.id == folder_id]
    assert matching, f"folder {folder_id!r} not listed"
    scopes = provider.scopes(matching)
    assert scopes, "no scope for a selected folder"
    return scopes[0]


def _all_ids(provider: MailProvider, scope: Scope) -> list[str]:
    ids: list[str] = []
    page: str | None = None
    for _ in range(10_000):
        found = provider.list_page(scope, page)
        ids.extend(found.ids)
        page = found.next
        if page is None:
            return ids
    raise AssertionError("listing never ended")


def _as_the_engine_parses(item: FetchedMessage, detail: Detail) -> Message:
    """What ``sync.fetching`` makes of a fetched item."""
    assert item.error is None, item.error
    return parse_fetched(item, detail)
