"""Attachments on demand from mbox and Maildir files: every part of a rich
message comes back as sent; a message that is gone or a part that does not
exist is ``NotFound``."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from attachment_samples import EXPECTED, drain, read_all, rich_message, synced
from commlink.errors import NotFound
from commlink.ports import Scope
from commlink.providers.files.maildir import MaildirProvider
from commlink.providers.files.mbox import MboxProvider
from commlink.records import Viewer


def _maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "new" / "1700000000.M1P1.host").write_bytes(rich_message())
    return root


def _mbox(path: Path) -> Path:
    path.write_bytes(b"From ann@client.example Mon Mar  2 09:00:00 2026\r\n" + rich_message())
    return path


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_every_attachment_comes_back_as_sent(tmp_path: Path, kind: str) -> None:
    provider: MboxProvider | MaildirProvider
    if kind == "mbox":
        provider = MboxProvider(_mbox(tmp_path / "mail.mbox"))
    else:
        provider = MaildirProvider(_maildir(tmp_path / "Maildir"))
    store, thread_id = synced(provider)
    found = read_all(store, provider, thread_id)
    for name, content in EXPECTED.items():
        assert found[name] == content, name
    assert b"Subject: Earlier note" in found["Earlier note.eml"]


def test_gone_messages_and_parts(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Maildir")
    provider = MaildirProvider(root)
    store, thread_id = synced(provider)
    owner = Viewer("u-owner")
    view = store.thread(thread_id, owner)
    assert view is not None
    source = store.message_source(thread_id, view.messages[0].message_id, owner)
    assert source is not None
    scope_id, provider_id = source.locations[0]
    stored = source.attachments
    pdf = next(n for n, a in enumerate(stored) if a.filename == "report.pdf")
    with pytest.raises(NotFound):
        drain(
            provider.open_attachment(
                Scope(scope_id), provider_id, [attrs.evolve(stored[pdf], part="42")], 0, 10**6
            )
        )
    with pytest.raises(NotFound):
        drain(
            provider.open_attachment(
                Scope(scope_id), provider_id, [attrs.evolve(stored[pdf], part="../x")], 0, 10**6
            )
        )
    for path in (root / "new").iterdir():
        path.unlink()
    with pytest.raises(NotFound):
        drain(provider.open_attachment(Scope(scope_id), provider_id, stored, pdf, 10**6))
