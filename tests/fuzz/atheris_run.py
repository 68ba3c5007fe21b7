"""Run a fuzz target's ``check`` under atheris (libFuzzer's flags from the
command line): every module loaded so far is instrumented for coverage."""

from __future__ import annotations

import sys
from collections.abc import Callable


def fuzz(check: Callable[[bytes], None]) -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
