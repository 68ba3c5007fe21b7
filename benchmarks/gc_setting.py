"""The garbage collector setting of a benchmark's commlink process.

A sync worker calls ``commlink.tune_gc()`` once it has started, as the
``commlink`` executable does for itself (docs/deployment.md); the benchmarks
that run the engine in a process of their own do the same unless given
``--default-gc``. A process timed to its end also freezes what is left just
before it exits, as the executable does (``before_exit``). A source tree from
before ``commlink.runtime`` (a ``--baseline-src``) runs with CPython's
default thresholds and exits as it did.
"""

from __future__ import annotations

import gc


def apply(default_gc: bool) -> str:
    """Set this process's collector up; returns how, for the report."""
    if not default_gc:
        try:
            from commlink.runtime import tune_gc
        except ImportError:
            pass
        else:
            tune_gc()
            return f"commlink.tune_gc() {gc.get_threshold()}, frozen at exit"
    return f"CPython's default {gc.get_threshold()}"


def before_exit(default_gc: bool) -> None:
    """What the ``commlink`` executable does as its process ends: freeze what
    is left, so the interpreter's exit does not walk every object again."""
    if default_gc:
        return
    try:
        import commlink.runtime  # noqa: F401 - only trees that have it freeze
    except ImportError:
        return
    gc.freeze()
