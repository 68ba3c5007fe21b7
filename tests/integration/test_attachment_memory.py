"""A 30 MiB attachment streams: a fresh process opening it through IMAP
(Dovecot), Graph, EWS and Gmail (the local servers) stays below 100 MB peak
RSS, and gets every byte (``benchmarks/attachment_stream.py`` measures it;
the servers run in the test process and are not counted)."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from commlink.testing.dovecot import DovecotServer
from commlink.testing.google import GoogleApiServer
from commlink.testing.microsoft import EwsServer, GraphServer

pytestmark = pytest.mark.integration

SIZE = 30 * 2**20
LIMIT_MB = 100


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "attachment_stream.py"
    spec = importlib.util.spec_from_file_location("attachment_stream", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def raw(bench: ModuleType) -> bytes:
    message: bytes = bench.big_message(SIZE)
    return message


@pytest.fixture(scope="module")
def expected(bench: ModuleType) -> str:
    return hashlib.sha256(bench.big_content(SIZE)).hexdigest()


@pytest.fixture
def own_dovecot() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        yield server


def test_imap_streams_30_mib_within_100_mb(
    bench: ModuleType, raw: bytes, expected: str, own_dovecot: DovecotServer
) -> None:
    own_dovecot.deliver("INBOX", [raw])
    d = own_dovecot
    found = bench.measure(bench.imap_spec(d.host, d.port, d.username, d.password, SIZE))
    assert found["sha256"] == expected
    assert found["peak_rss_mb"] < LIMIT_MB


def test_graph_streams_30_mib_within_100_mb(bench: ModuleType, raw: bytes, expected: str) -> None:
    with GraphServer(user="owner@home.example") as graph:
        message_id = graph.mail.add_message(raw)
        spec = {
            "kind": "graph",
            "base_url": graph.base_url,
            "token": graph.token,
            "user": "owner@home.example",
            "scope": "inbox",
            "provider_id": message_id,
            "size": SIZE,
            "max_bytes": SIZE + 1,
        }
        found = bench.measure(spec)
    assert found["sha256"] == expected
    assert found["peak_rss_mb"] < LIMIT_MB


def test_ews_streams_30_mib_within_100_mb(bench: ModuleType, raw: bytes, expected: str) -> None:
    with EwsServer() as ews:
        item_id = ews.add_message("inbox", raw)
        spec = {
            "kind": "ews",
            "url": ews.url,
            "user": ews.user,
            "password": ews.password,
            "scope": "inbox",
            "provider_id": item_id,
            "size": SIZE,
            "max_bytes": SIZE + 1,
        }
        found = bench.measure(spec)
    assert found["sha256"] == expected
    assert found["peak_rss_mb"] < LIMIT_MB


def test_gmail_streams_30_mib_within_100_mb(bench: ModuleType, raw: bytes, expected: str) -> None:
    with GoogleApiServer(user="owner@home.example") as google:
        message_id = google.gmail.add_message("owner@home.example", raw)
        found = bench.measure(bench.gmail_spec(google.base_url, google.token, message_id, SIZE))
    assert found["sha256"] == expected
    assert found["peak_rss_mb"] < LIMIT_MB
