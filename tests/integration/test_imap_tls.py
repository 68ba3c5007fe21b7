"""TLS failures: a handshake that fails, and STARTTLS the server does not offer."""

from __future__ import annotations

import pytest

from commlink.errors import ProviderError
from commlink.model import Channel, ChannelKind, ChannelSettings
from commlink.providers.imap.provider import ImapProvider
from commlink.records import ChannelStatus
from commlink.stores.memory import MemoryStore
from commlink.sync.engine import SyncEngine
from commlink.testing.directory import InMemoryDirectory
from commlink.testing.dovecot import DovecotAccount
from commlink.testing.provider_conformance import OWNER


def test_tls_handshake_failure_is_a_provider_error(imap: DovecotAccount) -> None:
    # implicit TLS against a plain-text port: the handshake cannot succeed
    provider = ImapProvider(
        imap.server.host, imap.server.port, username=imap.username, password=imap.password,
        ssl=True, timeout=5,
    )  # fmt: skip
    with pytest.raises(ProviderError):
        provider.folders()
    channel = Channel("tls", "u", ChannelKind.MAIL, "imap", ChannelSettings(owner=OWNER))
    store = MemoryStore()
    report = SyncEngine(store, InMemoryDirectory()).run(channel, provider)
    assert report.errors
    state = store.channel_state("tls")
    assert state is not None
    assert state.status in (ChannelStatus.ONGOING, ChannelStatus.FAILED, ChannelStatus.FAILED_AUTH)
    assert state.last_error


def test_starttls_is_never_skipped_silently(imap: DovecotAccount) -> None:
    # the test server has no TLS: asking for STARTTLS must fail, never log in in clear
    provider = ImapProvider(
        imap.server.host, imap.server.port, username=imap.username, password=imap.password,
        ssl=False, starttls=True, timeout=5,
    )  # fmt: skip
    with pytest.raises(ProviderError) as info:
        provider.folders()
    assert "STARTTLS" in str(info.value).upper() or "TLS" in str(info.value).upper()
