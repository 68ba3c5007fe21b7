"""The fuzz targets in tests/fuzz hold on their seed files, so they keep
working between fuzzing sessions (tests/fuzz/README.md)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TARGETS = {
    "fuzz_calendar": "ics",
    "fuzz_html": "html",
    "fuzz_imap_fetch": "imap",
    "fuzz_mail": "mail",
    "fuzz_mbox": "takeout",
}


def _check(target: str) -> Callable[[bytes], None]:
    spec = importlib.util.spec_from_file_location(target, TESTS / "fuzz" / f"{target}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check: Callable[[bytes], None] = module.check
    return check


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_holds_on_its_seeds(target: str) -> None:
    check = _check(target)
    seeds = sorted(p for p in (TESTS / "data" / TARGETS[target]).iterdir() if p.is_file())
    assert seeds
    for seed in seeds:
        check(seed.read_bytes())
