"""The garbage collector setting of a benchmark's commlink process.

A sync worker calls ``commlink.tune_gc()`` once it has started, as the
``commlink`` command does for itself (docs/deployment.md); the benchmarks
that run the engine in a process of their own do the same unless given
``--default-gc``. A source tree from before ``commlink.runtime`` (a
``--baseline-src``) runs with CPython's default thresholds.
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
            return f"commlink.tune_gc() {gc.get_threshold()}"
    return f"CPython's default {gc.get_threshold()}"
