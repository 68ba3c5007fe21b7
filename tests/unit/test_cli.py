"""The command line: the demo end to end, and sync/status/timeline/skipped on a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from commlink.cli.demo import DEMO_DATA
from commlink.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_timelines_with_visibility_and_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--db", str(tmp_path / "demo.sqlite")]) == 0
    # the store was closed: its log is folded into the one database file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.sqlite"]
    out = capsys.readouterr().out
    assert "alice-mail: active, 8 imported" in out
    # the owner sees bodies, a colleague sees subjects only
    owner_view = out.split("as Alice, the mailbox owner")[1].split("==")[0]
    colleague_view = out.split("as Bob, a colleague")[1].split("==")[0]
    assert "Signed copy attached" in owner_view
    assert "Signed order form" in colleague_view
    assert "Signed copy attached" not in colleague_view
    # meetings: the weekly series is expanded, the moved instance shows, the EXDATE does not
    assert "Globex weekly check-in (moved)" in out
    assert "2026-10-27" not in out
    # every left-out message is explained
    for reason in ("group", "internal", "excluded_folder", "blocked"):
        assert f"  {reason}" in out
    assert "Dana Scully <dana@hooli.example>, company 'Hooli'" in out


def test_sync_status_timeline_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "channels.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite"\n\n'
        '[[channels]]\nid = "alice-mail"\nuser = "alice"\nprovider = "mbox"\n'
        f'path = "{DEMO_DATA}/demo.mbox"\nowner = "alice@northwind.example"\n'
        'visibility = "metadata"\n'
    )
    assert main(["sync", str(config)]) == 0
    assert "alice-mail: active" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("crm.sqlite*")) == ["crm.sqlite"]
    assert main(["status", str(config)]) == 0
    assert "alice-mail: active, incremental" in capsys.readouterr().out
    assert main(["skipped", str(config), "--channel", "alice-mail"]) == 0
    assert "Globex monthly newsletter" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("crm.sqlite*")) == ["crm.sqlite"]


def test_bad_config_exits_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "channels.toml"
    config.write_text(
        '[[channels]]\nid = "x"\nuser = "u"\nprovider = "fax"\nowner = "me@x.example"\n'
    )
    assert main(["sync", str(config)]) == 2
    assert "channels[0].provider" in capsys.readouterr().err


def test_untrusted_text_never_reaches_the_terminal_raw() -> None:
    from datetime import datetime, timezone

    from commlink.cli.output import format_skips, format_threads, terminal_safe
    from commlink.model import Address, Participant, Role, Visibility
    from commlink.records import Reason, Skip, ThreadSummary

    hostile = "Invoice \x1b]0;pwned\x07\x1b[2J\u202egnp.exe\u202c\r\x08"
    assert terminal_safe(hostile) == (
        "Invoice \\x1b]0;pwned\\x07\\x1b[2J\\u202egnp.exe\\u202c\\x0d\\x08"
    )
    assert terminal_safe("Grüße, 中文, emoji 🎉") == "Grüße, 中文, emoji 🎉"
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sender = Participant(Address("x@y.example", "x@y.example", name=hostile), Role.FROM)
    thread = ThreadSummary(
        thread_id="t",
        participants=(sender,),
        first_at=when,
        last_at=when,
        message_count=1,
        visibility=Visibility.FULL,
        subject=hostile,
        snippet=hostile,
    )
    skip = Skip("p1", Reason.GROUP, hostile, subject=hostile, sender=hostile)
    for line in [*format_threads([thread]), *format_skips([skip])]:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), line
        assert "\u202e" not in line


def test_version_and_python_dash_m(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    import commlink

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"commlink {commlink.__version__}"
    run = subprocess.run(
        [sys.executable, "-m", "commlink", "--help"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0
    assert "usage: commlink" in run.stdout


def test_read_commands_never_create_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "channels.toml"
    config.write_text('[store]\nurl = "sqlite:///crm.sqlite"\n')
    for command in (["status"], ["skipped"], ["timeline", "--person", "p", "--viewer", "u"]):
        assert main([command[0], str(config), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert "no database at" in err
        assert err.count("\n") == 1
    assert not (tmp_path / "crm.sqlite").exists()


def test_status_as_json_and_unreachable_servers_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "channels.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///crm.sqlite"\n\n'
        '[[channels]]\nid = "imap"\nuser = "alice"\nprovider = "imap"\n'
        'owner = "alice@northwind.example"\n'
        f'options = {{ host = "127.0.0.1", port = {port}, ssl = false, username = "a", '
        'password = "pw-not-shown" }\n'
    )
    assert main(["sync", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "pw-not-shown" not in out + err
    assert main(["status", "--json", str(config)]) == 0
    states = json.loads(capsys.readouterr().out)
    assert states[0]["channel"] == "imap"
    assert states[0]["failures"] == 1
    assert states[0]["next_attempt"] is not None
    config.write_text(
        f'[store]\nurl = "postgresql+psycopg://nobody@127.0.0.1:{port}/x?connect_timeout=2"\n'
    )
    assert main(["status", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("commlink: ")
    assert err.count("\n") == 1
