"""``commlink search``: a synced mbox searched as its owner and as a colleague."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commlink.cli.demo import DEMO_DATA
from commlink.cli.main import main


def _config(tmp_path: Path, visibility: str) -> Path:
    config = tmp_path / "channels.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/crm.sqlite"\n\n'
        '[[channels]]\nid = "alice-mail"\nuser = "alice"\nprovider = "mbox"\n'
        f'path = "{DEMO_DATA}/demo.mbox"\nowner = "alice@northwind.example"\n'
        f'visibility = "{visibility}"\n'
    )
    return config


def test_search_applies_the_viewers_visibility(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "subject")
    assert main(["sync", str(config)]) == 0
    capsys.readouterr()
    assert main(["search", str(config), '"signed order"', "--viewer", "alice"]) == 0
    owner = capsys.readouterr().out
    assert "Signed order form" in owner
    assert "[full]" in owner
    assert main(["search", str(config), "signed copy attached", "--viewer", "bob"]) == 0
    assert "(nothing found)" in capsys.readouterr().out
    assert main(["search", str(config), "signed order", "--viewer", "bob", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["subject"] for h in hits] == ["Signed order form"]
    assert hits[0]["snippet"] is None
    assert hits[0]["visibility"] == "subject"


def test_search_refuses_a_bad_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "full")
    assert main(["sync", str(config)]) == 0
    capsys.readouterr()
    code = main(["search", str(config), "w " * 40, "--viewer", "alice"])
    assert code != 0
    assert "more than 16 words" in capsys.readouterr().err
