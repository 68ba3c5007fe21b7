"""``commlink check``: every channel reached, selection shown, failures explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commlink.cli.demo import DEMO_DATA
from commlink.cli.main import main
from commlink.testing.dovecot import DovecotAccount


def _config(tmp_path: Path, account: DovecotAccount, password: str) -> Path:
    server = account.server
    config = tmp_path / "crm.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite"\n\n'
        '[[channels]]\nid = "files"\nuser = "alice"\nprovider = "mbox"\n'
        f'path = "{DEMO_DATA}/demo.mbox"\nowner = "alice@northwind.example"\n\n'
        '[[channels]]\nid = "imap"\nuser = "alice"\nprovider = "imap"\n'
        'owner = "alice@northwind.example"\nfolders = { include = ["inbox", "sent"] }\n'
        "[channels.options]\n"
        f'host = "{server.host}"\nport = {server.port}\nssl = false\n'
        f'username = "{account.username}"\npassword = "{password}"\n'
    )
    return config


def test_check_lists_selected_folders_and_writes_nothing(
    tmp_path: Path, dovecot_account: DovecotAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    dovecot_account.admin.create_folder("Sent")
    dovecot_account.admin.create_folder("Archive")
    config = _config(tmp_path, dovecot_account, dovecot_account.password)
    assert main(["check", str(config)]) == 0
    out = capsys.readouterr().out
    assert "store: ok, schema None (no database at" in out
    assert "files (mbox): ok" in out
    imap_line = next(line for line in out.splitlines() if line.startswith("imap (imap)"))
    assert "selected: " in imap_line
    assert "INBOX" in imap_line
    assert "Sent" in imap_line
    assert "Archive" not in imap_line
    assert not (tmp_path / "crm.sqlite").exists()
    assert main(["check", str(config), "--channel", "imap", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [c["channel"] for c in found["channels"]] == ["imap"]
    assert set(found["channels"][0]["selected"]) == {"INBOX", "Sent"}


def test_check_reports_a_refused_login_without_the_password(
    tmp_path: Path, dovecot_account: DovecotAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, dovecot_account, "wrong-password-7c1f")
    assert main(["check", str(config)]) == 1
    out = capsys.readouterr().out
    assert "imap (imap): authentication failed:" in out
    assert "files (mbox): ok" in out
    assert "wrong-password-7c1f" not in out
