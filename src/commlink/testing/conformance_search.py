"""The public conformance suite for ``SearchableStore.search``.

Subclass it with a function-scoped ``store`` fixture returning a fresh,
empty store that implements both ``Store`` and ``SearchableStore``::

    class TestMyStoreSearch(SearchConformance):
        @pytest.fixture
        def store(self) -> MyStore:
            return MyStore(...)

The oracle is the store's own read side: a message must be found exactly
when the words of its ``Store.thread`` view (participants, and the subject
and body where shown) match the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..errors import InvalidInput
from ..model import Address, Direction, Message, Participant, Role, Visibility
from ..records import (
    MessageRecord,
    MessageView,
    PageRequest,
    SearchHit,
    SearchQuery,
    Target,
    TargetKind,
    Viewer,
    Window,
)
from ..stores.search_terms import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    Field,
    matches,
    parse_query,
    words,
)
from .conformance_data import (
    ALICE,
    BOB,
    CAROL,
    T0,
    all_threads,
    batch,
    links,
    person,
    setup_channels,
)

__all__ = ["SearchConformance", "all_hits", "view_matches"]

FULL, SUBJECT, METADATA = Visibility.FULL, Visibility.SUBJECT, Visibility.METADATA
OWNER, OTHER = Viewer("u1"), Viewer("u2")


def all_hits(store: Any, query: SearchQuery, viewer: Viewer, limit: int = 50) -> list[SearchHit]:
    """Every page of a search, concatenated."""
    hits: list[SearchHit] = []
    after: str | None = None
    while True:
        page = store.search(query, viewer, PageRequest(limit=limit, after=after))
        hits.extend(page.items)
        if page.next is None:
            return hits
        after = page.next


def view_matches(text: str, view: MessageView) -> bool:
    """Whether a thread view of a message matches ``text`` in what it shows."""
    people = " ".join(
        f"{p.address.name} {p.address.email or p.address.raw}" for p in view.participants
    )
    doc = {
        Field.PEOPLE: words(people),
        Field.SUBJECT: words(view.subject or ""),
        Field.BODY: words(view.body or ""),
    }
    return matches(parse_query(SearchQuery(text)), doc, FULL)


def _mail(
    provider_id: str,
    *,
    subject: str = "Quarterly plan",
    body: str | None = "The body text",
    date: datetime = T0,
    sender: str = ALICE,
    name: str = "Alice Example",
    to: Sequence[str] = ("u1@org.example",),
    message_id: str | None = None,
    thread: str | None = None,
) -> MessageRecord:
    mid = message_id or f"{provider_id}@mail.example"
    people = (
        Participant(Address(key=sender, email=sender, name=name), Role.FROM),
        *(Participant(Address(key=k, email=k), Role.TO) for k in to),
    )
    return MessageRecord(
        Message(
            provider_id=provider_id,
            message_id=mid,
            date=date,
            subject=subject,
            participants=people,
            folders=("INBOX",),
            body=body,
            snippet=(body or "")[:40],
        ),
        thread_id=thread or f"thread-{mid}",
        direction=Direction.INCOMING,
    )


def _ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.message_id for h in hits]


def _clear(store: Any) -> None:
    for channel in store.channels():
        store.remove_channel(channel.id)


_VOCABULARY = ("alpha", "beta", "gamma", "delta", "acme")
_TEXTS = st.lists(st.sampled_from(_VOCABULARY), max_size=4).map(" ".join)
_QUERIES = st.one_of(
    st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=2).map(" ".join),
    st.lists(st.sampled_from(_VOCABULARY), min_size=2, max_size=2).map(
        lambda w: '"' + " ".join(w) + '"'
    ),
    st.just(""),
)
_COPY = st.tuples(
    st.sampled_from(("c1", "c2", "c3")),
    _TEXTS,  # subject
    st.one_of(st.none(), _TEXTS),  # body
    _TEXTS,  # sender name
    st.integers(0, 3),  # day
)
_SETTINGS = st.tuples(
    st.sampled_from(("u1", "u2")),
    st.sampled_from((METADATA, SUBJECT, FULL)),
)


class SearchConformance:
    """Base class of a searchable store's conformance tests."""

    def test_words_all_required_any_case_and_phrases(self, store: Any) -> None:
        setup_channels(store)
        store.commit(
            batch(
                messages=(
                    _mail("a", subject="Pricing for Q3", body="The new discount plan, agreed."),
                    _mail("b", subject="Lunch", body="plan the discount? Maybe.", date=T0 + _H),
                )
            )
        )
        assert _ids(all_hits(store, SearchQuery("DISCOUNT plan"), OWNER)) == [
            "b@mail.example",
            "a@mail.example",
        ]
        assert _ids(all_hits(store, SearchQuery('"discount plan"'), OWNER)) == ["a@mail.example"]
        assert _ids(all_hits(store, SearchQuery("pricing lunch"), OWNER)) == []
        assert _ids(all_hits(store, SearchQuery("q3"), OWNER)) == ["a@mail.example"]
        # a word matches whole words only
        assert _ids(all_hits(store, SearchQuery("disc"), OWNER)) == []

    def test_fields_follow_the_visibility_of_the_copy_seen(self, store: Any) -> None:
        for visibility in (METADATA, SUBJECT, FULL):
            _clear(store)
            setup_channels(store, ("c1", "u1", visibility))
            store.commit(
                batch(
                    messages=(
                        _mail(
                            "a",
                            subject="zebra",
                            body="giraffe",
                            name="Okapi Person",
                            sender="okapi@zoo.example",
                        ),
                    )
                )
            )
            found = {
                word: bool(all_hits(store, SearchQuery(word), OTHER))
                for word in ("zebra", "giraffe", "okapi", "zoo", "person")
            }
            shown_subject = visibility is not METADATA
            stored_body = visibility is not METADATA
            assert found == {
                "zebra": shown_subject,
                "giraffe": visibility is FULL,
                "okapi": True,
                "zoo": True,
                "person": True,
            }
            # the owner searches everything the channel stored
            assert bool(all_hits(store, SearchQuery("zebra"), OWNER))
            assert bool(all_hits(store, SearchQuery("giraffe"), OWNER)) is stored_body

    def test_hits_show_what_the_viewer_may_see(self, store: Any) -> None:
        setup_channels(store, ("c1", "u1", SUBJECT))
        store.commit(batch(messages=(_mail("a", subject="Secret zebra", body="hidden words"),)))
        (hit,) = all_hits(store, SearchQuery("zebra"), OTHER)
        assert hit.visibility is SUBJECT
        assert hit.subject == "Secret zebra"
        assert hit.snippet is None
        assert hit.highlights == ()
        assert "hidden" not in repr(hit)
        (owned,) = all_hits(store, SearchQuery("hidden"), OWNER)
        assert owned.visibility is FULL
        assert owned.snippet == "hidden words"
        assert [owned.snippet[s:e] for s, e in owned.highlights] == ["hidden"]
        assert owned.thread_id == "thread-a@mail.example"
        assert owned.date == T0
        assert owned.participants[0].address.key == ALICE

    def test_a_shared_message_matches_only_through_the_copy_seen(self, store: Any) -> None:
        """Another channel's copy of the same Message-ID never adds a match."""
        setup_channels(store, ("c1", "u1", METADATA), ("c2", "u2", FULL))
        shared = "shared@mail.example"
        store.commit(batch("c1", messages=(_mail("a", message_id=shared, body="first"),)))
        store.commit(
            batch(
                "c2",
                messages=(_mail("b", message_id=shared, subject="planted", body="injected"),),
            )
        )
        # u1 sees their own (minimised) copy: the other copy's words are not theirs
        assert all_hits(store, SearchQuery("injected"), OWNER) == []
        assert all_hits(store, SearchQuery("planted"), OWNER) == []
        assert _ids(all_hits(store, SearchQuery("quarterly"), OWNER)) == [shared]
        # u2 sees their own copy
        assert _ids(all_hits(store, SearchQuery("injected"), OTHER)) == [shared]
        assert all_hits(store, SearchQuery("quarterly"), OTHER) == []
        # a third user sees the most open copy (c2's, FULL)
        third = Viewer("u3")
        assert _ids(all_hits(store, SearchQuery("planted injected"), third)) == [shared]

    def test_scopes_window_and_participant(self, store: Any) -> None:
        setup_channels(store)
        store.commit(
            batch(
                messages=(
                    _mail("a", sender=ALICE, date=T0),
                    _mail("b", sender=BOB, date=T0 + _H),
                    _mail("c", sender=CAROL, date=T0 + 2 * _H, thread="thread-a@mail.example"),
                ),
                links=(links(ALICE, "p1"), links(BOB, "p2"), links(CAROL, "x", kind=_COMPANY)),
            )
        )
        query = SearchQuery("quarterly", target=person("p1"))
        # the whole thread of a record's timeline, as on the timeline
        assert _ids(all_hits(store, query, OWNER)) == ["c@mail.example", "a@mail.example"]
        company = SearchQuery("quarterly", target=Target(_COMPANY, "x"))
        assert _ids(all_hits(store, company, OWNER)) == ["c@mail.example", "a@mail.example"]
        assert all_hits(store, SearchQuery("", target=person("nobody")), OWNER) == []
        window = Window(T0 + _H, T0 + 2 * _H)
        assert _ids(all_hits(store, SearchQuery("", window=window), OWNER)) == ["b@mail.example"]
        bob = SearchQuery("", participant=BOB.upper())
        assert _ids(all_hits(store, bob, OWNER)) == ["b@mail.example"]
        everything = all_hits(store, SearchQuery(""), OWNER)
        assert _ids(everything) == ["c@mail.example", "b@mail.example", "a@mail.example"]

    def test_pages_are_complete_and_in_order(self, store: Any) -> None:
        setup_channels(store)
        records = tuple(
            _mail(f"m{n:02}", date=T0 + timedelta(minutes=n % 4), body=f"common word{n}")
            for n in range(23)
        )
        store.commit(batch(messages=records))
        expected = sorted(((r.message.date, r.message.message_id) for r in records), reverse=True)
        for limit in (1, 4, 50):
            hits = all_hits(store, SearchQuery("common"), OWNER, limit=limit)
            assert [(h.date, h.message_id) for h in hits] == expected
        with pytest.raises(InvalidInput):
            store.search(SearchQuery("common"), OWNER, PageRequest(after="not a token"))
        with pytest.raises(InvalidInput):
            store.search(SearchQuery("common"), OWNER, PageRequest(limit=0))

    def test_removed_data_is_not_found(self, store: Any) -> None:
        setup_channels(store, ("c1", "u1", FULL), ("c2", "u1", FULL))
        store.commit(
            batch(
                messages=(
                    _mail("a", body="walrus one", sender="gone@away.example"),
                    _mail("b", body="walrus two", date=T0 + _H),
                    _mail("c", body="walrus three", date=T0 + 2 * _H),
                )
            )
        )
        store.commit(batch("c2", messages=(_mail("d", body="walrus four"),)))
        walrus = SearchQuery("walrus")
        assert len(all_hits(store, walrus, OTHER)) == 4
        store.commit(batch(deleted=("b",)))
        store.erase_address("gone@away.example")
        store.commit(batch(messages=(_mail("c", body="otter three", date=T0 + 2 * _H),)))
        assert _ids(all_hits(store, walrus, OTHER)) == ["d@mail.example"]
        assert _ids(all_hits(store, SearchQuery("otter"), OTHER)) == ["c@mail.example"]
        store.remove_channel("c2")
        assert all_hits(store, walrus, OWNER) == []

    def test_lowered_visibility_drops_body_words(self, store: Any) -> None:
        setup_channels(store, ("c1", "u1", FULL))
        store.commit(batch(messages=(_mail("a", subject="pelican", body="flamingo"),)))
        assert len(all_hits(store, SearchQuery("flamingo"), OWNER)) == 1
        setup_channels(store, ("c1", "u1", METADATA))
        # least data: the body is gone from the store, so from its index too
        assert all_hits(store, SearchQuery("flamingo"), OWNER) == []
        assert len(all_hits(store, SearchQuery("pelican"), OWNER)) == 1
        assert all_hits(store, SearchQuery("pelican"), OTHER) == []

    def test_a_metadata_fetch_keeps_the_body_words(self, store: Any) -> None:
        setup_channels(store)
        store.commit(batch(messages=(_mail("a", body="heron"),)))
        store.commit(batch(messages=(_mail("a", subject="new subject", body=None),)))
        (hit,) = all_hits(store, SearchQuery("heron"), OWNER)
        assert hit.subject == "new subject"

    @pytest.mark.parametrize(
        "text",
        [
            '"',
            '""',
            "*",
            "a*",
            "NEAR(a b)",
            "a AND OR NOT b",
            "{body} : x",
            "body:x",
            "^x",
            "x' & y | !z <-> w",
            "'",
            "\\",
            "(",
            ")",
            "a:*",
            "\x00",
            "é ß ǅ İ",
            "\U0001d518\U0001d52b\U0001d526",  # mathematical letters: NFKC folds them
            "-x +y",
        ],
    )
    def test_query_syntax_is_inert(self, store: Any, text: str) -> None:
        setup_channels(store)
        store.commit(batch(messages=(_mail("a", subject="x y z w b", body="a x"),)))
        hits = all_hits(store, SearchQuery(text), OWNER)
        assert all(h.message_id == "a@mail.example" for h in hits)

    def test_limits_are_enforced(self, store: Any) -> None:
        setup_channels(store)
        with pytest.raises(InvalidInput):
            store.search(SearchQuery("x" * (MAX_QUERY_CHARS + 1)), OWNER)
        with pytest.raises(InvalidInput):
            store.search(SearchQuery(" ".join(["w"] * (MAX_QUERY_WORDS + 1))), OWNER)
        with pytest.raises(InvalidInput):
            store.search(SearchQuery("x", participant="not an address"), OWNER)
        naive = Window(datetime(2025, 1, 1), datetime(2025, 2, 1))
        with pytest.raises(InvalidInput):
            store.search(SearchQuery("x", window=naive), OWNER)
        with pytest.raises(TypeError):
            store.search(SearchQuery("x"), "u1")
        # an overlong word is valid and matches nothing (overlong words are not indexed)
        store.commit(batch(messages=(_mail("a", body="y" * 100),)))
        assert all_hits(store, SearchQuery("y" * 100), OWNER) == []

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        channel_settings=st.tuples(_SETTINGS, _SETTINGS, _SETTINGS),
        copies=st.lists(st.lists(_COPY, min_size=1, max_size=3), min_size=1, max_size=6),
        queries=st.lists(_QUERIES, min_size=1, max_size=3),
        limit=st.integers(1, 4),
    )
    def test_finds_exactly_what_thread_views_show(
        self,
        store: Any,
        channel_settings: tuple[tuple[str, Visibility], ...],
        copies: list[list[tuple[str, str, str | None, str, int]]],
        queries: list[str],
        limit: int,
    ) -> None:
        try:
            self._check_oracle(store, channel_settings, copies, queries, limit)
        finally:
            _clear(store)

    @staticmethod
    def _check_oracle(
        store: Any,
        channel_settings: tuple[tuple[str, Visibility], ...],
        copies: list[list[tuple[str, str, str | None, str, int]]],
        queries: list[str],
        limit: int,
    ) -> None:
        ids = ("c1", "c2", "c3")
        setup_channels(store, *((c, u, v) for c, (u, v) in zip(ids, channel_settings, strict=True)))
        threads: set[str] = set()
        for n, held in enumerate(copies):
            thread = f"t{n % 3}"
            threads.add(thread)
            for channel_id, subject, body, name, day in held:
                record = _mail(
                    f"p{n}",
                    message_id=f"m{n}@x",
                    thread=thread,
                    subject=subject,
                    body=body,
                    name=name,
                    sender=f"s{n % 2}@acme.example",
                    date=T0 + timedelta(days=day),
                )
                linked = (links(f"s{n % 2}@acme.example", "p1"),) if n % 2 else ()
                store.commit(batch(channel_id, messages=(record,), links=linked))
        for viewer in (Viewer("u1"), Viewer("u2"), Viewer("u3")):
            views = [
                m
                for t in sorted(threads)
                for view in [store.thread(t, viewer)]
                if view is not None
                for m in view.messages
            ]
            on_timeline = {s.thread_id for s in all_threads(store, person("p1"), viewer)}
            for text in queries:
                for target in (None, person("p1")):
                    expected = sorted(
                        (
                            (m.date, m.message_id)
                            for m in views
                            if view_matches(text, m)
                            and (target is None or _thread_of(m.message_id) in on_timeline)
                        ),
                        reverse=True,
                    )
                    query = SearchQuery(text, target=target)
                    hits = all_hits(store, query, viewer, limit=limit)
                    assert [(h.date, h.message_id) for h in hits] == expected, (viewer, query)
                    shown = {m.message_id: m for m in views}
                    for hit in hits:
                        view = shown[hit.message_id]
                        assert hit.visibility is view.visibility
                        assert hit.subject == view.subject
                        assert hit.participants == view.participants
                        assert (hit.snippet is not None) is (view.visibility is FULL)


def _thread_of(message_id: str) -> str:
    """The thread the oracle test put message ``m<n>@x`` in."""
    return f"t{int(message_id[1:].split('@')[0]) % 3}"


_H = timedelta(hours=1)
_COMPANY = TargetKind.COMPANY
