"""The least-data rules both reference stores enforce (pure functions)."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commlink.errors import InvalidInput
from commlink.model import ChannelSettings, Visibility
from commlink.policy.skips import (
    DIGEST_PREFIX,
    PRIVATE_REASONS,
    message_id_digest,
    minimise_skip,
    visible_skips,
)
from commlink.records import Reason, Skip, Viewer
from commlink.stores.privacy import (
    SettingsChange,
    batch_keys,
    drop_erased,
    erasure_key,
    forgotten_skips,
    mentions,
    prepare_batch,
    settings_change,
)
from commlink.testing.conformance_data import ALICE, BOB, CAROL, batch, channel, event, links
from commlink.testing.conformance_data import message as record

WHEN = datetime(2025, 1, 6, tzinfo=timezone.utc)
PLAIN = ChannelSettings(owner="me@org.example")
OPTED = attrs.evolve(PLAIN, skip_details=True)


@given(
    reason=st.sampled_from(list(Reason)),
    text=st.text(max_size=20),
    opted=st.booleans(),
)
def test_minimise_skip_is_idempotent_and_keeps_nothing_private(
    reason: Reason, text: str, opted: bool
) -> None:
    settings = OPTED if opted else PLAIN
    skip = Skip("p", reason, text, message_id=text, subject=text, sender=text, date=WHEN)
    kept = minimise_skip(skip, settings)
    assert minimise_skip(kept, settings) == kept
    assert (kept.provider_id, kept.reason, kept.date) == ("p", reason, WHEN)
    stripped = reason is Reason.ERASED or (reason in PRIVATE_REASONS and not opted)
    if stripped:
        assert (kept.subject, kept.sender) == ("", "")
        assert kept.message_id == message_id_digest(text)
        assert kept.detail == minimise_skip(Skip("q", reason), PLAIN).detail  # a generic one
    else:
        assert kept == skip


def test_message_id_digest() -> None:
    digest = message_id_digest("a@x")
    assert digest.startswith(DIGEST_PREFIX)
    assert message_id_digest(digest) == digest
    assert message_id_digest("") == ""
    assert "a@x" not in digest


def test_visible_skips_by_viewer() -> None:
    ch = channel("c1", "u1")
    kept = [
        Skip("b", Reason.BLOCKED, "x", message_id="m@doc", subject="S", sender="d@doc"),
        Skip("a", Reason.GROUP, "List-Id", message_id="n@x", subject="News", sender="n@x"),
    ]
    owner = visible_skips(Viewer("u1"), ch, kept)
    assert [(s.provider_id, s.subject, s.message_id) for s in owner] == [
        ("a", "News", "n@x"),
        ("b", "", ""),
    ]
    (found,) = visible_skips(Viewer("u1"), ch, kept, "m@doc")
    assert found.message_id == "m@doc"
    other = visible_skips(Viewer("u2"), ch, kept)
    assert [(s.detail, s.subject, s.sender) for s in other] == [("", "", "")] * 2
    assert visible_skips(Viewer("u1"), None, kept) == []
    with pytest.raises(TypeError):
        visible_skips("u1", ch, kept)  # type: ignore[arg-type]


def test_drop_erased_turns_records_of_erased_addresses_into_skips() -> None:
    given_batch = batch(
        messages=(record("m1", sender=CAROL), record("m2")),
        events=(event("e1", attendees=(BOB, CAROL)), event("e2")),
        links=(links(CAROL, "p1"), links(ALICE, "p1")),
        skipped=(Skip("s1", Reason.GROUP, subject="Hi", sender=CAROL),),
        deleted=("old",),
    )
    assert CAROL in batch_keys(given_batch)
    assert drop_erased(given_batch, ()) is given_batch
    dropped = drop_erased(given_batch, {CAROL})
    assert [r.message.provider_id for r in dropped.messages] == ["m2"]
    assert [r.event.provider_id for r in dropped.events] == ["e2"]
    assert [change.key for change in dropped.links] == [ALICE]
    assert [(s.provider_id, s.reason) for s in dropped.skipped] == [
        ("s1", Reason.ERASED),
        ("m1", Reason.ERASED),
        ("e1", Reason.ERASED),
    ]
    assert dropped.deleted == ("old", "m1", "e1")
    assert forgotten_skips(dropped) == {"m2", "e2", "old"}
    prepared = prepare_batch(given_batch, PLAIN, {CAROL})
    assert all(s.subject == "" and s.sender == "" for s in prepared.skipped)
    assert CAROL not in repr(prepared.skipped)


def test_prepare_batch_minimises_for_the_stored_visibility() -> None:
    given_batch = batch(messages=(record("m1"),), events=(event("e1"),))
    metadata = attrs.evolve(PLAIN, visibility=Visibility.METADATA)
    prepared = prepare_batch(given_batch, metadata)
    assert (prepared.messages[0].message.body, prepared.messages[0].message.snippet) == (None, "")
    assert prepared.events[0].event.location == ""
    assert prepare_batch(given_batch, PLAIN).messages == given_batch.messages


def test_settings_change() -> None:
    assert settings_change(None, PLAIN) == SettingsChange()
    assert not settings_change(PLAIN, PLAIN)
    blocked = attrs.evolve(PLAIN, blocklist=frozenset({"@Doc.example", "not an entry!"}))
    assert settings_change(PLAIN, blocked).blocked == {"@doc.example"}
    assert settings_change(blocked, PLAIN).blocked == set()
    lowered = attrs.evolve(PLAIN, visibility=Visibility.SUBJECT)
    assert settings_change(PLAIN, lowered).minimise is Visibility.SUBJECT
    assert settings_change(lowered, PLAIN).minimise is None
    assert settings_change(OPTED, PLAIN).strip_skips
    assert not settings_change(PLAIN, OPTED).strip_skips


def test_mentions_and_erasure_keys() -> None:
    skip = Skip("s", Reason.GROUP, f"automated sender {CAROL}", subject="x")
    assert mentions(skip, CAROL)
    assert mentions(Skip("s", Reason.GROUP, sender=CAROL.upper()), CAROL)
    assert not mentions(skip, ALICE)
    assert not mentions(skip, "")
    assert erasure_key("Carol <CAROL@Other.example>") == CAROL
    with pytest.raises(InvalidInput):
        erasure_key("nobody")
