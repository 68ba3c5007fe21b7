"""Fetch planning by size (``providers.sizing``) and the header list every
metadata fetch carries (``providers.header_names``)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from commlink.mime.headers import ROLE_HEADERS
from commlink.model import Limits
from commlink.providers.google.gmail import METADATA_HEADERS as GMAIL_HEADERS
from commlink.providers.header_names import GROUP_HEADERS, METADATA_HEADERS
from commlink.providers.microsoft.exchange.mail import METADATA_HEADERS as EWS_HEADERS
from commlink.providers.microsoft.graph.headers import HEADER_ONLY, headers_from_properties
from commlink.providers.sizing import plan_fetch, read_at_most

LIMITS = Limits(max_message_bytes=1_000, fetch_batch_bytes=2_500)
#: Read by the parser only for a date when the Date header is missing; a
#: metadata fetch passes the provider's own date instead.
DATE_FALLBACKS = {"received"}


def test_oversize_messages_are_set_apart_with_their_sizes() -> None:
    plan = plan_fetch([("a", 100), ("b", 1_001), ("c", 1_000)], LIMITS, max_count=10)
    assert plan.oversize == {"b": 1_001}
    assert plan.batches == (("a", "c"),)


def test_batches_respect_the_byte_budget_and_the_count() -> None:
    sizes = [(n, 900) for n in range(7)]
    assert plan_fetch(sizes, LIMITS, max_count=10).batches == ((0, 1), (2, 3), (4, 5), (6,))
    assert plan_fetch(sizes, LIMITS, max_count=1).batches == tuple((n,) for n in range(7))
    budget = plan_fetch(sizes, LIMITS, max_count=10, budget=1_000).batches
    assert budget == tuple((n,) for n in range(7))


def test_a_message_above_the_budget_goes_alone_and_so_does_an_unknown_size() -> None:
    limits = Limits(max_message_bytes=10_000, fetch_batch_bytes=2_500)
    plan = plan_fetch(
        [("a", 10), ("b", 5_000), ("c", 10), ("d", None), ("e", 10)], limits, max_count=9
    )
    assert plan.batches == (("a",), ("b",), ("d",), ("c", "e"))
    assert plan.oversize == {}


@given(st.lists(st.integers(min_value=0, max_value=3_000), max_size=60), st.integers(1, 20))
def test_every_message_is_planned_once_within_the_limits(sizes: list[int], count: int) -> None:
    plan = plan_fetch(enumerate(sizes), LIMITS, max_count=count)
    planned = [k for batch in plan.batches for k in batch]
    assert sorted([*planned, *plan.oversize]) == list(range(len(sizes)))
    assert all(sizes[k] > LIMITS.max_message_bytes for k in plan.oversize)
    for batch in plan.batches:
        assert len(batch) <= count
        assert len(batch) == 1 or sum(sizes[k] for k in batch) <= LIMITS.fetch_batch_bytes


def test_read_at_most_stops_past_the_limit() -> None:
    assert read_at_most([b"ab", b"cd"], 4) == b"abcd"
    consumed: list[bytes] = []

    def chunks() -> object:
        for chunk in (b"abc", b"def", b"ghi"):
            consumed.append(chunk)
            yield chunk

    assert read_at_most(chunks(), 5) is None  # type: ignore[arg-type]
    assert consumed == [b"abc", b"def"]


def test_metadata_headers_cover_what_the_parser_and_the_policy_read() -> None:
    source = (Path(__file__).parents[2] / "src/commlink/mime/parse.py").read_text()
    read = set(re.findall(r'hdrs[^"\n]{0,12}"([a-z-]+)"', source)) | set(ROLE_HEADERS)
    assert {"list-id", "list-unsubscribe", "precedence", "auto-submitted"} <= read
    wanted = {h.lower() for h in METADATA_HEADERS}
    assert read - DATE_FALLBACKS <= wanted
    assert {h.lower() for h in GMAIL_HEADERS} == wanted
    assert wanted <= EWS_HEADERS
    assert {h.lower() for h in GROUP_HEADERS} <= HEADER_ONLY


def test_graph_metadata_carries_the_group_and_thread_headers() -> None:
    item = {
        "from": {"emailAddress": {"name": "News", "address": "news@client.example"}},
        "subject": "Offers",
        "internetMessageHeaders": [
            {"name": "Received", "value": "from mx by mx"},
            {"name": "List-Unsubscribe", "value": "<mailto:leave@client.example>"},
            {"name": "Precedence", "value": "bulk"},
            {"name": "References", "value": "<a@x>\r\n <b@x>"},
            {"name": "Subject", "value": "not taken twice"},
        ],
    }
    block = headers_from_properties(item)
    assert b"List-Unsubscribe: <mailto:leave@client.example>\r\n" in block
    assert b"Precedence: bulk\r\n" in block
    assert b"References: <a@x> <b@x>\r\n" in block
    assert b"Received" not in block
    assert block.count(b"Subject:") == 1
