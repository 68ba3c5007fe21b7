"""The ``commlink`` command line: commands (``main``), configuration files
(``config``), terminal output (``output``) and the demo (``demo``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["command", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``commlink`` command; returns its exit status."""
    from .main import main as run

    return run(argv)


def command() -> int:
    """The ``commlink`` executable (and ``python -m commlink``): ``main`` in
    a process of its own, whose garbage collector it sets up for syncing
    (``commlink.tune_gc``). A host calling ``main`` keeps its own settings.

    The process ends once ``main`` returns (each command has closed what it
    opened): what is left is frozen, so the interpreter's exit does not walk
    it again (about 90 ms after a sync of 5,000 events)."""
    import gc

    from ..runtime import tune_gc

    tune_gc()
    try:
        return main()
    finally:
        gc.freeze()
