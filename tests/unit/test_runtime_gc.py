"""``commlink.tune_gc``: the collector settings of a process that syncs."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

import commlink
from commlink.runtime import GC_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_only_the_youngest_generation_threshold_changes(restored_gc: None) -> None:
    gc.set_threshold(700, 11, 12)
    tune_gc()
    assert gc.get_threshold() == (GC_THRESHOLD, 11, 12)
    tune_gc(5_000)
    assert gc.get_threshold() == (5_000, 11, 12)
    assert gc.isenabled()


def test_freeze_moves_what_lives_now_out_of_sight(restored_gc: None) -> None:
    kept = [[n] for n in range(1_000)]
    tune_gc(freeze=True)
    assert gc.get_freeze_count() >= len(kept)
    # the collector's generations no longer hold them: no collection walks them
    assert not any(item is kept or item is kept[0] for item in gc.get_objects())
    later = [0]
    assert any(item is later for item in gc.get_objects())


def test_a_threshold_below_one_is_refused(restored_gc: None) -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="positive"):
        tune_gc(0)
    assert gc.get_threshold() == before


def test_exported_from_the_package() -> None:
    assert commlink.tune_gc is tune_gc


_PROBE = """
import gc, sys
from commlink import cli
sys.argv = ["commlink", "status", "/nonexistent.toml"]
status = {call}
print(status, gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def _probe(call: str) -> list[str]:
    """Exit status, first threshold and whether anything is frozen after ``call``."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(call=call)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_the_command_tunes_its_own_process() -> None:
    # and, about to exit, froze what is left: the interpreter's exit does not walk it
    assert _probe("cli.command()") == ["2", str(GC_THRESHOLD), "True"]


def test_a_host_calling_main_keeps_its_settings() -> None:
    assert _probe("cli.main(sys.argv[1:])") == ["2", "700", "False"]  # CPython's default
