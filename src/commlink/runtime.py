"""Process settings for a process that syncs: CPython's garbage collector.

A sync keeps batches of small objects alive for a moment (a batch's parsed
messages, their records and rows: tens of thousands of them), and at
CPython's default thresholds (700, 10, 10) the cyclic collector walks those
again after every 700 allocations: 7-11 % of parse and policy time
(``benchmarks/policy_throughput.py``). Reference counting frees almost all
of them anyway; the collector is only for reference cycles.

The ``commlink`` executable calls ``tune_gc()`` for itself
(``cli.command``). A host's sync worker can call it once it has started
(``docs/deployment.md``); it changes the whole process, so it is never
called from library code.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLD", "tune_gc"]

#: Allocations (less deallocations) of container objects between two runs
#: of the youngest generation's collection.
GC_THRESHOLD = 50_000


def tune_gc(threshold: int = GC_THRESHOLD, *, freeze: bool = False) -> None:
    """Run the youngest generation's collection every ``threshold``
    allocations instead of every 700; the older generations' thresholds stay.
    Garbage held in reference cycles is freed somewhat later, nothing else
    changes. ``freeze=True`` also collects once and then moves every object
    alive now (the imported modules, the configuration) out of the
    collector's sight for good (``gc.freeze``): call it when start-up is
    done, not while a sync holds data."""
    if threshold < 1:
        raise ValueError("threshold must be positive")
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)
    if freeze:
        gc.collect()
        gc.freeze()
