"""The examples run: the quickstart prints timelines, the custom store and the
custom directory pass their conformance suites."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from custom_directory import TestDictCrm  # noqa: E402
from custom_store import TestPublishingStore  # noqa: E402

__all__ = ["TestDictCrm", "TestPublishingStore"]


def test_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "alice-mail: active" in out
    # alice owns the channel and sees subjects; bob sees metadata only
    alice, bob = out.split("Globex as bob:")
    assert "Signed order form" in alice
    assert "(hidden)" in bob
    assert "Signed order form" not in bob
